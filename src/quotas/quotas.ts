/**
 * Cluster-wide quotas per tenant: what a tenant may use across every node
 * (docs/operations.md, "Tenant quotas"). This module is the seam: the quota
 * shape, its validation, the store of configured quotas (`TenantQuotas`)
 * and the typed refusal. Enforcement is src/quotas/enforcer.ts.
 */
import { NerveError } from '../../packages/protocol/src/errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { isValidTenantId } from '../../packages/protocol/src/ids.js';

/** The quotas one tenant has; an absent field is no limit. */
export interface TenantQuota {
  /** Open (authenticated) connections, summed over every node. */
  connections?: number;
  /** Room publishes per second (chat and ephemeral, from members and the server API), over every node. */
  publishesPerSecond?: number;
  /** Direct signals per second (from members and the server API), over every node. */
  signalsPerSecond?: number;
  /** Rooms with at least one member at once, over every node. */
  rooms?: number;
  /** Bytes of chat stored (message `data`, JSON) within the history TTL; see docs/operations.md. */
  storedBytes?: number;
}

/** Which quota refused a request: the `quota` field of a `quota_exceeded` error. */
export type QuotaName = 'connections' | 'publishes' | 'signals' | 'rooms' | 'stored_bytes';
const FIELDS = ['connections', 'publishesPerSecond', 'signalsPerSecond', 'rooms', 'storedBytes'] as const;
const MAX_QUOTA = Number.MAX_SAFE_INTEGER;

/** A quota document that breaks the rules; `field` names the first bad field. */
export class InvalidQuotaError extends Error {
  override readonly name = 'InvalidQuotaError';
  readonly code = 'invalid_quota';
  constructor(
    readonly field: string,
    unknown = false,
  ) {
    super(
      unknown
        ? `invalid quota: unknown field ${field} (known: ${FIELDS.join(', ')})`
        : field.startsWith('(')
          ? `invalid quota: ${field} must be a JSON object`
          : `invalid quota: ${field} must be an integer from 0 to ${MAX_QUOTA}`,
    );
  }
}

/**
 * Validate one tenant's quotas: an object whose known fields are integers
 * >= 0; unknown fields are refused (a typo must not silently mean "no limit").
 */
export function parseTenantQuota(value: unknown): TenantQuota {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidQuotaError('(body)');
  const quota: TenantQuota = {};
  for (const [field, limit] of Object.entries(value)) {
    if (!(FIELDS as readonly string[]).includes(field)) throw new InvalidQuotaError(field.slice(0, 64), true);
    if (limit === null) continue;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > MAX_QUOTA) throw new InvalidQuotaError(field);
    quota[field as (typeof FIELDS)[number]] = limit;
  }
  return quota;
}

/** The key of the quotas every tenant without its own gets. */
export const ANY_TENANT = '*';

/** Validate a quota file: `{"tenant": {quotas}, "*": {quotas for the others}}`. */
export function parseQuotaFile(value: unknown): Map<string, TenantQuota> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidQuotaError('(file)');
  const quotas = new Map<string, TenantQuota>();
  for (const [tenant, quota] of Object.entries(value)) {
    if (tenant !== ANY_TENANT && !isValidTenantId(tenant)) throw new InvalidQuotaError(`tenant ${String(tenant).slice(0, 64)}`);
    quotas.set(tenant, parseTenantQuota(quota));
  }
  return quotas;
}

/** A tenant's quotas as set, and where they came from. */
export interface TenantQuotaEntry {
  tenant: string;
  quota: TenantQuota;
  /** `api`: set with PUT /api/tenants/{tenant}/quotas (kept in Redis, or in this process without Redis); `file`: `--tenant-quotas`. */
  source: 'api' | 'file';
}

/**
 * The store of configured quotas. Cluster-wide with Redis (every node reads
 * it every `quotaRefreshMs`), per process without. An entry set through the
 * API wins over the file's; the file's `*` entry applies to tenants with
 * neither.
 */
export interface TenantQuotas {
  /** The quotas in force for `tenant` on this node now (as of the last refresh). Never throws. */
  effective(tenant: string): TenantQuota;
  /** The quotas of `tenant` as stored now (read through to Redis); `undefined` when none is set for it. */
  get(tenant: string): Promise<TenantQuotaEntry | undefined>;
  /** Set `tenant`'s quotas (replacing them); in force on every node within `quotaRefreshMs`. */
  set(tenant: string, quota: TenantQuota): Promise<TenantQuotaEntry>;
  /** Remove the API-set quotas of `tenant` (the file's apply again). True when there were some. */
  remove(tenant: string): Promise<boolean>;
  /** Every tenant with quotas set (API and file), sorted by tenant. */
  list(): Promise<TenantQuotaEntry[]>;
}

/** A request refused by a tenant quota: error code `quota_exceeded`, with `quota` naming which. */
export function quotaExceeded(quota: QuotaName, limit: number, retryAfterMs?: number): NerveError {
  return new NerveError(ErrorCode.QuotaExceeded, `tenant quota exceeded: ${quota} (limit ${limit})`, {
    quota,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}
