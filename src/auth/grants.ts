/**
 * Room grants: what a token allows in which rooms (project issue 7). A
 * `rooms` claim lists `{ room?, prefix?, rights }` grants (`prefix: ""` is
 * every room) and `signal: true` allows direct signals to any user of the
 * tenant; without `rooms` a token allows everything unless the node runs
 * with `--auth-grants-required`. A grant's `signal` right reaches members
 * of that room only (checked against presence at send time).
 * docs/protocol.md has the rules.
 */
import { z } from 'zod';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { MAX_ID_LENGTH, ROOM_ID_PATTERN } from '../../packages/protocol/src/ids.js';

export const ROOM_RIGHTS = ['join', 'publish', 'signal', 'presence', 'moderate'] as const;
export type RoomRight = (typeof ROOM_RIGHTS)[number];

export interface RoomGrant {
  /** Exactly this room. */
  room?: string;
  /** Every room whose id starts with this (`""`: every room). */
  prefix?: string;
  rights: RoomRight[];
}

/** Rights of a join token without a `rights` claim. */
const DEFAULT_JOIN_RIGHTS: readonly RoomRight[] = ['join', 'publish', 'presence'];

const rights = z.array(z.enum(ROOM_RIGHTS)).max(ROOM_RIGHTS.length * 2);
const grantSchema = z
  .object({
    room: z.string().regex(ROOM_ID_PATTERN).optional(),
    prefix: z
      .string()
      .max(MAX_ID_LENGTH)
      .regex(/^[A-Za-z0-9._~-]*$/)
      .optional(),
    rights,
  })
  .refine((grant) => (grant.room === undefined) !== (grant.prefix === undefined), 'exactly one of room, prefix');
const grantsSchema = z.array(grantSchema).max(256);

/** Parse the `rooms` claim; throws `auth_failed` when malformed (the whole token is refused, never half-read). */
export function parseGrants(claim: unknown): RoomGrant[] {
  const result = grantsSchema.safeParse(claim);
  if (!result.success) throw new NerveError(ErrorCode.AuthFailed, 'token `rooms` claim is malformed');
  return result.data.map((grant) => ({
    ...(grant.room === undefined ? {} : { room: grant.room }),
    ...(grant.prefix === undefined ? {} : { prefix: grant.prefix }),
    rights: [...new Set(grant.rights)],
  }));
}

/** Parse a join token's `rights` claim (default: join, publish, presence). */
export function parseRights(claim: unknown): RoomRight[] {
  if (claim === undefined) return [...DEFAULT_JOIN_RIGHTS];
  const result = rights.safeParse(claim);
  if (!result.success) throw new NerveError(ErrorCode.Forbidden, 'join token `rights` claim is malformed');
  return [...new Set(result.data)];
}

/** Whether `grant` covers `room`: its exact room, or any room starting with its prefix. The one matching rule. */
export function grantMatches(grant: RoomGrant, room: string): boolean {
  return grant.room !== undefined ? grant.room === room : room.startsWith(grant.prefix ?? '\u0000');
}

/** Rights the grants give in `room` (the union of every matching grant). `undefined` grants: everything. */
export function rightsIn(grants: readonly RoomGrant[] | undefined, room: string): ReadonlySet<RoomRight> {
  if (grants === undefined) return ALL_RIGHTS;
  const found = new Set<RoomRight>();
  for (const grant of grants) {
    if (grantMatches(grant, room)) for (const right of grant.rights) found.add(right);
  }
  return found;
}

/**
 * What a token without a `rooms` claim allows in every room: every right but
 * `moderate` (editing and deleting others' chat), which is never implied and
 * must be named in a grant or a join token.
 */
const ALL_RIGHTS: ReadonlySet<RoomRight> = new Set(ROOM_RIGHTS.filter((right) => right !== 'moderate'));
