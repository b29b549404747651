/**
 * Cluster-wide live usage (docs/operations.md, "Usage metering"): every node
 * writes its meter's current-interval counts per tenant to the Redis hash
 * `{prefix}:usage-live:{tenant}` (field = node id) every `publishMs`; a
 * reader sums the entries of the same interval written within
 * `3 × publishMs` with its own counts of now. The key expires after the
 * interval, stale entries are removed by the next reader, and a node that
 * stops deletes its own. Without Redis the answer is this node's.
 */
import type { Cluster, Redis } from 'ioredis';
import type { TenantUsage, UsageMeter, UsageSnapshot } from './meter.js';

/** The counts summed for one tenant, as `GET /api/usage/live` answers them. */
export interface LiveTenantUsage {
  tenant: string;
  /** The answering node. */
  node: string;
  /** The nodes whose counts are summed (the answering node first). */
  nodes: string[];
  /** True when other nodes' counts could not be read (Redis down): the sum is this node's only. */
  partial: boolean;
  from: number;
  to: number;
  intervalMs: number;
  connections: number;
  connectionMs: number;
  messages: number;
  deliveries: number;
  signals: number;
  storedBytes: number;
}

interface Entry {
  from: number;
  at: number;
  connections: number;
  connectionMs: number;
  messages: number;
  deliveries: number;
  signals: number;
  storedBytes: number;
}

const COUNTS = ['connections', 'connectionMs', 'messages', 'deliveries', 'signals', 'storedBytes'] as const;

/** Every node's snapshot is written this often. Default 2000 ms, or a quarter of the interval when that is shorter. */
function livePublishMs(intervalMs: number): number {
  return Math.max(100, Math.min(2000, Math.floor(intervalMs / 4)));
}

export interface LiveUsageOptions {
  meter: Pick<UsageMeter, 'snapshot'>;
  nodeId: string;
  /** Redis (the node's quota script connection); absent: this node only. */
  client?: Redis | Cluster;
  /** Key prefix of the node's namespace. */
  prefix: string;
  /** Write period, ms. Default `livePublishMs(intervalMs)`. */
  publishMs?: number;
  now?: () => number;
  onError?: (error: unknown) => void;
}

function parseEntry(text: string): Entry | undefined {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (typeof value.from !== 'number' || typeof value.at !== 'number') return undefined;
    for (const count of COUNTS) if (typeof value[count] !== 'number') return undefined;
    return value as unknown as Entry;
  } catch {
    return undefined;
  }
}

export class LiveUsage {
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly publishMs: number;
  /** Tenants this node wrote an entry for (deleted on stop). */
  private readonly written = new Set<string>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: LiveUsageOptions) {
    this.now = options.now ?? Date.now;
    this.publishMs = options.publishMs ?? livePublishMs(options.meter.snapshot().intervalMs);
  }

  private key(tenant: string): string {
    // Braces: one hash slot per tenant on a Redis Cluster (the key is a single hash anyway).
    return `${this.options.prefix}:usage-live:{${encodeURIComponent(tenant)}}`;
  }

  start(): void {
    if (!this.options.client || this.timer) return;
    this.timer = setInterval(() => {
      // One write at a time: a slow Redis must not pile them up.
      this.writing = this.writing.then(() => this.write());
    }, this.publishMs);
    this.timer.unref();
  }

  /** Stop writing and delete this node's entries. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.writing;
    const client = this.options.client;
    if (!client || client.status !== 'ready') return;
    await Promise.all([...this.written].map((tenant) => client.hdel(this.key(tenant), this.options.nodeId))).catch((error: unknown) =>
      this.options.onError?.(error),
    );
    this.written.clear();
  }

  /** Write this node's snapshot (each tenant it counted anything for in the interval). */
  async write(): Promise<void> {
    const client = this.options.client;
    if (!client) return;
    const snapshot = this.options.meter.snapshot();
    const ttlMs = snapshot.intervalMs + 3 * this.publishMs;
    try {
      await Promise.all(
        snapshot.tenants.map(async (usage) => {
          const entry: Entry = { from: snapshot.from, at: snapshot.to, ...counts(usage) };
          const key = this.key(usage.tenant);
          await client.multi().hset(key, this.options.nodeId, JSON.stringify(entry)).pexpire(key, ttlMs).exec();
          this.written.add(usage.tenant);
        }),
      );
    } catch (error) {
      this.options.onError?.(error);
    }
  }

  /** `tenant`'s counts in the current interval: this node's now, plus every other node's fresh entry of the same interval. */
  async read(tenant: string): Promise<LiveTenantUsage> {
    const snapshot: UsageSnapshot = this.options.meter.snapshot();
    const own = snapshot.tenants.find((entry) => entry.tenant === tenant);
    const answer: LiveTenantUsage = {
      tenant,
      node: snapshot.node,
      nodes: [snapshot.node],
      partial: false,
      from: snapshot.from,
      to: snapshot.to,
      intervalMs: snapshot.intervalMs,
      connections: 0,
      connectionMs: 0,
      messages: 0,
      deliveries: 0,
      signals: 0,
      storedBytes: 0,
    };
    if (own) add(answer, counts(own));
    const client = this.options.client;
    if (!client) return answer;
    let entries: Record<string, string>;
    try {
      entries = await client.hgetall(this.key(tenant));
    } catch (error) {
      this.options.onError?.(error);
      answer.partial = true;
      return answer;
    }
    const freshAfter = this.now() - 3 * this.publishMs;
    const stale: string[] = [];
    for (const [node, text] of Object.entries(entries).sort(([a], [b]) => a.localeCompare(b))) {
      if (node === snapshot.node) continue;
      const entry = parseEntry(text);
      if (!entry || entry.at < freshAfter) {
        stale.push(node);
        continue;
      }
      // Another interval (this node's or theirs just rolled over): not this interval's counts.
      if (entry.from !== snapshot.from) continue;
      answer.nodes.push(node);
      add(answer, entry);
    }
    if (stale.length > 0) client.hdel(this.key(tenant), ...stale).catch(() => {});
    return answer;
  }
}

function counts(usage: TenantUsage | Entry): Record<(typeof COUNTS)[number], number> {
  return {
    connections: usage.connections,
    connectionMs: Math.round(usage.connectionMs),
    messages: usage.messages,
    deliveries: usage.deliveries,
    signals: usage.signals,
    storedBytes: usage.storedBytes,
  };
}

function add(target: LiveTenantUsage, source: Record<(typeof COUNTS)[number], number>): void {
  for (const count of COUNTS) target[count] += source[count];
}
