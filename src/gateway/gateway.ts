/**
 * The gateway: accepts WebSocket upgrades, authenticates, validates every
 * frame, keeps the local room manager, applies limits, and routes messages
 * to the lanes by src/routing.ts. Local sockets are written only from the
 * bus (`onBusMessage`), including for messages this node published, so every
 * member of a room on every node sees the bus's one order, exactly once.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type Server as WsServer } from 'ws';
import type { Authenticator } from '../auth/authenticator.js';
import { rightsIn, type RoomRight } from '../auth/grants.js';
import { turnCredential } from '../auth/turn.js';
import type { Bus, BusEnvelope, ControlCommand } from '../bus/bus.js';
import { BUS_ENVELOPE_VERSION } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { EventLog, LifecycleEvent } from '../events/event-log.js';
import { messageCreated, participantJoined, participantLeft, roomCreated, roomEnded, type EventSource, type LeaveReason } from '../events/events.js';
import { chatEnvelope } from '../history/chat-intake.js';
import type { History, RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import { clip } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../config/options.js';
import { publicLimits } from '../config/options.js';
import type { Presence } from '../presence/presence.js';
import type { RoomSessions } from '../sessions/sessions.js';
import { decodeClientFrame, encodeFrame } from '../../packages/protocol/src/codec.js';
import { CloseCode, ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError, isNerveError } from '../../packages/protocol/src/errors.js';
import type {
  AckFrame,
  ClientFrame,
  IceServer,
  ConnectFrame,
  EphemeralMessage,
  JoinFrame,
  LeaveFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MessageClass,
  PresenceFrame,
  PublishClass,
  PublishFrame,
  RefreshFrame,
  RequestId,
  RoomEndedFrame,
  ResyncFrame,
  ResyncReason,
  SignalDelivery,
  SignalFrame,
  SignalKind,
} from '../../packages/protocol/src/frames.js';
import { PROTOCOL_VERSION } from '../../packages/protocol/src/frames.js';
import { isValidRoomId, isValidUserId } from '../../packages/protocol/src/ids.js';
import { routeOf } from '../routing.js';
import { Connection, type ConnectionContext, type SendOutcome } from './connection.js';
import { Limiter, RoomChatCursor, scanChatTail, tailEpoch, tailHasEpoch } from './chat-gap.js';
import { drainSchedule } from './drain-plan.js';
import { LocalRooms, type ChannelTarget } from './local-rooms.js';
import { connectionSocketClass, type ConnectionSocket } from './socket-events.js';
import { KeyCounter, TokenBucket } from './rate-limit.js';
import { TextFrame } from './text-frame.js';
import { clientAddress, TrustedProxies } from '../net/client-address.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { WriteBatch } from '../write-batch.js';
import { storedSize, type TenantGuard } from '../quotas/guard.js';
import { SpanKind, type Tracing } from '../tracing/tracing.js';

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
  authenticator: Authenticator;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  /** Tenant quotas and usage metering (src/quotas/, src/usage/); absent: neither. */
  tenants?: TenantGuard | undefined;
  /** Spans for each hop (src/tracing/); absent when tracing is off, which then costs one check per hop. */
  tracing?: Tracing | undefined;
}

export type GatewayState = 'running' | 'draining' | 'closed';

/**
 * Lane failures: the server's state, not the connection's doing. Every other
 * error a connection is answered counts towards the 4008 policy close,
 * `internal` included (a frame that keeps hitting a server fault is cut,
 * instead of logging a stack per frame for ever).
 */
const LANE_FAILURES: ReadonlySet<string> = new Set([ErrorCode.BusUnavailable, ErrorCode.Unavailable, ErrorCode.OutcomeUnknown]);

/** A lane command that was sent but not answered (src/lane-errors.ts), as the answer to a publish or a signal. */
function outcomeUnknown(error: OutcomeUnknownError, what: string): NerveError {
  return new NerveError(ErrorCode.OutcomeUnknown, `${what} did not answer in time: the request may or may not have taken effect`, { cause: error });
}

/** Refusals worth an `info` log line (security-relevant); other client faults log at `debug`. */
const LOGGED_REFUSALS: ReadonlySet<string> = new Set([
  ErrorCode.AuthFailed,
  ErrorCode.Forbidden,
  ErrorCode.RefreshFailed,
  ErrorCode.TooManyConnections,
]);

/** HTTP status lines for upgrade refusals. */
const STATUS_TEXT: Record<number, string> = { 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Room buckets kept before idle ones (rooms with no local member) are pruned. */
const ROOM_BUCKETS_PRUNE_AT = 10_000;

/** A message the server API publishes into a room (docs/api.md). */
export interface ServerPublish {
  tenant: string;
  room: string;
  class: PublishClass;
  data: unknown;
  /** Sender stamped as `from`: a user id chosen by the backend. */
  from: string;
  cmid?: string | undefined;
  key?: string | undefined;
  /** A connection (nerve or Pusher socket id) that must not receive an ephemeral message: Pusher's `socket_id` exclusion. */
  except?: string | undefined;
  /** W3C trace context of the caller (a frame's or an API request's `traceparent`), used only when tracing is on. */
  traceparent?: string | undefined;
}

/** A direct signal the server API sends to a user. */
export interface ServerSignal {
  tenant: string;
  to: string;
  kind: SignalKind;
  data: unknown;
  from: string;
}

/** Control payload published on a user channel after a signal was queued: "take your mailbox". */
const MAILBOX_PENDING = JSON.stringify({ action: 'mailbox.pending' });

/** Every encoded chat message starts so (the frame is built with `op` and `class` first, in memory and Redis history alike). */
const CHAT_FRAME_PREFIX = '{"op":"message","class":"chat",';

/** The `op` of the frames each message class carries, for nerve_frames_out_total. */
const FRAME_OP: Record<MessageClass, string> = { signal: 'signal', presence: 'member', chat: 'message', ephemeral: 'message', lifecycle: 'resync' };

/** Most requests a connection may have queued before further ones are refused. */
const MAX_PENDING_REQUESTS = 256;

/** Tokens without room grants, or with `signal: true`, may signal any user of their tenant. */
function maySignalAnyone(conn: Connection): boolean {
  const identity = conn.identity;
  return identity !== undefined && (identity.grants === undefined || identity.signal === true);
}

/** Random bytes for connection ids, drawn 256 ids at a time: one CSPRNG call per 256 connects instead of one each. */
const ID_BYTES = 9;
let idPool = Buffer.alloc(0);
let idAt = 0;

/** A fresh connection id: 9 random bytes, 12 base64url characters (docs/protocol.md, `welcome.connId`). */
function connectionId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return idPool.toString('base64url', idAt - ID_BYTES, idAt);
}

export class Gateway {
  state: GatewayState = 'running';
  private readonly wss: WsServer<typeof ConnectionSocket>;
  private readonly connections = new Set<Connection>();
  private readonly local = new LocalRooms();
  /** Corks sockets for the rest of a tick, so a burst of bus messages leaves each socket in one write. */
  private readonly writes = new WriteBatch();
  /**
   * Session id per room channel, as last learned from the store (start,
   * join, or a read on a miss); dropped when the session ends or this node
   * has no member left in the room, so a later session is read afresh.
   */
  private readonly sessionIds = new Map<string, string>();
  /** Per room channel, the tail of its session work (store call, then event), run in order after the join or leave. */
  private readonly sessionWork = new Map<string, Promise<void>>();
  /**
   * Signals arriving live for a connection whose mailbox is being taken:
   * held, then sent after the mailbox's older signals, to keep the order
   * from each sender.
   */
  private readonly heldSignals = new Map<Connection, string[]>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly nodeId: string;
  /** Open WebSockets per remote address (`maxConnectionsPerIp`). */
  private readonly perIp = new KeyCounter();
  /** Authenticated connections per tenant + user (`maxConnectionsPerUser`). */
  private readonly perUser = new KeyCounter();
  /** Publish token bucket per room channel (`roomRatePerSecond`), beside each connection's own. */
  private readonly roomBuckets = new Map<string, TokenBucket>();
  private readonly allowedOrigins: ReadonlySet<string>;
  private readonly trustedProxies: TrustedProxies | undefined;
  /** Chat gap recoveries read the history at most this many rooms at a time (a Redis restart reports every room at once). */
  private readonly recoveries = new Limiter(16);
  /** What every Connection shares (its logger, limits and write batch). */
  private readonly connectionContext: ConnectionContext;

  constructor(private readonly deps: GatewayDeps) {
    this.nodeId = deps.options.nodeId;
    this.allowedOrigins = new Set(deps.options.allowedOrigins);
    this.trustedProxies = deps.options.trustedProxies.length > 0 ? new TrustedProxies(deps.options.trustedProxies) : undefined;
    this.wss = new WebSocketServer({
      noServer: true,
      // With compression on, ws applies maxPayload to the inflated size and
      // stops inflating once it is passed (close 1009), so a deflate bomb
      // costs at most maxFrameBytes of memory.
      maxPayload: deps.options.limits.maxFrameBytes,
      // Compression is off by default: it costs CPU and memory per socket.
      // When on, it is bounded: no context takeover (no window kept between
      // messages), small inflate chunks, and a cap on concurrent zlib jobs.
      perMessageDeflate: deps.options.perMessageDeflate
        ? {
            threshold: 1024,
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            serverMaxWindowBits: 10,
            concurrencyLimit: 10,
            zlibInflateOptions: { chunkSize: 16 * 1024 },
          }
        : false,
      // A message split into more fragments than this is refused with 1008
      // (a flood of tiny fragments costs per-fragment work, whatever the size).
      maxFragments: 1024,
      clientTracking: false,
      // Sockets that carry their Connection and hand their events to the gateway, with no listeners of their own (socket-events.ts).
      WebSocket: connectionSocketClass({
        frame: (conn, data, isBinary) => this.onFrame(conn, data, isBinary),
        error: (conn, error) => {
          // ws reports protocol violations here and closes with the right code
          // (1009 too big, 1007 invalid UTF-8); we count them.
          this.deps.metrics.errors.inc({ code: error.code ?? 'socket_error' });
          conn.debug({ err: error.message, code: error.code }, 'socket error');
        },
        closed: (conn, code) => {
          clearTimeout(conn.handshakeTimer);
          conn.handshakeTimer = undefined;
          const cleanup = this.onClosed(conn, code);
          this.cleanups.add(cleanup);
          void cleanup.finally(() => this.cleanups.delete(cleanup));
        },
      }),
    });
    this.connectionContext = { log: deps.log, limits: deps.options.limits, writes: this.writes };
  }

  start(): void {
    this.heartbeat = setInterval(() => this.sweep(), this.deps.options.limits.heartbeatMs);
    this.heartbeat.unref();
  }

  connectionCount(): number {
    return this.connections.size;
  }

  roomCount(): number {
    return this.local.rooms();
  }

  /** Whether some local connection listens on a bus channel (the node hands a channel's envelopes to the Pusher side too, src/pusher). */
  listensOn(channel: string): boolean {
    return this.local.get(channel) !== undefined;
  }

  /** The rooms with a member on this node (the rooms quota keeps them alive in the shared store). */
  localRooms(): Iterable<{ tenant: string; room: string }> {
    return this.local.roomTargets();
  }

  /** Called by the HTTP server for `Upgrade: websocket` requests. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/ws') {
      this.rejectUpgrade(socket, 404, 'not_found', 'WebSocket endpoint is /ws');
      return;
    }
    if (this.state !== 'running') {
      this.rejectUpgrade(socket, 503, 'draining', 'node is shutting down; reconnect to another node');
      return;
    }
    if (!this.originAllowed(request.headers.origin)) {
      this.rejectUpgrade(socket, 403, 'origin_not_allowed', 'this origin may not open a WebSocket here', { origin: clip(request.headers.origin ?? '(none)') });
      return;
    }
    const maxPerIp = this.deps.options.limits.maxConnectionsPerIp;
    const address = this.clientAddress(request);
    if (maxPerIp > 0 && this.perIp.get(address) >= maxPerIp) {
      this.rejectUpgrade(socket, 429, ErrorCode.TooManyConnections, `at most ${maxPerIp} connections per address`, { remoteAddress: address });
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, address, request.socket));
  }

  /**
   * The per-address cap (`maxConnectionsPerIp`) for the Pusher endpoint
   * (src/pusher), counted together with /ws so a client cannot double its
   * share by mixing the two: the address to count the upgrade under, or
   * undefined when that address is at the cap.
   */
  admitAddress(request: IncomingMessage): { address: string; max: number } | { address: undefined; max: number } {
    const max = this.deps.options.limits.maxConnectionsPerIp;
    const address = this.clientAddress(request);
    return max > 0 && this.perIp.get(address) >= max ? { address: undefined, max } : { address, max };
  }

  /** A connection of another endpoint (Pusher) opened (`open`) or closed under `address`, counted only under a cap as /ws's are. */
  countAddress(address: string, open: boolean): void {
    if (this.deps.options.limits.maxConnectionsPerIp <= 0) return;
    if (open) this.perIp.increment(address);
    else this.perIp.decrement(address);
  }

  /** Where an upgrade comes from: the TCP peer, or the client a trusted proxy names (client-address.ts). */
  private clientAddress(request: IncomingMessage): string {
    return clientAddress(request.socket.remoteAddress, request.headers['x-forwarded-for'], this.trustedProxies);
  }

  /** No allowlist: every origin. With one: listed origins, and no Origin header only if `allowMissingOrigin`. */
  private originAllowed(origin: string | undefined): boolean {
    if (this.allowedOrigins.size === 0) return true;
    if (origin === undefined || origin === '') return this.deps.options.allowMissingOrigin;
    try {
      return this.allowedOrigins.has(new URL(origin).origin);
    } catch {
      return false;
    }
  }

  private rejectUpgrade(socket: Duplex, status: number, reason: string, message: string, context: Record<string, unknown> = {}): void {
    this.deps.metrics.upgradesRejected.inc({ reason });
    this.deps.log.info({ status, code: reason, ...context }, 'upgrade refused');
    const body = JSON.stringify({ code: reason, message });
    const statusText = STATUS_TEXT[status] ?? 'Error';
    socket.end(
      `HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  /** `remoteAddress`: the client address the upgrade was admitted under (and counted against, on close too). */
  private accept(ws: ConnectionSocket, remoteAddress: string, tcp: Duplex): void {
    const id = connectionId();
    const conn = new Connection(id, ws, remoteAddress, this.connectionContext, tcp);
    // From here on the socket's events reach this gateway with `conn` (socket-events.ts).
    ws.connection = conn;
    this.connections.add(conn);
    // Counted only under a limit, like connections per user (connect).
    if (this.deps.options.limits.maxConnectionsPerIp > 0) this.perIp.increment(remoteAddress);
    this.deps.metrics.connections.set(this.connections.size);
    this.deps.metrics.connectionsTotal.inc();
    conn.debug({ remoteAddress }, 'connection opened');

    conn.handshakeTimer = setTimeout(() => {
      conn.handshakeTimer = undefined;
      if (conn.state === 'handshake') this.close(conn, CloseCode.HandshakeTimeout, 'no connect frame in time');
    }, this.deps.options.limits.handshakeTimeoutMs);
    conn.handshakeTimer.unref();
  }

  private onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.state !== 'handshake' && conn.state !== 'open') return;
    if (isBinary) {
      this.deps.metrics.framesIn.inc({ op: 'binary' });
      this.close(conn, CloseCode.UnsupportedData, 'protocol v1 takes JSON text frames only');
      return;
    }
    // ws hands a Buffer (binaryType 'nodebuffer'): decode it in place; Buffer.from(buffer) would copy it first.
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    // Decode before rate limiting so a refusal carries the request id; the
    // frame is at most maxFrameBytes, so decoding is cheap and bounded.
    const decoded = decodeClientFrame(text);
    const retryAfterMs = conn.bucket.take();
    if (retryAfterMs > 0) {
      this.deps.metrics.framesIn.inc({ op: 'rate_limited' });
      this.refuse(conn, decoded.ok ? decoded.frame.rid : decoded.rid, new NerveError(ErrorCode.RateLimited, 'too many frames', { retryAfterMs }));
      return;
    }
    if (!decoded.ok) {
      this.deps.metrics.framesIn.inc({ op: 'invalid' });
      this.refuse(conn, decoded.rid, decoded.error);
      return;
    }
    const frame = decoded.frame;
    this.deps.metrics.framesIn.inc({ op: frame.op });
    if (conn.pending >= MAX_PENDING_REQUESTS) {
      this.refuse(conn, frame.rid, new NerveError(ErrorCode.RateLimited, 'too many requests in flight', { retryAfterMs: 100 }));
      return;
    }
    conn.pending += 1;
    if (frame.op === 'publish') {
      this.pipelinePublish(conn, frame);
      return;
    }
    // Requests of one connection run in order: a publish sent right after a
    // join sees the join done, and a join sent after publishes finds them answered.
    conn.queue = conn.queue.then(async () => {
      try {
        await conn.answered;
        if (conn.state === 'handshake' || conn.state === 'open') await this.dispatch(conn, frame);
      } catch (error) {
        this.fail(conn, frame.rid, error);
      } finally {
        conn.pending -= 1;
      }
    });
  }

  /**
   * A publish starts as soon as the request before it has started, instead
   * of after it was answered: consecutive publishes are pipelined. Their
   * store and bus commands still go out in request order on one connection
   * per lane, so their effects keep that order; their answers are chained,
   * so they leave in request order too. Without this a connection's publish
   * rate is one store round trip per message, and every node receives its
   * messages one TCP read at a time, which defeats write batching.
   */
  private pipelinePublish(conn: Connection, frame: PublishFrame): void {
    conn.queue = conn.queue.then(() => {
      const outcome: Promise<() => void> =
        conn.state === 'open'
          ? this.publish(conn, frame).then(
              (ack) => () => {
                if (ack) this.answer(conn, ack);
              },
              (error: unknown) => () => this.fail(conn, frame.rid, error),
            )
          : Promise.resolve(() => {
              if (conn.state === 'handshake') this.fail(conn, frame.rid, new NerveError(ErrorCode.NotConnected, 'send connect first'));
            });
      conn.answered = Promise.all([conn.answered, outcome]).then(([, send]) => {
        conn.pending -= 1;
        try {
          send();
        } catch (error) {
          // Never reject: every later request of the connection waits on this chain.
          conn.log.error({ err: (error as Error).message }, 'answering a publish failed');
        }
      });
    });
  }

  /** Every request but `publish`, which is pipelined (pipelinePublish). */
  private async dispatch(conn: Connection, frame: Exclude<ClientFrame, PublishFrame>): Promise<void> {
    if (frame.op === 'connect') return this.connect(conn, frame);
    if (conn.state !== 'open') throw new NerveError(ErrorCode.NotConnected, 'send connect first');
    switch (frame.op) {
      case 'join':
        return this.join(conn, frame);
      case 'leave':
        return this.leave(conn, frame);
      case 'signal':
        return this.signal(conn, frame);
      case 'presence':
        return this.presenceQuery(conn, frame);
      case 'ping':
        this.answer(conn, { op: 'pong', rid: frame.rid, ts: Date.now() });
        return undefined;
      case 'refresh':
        return this.refresh(conn, frame);
    }
  }

  // ------------------------------------------------------------ operations

  private async connect(conn: Connection, frame: ConnectFrame): Promise<void> {
    if (conn.state === 'open') throw new NerveError(ErrorCode.AlreadyConnected, 'already connected');
    if (frame.v !== PROTOCOL_VERSION) {
      this.fail(conn, frame.rid, new NerveError(ErrorCode.UnsupportedVersion, `this server speaks protocol v${PROTOCOL_VERSION}`));
      this.close(conn, CloseCode.UnsupportedVersion, 'unsupported protocol version');
      return;
    }
    try {
      conn.identity = await this.deps.authenticator.authenticate({
        ...(frame.token === undefined ? {} : { token: frame.token }),
        ...(frame.user === undefined ? {} : { user: frame.user }),
        remoteAddress: conn.remoteAddress,
      });
    } catch (error) {
      const reason = isNerveError(error) ? error : new NerveError(ErrorCode.AuthFailed, 'authentication failed', { cause: error });
      this.fail(conn, frame.rid, reason.code === ErrorCode.AuthFailed ? reason : new NerveError(ErrorCode.AuthFailed, reason.message));
      this.close(conn, CloseCode.AuthFailed, 'authentication failed');
      return;
    }
    if (conn.state !== 'handshake') return;
    const maxPerUser = this.deps.options.limits.maxConnectionsPerUser;
    const userKey = `${conn.tenant}\u0000${conn.user}`;
    if (maxPerUser > 0 && this.perUser.get(userKey) >= maxPerUser) {
      this.fail(conn, frame.rid, new NerveError(ErrorCode.TooManyConnections, `at most ${maxPerUser} connections per user on this node`));
      this.close(conn, CloseCode.TooManyConnections, 'too many connections for this user');
      return;
    }
    // Counted only under a limit: with none, a count per user would be a map entry and a key string per connection for nothing.
    if (maxPerUser > 0) {
      this.perUser.increment(userKey);
      conn.countedUser = true;
    }
    if (this.deps.tenants && !(await this.admitTenant(conn, frame.rid))) return;
    const userChannel = this.deps.namer.user(conn.tenant, conn.user);
    if (this.deps.mailbox) this.heldSignals.set(conn, []);
    if (this.local.add(userChannel, 'user', conn.tenant, conn.user, conn)) await this.deps.bus.acquire(userChannel);
    conn.state = 'open';
    clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = undefined;
    conn.debug({ user: clip(conn.user), tenant: conn.tenant }, 'connection authenticated');
    this.answer(conn, {
      op: 'welcome',
      rid: frame.rid,
      v: PROTOCOL_VERSION,
      connId: conn.id,
      nodeId: this.nodeId,
      user: conn.user,
      tenant: conn.tenant,
      limits: publicLimits(this.deps.options.limits),
      iceServers: this.iceServers(conn.user),
      ...(conn.identity?.expiresAt === undefined ? {} : { expiresAt: conn.identity.expiresAt }),
    });
    this.armExpiry(conn);
    // After the welcome, and after subscribing: a signal queued before the
    // subscription is in the mailbox, one published after it arrives live
    // (held until the mailbox is delivered), and one queued in between is
    // announced by the sender's `mailbox.pending` poke.
    await this.deliverMailbox(conn.tenant, conn.user, [conn], new Set([conn]));
  }

  /** The tenant's connection quota (cluster-wide): false when refused (answered, closed 4011) or closed meanwhile. */
  private async admitTenant(conn: Connection, rid: RequestId): Promise<boolean> {
    const tenants = this.deps.tenants!;
    try {
      await tenants.connect(conn.tenant);
    } catch (error) {
      this.fail(conn, rid, error);
      this.close(conn, CloseCode.TooManyConnections, 'tenant connection quota');
      return false;
    }
    if (conn.state !== 'handshake') {
      tenants.disconnected(conn.tenant);
      return false;
    }
    conn.countedTenant = true;
    return true;
  }

  /**
   * Take the user's pending signals (atomically: each goes to one node) and
   * write them, oldest first, to `conns`; then release the signals held for
   * those connections meanwhile. Failures are logged: signals are at most once.
   */
  private async deliverMailbox(tenant: string, user: string, conns: Connection[], owned = new Set<Connection>()): Promise<void> {
    const mailbox = this.deps.mailbox;
    if (!mailbox) return;
    // Hold live signals for the connections not already held by another take.
    for (const conn of conns) {
      if (this.heldSignals.has(conn)) continue;
      this.heldSignals.set(conn, []);
      owned.add(conn);
    }
    try {
      const taken = await mailbox.take({ tenant, user });
      if (taken.expired > 0) this.deps.metrics.mailboxExpired.inc({ reason: 'expired' }, taken.expired);
      for (const payload of taken.payloads) {
        let sent = 0;
        for (const conn of conns) {
          if (conn.state !== 'open') continue;
          sent += 1;
          // A connection held by another take gets it in order with that take's held signals.
          const other = owned.has(conn) ? undefined : this.heldSignals.get(conn);
          if (other) other.push(payload);
          else this.afterSend(conn, conn.deliver(payload, false), 'signal');
        }
        if (sent > 0) this.deps.metrics.mailboxDelivered.inc();
        else this.deps.metrics.drops.inc({ reason: 'mailbox_no_connection' });
      }
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'mailbox not delivered');
    } finally {
      for (const conn of owned) {
        const pending = this.heldSignals.get(conn);
        if (!pending) continue;
        this.heldSignals.delete(conn);
        for (const payload of pending) if (conn.state === 'open') this.afterSend(conn, conn.deliver(payload, false), 'signal');
      }
    }
  }

  /** The configured ICE servers, plus TURN REST credentials for `user` when a TURN secret is set. */
  private iceServers(user: string): IceServer[] {
    const { turnSecret, turnUrls, turnTtlSeconds, iceServers } = this.deps.options;
    if (turnSecret === undefined) return iceServers;
    const { urls, username, credential } = turnCredential({ secret: turnSecret, urls: turnUrls, ttlSeconds: turnTtlSeconds }, user);
    return [...iceServers, { urls, username, credential }];
  }

  /** Close the connection with 4010 when its token expires; `refresh` re-arms it. */
  private armExpiry(conn: Connection): void {
    if (conn.expiryTimer) clearTimeout(conn.expiryTimer);
    conn.expiryTimer = undefined;
    const expiresAt = conn.identity?.expiresAt;
    if (expiresAt === undefined) return;
    // setTimeout takes at most 2^31-1 ms; a far expiry re-arms on the way.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    conn.expiryTimer = setTimeout(() => {
      if (conn.state !== 'open') return;
      if ((conn.identity?.expiresAt ?? Infinity) > Date.now()) return this.armExpiry(conn);
      conn.log.info({ user: clip(conn.user) }, 'token expired without refresh');
      this.close(conn, CloseCode.TokenExpired, 'token expired');
    }, delay);
    conn.expiryTimer.unref();
  }

  /** `refresh`: a new token for the same user and tenant replaces the connection's identity and expiry. */
  private async refresh(conn: Connection, frame: RefreshFrame): Promise<void> {
    let identity: Awaited<ReturnType<Authenticator['authenticate']>>;
    try {
      identity = await this.deps.authenticator.authenticate({ token: frame.token, remoteAddress: conn.remoteAddress });
    } catch (error) {
      throw new NerveError(ErrorCode.RefreshFailed, isNerveError(error) ? error.message : 'refresh failed', { cause: error });
    }
    if (identity.user !== conn.user || identity.tenant !== conn.tenant) {
      throw new NerveError(ErrorCode.Forbidden, 'a refresh token must name the same user and tenant');
    }
    if (conn.state !== 'open') return;
    conn.identity = identity;
    this.armExpiry(conn);
    this.answer(conn, { op: 'refreshed', rid: frame.rid, ...(identity.expiresAt === undefined ? {} : { expiresAt: identity.expiresAt }) });
  }

  /** Rights of the connection in `room`: its token's grants plus any join token's. */
  private rights(conn: Connection, room: string): ReadonlySet<RoomRight> {
    const granted = rightsIn(conn.identity?.grants, room);
    const joined = conn.grantsFor(room);
    if (!joined) return granted;
    return new Set([...granted, ...joined]);
  }

  private requireRight(conn: Connection, room: string, right: RoomRight): void {
    if (!this.rights(conn, room).has(right)) throw new NerveError(ErrorCode.Forbidden, `no \`${right}\` right in this room`);
  }

  /** A token limited to rooms may signal a user who is in one of its rooms where it holds `signal`. */
  private async maySignalRoomMate(conn: Connection, to: string): Promise<boolean> {
    if (!conn.identity) return false;
    for (const room of conn.rooms) {
      if (!this.rights(conn, room).has('signal')) continue;
      const members = await this.deps.presence.members({ tenant: conn.tenant, room });
      if (members.some((member) => member.user === to)) return true;
    }
    return false;
  }

  /** Per-room publish bucket on this node; 0 when allowed, else ms to wait. */
  private takeRoomToken(channel: string): number {
    let bucket = this.roomBuckets.get(channel);
    if (!bucket) {
      if (this.roomBuckets.size >= ROOM_BUCKETS_PRUNE_AT) {
        for (const known of this.roomBuckets.keys()) if (!this.local.get(known)) this.roomBuckets.delete(known);
      }
      const limits = this.deps.options.limits;
      bucket = new TokenBucket(limits.roomRatePerSecond, limits.roomRateBurst);
      this.roomBuckets.set(channel, bucket);
    }
    return bucket.take();
  }

  private checkRoom(room: string): void {
    if (!isValidRoomId(room, this.deps.options.limits.maxRoomIdLength)) {
      throw new NerveError(
        ErrorCode.InvalidRoom,
        `room ids are 1-${this.deps.options.limits.maxRoomIdLength} characters of A-Z a-z 0-9 . _ ~ -`,
      );
    }
  }

  private async join(conn: Connection, frame: JoinFrame): Promise<void> {
    this.checkRoom(frame.room);
    if (frame.token !== undefined) {
      const authenticator = this.deps.authenticator;
      if (!authenticator.verifyJoinToken) throw new NerveError(ErrorCode.Forbidden, 'join tokens need JWT authentication');
      const grant = await authenticator.verifyJoinToken(frame.token, conn.identity!, frame.room);
      conn.grant(frame.room, new Set(grant.rights));
    }
    if (!this.rights(conn, frame.room).has('join')) {
      if (!conn.rooms.has(frame.room)) conn.revokeGrants(frame.room);
      throw new NerveError(ErrorCode.Forbidden, 'no `join` right in this room');
    }
    const limits = this.deps.options.limits;
    const rejoin = conn.rooms.has(frame.room);
    if (!rejoin && conn.rooms.size >= limits.maxRoomsPerConnection) {
      throw new NerveError(ErrorCode.TooManyRooms, `at most ${limits.maxRoomsPerConnection} rooms per connection`);
    }
    if (!rejoin) {
      const admitted = this.deps.tenants?.joinRoom(conn.tenant, frame.room);
      if (admitted) await admitted;
    }
    const ref: RoomRef = { tenant: conn.tenant, room: frame.room };
    const channel = this.deps.namer.room(conn.tenant, frame.room);

    // Subscribe first and hold live frames, then read history, then answer
    // and release the held frames, skipping chat already in the answer.
    conn.startJoin(frame.room);
    let entered = false;
    try {
      if (!rejoin) {
        conn.rooms.add(frame.room);
        entered = true;
        if (this.local.add(channel, 'room', conn.tenant, frame.room, conn)) await this.deps.bus.acquire(channel);
        this.deps.metrics.rooms.set(this.local.rooms());
        const now = Date.now();
        const added = await this.deps.presence.add(ref, { user: conn.user, conn: conn.id, node: this.nodeId, ts: now });
        if (added.roomStarted) this.sessionStarted(ref, channel, conn.user, now);
        if (added.userJoined) await this.memberJoined(ref, channel, conn.user, now, conn.id);
        this.deps.metrics.joins.inc();
      }
      const limit = frame.history ?? limits.historyOnJoin;
      const [read, members] = await Promise.all([
        frame.since
          ? this.deps.history.since(ref, frame.since, limits.recoveryLimit)
          : this.deps.history.recent(ref, limit).then((recent) => ({ ...recent, recovered: undefined })),
        this.deps.presence.members(ref),
      ]);
      this.answer(conn, {
        op: 'joined',
        rid: frame.rid,
        room: frame.room,
        // The member list is presence: only with the `presence` right.
        members: this.rights(conn, frame.room).has('presence') ? members : [],
        history: read.messages,
        position: read.position,
        ...(read.recovered === undefined ? {} : { recovered: read.recovered }),
      });
      this.noteJoinPosition(channel, read.position.epoch, read.position.offset);
      this.releaseHeld(conn, frame.room, channel, read.position.epoch, read.position.offset);
    } catch (error) {
      conn.endJoin(frame.room);
      // A join that failed half-way is undone, so the client is either in
      // the room (presence, subscription, events) or not at all.
      if (entered) await this.leaveRoom(conn, frame.room, 'join_failed').catch(() => {});
      throw error;
    }
  }

  /**
   * Send the frames held during a join, minus chat messages the join answer
   * already carried. Chat the answer carried can also come later: the
   * history read and the bus are separate connections, so a message stored
   * just before the read may reach this node on the bus after the answer
   * left. Unless this node already delivered the room up to the answer's
   * position, the connection keeps that position as a floor (fanOut skips
   * its chat at or below it).
   */
  private releaseHeld(conn: Connection, room: string, channel: string, epoch: string, offset: number): void {
    const held = conn.endJoin(room);
    for (const payload of held) {
      const tail = payload.startsWith(CHAT_FRAME_PREFIX) ? scanChatTail(payload) : undefined;
      if (tail && tail.offset <= offset && tailHasEpoch(payload, tail, epoch)) continue;
      this.afterSend(conn, conn.deliver(payload, false), 'message');
    }
    const cursor = this.local.get(channel)?.chat;
    const caughtUp = cursor !== undefined && cursor.known && !cursor.recovering && cursor.held === undefined && cursor.epoch === epoch && cursor.offset >= offset;
    if (caughtUp) conn.clearChatFloor(room);
    else conn.setChatFloor(room, epoch, offset);
  }

  private async leave(conn: Connection, frame: LeaveFrame): Promise<void> {
    this.checkRoom(frame.room);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'not in that room');
    conn.revokeGrants(frame.room);
    await this.leaveRoom(conn, frame.room, 'left');
    this.answer(conn, { op: 'left', rid: frame.rid, room: frame.room });
  }

  private async leaveRoom(conn: Connection, room: string, reason: LeaveReason): Promise<void> {
    conn.rooms.delete(room);
    conn.endJoin(room);
    const ref: RoomRef = { tenant: conn.tenant, room };
    const channel = this.deps.namer.room(conn.tenant, room);
    try {
      const removed = await this.deps.presence.remove(ref, { user: conn.user, conn: conn.id });
      if (removed.userLeft) await this.memberLeft(ref, channel, conn.user, Date.now(), reason, conn.id);
      if (removed.roomEmpty) {
        // A room emptied by an end-room request ended because of the API.
        this.endSession(ref, channel, reason === 'room_ended' ? 'api' : 'empty');
      }
    } finally {
      // Only now: until it is out of the channel's listeners, the connection still gets the room's live chat.
      conn.clearChatFloor(room);
      if (this.local.remove(channel, conn)) {
        this.forgetSessionWhenIdle(ref, channel);
        await this.deps.bus.release(channel).catch(() => {});
      }
      this.deps.metrics.rooms.set(this.local.rooms());
    }
  }

  /** Publish into a room; resolves with the `ack` to send (chat), or nothing (ephemeral: fire and forget). */
  private async publish(conn: Connection, frame: PublishFrame): Promise<AckFrame | undefined> {
    this.checkRoom(frame.room);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room before publishing');
    this.requireRight(conn, frame.room, 'publish');
    const ack = await this.publishInto(
      { tenant: conn.tenant, room: frame.room, class: frame.class, data: frame.data, from: conn.user, cmid: frame.cmid, key: frame.key, traceparent: frame.traceparent },
      conn.id,
    );
    // Ephemeral messages are fire and forget: no ack.
    return frame.class === 'chat' ? { op: 'ack', rid: frame.rid, ...ack } : undefined;
  }

  /**
   * Publish into a room for the server API (docs/api.md): the same path as a
   * member's publish (per-room rate limit, history, cold-lane event), with a
   * sender chosen by the backend.
   */
  async serverPublish(input: ServerPublish): Promise<Omit<AckFrame, 'op' | 'rid'>> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    return this.publishInto(input, input.except);
  }

  /** `publishRoom` in a `nerve.publish` span when tracing is on. */
  private publishInto(input: ServerPublish, exceptConn: string | undefined): Promise<Omit<AckFrame, 'op' | 'rid'>> {
    const tracing = this.deps.tracing;
    if (!tracing) return this.publishRoom(input, exceptConn, undefined);
    const hop = { tenant: input.tenant, room: input.room, class: input.class };
    return tracing.around('nerve.publish', SpanKind.PRODUCER, input.traceparent, hop, (traceparent) => this.publishRoom(input, exceptConn, traceparent));
  }

  /** Stamp, store (chat) and route one room message; `exceptConn` is the sender's connection, if any; `trace` the publish span's context. */
  private async publishRoom(input: ServerPublish, exceptConn: string | undefined, trace: string | undefined): Promise<Omit<AckFrame, 'op' | 'rid'>> {
    const ref: RoomRef = { tenant: input.tenant, room: input.room };
    const channel = this.deps.namer.room(input.tenant, input.room);
    const retryAfterMs = this.takeRoomToken(channel);
    if (retryAfterMs > 0) {
      this.deps.metrics.drops.inc({ reason: 'room_rate_limited' });
      throw new NerveError(ErrorCode.RateLimited, 'too many messages in this room', { retryAfterMs });
    }
    const tenants = this.deps.tenants;
    const storedBytes = tenants && input.class === 'chat' ? storedSize(input.data) : 0;
    if (tenants) {
      const admitted = tenants.publish(input.tenant, storedBytes);
      if (admitted) await admitted;
    }
    const id = randomUUID();
    const ts = Date.now();
    this.deps.metrics.messages.inc({ class: input.class });

    if (input.class === 'ephemeral') {
      const message: EphemeralMessage = {
        op: 'message',
        class: 'ephemeral',
        room: input.room,
        id,
        from: input.from,
        ts,
        data: input.data,
        ...(input.key === undefined ? {} : { key: input.key }),
      };
      const route = routeOf('ephemeral');
      await this.busPublish(channel, 'ephemeral', encodeFrame(message), route.echoToSender ? undefined : exceptConn, id, trace);
      return { id, ts };
    }

    const { message, duplicate } = await this.appendChat(
      trace,
      ref,
      {
        op: 'message',
        class: 'chat',
        room: input.room,
        id,
        from: input.from,
        ts,
        data: input.data,
        ...(input.cmid === undefined ? {} : { cmid: input.cmid }),
      },
      {
        channel,
        envelope: (stored) => chatEnvelope(stored, this.nodeId),
      },
    );
    if (tenants && !duplicate) tenants.stored(input.tenant, storedBytes);
    const cold = routeOf('chat').coldEvent;
    if (cold) {
      try {
        // The event id is the message id, so the event is emitted again for
        // a retried publish (duplicate) without consumers storing it twice:
        // a retry after `unavailable` is how the durable copy gets made.
        await this.deps.events.publish(
          messageCreated(
            { ...(await this.source(ref, channel)), id: message.id, ts: message.ts },
            {
              messageId: message.id,
              from: message.from,
              offset: message.offset,
              epoch: message.epoch,
              sentAt: message.ts,
              body: message.data,
              ...(message.cmid === undefined ? {} : { cmid: message.cmid }),
            },
          ),
          trace === undefined ? undefined : { traceparent: trace },
        );
      } catch (error) {
        // Stored and delivered, but the durable copy could not be queued:
        // tell the sender rather than acknowledge something we may lose.
        throw isNerveError(error) ? error : new NerveError(ErrorCode.Unavailable, 'event lane unavailable', { cause: error });
      }
    }
    return {
      id: message.id,
      ts: message.ts,
      offset: message.offset,
      epoch: message.epoch,
      ...(duplicate ? { duplicate: true } : {}),
    };
  }

  /** `History.append`, with a command sent but not answered reported as `outcome_unknown` (stored or not: re-send with the same cmid). */
  private async appendChat(trace: string | undefined, ...args: Parameters<History['append']>): ReturnType<History['append']> {
    try {
      if (trace === undefined || !this.deps.tracing) return await this.deps.history.append(...args);
      const [ref, draft, publish] = args;
      // The history write is its own hop; the envelope it publishes carries it as the parent of every node's delivery.
      return await this.deps.tracing.around('nerve.history.append', SpanKind.INTERNAL, trace, { tenant: ref.tenant, room: ref.room, class: 'chat' }, (traceparent) =>
        this.deps.history.append(ref, draft, publish && { ...publish, envelope: (stored) => ({ ...publish.envelope(stored), trace: traceparent }) }),
      );
    } catch (error) {
      throw error instanceof OutcomeUnknownError ? outcomeUnknown(error, 'the history') : error;
    }
  }

  private async signal(conn: Connection, frame: SignalFrame): Promise<void> {
    if (!isValidUserId(frame.to)) throw new NerveError(ErrorCode.InvalidUser, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
    // Most tokens may signal anyone: then no presence lookup, and no await.
    if (!maySignalAnyone(conn) && !(await this.maySignalRoomMate(conn, frame.to))) throw new NerveError(ErrorCode.Forbidden, 'no `signal` right for that user');
    const admitted = this.deps.tenants?.signal(conn.tenant);
    if (admitted) await admitted;
    const id = randomUUID();
    const ts = Date.now();
    const delivery: SignalDelivery = { op: 'signal', id, from: conn.user, fromConn: conn.id, kind: frame.kind, data: frame.data, ts };
    this.deps.metrics.messages.inc({ class: 'signal' });
    const channel = this.deps.namer.user(conn.tenant, frame.to);
    const payload = encodeFrame(delivery);
    const tracing = this.deps.tracing;
    const receivers = tracing
      ? await tracing.around('nerve.signal', SpanKind.PRODUCER, frame.traceparent, { tenant: conn.tenant, class: 'signal' }, (traceparent) =>
          this.busPublish(channel, 'signal', payload, conn.id, id, traceparent),
        )
      : await this.busPublish(channel, 'signal', payload, conn.id, id);
    if (receivers === 0) {
      if (await this.queueSignal(conn.tenant, frame.to, channel, payload)) {
        this.answer(conn, { op: 'ack', rid: frame.rid, id, ts, queued: true });
        return;
      }
      this.deps.metrics.drops.inc({ reason: 'peer_offline' });
      throw new NerveError(ErrorCode.PeerOffline, 'that user is not connected');
    }
    this.answer(conn, { op: 'ack', rid: frame.rid, id, ts });
  }

  /**
   * A signal reached no node: keep it in the target's mailbox if the target
   * was connected within the mailbox TTL. Then poke the user channel, so a
   * node that subscribed between our publish and the store takes it now.
   */
  private async queueSignal(tenant: string, user: string, channel: string, payload: string): Promise<boolean> {
    const mailbox = this.deps.mailbox;
    if (!mailbox) return false;
    let queued: boolean;
    try {
      const result = await mailbox.offer({ tenant, user }, payload);
      if (result.dropped > 0) this.deps.metrics.mailboxExpired.inc({ reason: 'overflow' }, result.dropped);
      queued = result.queued;
    } catch (error) {
      // Maybe queued: answering peer_offline would claim the signal is gone.
      if (error instanceof OutcomeUnknownError) throw outcomeUnknown(error, 'the signal mailbox');
      this.deps.log.warn({ err: (error as Error).message }, 'signal mailbox unavailable');
      return false;
    }
    if (!queued) return false;
    this.deps.metrics.mailboxQueued.inc();
    const poke: BusEnvelope = { v: BUS_ENVELOPE_VERSION, type: 'control', id: randomUUID(), origin: this.nodeId, class: 'signal', payload: MAILBOX_PENDING };
    await this.deps.bus.publish(channel, poke).catch(() => 0);
    return true;
  }

  /**
   * A direct signal from the server API (docs/api.md). Resolves with
   * `delivered` (some node had the user) or `queued` (kept in the mailbox);
   * neither means the user is offline.
   */
  async serverSignal(input: ServerSignal): Promise<{ id: string; ts: number; delivered: boolean; queued: boolean }> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    const admitted = this.deps.tenants?.signal(input.tenant);
    if (admitted) await admitted;
    const id = randomUUID();
    const ts = Date.now();
    const delivery: SignalDelivery = { op: 'signal', id, from: input.from, fromConn: 'server', kind: input.kind, data: input.data, ts };
    this.deps.metrics.messages.inc({ class: 'signal' });
    const channel = this.deps.namer.user(input.tenant, input.to);
    const payload = encodeFrame(delivery);
    const receivers = await this.busPublish(channel, 'signal', payload, undefined, id);
    if (receivers > 0) return { id, ts, delivered: true, queued: false };
    const queued = await this.queueSignal(input.tenant, input.to, channel, payload);
    if (!queued) this.deps.metrics.drops.inc({ reason: 'peer_offline' });
    return { id, ts, delivered: false, queued };
  }

  /**
   * End a room on every node (server API): a `room.end` control envelope on
   * the room channel; each node holding members tells them (`room_ended`)
   * and takes them out of the room, with the usual leave events. Resolves
   * with how many nodes had members.
   */
  async endRoom(tenant: string, room: string, reason: string): Promise<number> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    const command: ControlCommand = { action: 'room.end', room, reason };
    const envelope: BusEnvelope = {
      v: BUS_ENVELOPE_VERSION,
      type: 'control',
      id: randomUUID(),
      origin: this.nodeId,
      class: 'lifecycle',
      payload: JSON.stringify(command),
    };
    try {
      return await this.deps.bus.publish(this.deps.namer.room(tenant, room), envelope);
    } catch (error) {
      throw new NerveError(ErrorCode.BusUnavailable, 'cross-node bus unavailable', { cause: error });
    }
  }

  /**
   * Disconnect a user's connections, or one of them, on every node (admin
   * API): a `user.disconnect` control envelope on the user's channel, which
   * only nodes holding a connection of the user subscribe. Resolves with how
   * many nodes received it.
   */
  async disconnectUser(tenant: string, user: string, conn: string | undefined, reason: string): Promise<number> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    const command: ControlCommand = { action: 'user.disconnect', user, reason, ...(conn === undefined ? {} : { conn }) };
    const envelope: BusEnvelope = { v: BUS_ENVELOPE_VERSION, type: 'control', id: randomUUID(), origin: this.nodeId, class: 'lifecycle', payload: JSON.stringify(command) };
    try {
      return await this.deps.bus.publish(this.deps.namer.user(tenant, user), envelope);
    } catch (error) {
      throw new NerveError(ErrorCode.BusUnavailable, 'cross-node bus unavailable', { cause: error });
    }
  }

  /** A `user.disconnect` command reached this node: close the user's local connections (4012), or the one named. */
  private onUserDisconnect(channel: string, command: { user: string; reason: string; conn: string | undefined }): void {
    const target = this.local.get(channel);
    if (target?.kind !== 'user' || target.id !== command.user) return;
    const closing = [...target.connections].filter((conn) => command.conn === undefined || conn.id === command.conn);
    if (closing.length === 0) return;
    this.deps.log.info({ tenant: target.tenant, user: clip(command.user), connections: closing.length }, 'connections closed by an operator');
    let reason = command.reason.slice(0, 123) || 'disconnected by an operator';
    // A close reason is at most 123 bytes of UTF-8.
    while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
    for (const conn of closing) this.close(conn, CloseCode.Disconnected, reason);
  }

  /** A `room.end` command reached this node: every local member of the room leaves it. */
  private onRoomEnd(channel: string, command: { room: string; reason: string }): void {
    const target = this.local.get(channel);
    if (target?.kind !== 'room' || target.id !== command.room) return;
    const frame: RoomEndedFrame = { op: 'room_ended', room: command.room, reason: command.reason.slice(0, 200), ts: Date.now() };
    const payload = encodeFrame(frame);
    this.deps.log.info({ tenant: target.tenant, room: clip(command.room), members: target.connections.size }, 'room ended by the server API');
    for (const conn of [...target.connections]) {
      // In the connection's request queue, after its pipelined publishes are answered,
      // so it never races the client's own join, leave or publish.
      conn.queue = conn.queue.then(async () => {
        await conn.answered;
        if (!conn.rooms.has(command.room)) return;
        conn.revokeGrants(command.room);
        await this.leaveRoom(conn, command.room, 'room_ended').catch((error: unknown) =>
          conn.log.warn({ err: (error as Error).message }, 'leave on room end failed'),
        );
        if (conn.state === 'open') this.afterSend(conn, conn.deliver(payload, false), 'room_ended');
      });
    }
  }

  private async presenceQuery(conn: Connection, frame: PresenceFrame): Promise<void> {
    this.checkRoom(frame.room);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room to see its members');
    this.requireRight(conn, frame.room, 'presence');
    const members = await this.deps.presence.members({ tenant: conn.tenant, room: frame.room });
    this.answer(conn, { op: 'presence', rid: frame.rid, room: frame.room, members });
  }

  // ------------------------------------------------------------ bus

  private envelope(messageClass: MessageClass, payload: string, id: string, except?: string, trace?: string): BusEnvelope {
    return {
      v: BUS_ENVELOPE_VERSION,
      type: 'deliver',
      id,
      origin: this.nodeId,
      class: messageClass,
      payload,
      ...(trace === undefined ? {} : { trace }),
      ...(except === undefined ? {} : { except }),
    };
  }

  /**
   * Publish on the bus. When the bus is down the envelope is still handed to
   * this node's own listeners (local delivery keeps working through a Redis
   * outage), and the sender is told `bus_unavailable`: it reached this node
   * only. A publish sent but not confirmed (OutcomeUnknownError) is
   * `outcome_unknown`, without the local copy. Chat never comes here: it is
   * published by `History.append`.
   */
  private async busPublish(channel: string, messageClass: MessageClass, payload: string, except: string | undefined, id: string, trace?: string): Promise<number> {
    const started = performance.now();
    const envelope = this.envelope(messageClass, payload, id, except, trace);
    try {
      return await this.deps.bus.publish(channel, envelope);
    } catch (error) {
      // The publish may have reached the broker, and then this node's own
      // subscription hands it back: no local copy (it would be a second one),
      // and no drop counted (it may not be one; the answer is counted by code).
      if (error instanceof OutcomeUnknownError) throw outcomeUnknown(error, 'the cross-node bus');
      this.deps.metrics.drops.inc({ reason: 'bus_unavailable' });
      const local = this.local.get(channel);
      if (local) this.onBusMessage(channel, envelope);
      throw new NerveError(
        ErrorCode.BusUnavailable,
        local ? 'cross-node bus unavailable: delivered on this node only' : 'cross-node bus unavailable',
        { cause: error },
      );
    } finally {
      this.deps.metrics.busPublishSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** Presence events are best effort: a bus failure must not fail the join or leave. */
  private async publishQuietly(channel: string, messageClass: MessageClass, payload: string, except: string | undefined): Promise<void> {
    try {
      await this.busPublish(channel, messageClass, payload, except, randomUUID());
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'presence event not published');
    }
  }

  /** Deliver an envelope from the bus to the local connections listening on `channel`. */
  onBusMessage(channel: string, envelope: BusEnvelope): void {
    if (envelope.type === 'control') {
      this.onControl(channel, envelope);
      return;
    }
    if (envelope.type !== 'deliver') return;
    const target = this.local.get(channel);
    if (!target) {
      this.deps.metrics.drops.inc({ reason: 'no_local_listener' });
      return;
    }
    // Chat is checked against the room's last delivered offset: duplicates are skipped, a gap is filled first.
    if (envelope.class === 'chat' && target.kind === 'room' && !this.admitChat(channel, target, envelope.payload)) return;
    if (envelope.trace === undefined || !this.deps.tracing) {
      this.fanOut(target, envelope.payload, envelope.class, envelope.except);
      return;
    }
    const hop = this.deps.tracing.start('nerve.deliver', SpanKind.CONSUMER, envelope.trace, {
      tenant: target.tenant,
      ...(target.kind === 'room' ? { room: target.id } : { user: target.id }),
      class: envelope.class,
      node: this.nodeId,
      listeners: target.connections.size,
    });
    try {
      this.fanOut(target, envelope.payload, envelope.class, envelope.except);
      hop.end();
    } catch (error) {
      hop.end(error);
      throw error;
    }
  }

  /**
   * Write one encoded frame to every local listener of a channel: the one
   * loop behind bus deliveries, chat recovered from history, and resync
   * notices. Encode once: the same bytes go to every socket. A connection
   * whose join (room) or mailbox take (user) is in flight gets it held, in
   * order, instead.
   */
  private fanOut(target: ChannelTarget, payload: string, messageClass: MessageClass, except?: string): void {
    const droppable = routeOf(messageClass).droppable;
    const frame = new TextFrame(Buffer.from(payload));
    // Parsed only if some recipient is over its soft limit, and then once.
    let conflateKey: string | undefined | null = null;
    const keyOf = droppable
      ? (): string | undefined => {
          if (conflateKey === null) {
            const message = JSON.parse(payload) as Partial<EphemeralMessage>;
            conflateKey = message.key === undefined ? undefined : `${message.room}\u0000${message.from}\u0000${message.key}`;
          }
          return conflateKey;
        }
      : undefined;
    const room = target.kind === 'room';
    // member_joined / member_left are presence: like `joined.members`, only for connections with the `presence` right.
    const needsPresence = room && messageClass === 'presence';
    const chat = room && messageClass === 'chat';
    let position: { offset: number; epoch: string } | null | undefined;
    let sent = 0;
    for (const conn of target.connections) {
      if (conn.id === except) continue;
      if (needsPresence && !this.rights(conn, target.id).has('presence')) continue;
      const held = room ? conn.heldFor(target.id) : this.heldSignals.get(conn);
      if (held) {
        held.push(payload);
        continue;
      }
      if (chat) {
        // A connection whose join answer may be ahead of this node's bus delivery (releaseHeld) skips chat the answer carried.
        const floor = conn.chatFloor(target.id);
        if (floor !== undefined) {
          if (position === undefined) {
            const tail = scanChatTail(payload);
            position = tail ? { offset: tail.offset, epoch: tailEpoch(payload, tail) } : null;
          }
          if (position !== null && position.epoch === floor.epoch && position.offset <= floor.offset) continue;
          conn.clearChatFloor(target.id);
        }
      }
      const outcome = conn.deliver(frame, droppable, keyOf);
      if (outcome === 'sent') sent += 1;
      else if (outcome === 'dropped') this.deps.metrics.drops.inc({ reason: 'backpressure' });
      else if (outcome === 'slow') {
        this.deps.metrics.drops.inc({ reason: 'slow_consumer' });
        this.close(conn, CloseCode.SlowConsumer, 'send buffer over limit');
      }
    }
    if (sent > 0) {
      this.deps.metrics.deliveries.inc({ class: messageClass }, sent);
      this.deps.metrics.framesOut.inc({ op: FRAME_OP[messageClass] }, sent);
      this.deps.tenants?.delivered(target.tenant, sent);
    }
  }

  // ------------------------------------------------------------ chat gaps

  /**
   * The bus subscribed `channels` again after losing them (a Redis reconnect,
   * a canary recovery, a shard move): chat published meanwhile never reached
   * this node. Every room with local members re-reads its history from the
   * last offset delivered here and delivers what was missed (recoverChat).
   * User channels are left alone: signals are at most once.
   */
  onBusResubscribed(channels: string[]): void {
    for (const channel of channels) {
      const target = this.local.get(channel);
      if (target?.kind !== 'room') continue;
      this.deps.metrics.chatGaps.inc({ trigger: 'resubscribe' });
      const cursor = (target.chat ??= new RoomChatCursor());
      if (cursor.known) {
        this.startRecovery(channel, target, cursor);
      } else {
        // Only joins in flight, whose answers may predate the loss: their clients resume from their own positions.
        this.sendResync(target, 'position_unknown');
      }
    }
  }

  /**
   * Whether a live chat payload may be delivered now, keeping the room's
   * cursor (last delivered offset and epoch). A message at or below the
   * cursor was delivered already (from the history) and is skipped; while a
   * recovery runs, messages are held; a message past the next offset, or of
   * another epoch, means the bus lost some: it is held and a recovery
   * starts. No allocation unless the epoch changes.
   */
  private admitChat(channel: string, target: ChannelTarget, payload: string): boolean {
    const tail = scanChatTail(payload);
    if (!tail) return true;
    const cursor = (target.chat ??= new RoomChatCursor());
    if (cursor.held) {
      if (!cursor.hold(payload)) this.deps.metrics.drops.inc({ reason: 'recovery_overflow' });
      return false;
    }
    if (!cursor.known) {
      cursor.set(tailEpoch(payload, tail), tail.offset);
      return true;
    }
    if (tailHasEpoch(payload, tail, cursor.epoch)) {
      if (tail.offset <= cursor.offset) return false;
      if (tail.offset === cursor.offset + 1) {
        cursor.offset = tail.offset;
        return true;
      }
    } else if (cursor.offset === 0 && tail.offset === 1) {
      // Nothing was seen in the old epoch, so nothing of the new one is missing.
      cursor.set(tailEpoch(payload, tail), 1);
      return true;
    }
    this.deps.metrics.chatGaps.inc({ trigger: 'offset_jump' });
    cursor.hold(payload);
    this.startRecovery(channel, target, cursor);
    return false;
  }

  /** A join read the room's position: the room's first one tells this node where its chat stands, if no message did. */
  private noteJoinPosition(channel: string, epoch: string, offset: number): void {
    const target = this.local.get(channel);
    if (target?.kind !== 'room') return;
    const cursor = (target.chat ??= new RoomChatCursor());
    if (!cursor.known) cursor.set(epoch, offset);
  }

  private startRecovery(channel: string, target: ChannelTarget, cursor: RoomChatCursor): void {
    this.recoverChat(channel, target, cursor).catch((error: unknown) => {
      this.deps.log.error({ err: (error as Error).message, tenant: target.tenant, room: clip(target.id) }, 'chat gap recovery failed');
    });
  }

  /**
   * Fill a room's chat gap: hold live chat, read the history after the
   * cursor, deliver the missed messages in order, then release the held
   * ones (skipping what the read already delivered). When the history cannot
   * return exactly the missed messages, or cannot be read (after a few
   * retries: after a Redis restart the history connection may come back
   * after the bus), the members get `resync` and resume from their own
   * positions. One recovery per room at a time; a loss reported meanwhile
   * makes it read again.
   */
  private async recoverChat(channel: string, target: ChannelTarget, cursor: RoomChatCursor): Promise<void> {
    cursor.held ??= [];
    if (cursor.recovering) {
      cursor.again = true;
      return;
    }
    cursor.recovering = true;
    const ref: RoomRef = { tenant: target.tenant, room: target.id };
    const still = (): boolean => this.local.get(channel) === target;
    let resync: ResyncReason | undefined;
    try {
      do {
        cursor.again = false;
        const from = { offset: cursor.offset, epoch: cursor.epoch };
        const read = await this.readForRecovery(ref, from, still);
        if (!still()) return;
        if (read === undefined) {
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'failed' });
          this.deps.log.warn({ tenant: target.tenant, room: clip(target.id), from }, 'chat gap not recovered: history unavailable; members told to resync');
          resync = 'history_unavailable';
          break;
        }
        if (read.recovered) {
          let delivered = 0;
          for (const message of read.messages) {
            if (message.epoch !== cursor.epoch || message.offset <= cursor.offset) continue;
            cursor.offset = message.offset;
            this.fanOut(target, encodeFrame(message), 'chat');
            delivered += 1;
          }
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'recovered' });
          if (delivered > 0) {
            this.deps.metrics.chatGapMessages.inc(delivered);
            this.deps.log.info({ tenant: target.tenant, room: clip(target.id), from, delivered }, 'chat missed on the bus delivered from history');
          }
        } else {
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'unrecoverable' });
          this.deps.log.warn({ tenant: target.tenant, room: clip(target.id), from, position: read.position }, 'chat gap not recoverable; members told to resync');
          resync = 'unrecoverable';
          cursor.set(read.position.epoch, read.position.offset);
        }
      } while (cursor.again);
    } finally {
      cursor.recovering = false;
      cursor.again = false;
    }
    if (cursor.overflowed) {
      cursor.overflowed = false;
      resync ??= 'unrecoverable';
      // Some live messages were dropped: the members resume on their own; track again from the next message.
      cursor.known = false;
    }
    if (resync !== undefined) this.sendResync(target, resync);
    // Without the history this node does not know what was missed: the members resume from their own positions.
    if (resync === 'history_unavailable') cursor.known = false;
    const held = cursor.held ?? [];
    cursor.held = undefined;
    // Through admitChat again: duplicates of what the read delivered are skipped; a new jump starts another recovery (and holds the rest).
    for (const payload of held) {
      if (this.admitChat(channel, target, payload)) this.fanOut(target, payload, 'chat');
    }
  }

  /** `history.since` with a few retries (100 ms doubling, about 6 s in all); undefined when it kept failing or the room has no local member left. */
  private async readForRecovery(ref: RoomRef, from: { offset: number; epoch: string }, still: () => boolean): Promise<Awaited<ReturnType<History['since']>> | undefined> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.recoveries.run(() => this.deps.history.since(ref, from, this.deps.options.limits.recoveryLimit));
      } catch (error) {
        if (attempt >= 5 || !still() || this.state === 'closed') {
          this.deps.log.debug({ err: (error as Error).message, room: clip(ref.room) }, 'history read for a chat gap failed');
          return undefined;
        }
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 100 * 2 ** attempt).unref());
    }
  }

  /** Tell the room's local members to resume it themselves (`join` with `since`). */
  private sendResync(target: ChannelTarget, reason: ResyncReason): void {
    const frame: ResyncFrame = { op: 'resync', room: target.id, reason };
    this.fanOut(target, encodeFrame(frame), 'lifecycle');
  }

  /** Control commands on a channel this node listens on. */
  private onControl(channel: string, envelope: BusEnvelope): void {
    if (envelope.payload !== MAILBOX_PENDING) {
      let command: Partial<ControlCommand> | undefined;
      try {
        command = JSON.parse(envelope.payload) as Partial<ControlCommand>;
      } catch {
        return;
      }
      if (command?.action === 'room.end' && typeof command.room === 'string' && typeof command.reason === 'string') {
        this.onRoomEnd(channel, { room: command.room, reason: command.reason });
      }
      if (command?.action === 'user.disconnect' && typeof command.user === 'string' && typeof command.reason === 'string') {
        this.onUserDisconnect(channel, { user: command.user, reason: command.reason, conn: typeof command.conn === 'string' ? command.conn : undefined });
      }
      return;
    }
    const target = this.local.get(channel);
    if (target?.kind !== 'user') return;
    void this.deliverMailbox(target.tenant, target.id, [...target.connections]);
  }

  /**
   * Presence entries of a node that stopped heartbeating expired: tell this
   * node's members of the room that those users left, and record why.
   * Exactly one surviving node sees each expiry (the presence script that
   * removed the entries reports them once).
   */
  onPresenceExpired(ref: RoomRef, expiry: { users: string[]; roomEmpty: boolean }): void {
    const channel = this.deps.namer.room(ref.tenant, ref.room);
    for (const user of expiry.users) void this.memberLeft(ref, channel, user, Date.now(), 'node_crash');
    if (expiry.roomEmpty) {
      this.endSession(ref, channel);
    }
    // This node may sweep a room it has no member in: its session id is not worth keeping.
    this.forgetSessionWhenIdle(ref, channel);
  }

  /**
   * The counterpart of onPresenceExpired: this node was cut off or stalled
   * longer than the presence TTL, its members' leave went out, and presence
   * added their entries back. Announce them as joined again (and the room
   * as started again when it had emptied). Only this node sees it.
   */
  onPresenceRestored(ref: RoomRef, rejoin: { users: string[]; roomStarted: boolean }): void {
    const channel = this.deps.namer.room(ref.tenant, ref.room);
    const now = Date.now();
    if (rejoin.roomStarted) this.sessionStarted(ref, channel, rejoin.users[0], now);
    for (const user of rejoin.users) void this.memberJoined(ref, channel, user, now);
  }

  /** A room session began (presence said so): record it, then emit room.created. */
  private sessionStarted(ref: RoomRef, channel: string, createdBy: string | undefined, now: number): void {
    this.sessionStep(ref, channel, async () => {
      const id = await this.stored('start', ref, () => this.deps.sessions.start(ref, now));
      // Whatever this node cached belongs to an earlier session.
      if (id === undefined) this.sessionIds.delete(channel);
      else this.sessionIds.set(channel, id);
      this.emitEvent(roomCreated(await this.source(ref, channel), createdBy === undefined ? {} : { createdBy }));
    });
  }

  /**
   * A user joined a room cluster-wide (first connection, or restored):
   * member_joined to the room (never to `conn`, whose join answer lists the
   * members), then the session step and participant.joined.
   */
  private async memberJoined(ref: RoomRef, channel: string, user: string, now: number, conn?: string): Promise<void> {
    // Queued first, in this tick: session steps keep the order of the presence changes that caused them.
    this.sessionStep(ref, channel, async () => {
      const id = await this.stored('joined', ref, () => this.deps.sessions.joined(ref, user, now));
      if (id !== undefined) this.sessionIds.set(channel, id);
      this.emitEvent(participantJoined(await this.source(ref, channel), { user, ...(conn === undefined ? {} : { conn }) }));
    });
    const event: MemberJoinedFrame = { op: 'member_joined', room: ref.room, user, ts: now };
    await this.publishQuietly(channel, 'presence', encodeFrame(event), conn);
  }

  /** A user left a room cluster-wide (last connection, or expired): member_left, then the session step and participant.left. */
  private async memberLeft(ref: RoomRef, channel: string, user: string, now: number, reason: LeaveReason, conn?: string): Promise<void> {
    // Queued first, in this tick: a room.ended queued right after must see this leave recorded.
    this.sessionStep(ref, channel, async () => {
      const ms = await this.stored('left', ref, () => this.deps.sessions.left(ref, user, now));
      this.emitEvent(participantLeft(await this.source(ref, channel), { user, reason, ...(conn === undefined ? {} : { conn }), ...(ms === undefined ? {} : { ms }) }));
    });
    const event: MemberLeftFrame = { op: 'member_left', room: ref.room, user, ts: now };
    await this.publishQuietly(channel, 'presence', encodeFrame(event), conn);
  }

  // ------------------------------------------------------------ events

  /**
   * Where an event happened: tenant, room, this node, and the room's
   * session: the cached id, else the store's (cached from then on), else,
   * with the store unavailable, a new id so the event still goes out.
   */
  private async source(ref: RoomRef, channel: string): Promise<EventSource> {
    let session = this.sessionIds.get(channel);
    if (session === undefined) {
      session = (await this.stored('current', ref, () => this.deps.sessions.current(ref))) ?? randomUUID();
      this.sessionIds.set(channel, session);
    }
    return { tenant: ref.tenant, room: ref.room, node: this.nodeId, session };
  }

  /** Presence emptied the room (on this node only, cluster-wide): close its session and emit room.ended. */
  private endSession(ref: RoomRef, channel: string, reason: 'empty' | 'api' = 'empty'): void {
    const now = Date.now();
    this.sessionStep(ref, channel, async () => {
      const ended = await this.stored('end', ref, () => this.deps.sessions.end(ref, now));
      const source = ended ? { tenant: ref.tenant, room: ref.room, node: this.nodeId, session: ended.id } : await this.source(ref, channel);
      this.sessionIds.delete(channel);
      // Without the store all this node has is the session id: the figures say "nothing known".
      this.emitEvent(
        roomEnded(source, {
          startedAt: ended?.startedAt ?? now,
          durationMs: ended?.durationMs ?? 0,
          participants: ended?.participants ?? [],
          ...(ended ? { peakParticipants: ended.peakParticipants } : {}),
          reason,
        }),
      );
    });
  }

  /**
   * Session work runs after the join or leave that caused it, never making
   * it wait or fail, and in order per room on this node (start → joined →
   * left → end), so each event carries the figures of the steps before it.
   */
  private sessionStep(ref: RoomRef, channel: string, step: () => Promise<void>): void {
    const previous = this.sessionWork.get(channel) ?? Promise.resolve();
    const next = previous.then(step).catch((error: unknown) => {
      this.deps.log.error({ err: (error as Error).message, tenant: ref.tenant, room: ref.room }, 'room session step failed');
    });
    this.sessionWork.set(channel, next);
    void next.finally(() => {
      if (this.sessionWork.get(channel) === next) this.sessionWork.delete(channel);
    });
  }

  /** Once the session work queued so far is done, drop the cached id if this node has no member in the room. */
  private forgetSessionWhenIdle(ref: RoomRef, channel: string): void {
    this.sessionStep(ref, channel, async () => {
      if (this.local.get(channel) === undefined) this.sessionIds.delete(channel);
    });
  }

  /** A session store call; on failure `undefined`, logged and counted (events go out with what this node has). */
  private async stored<T>(call: string, ref: RoomRef, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (error) {
      this.deps.metrics.errors.inc({ code: 'session_unavailable' });
      this.deps.log.error({ err: (error as Error).message, call, tenant: ref.tenant, room: ref.room }, 'room session store failed');
      return undefined;
    }
  }

  /** Lifecycle events from joins and leaves: failures are logged and counted, never thrown at the client. */
  private emitEvent(event: LifecycleEvent): void {
    this.deps.events.publish(event).catch((error: unknown) => {
      this.deps.metrics.drops.inc({ reason: 'event_unavailable' });
      this.deps.log.error({ err: (error as Error).message, type: event.type }, 'lifecycle event not accepted');
    });
  }

  // ------------------------------------------------------------ answers, errors, closing

  private answer(conn: Connection, frame: Parameters<Connection['send']>[0]): void {
    this.afterSend(conn, conn.send(frame), frame.op);
  }

  private afterSend(conn: Connection, outcome: SendOutcome, op: string): void {
    if (outcome === 'sent') this.deps.metrics.framesOut.inc({ op });
    else if (outcome === 'slow') {
      this.deps.metrics.drops.inc({ reason: 'slow_consumer' });
      this.close(conn, CloseCode.SlowConsumer, 'send buffer over limit');
    }
  }

  private fail(conn: Connection, rid: RequestId | undefined, error: unknown): void {
    this.failure(conn, rid, error).send();
  }

  /**
   * A refusal decided on arrival (rate limit, invalid frame, full queue).
   * It is counted at once, so a flood is cut without waiting, but answered
   * in request order, after the answers of every request before it (the
   * pipelined publishes included). The answer that crosses the error limit
   * goes at once, with the close.
   */
  private refuse(conn: Connection, rid: RequestId | undefined, error: NerveError): void {
    const failure = this.failure(conn, rid, error);
    if (conn.pending === 0 || failure.closes) {
      failure.send();
      return;
    }
    conn.queue = conn.queue.then(async () => {
      await conn.answered;
      try {
        failure.send();
      } catch (sendError) {
        // Never reject: every later request of the connection waits on this chain.
        conn.log.error({ err: (sendError as Error).message }, 'answering a refusal failed');
      }
    });
  }

  /** Logs and counts a failed request now; `send` answers it (and closes a connection over its error limit). */
  private failure(conn: Connection, rid: RequestId | undefined, error: unknown): { closes: boolean; send: () => void } {
    // A lane command left unanswered under a request other than publish or signal (join, leave, presence): that request failed, and was undone.
    const nerveError = isNerveError(error)
      ? error
      : error instanceof OutcomeUnknownError
        ? new NerveError(ErrorCode.Unavailable, 'a lane did not answer in time', { cause: error })
        : new NerveError(ErrorCode.Internal, 'internal error', { cause: error });
    if (nerveError.code === ErrorCode.Internal) conn.log.error({ err: error, rid }, 'request failed');
    else if (LOGGED_REFUSALS.has(nerveError.code)) conn.log.info({ code: nerveError.code, reason: nerveError.message, rid, user: clip(conn.user) }, 'request refused');
    else conn.debug({ code: nerveError.code, rid }, 'request refused');
    this.deps.metrics.errors.inc({ code: nerveError.code });
    const closes = !LANE_FAILURES.has(nerveError.code) && conn.errorWindow.hit() > this.deps.options.limits.maxErrorsPer10s;
    return {
      closes,
      send: () => {
        this.answer(conn, {
          op: 'error',
          ...(rid === undefined ? {} : { rid }),
          code: nerveError.code,
          message: nerveError.message,
          ...(nerveError.retryAfterMs === undefined ? {} : { retryAfterMs: nerveError.retryAfterMs }),
          ...(nerveError.quota === undefined ? {} : { quota: nerveError.quota }),
        });
        if (closes) this.close(conn, CloseCode.PolicyViolation, 'too many errors');
      },
    };
  }

  private close(conn: Connection, code: number, reason: string): void {
    if (conn.state === 'closing' || conn.state === 'closed') return;
    conn.state = 'closing';
    this.deps.metrics.closes.inc({ code: String(code) });
    conn.debug({ code, reason }, 'closing connection');
    conn.socket.close(code, reason);
    // A peer that never answers the close handshake is cut after a grace period.
    setTimeout(() => conn.socket.terminate(), 5000).unref();
  }

  private async onClosed(conn: Connection, code: number): Promise<void> {
    if (conn.state === 'closed') return;
    conn.state = 'closed';
    this.connections.delete(conn);
    this.deps.metrics.connections.set(this.connections.size);
    if (conn.expiryTimer) clearTimeout(conn.expiryTimer);
    if (this.deps.options.limits.maxConnectionsPerIp > 0) this.perIp.decrement(conn.remoteAddress);
    if (conn.countedUser) this.perUser.decrement(`${conn.tenant}\u0000${conn.user}`);
    if (conn.countedTenant) this.deps.tenants?.disconnected(conn.tenant);
    conn.debug({ code }, 'connection closed');
    // Wait for the requests in flight (pipelined publishes included), then leave every room.
    await conn.queue;
    await conn.answered;
    for (const room of [...conn.rooms]) {
      await this.leaveRoom(conn, room, 'disconnected').catch((error: unknown) =>
        conn.log.warn({ err: (error as Error).message }, 'leave on close failed'),
      );
    }
    if (conn.identity) {
      const userChannel = this.deps.namer.user(conn.tenant, conn.user);
      this.heldSignals.delete(conn);
      if (this.local.remove(userChannel, conn)) {
        await this.deps.bus.release(userChannel).catch(() => {});
        // The user's last connection here is gone: signals sent to them for
        // the next mailboxTtlMs wait in their mailbox for a reconnect.
        await this.deps.mailbox
          ?.markSeen({ tenant: conn.tenant, user: conn.user })
          .catch((error: unknown) => conn.log.warn({ err: (error as Error).message }, 'mailbox mark failed'));
      }
    }
    this.idleWaiters.forEach((resolve) => resolve());
  }

  /** Heartbeat: terminate connections that did not answer the previous ping. */
  private sweep(): void {
    for (const conn of this.connections) {
      if (conn.state === 'closed') continue;
      if (!conn.alive) {
        this.deps.metrics.closes.inc({ code: 'heartbeat' });
        conn.debug({}, 'heartbeat missed, terminating');
        conn.socket.terminate();
        continue;
      }
      conn.alive = false;
      conn.socket.ping();
    }
  }

  private readonly idleWaiters = new Set<() => void>();
  /** Room-leaving work of closed connections, awaited by drain before the lanes close. */
  private readonly cleanups = new Set<Promise<void>>();

  /**
   * Drain: refuse new upgrades, close every connection with 1001 ("going
   * away, reconnect") in batches spread over `windowMs` (drain-plan.ts; 0 =
   * all at once), wait for their rooms to be left, terminate stragglers
   * after `timeoutMs`.
   */
  async drain(timeoutMs: number, windowMs = 0): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'draining';
    if (this.heartbeat) clearInterval(this.heartbeat);
    const queue = [...this.connections];
    const closeNext = (count: number) => {
      for (const conn of queue.splice(0, count)) this.close(conn, CloseCode.GoingAway, 'node going away, reconnect');
    };
    const batchTimers = drainSchedule(queue.length, windowMs, timeoutMs).map((batch) =>
      batch.atMs === 0 ? (closeNext(batch.count), undefined) : setTimeout(() => closeNext(batch.count), batch.atMs),
    );
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.idleWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.idleWaiters.clear();
    }
    for (const timer of batchTimers) clearTimeout(timer);
    for (const conn of this.connections) conn.socket.terminate();
    await Promise.race([
      // Leaving rooms queues session work (its events): wait for that too, before the lanes close.
      Promise.allSettled([...this.cleanups]).then(() => Promise.allSettled([...this.sessionWork.values()])),
      new Promise((resolve) => setTimeout(resolve, Math.max(100, deadline - Date.now())).unref()),
    ]);
    this.state = 'closed';
  }
}
