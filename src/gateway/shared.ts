/**
 * What the gateway's parts share, made once by the Gateway (gateway.ts) and
 * handed to each part: the lanes and settings (`GatewayDeps`), the open
 * connections, which of them listen on which channel (`LocalRooms`), the
 * per-tick write batch, the per-room publish buckets and the gateway state.
 * Each part copies the references it uses into its own fields.
 */
import type { Authenticator } from '../auth/authenticator.js';
import type { Bus } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { EventLog } from '../events/event-log.js';
import type { History } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../config/options.js';
import type { Presence } from '../presence/presence.js';
import type { ReadPositions } from '../receipts/receipts.js';
import type { TenantGuard } from '../quotas/guard.js';
import type { RoomSessions } from '../sessions/sessions.js';
import type { CallStore } from '../calls/calls.js';
import type { Tracing } from '../tracing/tracing.js';
import { WriteBatch } from '../write-batch.js';
import type { Connection, ConnectionContext } from './connection.js';
import { LocalRooms } from './local-rooms.js';
import { RoomBuckets } from './rate-limit.js';

export interface GatewayDeps {
  options: NodeOptions;
  bus: Bus;
  history: History;
  presence: Presence;
  events: EventLog;
  /** Signal mailbox (docs/protocol.md, `signal`); without it, signals to offline users get `peer_offline`. */
  mailbox?: Mailbox | undefined;
  /** Room sessions: the `session` of lifecycle events and the figures of `room.ended` (docs/events.md). */
  sessions: RoomSessions;
  /** Call participation (src/calls/): the `call` op and the `call.*` events. */
  calls: CallStore;
  /** Read positions (src/receipts/): the `read` op and `joined.read`/`unread`/`reads`. */
  receipts: ReadPositions;
  authenticator: Authenticator;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  /** Tenant quotas and usage metering (src/quotas/, src/usage/); absent: neither. */
  tenants?: TenantGuard | undefined;
  /** Spans for each hop (src/tracing/); absent when tracing is off, which then costs one check per hop. */
  tracing?: Tracing | undefined;
}

/** running → draining → closed (Gateway.drain). */
export type GatewayState = 'running' | 'draining' | 'closed';

export class GatewayShared {
  state: GatewayState = 'running';
  readonly nodeId: string;
  readonly connections = new Set<Connection>();
  readonly local = new LocalRooms();
  /** Corks sockets for the rest of a tick, so a burst of bus messages leaves each socket in one write. */
  readonly writes = new WriteBatch();
  readonly roomBuckets: RoomBuckets;
  /** What every Connection shares (its logger, limits, write batch and counters). */
  readonly connectionContext: ConnectionContext;

  constructor(readonly deps: GatewayDeps) {
    this.nodeId = deps.options.nodeId;
    const limits = deps.options.limits;
    this.roomBuckets = new RoomBuckets(limits.roomRatePerSecond, limits.roomRateBurst, (channel) => this.local.get(channel) !== undefined);
    this.connectionContext = { log: deps.log, limits, writes: this.writes, metrics: deps.metrics };
  }
}
