/**
 * JWT authenticator (project issue 7; docs/protocol.md has the claims):
 * an HMAC secret, a PEM public key and/or a JWKS URL (jose's
 * `createRemoteJWKSet`, refetched at most once per cooldown). Accepted
 * algorithms are pinned and the key is chosen by the algorithm's family, so
 * `alg: none` and key-confusion tokens (HS256 signed with the RSA public
 * key) fail. A token with a `room` claim is a join token: refused at
 * `connect`, accepted only by `join`.
 */
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { errorText } from '../errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { isValidRoomId, isValidTenantId, isValidUserId } from '../../packages/protocol/src/ids.js';
import type { AuthRequest, Authenticator, Identity, JoinGrant } from './authenticator.js';
import { parseGrants, parseRights, type RoomRight } from './grants.js';

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export const JWT_ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS];

export interface JwtAuthenticatorOptions {
  /** HMAC secret, at least 32 bytes. Default none. */
  secret?: string | undefined;
  /** PEM public key (SPKI) for RS*, PS*, ES*, EdDSA tokens. Default none. */
  publicKey?: string | undefined;
  /** JWKS URL for asymmetric tokens, selected by `kid`. Default none. */
  jwksUrl?: string | undefined;
  /** Accepted `alg` values. Default: derived from the keys configured (see `defaultAlgorithms`). */
  algorithms?: readonly string[] | undefined;
  /** Tenant when the token has no `tenant` claim. */
  defaultTenant: string;
  /** Expected `aud`, if any. Default: not checked. */
  audience?: string | undefined;
  /** Expected `iss`, if any. Default: not checked. */
  issuer?: string | undefined;
  /** Clock tolerance for exp/nbf, seconds. Default 5. */
  clockToleranceSeconds?: number | undefined;
  /** A token without a `rooms` claim allows no room right (only join tokens do). Default false: it allows everything. */
  grantsRequired?: boolean | undefined;
  /** JWKS: refetch at most this often when an unknown `kid` shows up, ms. Default 30000. */
  jwksCooldownMs?: number | undefined;
}

/** Algorithms accepted when none are configured: HS256 for a secret; the key's own algorithm for a PEM key; RS256, ES256, EdDSA for a JWKS. */
function defaultAlgorithms(options: Pick<JwtAuthenticatorOptions, 'secret' | 'publicKey' | 'jwksUrl'>): string[] {
  const algorithms = new Set<string>();
  if (options.secret) algorithms.add('HS256');
  if (options.publicKey) for (const alg of algorithmsOfKey(createPublicKey(options.publicKey))) algorithms.add(alg);
  if (options.jwksUrl) for (const alg of ['RS256', 'ES256', 'EdDSA']) algorithms.add(alg);
  return [...algorithms];
}

function algorithmsOfKey(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256'];
    case 'rsa-pss':
      return ['PS256'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return [curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256'];
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}

const isHmac = (alg: string): boolean => alg.startsWith('HS');

export class JwtAuthenticator implements Authenticator {
  readonly kind = 'jwt';
  readonly algorithms: string[];
  private readonly secret: Uint8Array | undefined;
  private readonly publicKey: KeyObject | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private readonly getKey: JWTVerifyGetKey;
  /**
   * The secret imported once per HS* algorithm: given the raw bytes, jose
   * imports a WebCrypto key on every verify (an async round through
   * WebCrypto per connect); a KeyObject or JWKS key it caches itself.
   */
  private readonly hmacKeys = new Map<string, Promise<CryptoKey>>();

  constructor(private readonly options: JwtAuthenticatorOptions) {
    if (!options.secret && !options.publicKey && !options.jwksUrl) {
      throw new TypeError('JwtAuthenticator needs a secret, a public key or a JWKS URL');
    }
    if (options.publicKey && options.jwksUrl) throw new TypeError('JwtAuthenticator takes a public key or a JWKS URL, not both');
    this.secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
    this.publicKey = options.publicKey ? createPublicKey(options.publicKey) : undefined;
    this.jwks = options.jwksUrl
      ? createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: options.jwksCooldownMs ?? 30_000, timeoutDuration: 5000 })
      : undefined;
    this.algorithms = [...(options.algorithms ?? defaultAlgorithms(options))];
    for (const alg of this.algorithms) {
      if (!JWT_ALGORITHMS.includes(alg)) throw new TypeError(`unknown JWT algorithm ${alg}`);
      if (isHmac(alg) && !this.secret) throw new TypeError(`algorithm ${alg} needs an HMAC secret`);
      if (!isHmac(alg) && !this.publicKey && !this.jwks) throw new TypeError(`algorithm ${alg} needs a public key or a JWKS URL`);
    }
    // The key follows the algorithm's family: an HS* token is never checked against a public key.
    this.getKey = async (header, token) => {
      const alg = header.alg ?? '';
      if (isHmac(alg)) {
        if (this.secret) return this.hmacKey(alg, this.secret);
      } else if (this.publicKey) {
        return this.publicKey;
      } else if (this.jwks) {
        return this.jwks(header, token);
      }
      throw new joseErrors.JOSEAlgNotAllowed('no key for this algorithm');
    };
  }

  private hmacKey(alg: string, secret: Uint8Array): Promise<CryptoKey> {
    let key = this.hmacKeys.get(alg);
    if (!key) {
      // HS256 → SHA-256, HS384 → SHA-384, HS512 → SHA-512 (only configured algorithms reach here).
      key = webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
      this.hmacKeys.set(alg, key);
    }
    return key;
  }

  private async verify(token: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
        ...(this.options.issuer === undefined ? {} : { issuer: this.options.issuer }),
        clockTolerance: this.options.clockToleranceSeconds ?? 5,
      });
      return payload;
    } catch (error) {
      throw new NerveError(ErrorCode.AuthFailed, rejection(error), { cause: error });
    }
  }

  async authenticate(request: AuthRequest): Promise<Identity> {
    if (!request.token) throw new NerveError(ErrorCode.AuthFailed, 'a token is required');
    const payload = await this.verify(request.token);
    if (payload.room !== undefined) throw new NerveError(ErrorCode.AuthFailed, 'a join token cannot open a connection');
    const { user, tenant } = this.subject(payload, ErrorCode.AuthFailed);
    const grants = payload.rooms !== undefined ? parseGrants(payload.rooms) : this.options.grantsRequired ? [] : undefined;
    if (payload.signal !== undefined && typeof payload.signal !== 'boolean')
      throw new NerveError(ErrorCode.AuthFailed, 'token `signal` claim must be a boolean');
    const presence = payload.presence;
    if (presence !== undefined && (presence === null || typeof presence !== 'object' || Array.isArray(presence)))
      throw new NerveError(ErrorCode.AuthFailed, 'token `presence` claim must be a JSON object');
    return {
      user,
      tenant,
      ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
      ...(grants === undefined ? {} : { grants }),
      ...(payload.signal === true ? { signal: true } : {}),
      ...(presence === undefined ? {} : { presence: presence as Record<string, unknown> }),
    };
  }

  async verifyJoinToken(token: string, identity: Identity, room: string): Promise<JoinGrant> {
    let payload: JWTPayload;
    try {
      payload = await this.verify(token);
    } catch (error) {
      throw new NerveError(ErrorCode.Forbidden, `join token ${errorText(error)}`, { cause: error });
    }
    if (typeof payload.room !== 'string') throw new NerveError(ErrorCode.Forbidden, 'not a join token: no `room` claim');
    const { user, tenant } = this.subject(payload, ErrorCode.Forbidden);
    if (user !== identity.user || tenant !== identity.tenant || payload.room !== room) {
      throw new NerveError(ErrorCode.Forbidden, 'the join token is for another user, tenant or room');
    }
    return { room, rights: parseRights(payload.rights), ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
  }

  private subject(payload: JWTPayload, code: typeof ErrorCode.AuthFailed | typeof ErrorCode.Forbidden): { user: string; tenant: string } {
    if (!isValidUserId(payload.sub)) throw new NerveError(code, 'token `sub` is not a valid user id');
    const tenant = payload.tenant ?? this.options.defaultTenant;
    if (!isValidTenantId(tenant)) throw new NerveError(code, 'token `tenant` is not a valid tenant id');
    return { user: payload.sub, tenant };
  }
}

/** A reason that names what failed, never echoing token content. */
function rejection(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'token expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `token claim \`${error.claim}\` rejected`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'token key id unknown';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature invalid';
  return 'token rejected';
}

export interface MintJoinTokenInput {
  secret: string;
  user: string;
  tenant: string;
  room: string;
  rights?: RoomRight[] | undefined;
  ttlSeconds: number;
  issuer?: string | undefined;
  audience?: string | undefined;
}

/** Mint an HS256 join token (`POST /api/tokens/join`). */
export async function mintJoinToken(input: MintJoinTokenInput): Promise<{ token: string; expiresAt: number }> {
  if (!isValidRoomId(input.room)) throw new TypeError('invalid room id');
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ room: input.room, tenant: input.tenant, ...(input.rights ? { rights: input.rights } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(input.user)
    .setIssuedAt(now)
    .setExpirationTime(now + input.ttlSeconds);
  if (input.issuer !== undefined) jwt = jwt.setIssuer(input.issuer);
  if (input.audience !== undefined) jwt = jwt.setAudience(input.audience);
  return { token: await jwt.sign(new TextEncoder().encode(input.secret)), expiresAt: (now + input.ttlSeconds) * 1000 };
}
