/**
 * Scoped API keys for the server HTTP API (docs/api.md). Keys are kept only
 * as SHA-256 digests and compared in constant time: every configured key's
 * digest is compared with the presented one's (no early exit), so timing
 * tells neither which key nor how much of it matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const API_SCOPES = ['publish', 'signal', 'rooms:end', 'presence:read', 'history:read', 'tokens:mint', 'turn:mint', 'usage:read'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export interface ApiKeyOption {
  /** The bearer key, at least 24 characters. */
  key: string;
  scopes: ApiScope[];
  /** A name for logs (never the key). Default `key{n}`. */
  name?: string;
  /** The tenants the key may act for. Default: every tenant. */
  tenants?: string[];
}

/** A key that matched: what it may do, and for which tenants (`undefined`: every tenant). */
export interface ApiKey {
  name: string;
  scopes: ReadonlySet<ApiScope>;
  tenants: ReadonlySet<string> | undefined;
}

/** An operator key: every scope and no tenant limit (the admin API, tenant quotas). */
export function isOperatorKey(key: ApiKey): boolean {
  return key.tenants === undefined && API_SCOPES.every((scope) => key.scopes.has(scope));
}

interface StoredKey extends ApiKey {
  digest: Buffer;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class ApiKeyring {
  private readonly keys: StoredKey[];

  constructor(keys: readonly ApiKeyOption[]) {
    this.keys = keys.map((key, index) => ({
      digest: digest(key.key),
      scopes: new Set(key.scopes),
      name: key.name ?? `key${index + 1}`,
      tenants: key.tenants === undefined ? undefined : new Set(key.tenants),
    }));
  }

  get size(): number {
    return this.keys.length;
  }

  /** The key matching `presented`, or undefined. Always compares against every key. */
  find(presented: string): ApiKey | undefined {
    const presentedDigest = digest(presented);
    let found: StoredKey | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(key.digest, presentedDigest) && !found) found = key;
    }
    return found && { name: found.name, scopes: found.scopes, tenants: found.tenants };
  }
}
