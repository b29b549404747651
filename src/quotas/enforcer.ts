/**
 * Applies the tenant quotas (quotas.ts) on this node through a backend
 * every node shares (backend.ts). Per-second quotas are taken from tokens
 * leased in batches (a tenth of the limit, at most 1000), so a publish
 * costs a map lookup and a decrement, and a backend round trip once a batch
 * is used up; the backend grants a window's tokens once, so the cluster
 * still gives out at most the limit. An unreachable backend fails open.
 * docs/operations.md, "Tenant quotas"; bench/README.md has the figures.
 */
import { quotaExceeded, type QuotaName, type TenantQuota } from './quotas.js';
import type { QuotaBackend, RateQuota } from './backend.js';
import type { RefreshableTenantQuotas } from './store.js';

interface RateState {
  tokens: number;
  /** Leased tokens are good until the end of the backend's window. */
  validUntil: number;
  /** The window's tokens are all given out (to any node) until then. */
  exhaustedUntil: number;
  pending: Promise<void> | undefined;
}

export interface QuotaEnforcerOptions {
  quotas: RefreshableTenantQuotas;
  backend: QuotaBackend;
  /** How often the configured quotas are read again and this node's counts written, ms. */
  refreshMs: number;
  /** Stored bytes count for this long after a tenant's last chat message (the history's idle TTL), ms. */
  storedTtlMs: number;
  /** A request refused by a quota. */
  onRefused: (tenant: string, quota: QuotaName) => void;
  /** The backend failed (the request was admitted). */
  onBackendError: (error: unknown) => void;
}

const RATE_NAMES: Record<RateQuota, QuotaName> = { publishes: 'publishes', signals: 'signals' };

export class QuotaEnforcer {
  private readonly connections = new Map<string, number>();
  private readonly rates = new Map<string, RateState>();
  /** Each tenant's stored bytes as last heard from the backend. */
  private readonly storedTotals = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The rooms with local members, per tenant (set by the node: the gateway knows them). */
  localRooms: () => Iterable<{ tenant: string; room: string }> = () => [];
  /** Most tokens one lease takes (else a tenth of the limit); bench/quota-cost.ts sets 1 to measure what batching saves. */
  maxLease = 1000;

  constructor(private readonly options: QuotaEnforcerOptions) {}

  get quotas(): RefreshableTenantQuotas {
    return this.options.quotas;
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.refreshMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** Read the quotas again; write this node's connection counts and live rooms. One at a time. */
  tick(): Promise<void> {
    this.ticking ??= this.refresh().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async refresh(): Promise<void> {
    const { quotas, backend } = this.options;
    try {
      await quotas.refresh();
      // Only tenants under a connection quota: without one nobody reads the count (a quota set later gets it at the next refresh).
      const counted = new Map([...this.connections].filter(([tenant]) => quotas.effective(tenant).connections !== undefined));
      if (counted.size > 0) await backend.syncConnections(counted);
      for (const [tenant, count] of this.connections) if (count === 0) this.connections.delete(tenant);
      const rooms = new Map<string, string[]>();
      for (const { tenant, room } of this.localRooms()) {
        if (quotas.effective(tenant).rooms === undefined) continue;
        let list = rooms.get(tenant);
        if (!list) rooms.set(tenant, (list = []));
        list.push(room);
      }
      if (rooms.size > 0) await backend.touchRooms(rooms);
    } catch (error) {
      this.options.onBackendError(error);
    }
  }

  private quota(tenant: string): TenantQuota {
    return this.options.quotas.effective(tenant);
  }

  private refused(tenant: string, name: QuotaName, limit: number, retryAfterMs?: number): Error {
    this.options.onRefused(tenant, name);
    return quotaExceeded(name, limit, retryAfterMs);
  }

  /** A connection of `tenant` wants in. Undefined: admitted now; else a promise that rejects with `quota_exceeded`. */
  connect(tenant: string): Promise<void> | undefined {
    const count = (this.connections.get(tenant) ?? 0) + 1;
    this.connections.set(tenant, count);
    const limit = this.quota(tenant).connections;
    if (limit === undefined) return undefined;
    return this.options.backend.admitConnection(tenant, count, limit).then(
      (admitted) => {
        if (admitted) return;
        this.connections.set(tenant, (this.connections.get(tenant) ?? 1) - 1);
        throw this.refused(tenant, 'connections', limit);
      },
      (error: unknown) => this.options.onBackendError(error),
    );
  }

  /** An admitted connection closed. */
  disconnected(tenant: string): void {
    const count = Math.max(0, (this.connections.get(tenant) ?? 1) - 1);
    this.connections.set(tenant, count);
    // Written now, not at the next refresh: a tenant at its cap may connect again on another node at once.
    if (this.quota(tenant).connections !== undefined) {
      this.options.backend.syncConnections(new Map([[tenant, count]])).catch((error: unknown) => this.options.onBackendError(error));
    }
  }

  /** A room publish of `bytes` chat bytes (0 for ephemeral). Undefined: admitted now. */
  publish(tenant: string, bytes: number): Promise<void> | undefined {
    const quota = this.quota(tenant);
    if (bytes > 0 && quota.storedBytes !== undefined && (this.storedTotals.get(tenant) ?? 0) + bytes > quota.storedBytes) {
      throw this.refused(tenant, 'stored_bytes', quota.storedBytes);
    }
    return quota.publishesPerSecond === undefined ? undefined : this.take('publishes', tenant, quota.publishesPerSecond);
  }

  /** Chat of `bytes` was stored for `tenant`. */
  stored(tenant: string, bytes: number): void {
    // Counted only under a quota: otherwise a Redis call per chat message for nothing.
    if (this.quota(tenant).storedBytes === undefined) return;
    this.options.backend.addStoredBytes(tenant, bytes, this.options.storedTtlMs).then(
      (total) => this.storedTotals.set(tenant, total),
      (error: unknown) => this.options.onBackendError(error),
    );
  }

  /** A direct signal. Undefined: admitted now. */
  signal(tenant: string): Promise<void> | undefined {
    const limit = this.quota(tenant).signalsPerSecond;
    return limit === undefined ? undefined : this.take('signals', tenant, limit);
  }

  /** A connection joins `room` (not a rejoin). Undefined: admitted now. */
  joinRoom(tenant: string, room: string): Promise<void> | undefined {
    const limit = this.quota(tenant).rooms;
    if (limit === undefined) return undefined;
    return this.options.backend.admitRoom(tenant, room, limit).then(
      (admitted) => {
        if (!admitted) throw this.refused(tenant, 'rooms', limit);
      },
      (error: unknown) => this.options.onBackendError(error),
    );
  }

  private take(kind: RateQuota, tenant: string, limit: number): Promise<void> | undefined {
    const key = `${kind}\u0000${tenant}`;
    let state = this.rates.get(key);
    if (!state) this.rates.set(key, (state = { tokens: 0, validUntil: 0, exhaustedUntil: 0, pending: undefined }));
    const now = Date.now();
    if (state.tokens > 0 && now < state.validUntil) {
      state.tokens -= 1;
      return undefined;
    }
    if (now < state.exhaustedUntil) throw this.refused(tenant, RATE_NAMES[kind], limit, state.exhaustedUntil - now);
    return this.takeLeased(kind, tenant, limit, state);
  }

  private async takeLeased(kind: RateQuota, tenant: string, limit: number, state: RateState): Promise<void> {
    // Waiters share one lease at a time; those it leaves without a token lease again. Every lease grants
    // a token, marks the window used up, or fails open, so this ends; the deadline is a guard.
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      state.pending ??= this.lease(kind, tenant, limit, state).finally(() => {
        state.pending = undefined;
      });
      await state.pending;
      const now = Date.now();
      if (state.tokens > 0 && now < state.validUntil) {
        state.tokens -= 1;
        return;
      }
      if (now < state.exhaustedUntil) throw this.refused(tenant, RATE_NAMES[kind], limit, state.exhaustedUntil - now);
    }
    throw this.refused(tenant, RATE_NAMES[kind], limit, 100);
  }

  private async lease(kind: RateQuota, tenant: string, limit: number, state: RateState): Promise<void> {
    const want = Math.max(1, Math.min(this.maxLease, Math.ceil(limit / 10)));
    try {
      const { granted, windowLeftMs } = await this.options.backend.lease(tenant, kind, limit, want);
      const now = Date.now();
      if (granted > 0) {
        state.tokens = granted;
        state.validUntil = now + windowLeftMs;
      } else {
        state.tokens = 0;
        state.exhaustedUntil = now + Math.max(1, windowLeftMs);
      }
    } catch (error) {
      // Fail open for a second: the quota store being down must not stop the tenant's traffic.
      this.options.onBackendError(error);
      state.tokens = want;
      state.validUntil = Date.now() + 1000;
    }
  }

  /** This node's open connections per tenant (the admin page's live view). */
  localConnections(): ReadonlyMap<string, number> {
    return this.connections;
  }
}
