/**
 * Builds a node's tenant quotas and usage metering from its options: with
 * Redis, one script connection of its own shared by the quota store and
 * the counters; without, per process. The node starts it after the lanes
 * and stops it after the clients drained (so the last usage report has
 * every connection's minutes) and before the cold lane closes.
 */
import type { Cluster, Redis } from 'ioredis';
import { errorText } from './errors.js';
import type { EventLog } from './events/event-log.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection } from './redis/script-connection.js';
import type { Logger } from './logger.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeOptions } from './config/options.js';
import { redisSentinelSettings } from './config/normalize.js';
import { redisStoreConnection } from './redis/connection.js';
import type { RedisLink } from './redis/link.js';
import { LiveUsage } from './usage/live.js';
import { UsageMeter } from './usage/meter.js';
import { MemoryQuotaBackend, RedisQuotaBackend } from './quotas/backend.js';
import { QuotaEnforcer } from './quotas/enforcer.js';
import { TenantGuard } from './quotas/guard.js';
import { MemoryTenantQuotas, RedisTenantQuotas, type RefreshableTenantQuotas } from './quotas/store.js';

export class Tenancy {
  readonly guard: TenantGuard;
  readonly quotas: RefreshableTenantQuotas;
  readonly meter: UsageMeter;
  /** Live usage summed over the nodes (src/usage/live.ts); this node's only without Redis. */
  readonly live: LiveUsage;
  readonly enforcer: QuotaEnforcer;
  private readonly client: Redis | Cluster | undefined;
  private readonly link: RedisLink | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: NodeOptions, deps: { prefix: string; events: Pick<EventLog, 'publish'>; metrics: NodeMetrics; log: Logger }) {
    const log = deps.log.child({ component: 'quotas' });
    // A node's counts outlive it by three refreshes: a crashed node's connections stop counting then.
    const ttlMs = options.quotaRefreshMs * 3;
    let lastWarning = 0;
    const onBackendError = (error: unknown): void => {
      deps.metrics.quotaStoreErrors.inc();
      // One line a second at most: every request of a busy tenant may hit the same outage.
      if (Date.now() - lastWarning > 1000) {
        lastWarning = Date.now();
        log.warn({ err: errorText(error) }, 'quota store failed; admitting requests meanwhile');
      }
    };
    if (options.redisUrl) {
      const connection = redisStoreConnection(options.redisUrl, options.redisMode === 'sharded', redisSentinelSettings(options));
      const { client } = scriptConnection({ ...connection, probeIntervalMs: options.probeIntervalMs });
      client.on('error', () => {});
      this.client = client;
      this.link = watchScriptConnection({ client, owned: true, lane: 'quotas', probeIntervalMs: options.probeIntervalMs, log });
      this.quotas = new RedisTenantQuotas(options.tenantQuotas, client, deps.prefix, (tenant) =>
        log.warn({ tenant }, "invalid quotas stored for a tenant; using the file's"),
      );
    } else {
      this.quotas = new MemoryTenantQuotas(options.tenantQuotas);
    }
    this.enforcer = new QuotaEnforcer({
      quotas: this.quotas,
      backend: this.client ? new RedisQuotaBackend(this.client, deps.prefix, options.nodeId, ttlMs) : new MemoryQuotaBackend(ttlMs),
      refreshMs: options.quotaRefreshMs,
      storedTtlMs: options.historyTtlMs,
      onRefused: (tenant, quota) => deps.metrics.quotaRefusals.inc({ tenant, quota }),
      onBackendError,
    });
    this.meter = new UsageMeter({
      nodeId: options.nodeId,
      events: deps.events,
      intervalMs: options.usageIntervalMs,
      onError: (error) => {
        deps.metrics.usageReportFailures.inc({ outcome: 'failed' });
        log.warn({ err: errorText(error) }, 'usage report not accepted by the cold lane; sent again at the next interval');
      },
      onDropped: (count) => deps.metrics.usageReportFailures.inc({ outcome: 'dropped' }, count),
    });
    this.live = new LiveUsage({
      meter: this.meter,
      nodeId: options.nodeId,
      client: this.client,
      prefix: deps.prefix,
      onError: (error) => {
        // Live usage is best effort (the answer says `partial`); one line a second at most.
        if (Date.now() - lastWarning > 1000) {
          lastWarning = Date.now();
          log.warn({ err: errorText(error) }, 'live usage not written or read');
        }
      },
    });
    this.guard = new TenantGuard(this.enforcer, this.meter);
  }

  async start(): Promise<void> {
    const client = this.client;
    if (client && client.status === 'wait') await client.connect().catch(() => {});
    await this.enforcer.start();
    this.meter.start();
    this.live.start();
  }

  /** Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // Its entries first: its counts go into its usage.reported events now.
      await this.live.stop();
      await this.meter.stop();
      await this.enforcer.stop();
      this.link?.stop();
      if (this.client && this.client.status !== 'end') await closeScriptConnection(this.client);
    })();
    return this.stopping;
  }
}
