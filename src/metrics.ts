/**
 * Prometheus metrics of one node, on a registry of its own (so several nodes
 * in one test process never share counters). Names are documented in
 * docs/operations.md; a name, once published, keeps its meaning.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type IncreaseDataWithExemplar, type LabelValues } from 'prom-client';
import type { RedisBusStats } from './bus/wire.js';
import type { LinkStats } from './redis/link.js';
import { RecentErrors } from './registry/recent-errors.js';

/** Latency buckets from 100 µs to 5 s: the hot lane lives in the first half, a struggling broker in the second. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Where the collect callbacks read values that live elsewhere (set by the node once its lanes exist). */
export interface MetricSources {
  /** Counters of the networked bus (Redis or RabbitMQ `stats()`); absent for the memory bus (then 0). */
  busStats?: () => RedisBusStats;
  /** Cold-lane events waiting for the broker. */
  outboxDepth?: () => number;
  /** Connection probe counters of every lane that has them (src/redis/link.ts), one entry per connection or lane. */
  linkStats?: () => LinkStats[];
}

/**
 * `nerve_errors_total` that also remembers the latest codes for the admin
 * page. prom-client assigns `inc` per instance in its constructor (with or
 * without exemplars), so it is wrapped here rather than overridden.
 */
class ErrorCounter extends Counter<'code'> {
  constructor(registry: Registry, recent: RecentErrors) {
    super({ name: 'nerve_errors_total', help: 'Error frames sent and HTTP requests refused, by code.', labelNames: ['code'], registers: [registry] });
    const base = this.inc.bind(this) as (labels?: LabelValues<'code'> | number | IncreaseDataWithExemplar<'code'>, value?: number) => void;
    this.inc = (labels?: LabelValues<'code'> | number | IncreaseDataWithExemplar<'code'>, value?: number): void => {
      if (typeof labels === 'object' && typeof (labels as LabelValues<'code'>).code === 'string') recent.add(String((labels as LabelValues<'code'>).code));
      base(labels, value);
    };
  }
}

export class NodeMetrics {
  readonly registry = new Registry();

  readonly connections = new Gauge({ name: 'nerve_connections', help: 'Open WebSocket connections (authenticated or not).', registers: [this.registry] });
  readonly pusherConnections = new Gauge({
    name: 'nerve_pusher_connections',
    help: 'Open Pusher-protocol connections (/app/{key}, docs/pusher.md); not counted in nerve_connections.',
    registers: [this.registry],
  });
  readonly rooms = new Gauge({ name: 'nerve_rooms', help: 'Rooms with at least one member on this node.', registers: [this.registry] });
  readonly connectionsTotal = new Counter({ name: 'nerve_connections_total', help: 'WebSocket connections accepted.', registers: [this.registry] });
  readonly upgradesRejected = new Counter({
    name: 'nerve_upgrades_rejected_total',
    help: 'HTTP upgrades refused before a WebSocket existed, by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly framesIn = new Counter({
    name: 'nerve_frames_in_total',
    help: 'Frames received from clients, by op (`invalid` when undecodable).',
    labelNames: ['op'],
    registers: [this.registry],
  });
  readonly framesOut = new Counter({ name: 'nerve_frames_out_total', help: 'Frames sent to clients, by op.', labelNames: ['op'], registers: [this.registry] });
  readonly messages = new Counter({
    name: 'nerve_messages_total',
    help: 'Messages accepted from clients, by class.',
    labelNames: ['class'],
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'nerve_deliveries_total',
    help: 'Messages written to local sockets, by class.',
    labelNames: ['class'],
    registers: [this.registry],
  });
  readonly joins = new Counter({ name: 'nerve_joins_total', help: 'Room joins accepted.', registers: [this.registry] });
  /** The latest error codes (and lane failures), for the admin page and the node registry. */
  readonly recentErrors = new RecentErrors(20);
  readonly errors = new ErrorCounter(this.registry, this.recentErrors);
  readonly closes = new Counter({
    name: 'nerve_closes_total',
    help: 'Connections closed by the server, by close code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly drops = new Counter({ name: 'nerve_drops_total', help: 'Messages not delivered, by reason.', labelNames: ['reason'], registers: [this.registry] });
  readonly quotaRefusals = new Counter({
    name: 'nerve_quota_refusals_total',
    help: 'Requests refused by a cluster-wide tenant quota (`quota_exceeded`), by tenant and quota.',
    labelNames: ['tenant', 'quota'],
    registers: [this.registry],
  });
  readonly quotaStoreErrors = new Counter({
    name: 'nerve_quota_store_errors_total',
    help: 'Calls to the quota store (Redis) that failed; the request was admitted (quotas fail open).',
    registers: [this.registry],
  });
  readonly usageReportFailures = new Counter({
    name: 'nerve_usage_report_failures_total',
    help: 'usage.reported events the cold lane refused for now (kept and sent again at the next interval), or dropped (`dropped`).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly chatGaps = new Counter({
    name: 'nerve_chat_gaps_total',
    help: 'Rooms whose chat this node may have missed on the bus, by trigger: `resubscribe` (the bus subscribed the room again after a loss), `offset_jump` (a chat offset skipped ahead or the epoch changed).',
    labelNames: ['trigger'],
    registers: [this.registry],
  });
  readonly chatGapRecoveries = new Counter({
    name: 'nerve_chat_gap_recoveries_total',
    help: 'Chat gap recoveries (history re-reads) by outcome: `recovered` (missed messages delivered, maybe none), `unrecoverable` (the history could not return them) or `failed` (the read failed); on both of the latter the members got `resync`.',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly chatGapMessages = new Counter({
    name: 'nerve_chat_gap_messages_total',
    help: "Chat messages missed on the bus and delivered to this node's members from the history.",
    registers: [this.registry],
  });
  readonly mailboxQueued = new Counter({
    name: 'nerve_mailbox_queued_total',
    help: "Signals stored in a recently seen user's mailbox because no node had the user.",
    registers: [this.registry],
  });
  readonly mailboxDelivered = new Counter({
    name: 'nerve_mailbox_delivered_total',
    help: 'Mailbox signals delivered after a reconnect.',
    registers: [this.registry],
  });
  readonly mailboxExpired = new Counter({
    name: 'nerve_mailbox_expired_total',
    help: 'Mailbox signals discarded: past their TTL when taken (`expired`) or pushed out of a full mailbox (`overflow`).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly busPublishSeconds = new Histogram({
    name: 'nerve_bus_publish_seconds',
    help: 'Time for a bus publish to be accepted by the bus.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly laneUp = new Gauge({
    name: 'nerve_lane_up',
    help: '1 when a lane is healthy, 0 when not.',
    labelNames: ['lane', 'driver'],
    registers: [this.registry],
  });
  readonly sources: MetricSources = {};
  readonly outboxDepth = new Gauge({
    name: 'nerve_event_outbox_depth',
    help: 'Cold-lane events waiting for the broker.',
    registers: [this.registry],
    collect: () => {
      const depth = this.sources.outboxDepth?.();
      if (depth !== undefined) this.outboxDepth.set(depth);
    },
  });
  /**
   * Origin → local socket latency of chat and ephemeral messages, sampled
   * (1 in `deliverySampleEvery`): from the server stamp `ts` of the frame
   * (set by the node that accepted the message) to the moment this node
   * wrote it to its sockets. Across machines it includes their clock skew.
   */
  readonly deliveryLatency = new Histogram({
    name: 'nerve_delivery_latency_seconds',
    help: 'Sampled end-to-end latency of chat and ephemeral messages: origin server stamp to local delivery, by class.',
    labelNames: ['class'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly eventPublishSeconds = new Histogram({
    name: 'nerve_event_publish_seconds',
    help: 'Time from handing a lifecycle event to the cold lane until the broker confirmed it (or it failed), by outcome.',
    labelNames: ['outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly draining = new Gauge({ name: 'nerve_draining', help: '1 while the node drains (SIGTERM), else 0.', registers: [this.registry] });
  readonly buildInfo = new Gauge({
    name: 'nerve_build_info',
    help: 'Always 1; the labels say which version runs.',
    labelNames: ['version'],
    registers: [this.registry],
  });

  constructor(options: { nodeId: string; processMetrics?: boolean; version?: string }) {
    this.registry.setDefaultLabels({ node: options.nodeId });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'nerve_process_' });
    this.buildInfo.set({ version: options.version ?? 'unknown' }, 1);
    // A networked bus (Redis, RabbitMQ) counts for itself (`stats()`); these counters follow it at scrape time.
    const busCounters: Array<[keyof RedisBusStats, string, string]> = [
      ['published', 'nerve_bus_published_total', 'Envelopes the bus (Redis or RabbitMQ) published.'],
      ['received', 'nerve_bus_received_total', 'Envelopes the bus (Redis or RabbitMQ) received and handed to the node.'],
      ['publishFailures', 'nerve_bus_publish_failures_total', 'Bus publishes rejected (broker down, timeout).'],
      ['decodeErrors', 'nerve_bus_decode_errors_total', 'Messages on a subscribed channel that were not a valid envelope.'],
      ['reconnects', 'nerve_bus_reconnects_total', 'Bus connections (Redis or RabbitMQ) re-established after a loss.'],
      ['canaryFailures', 'nerve_bus_canary_failures_total', 'Bus canary probes that did not come back (a deaf subscriber, then reconnected).'],
    ];
    // Connection probes (src/redis/link.ts), per lane; summed at scrape time from the lanes' own counters.
    const linkCounters: Array<[keyof Omit<LinkStats, 'lane'>, string, string]> = [
      ['probeFailures', 'nerve_lane_probe_failures_total', 'Connection probes (PING, or a connection stuck connecting) that failed, by lane.'],
      ['replacements', 'nerve_lane_connection_replacements_total', 'Connections destroyed and replaced after a failed probe or a timed-out command, by lane.'],
      ['reconnects', 'nerve_lane_reconnects_total', 'Lane connections ready again after a loss (replaced, server restarted, network), by lane.'],
    ];
    for (const [key, name, help] of linkCounters) {
      const seen = new Map<string, number>();
      const counter: Counter<'lane'> = new Counter({
        name,
        help,
        labelNames: ['lane'],
        registers: [this.registry],
        collect: () => {
          const totals = new Map<string, number>();
          for (const stats of this.sources.linkStats?.() ?? []) totals.set(stats.lane, (totals.get(stats.lane) ?? 0) + stats[key]);
          for (const [lane, value] of totals) {
            const before = seen.get(lane);
            // A lane shows at 0 from the first scrape, so rate() has a start.
            if (before === undefined || value > before) counter.inc({ lane }, value - (before ?? 0));
            seen.set(lane, Math.max(before ?? 0, value));
          }
        },
      });
    }
    for (const [key, name, help] of busCounters) {
      let seen = 0;
      const counter: Counter = new Counter({
        name,
        help,
        registers: [this.registry],
        collect: () => {
          const value = this.sources.busStats?.()[key] ?? 0;
          if (value > seen) counter.inc(value - seen);
          seen = Math.max(seen, value);
        },
      });
    }
  }
}
