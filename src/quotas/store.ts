/**
 * The configured quotas (`TenantQuotas`, quotas.ts): the file's entries
 * plus those set through the API, which live in Redis (one hash,
 * `{prefix}:quotas`, tenant → JSON) or, without Redis, in this process.
 * Each node reads the hash every `quotaRefreshMs`; between reads it answers
 * from its copy, so the hot path never waits for the store.
 */
import type { Cluster, Redis } from 'ioredis';
import { ANY_TENANT, parseTenantQuota, type TenantQuota, type TenantQuotaEntry, type TenantQuotas } from './quotas.js';

const NONE: TenantQuota = Object.freeze({});

/** What both stores share: the file's quotas and the rule of which entry wins. */
abstract class QuotaTable implements TenantQuotas {
  /** API-set quotas as last read. */
  protected api = new Map<string, TenantQuota>();

  constructor(protected readonly file: ReadonlyMap<string, TenantQuota>) {}

  effective(tenant: string): TenantQuota {
    return this.api.get(tenant) ?? this.file.get(tenant) ?? this.file.get(ANY_TENANT) ?? NONE;
  }

  abstract get(tenant: string): Promise<TenantQuotaEntry | undefined>;
  abstract set(tenant: string, quota: TenantQuota): Promise<TenantQuotaEntry>;
  abstract remove(tenant: string): Promise<boolean>;

  protected fileEntry(tenant: string): TenantQuotaEntry | undefined {
    const quota = this.file.get(tenant);
    return quota && { tenant, quota, source: 'file' };
  }

  async list(): Promise<TenantQuotaEntry[]> {
    await this.refresh();
    const entries = new Map<string, TenantQuotaEntry>();
    for (const [tenant, quota] of this.file) entries.set(tenant, { tenant, quota, source: 'file' });
    for (const [tenant, quota] of this.api) entries.set(tenant, { tenant, quota, source: 'api' });
    return [...entries.values()].sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  }

  /** Read the API-set quotas again (a no-op in memory). */
  abstract refresh(): Promise<void>;
}

/** One process: API-set quotas live here and are lost at restart. */
export class MemoryTenantQuotas extends QuotaTable {
  async get(tenant: string): Promise<TenantQuotaEntry | undefined> {
    const quota = this.api.get(tenant);
    return quota ? { tenant, quota, source: 'api' } : this.fileEntry(tenant);
  }

  async set(tenant: string, quota: TenantQuota): Promise<TenantQuotaEntry> {
    this.api.set(tenant, { ...quota });
    return { tenant, quota, source: 'api' };
  }

  async remove(tenant: string): Promise<boolean> {
    return this.api.delete(tenant);
  }

  async refresh(): Promise<void> {}
}

/** Every node shares the API-set quotas through one Redis hash. */
export class RedisTenantQuotas extends QuotaTable {
  private readonly key: string;

  constructor(
    file: ReadonlyMap<string, TenantQuota>,
    private readonly client: Redis | Cluster,
    prefix: string,
    private readonly onInvalid: (tenant: string) => void = () => {},
  ) {
    super(file);
    this.key = `${prefix}:quotas`;
  }

  async get(tenant: string): Promise<TenantQuotaEntry | undefined> {
    const text = await this.client.hget(this.key, tenant);
    if (text === null) return this.fileEntry(tenant);
    return { tenant, quota: parseTenantQuota(JSON.parse(text)), source: 'api' };
  }

  async set(tenant: string, quota: TenantQuota): Promise<TenantQuotaEntry> {
    await this.client.hset(this.key, tenant, JSON.stringify(quota));
    // This node sees it at once; the others at their next refresh.
    this.api.set(tenant, { ...quota });
    return { tenant, quota, source: 'api' };
  }

  async remove(tenant: string): Promise<boolean> {
    const removed = (await this.client.hdel(this.key, tenant)) === 1;
    this.api.delete(tenant);
    return removed;
  }

  async refresh(): Promise<void> {
    const stored = await this.client.hgetall(this.key);
    const next = new Map<string, TenantQuota>();
    for (const [tenant, text] of Object.entries(stored)) {
      try {
        next.set(tenant, parseTenantQuota(JSON.parse(text)));
      } catch {
        // Written by hand past the API: that tenant keeps the file's quotas, and the operator hears of it.
        this.onInvalid(tenant);
      }
    }
    this.api = next;
  }
}

export type RefreshableTenantQuotas = MemoryTenantQuotas | RedisTenantQuotas;
