/**
 * The authentication seam. An Authenticator turns the credentials of a
 * `connect` frame into an Identity, or throws a NerveError with code
 * `auth_failed` (the gateway then closes with 4001).
 */
import type { RoomGrant, RoomRight } from './grants.js';

export interface Identity {
  /** Authenticated user id; the server stamps it as `from` on everything the user sends. */
  user: string;
  /** Tenant; part of every channel and key name. */
  tenant: string;
  /** When the credential expires (ms since epoch), if it does. */
  expiresAt?: number;
  /** Room grants of the token (src/auth/grants.ts); `undefined` allows every room and right. */
  grants?: RoomGrant[];
  /** `signal: true` claim: direct signals to any user of the tenant. Implied when `grants` is undefined. */
  signal?: boolean;
  /** `presence` claim (a JSON object): the user's presence state in every room, merged over what the client sets (src/presence/state.ts). */
  presence?: Record<string, unknown>;
}

export interface AuthRequest {
  token?: string;
  user?: string;
  remoteAddress?: string;
  origin?: string;
}

/** What a valid join token grants: rights in its one room. */
export interface JoinGrant {
  room: string;
  rights: RoomRight[];
  /** When the join token expires (ms since epoch); only checked at `join`. */
  expiresAt?: number;
}

export interface Authenticator {
  /** `dev`, `jwt`, ... */
  readonly kind: string;
  authenticate(request: AuthRequest): Promise<Identity>;
  /**
   * Check a per-room join token for `identity` and `room`. Throws a
   * NerveError `forbidden` when it is invalid or names another user, tenant
   * or room. Authenticators without join tokens leave it out.
   */
  verifyJoinToken?(token: string, identity: Identity, room: string): Promise<JoinGrant>;
}
