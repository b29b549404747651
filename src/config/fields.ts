/**
 * Validators of the structured settings (lists, JSON, keys, files): each
 * returns the normalized value or throws a `ConfigError` that names the
 * setting and never echoes a secret.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { API_SCOPES, type ApiKeyOption, type ApiScope } from '../auth/api-keys.js';
import { JWT_ALGORITHMS } from '../auth/jwt.js';
import { parseProxyEntry } from '../net/client-address.js';
import type { IceServer } from '../../packages/protocol/src/frames.js';
import { isValidTenantId } from '../../packages/protocol/src/ids.js';
import { InvalidQuotaError, parseQuotaFile, parseTenantQuota, type TenantQuota } from '../quotas/quotas.js';
import { ConfigError } from './errors.js';
import type { HistoryPolicyOption } from './options.js';
import { NAME_COMPONENT } from './validate.js';

export function historyPolicies(value: unknown): HistoryPolicyOption[] {
  const accepted = 'a JSON array of {prefix, maxMessages?, ttlMs?} with a room-id prefix, maxMessages 0-1000000, ttlMs >= 1000';
  if (!Array.isArray(value)) throw new ConfigError('historyPolicies', accepted, JSON.stringify(value));
  return value.map((item: unknown) => {
    const policy = item as Partial<HistoryPolicyOption> | null;
    const ok =
      typeof policy === 'object' &&
      policy !== null &&
      typeof policy.prefix === 'string' &&
      /^[A-Za-z0-9._~-]{0,128}$/.test(policy.prefix) &&
      (policy.maxMessages === undefined || (Number.isInteger(policy.maxMessages) && policy.maxMessages >= 0 && policy.maxMessages <= 1_000_000)) &&
      (policy.ttlMs === undefined || (Number.isInteger(policy.ttlMs) && policy.ttlMs >= 1000));
    if (!ok) throw new ConfigError('historyPolicies', accepted, JSON.stringify(item));
    return {
      prefix: policy.prefix!,
      ...(policy.maxMessages === undefined ? {} : { maxMessages: policy.maxMessages }),
      ...(policy.ttlMs === undefined ? {} : { ttlMs: policy.ttlMs }),
    };
  });
}

export function apiKeys(value: unknown): ApiKeyOption[] {
  const accepted = `a JSON array of {key (>= 24 characters), scopes: [${API_SCOPES.join(', ')}], name?, tenants?: [tenant ids]}`;
  if (!Array.isArray(value)) throw new ConfigError('apiKeys', accepted, '<hidden>');
  return value.map((item: unknown, index) => {
    const entry = item as Partial<ApiKeyOption> | null;
    const ok =
      typeof entry === 'object' &&
      entry !== null &&
      typeof entry.key === 'string' &&
      Buffer.byteLength(entry.key) >= 24 &&
      Array.isArray(entry.scopes) &&
      entry.scopes.every((scope) => (API_SCOPES as readonly string[]).includes(scope)) &&
      (entry.name === undefined || (typeof entry.name === 'string' && NAME_COMPONENT.test(entry.name))) &&
      (entry.tenants === undefined ||
        (Array.isArray(entry.tenants) && entry.tenants.length > 0 && entry.tenants.every((tenant) => typeof tenant === 'string' && isValidTenantId(tenant))));
    // Never echo a key into an error message.
    if (!ok) throw new ConfigError(`apiKeys[${index}]`, accepted, '<hidden>');
    return {
      key: entry.key!,
      scopes: [...new Set(entry.scopes as ApiScope[])],
      ...(entry.name === undefined ? {} : { name: entry.name }),
      ...(entry.tenants === undefined ? {} : { tenants: [...new Set(entry.tenants)] }),
    };
  });
}

export function apiKey(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (Buffer.byteLength(value) < 24) throw new ConfigError('apiKey', 'at least 24 characters', '<hidden>');
  return value;
}

/**
 * Every API key secret once: the keyring takes the first match, so a scoped
 * or tenant-limited key sharing its secret with another would silently act
 * as that one.
 */
export function distinctSecrets(key: string | undefined, keys: readonly ApiKeyOption[]): void {
  const secrets = [...(key === undefined ? [] : [key]), ...keys.map((entry) => entry.key)];
  if (new Set(secrets).size !== secrets.length) throw new ConfigError('apiKeys', 'each key secret once (--api-key and --api-keys included)', '<hidden>');
}

export function origins(value: unknown): string[] {
  const accepted = 'a list of origins: scheme://host[:port], no path';
  if (!Array.isArray(value)) throw new ConfigError('allowedOrigins', accepted, JSON.stringify(value));
  return value.map((item: unknown) => {
    let parsed: URL;
    try {
      parsed = new URL(String(item));
    } catch {
      throw new ConfigError('allowedOrigins', accepted, item);
    }
    if (parsed.origin === 'null' || parsed.pathname !== '/' || parsed.search || parsed.hash) throw new ConfigError('allowedOrigins', accepted, item);
    return parsed.origin;
  });
}

export function trustedProxies(value: unknown): string[] {
  const accepted = 'IPv4 / IPv6 addresses or CIDR ranges (10.0.0.0/8, fd00::/8)';
  if (!Array.isArray(value)) throw new ConfigError('trustedProxies', accepted, JSON.stringify(value));
  for (const item of value) {
    const entry = typeof item === 'string' ? parseProxyEntry(item) : undefined;
    if (entry === undefined) throw new ConfigError('trustedProxies', accepted, String(item));
    // Every peer trusted means every client picks its own address: list the proxies instead.
    if (entry.prefix === 0) throw new ConfigError('trustedProxies', `${accepted}, not every address (/0)`, String(item));
  }
  return value as string[];
}

export function publicKey(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  let pem = value;
  if (!value.includes('-----BEGIN')) {
    try {
      pem = readFileSync(value, 'utf8');
    } catch {
      throw new ConfigError('authPublicKey', 'a PEM public key, or the path of a readable PEM file', value);
    }
  }
  try {
    const key = createPublicKey(pem);
    if (!['rsa', 'rsa-pss', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) throw new Error('type');
  } catch {
    throw new ConfigError('authPublicKey', 'a PEM public key (RSA, EC or Ed25519)', value.includes('-----BEGIN') ? '<pem>' : value);
  }
  return pem;
}

export function algorithms(value: string[] | undefined, keys: { secret: boolean; asymmetric: boolean }): string[] | undefined {
  if (value === undefined || value.length === 0) return undefined;
  for (const alg of value) {
    const known = JWT_ALGORITHMS.includes(alg);
    const keyed = alg.startsWith('HS') ? keys.secret : keys.asymmetric;
    if (!known || !keyed) {
      throw new ConfigError(
        'authAlgorithms',
        `algorithms of the configured keys (${JWT_ALGORITHMS.join(', ')}; HS* need --auth-secret, the others --auth-public-key or --auth-jwks-url)`,
        alg,
      );
    }
  }
  return [...new Set(value)];
}

export function iceServers(value: IceServer[]): IceServer[] {
  for (const server of value) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    if (urls.length === 0 || urls.some((u) => typeof u !== 'string' || !/^(stun|stuns|turn|turns):/.test(u))) {
      throw new ConfigError('iceServers', 'a JSON array of {urls: "stun:..." | "turn:...", username?, credential?}', JSON.stringify(server));
    }
  }
  return value;
}

/** The quotas of `--tenant-quotas` (or given as a map), read and validated now so a bad file stops start-up. */
export function tenantQuotas(file: string | undefined, given: ReadonlyMap<string, TenantQuota> | undefined): Map<string, TenantQuota> {
  const accepted = 'a JSON file {"tenant": {connections?, publishesPerSecond?, signalsPerSecond?, rooms?, storedBytes?}} of integers >= 0';
  try {
    if (given !== undefined) return parseQuotaFile(Object.fromEntries([...given].map(([tenant, quota]) => [tenant, parseTenantQuota(quota)])));
  } catch (error) {
    throw new ConfigError('tenantQuotas', accepted, error instanceof InvalidQuotaError ? error.field : '?');
  }
  if (file === undefined || file === '') return new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError('tenantQuotasFile', `${accepted} (the file cannot be read)`, file);
  }
  try {
    return parseQuotaFile(JSON.parse(text));
  } catch (error) {
    throw new ConfigError('tenantQuotasFile', error instanceof InvalidQuotaError ? `${accepted}; ${error.message}` : accepted, file);
  }
}
