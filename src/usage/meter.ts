/**
 * Usage metering: what each tenant used on this node, in wall-clock
 * intervals (`usageIntervalMs`), emitted as one `usage.reported` event per
 * tenant and interval on the cold lane (docs/events.md). The event id is
 * derived from the node id, this process's random incarnation, the tenant
 * and the interval start, so a restarted node's processes report their
 * parts under their own ids and a re-delivered report is applied once.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { EventLog } from '../events/event-log.js';
import { usageReported } from '../events/events.js';

/** One tenant's counters in the current interval. */
export interface TenantUsage {
  tenant: string;
  /** Connections open now. */
  connections: number;
  connectionMs: number;
  messages: number;
  deliveries: number;
  signals: number;
  storedBytes: number;
}

/** What this node counted so far in the current interval (GET /api/usage/live and the admin page read it). */
export interface UsageSnapshot {
  node: string;
  /** Start of the current interval, ms since epoch. */
  from: number;
  /** Now. */
  to: number;
  intervalMs: number;
  tenants: TenantUsage[];
}

interface Counters extends TenantUsage {
  /** When connectionMs was last brought up to date. */
  since: number;
}

/** Reports waiting for the cold lane (outbox full, broker down) are kept up to this many, then the oldest are dropped. */
const MAX_UNSENT = 10_000;

export interface UsageMeterOptions {
  nodeId: string;
  /** This process's incarnation of the node (in the report ids). Default: 8 random bytes, hex. */
  incarnation?: string;
  events: Pick<EventLog, 'publish'>;
  /** Interval length, ms. Default 60000. */
  intervalMs: number;
  now?: () => number;
  onError?: (error: unknown) => void;
  /** Reports dropped because the cold lane was unavailable for too long. */
  onDropped?: (count: number) => void;
}

/** The id of one process's (incarnation's) report of one tenant and interval: another process of the same node id reports under another. */
export function usageEventId(node: string, incarnation: string, tenant: string, from: number): string {
  return `usage-${from}-${createHash('sha256').update(`${node}\u0000${incarnation}\u0000${tenant}`).digest('hex').slice(0, 32)}`;
}

export class UsageMeter {
  private readonly tenants = new Map<string, Counters>();
  private readonly now: () => number;
  private from: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly unsent: Array<ReturnType<typeof usageReported>> = [];
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;
  readonly incarnation: string;

  constructor(private readonly options: UsageMeterOptions) {
    this.now = options.now ?? Date.now;
    this.incarnation = options.incarnation ?? randomBytes(8).toString('hex');
    this.from = this.intervalStart(this.now());
  }

  private intervalStart(at: number): number {
    return Math.floor(at / this.options.intervalMs) * this.options.intervalMs;
  }

  private counters(tenant: string): Counters {
    let counters = this.tenants.get(tenant);
    if (!counters) {
      counters = { tenant, connections: 0, connectionMs: 0, messages: 0, deliveries: 0, signals: 0, storedBytes: 0, since: this.now() };
      this.tenants.set(tenant, counters);
    }
    return counters;
  }

  /** Bring connection time up to `at` (connections × time since the last change). */
  private accrue(counters: Counters, at: number): void {
    if (at > counters.since) counters.connectionMs += counters.connections * (at - counters.since);
    counters.since = at;
  }

  connected(tenant: string): void {
    const counters = this.counters(tenant);
    this.accrue(counters, this.now());
    counters.connections += 1;
  }

  disconnected(tenant: string): void {
    const counters = this.counters(tenant);
    this.accrue(counters, this.now());
    counters.connections = Math.max(0, counters.connections - 1);
  }

  message(tenant: string): void {
    this.counters(tenant).messages += 1;
  }

  signal(tenant: string): void {
    this.counters(tenant).signals += 1;
  }

  delivered(tenant: string, count: number): void {
    this.counters(tenant).deliveries += count;
  }

  stored(tenant: string, bytes: number): void {
    this.counters(tenant).storedBytes += bytes;
  }

  start(): void {
    this.schedule();
  }

  /** Report the interval so far and stop (a restart's successor reports the rest of it under its own incarnation). */
  async stop(): Promise<void> {
    if (this.stopped) return this.flushing;
    this.stopped = true;
    clearTimeout(this.timer);
    this.close(this.now());
    return this.flushing;
  }

  /** What has been counted in the current interval, up to now. */
  snapshot(): UsageSnapshot {
    const to = this.now();
    return {
      node: this.options.nodeId,
      from: this.from,
      to,
      intervalMs: this.options.intervalMs,
      tenants: [...this.tenants.values()].map((c) => ({
        tenant: c.tenant,
        connections: c.connections,
        connectionMs: c.connectionMs + c.connections * Math.max(0, to - c.since),
        messages: c.messages,
        deliveries: c.deliveries,
        signals: c.signals,
        storedBytes: c.storedBytes,
      })),
    };
  }

  private schedule(): void {
    // Aligned to the wall clock so every node's intervals are the same periods, whatever their start time.
    const next = this.intervalStart(this.now()) + this.options.intervalMs;
    this.timer = setTimeout(
      () => {
        this.close(next);
        this.schedule();
      },
      Math.max(1, next - this.now()),
    );
    this.timer.unref();
  }

  /** End the current interval at `to`: queue one report per tenant that used anything, reset the counters. */
  private close(to: number): void {
    const from = this.from;
    for (const [tenant, counters] of this.tenants) {
      this.accrue(counters, to);
      const used = counters.connectionMs + counters.messages + counters.deliveries + counters.signals + counters.storedBytes > 0;
      if (used) {
        this.unsent.push(
          usageReported(
            { tenant, node: this.options.nodeId, id: usageEventId(this.options.nodeId, this.incarnation, tenant, from), ts: to },
            {
              from,
              to,
              connectionMs: Math.round(counters.connectionMs),
              messages: counters.messages,
              deliveries: counters.deliveries,
              signals: counters.signals,
              storedBytes: counters.storedBytes,
            },
          ),
        );
      }
      if (counters.connections === 0) this.tenants.delete(tenant);
      else Object.assign(counters, { connectionMs: 0, messages: 0, deliveries: 0, signals: 0, storedBytes: 0 });
    }
    if (this.unsent.length > MAX_UNSENT) this.options.onDropped?.(this.unsent.splice(0, this.unsent.length - MAX_UNSENT).length);
    this.from = this.intervalStart(to) === to ? to : this.intervalStart(to) + this.options.intervalMs;
    this.flushing = this.flushing.then(() => this.flush());
  }

  /** Publish the queued reports in order; what fails stays queued for the next interval. */
  private async flush(): Promise<void> {
    while (this.unsent.length > 0) {
      const event = this.unsent[0]!;
      try {
        await this.options.events.publish(event);
      } catch (error) {
        this.options.onError?.(error);
        return;
      }
      this.unsent.shift();
    }
  }
}
