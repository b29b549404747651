/**
 * The gateway's edge: WebSocket upgrades (path, origin, per-address cap),
 * draining, and the calls the node, the HTTP API and the admin page make.
 * It builds the gateway's parts and wires them (what happens to each
 * connection, from accept to cleanup, is in connections.ts); docs/architecture.md draws how a frame
 * and a bus envelope travel through them. Nothing imports this module but
 * the composition root (src/node.ts) and type-only users of its API.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type Server as WsServer } from 'ws';
import type { BusEnvelope } from '../bus/bus.js';
import type { ControlCommand } from '../bus/envelope.js';
import type { RoomRef } from '../history/history.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { Admission } from './admission.js';
import { CallParticipation } from './call-participation.js';
import { ChatRecovery } from './chat-recovery.js';
import { Connections } from './connections.js';
import { Delivery } from './delivery.js';
import { MemberPushes } from './member-pushes.js';
import { PresenceStates } from './presence-state.js';
import { ReadReceipts } from './read-receipts.js';
import { Failures } from './failures.js';
import { Handshake } from './handshake.js';
import { HistoryPages } from './history-page.js';
import type { LocalRooms } from './local-rooms.js';
import { Messages } from './messages.js';
import { Publisher, type ServerPublish, type ServerSignal } from './publish.js';
import { Requests } from './requests.js';
import { RoomLifecycle } from './room-lifecycle.js';
import { Rooms } from './rooms.js';
import { GatewayShared, type GatewayDeps, type GatewayState } from './shared.js';
import { connectionSocketClass, type ConnectionSocket } from './socket-events.js';

export class Gateway {
  get state(): GatewayState {
    return this.shared.state;
  }
  private set state(state: GatewayState) {
    this.shared.state = state;
  }
  private readonly shared: GatewayShared;
  private readonly deps: GatewayDeps;
  private readonly wss: WsServer<typeof ConnectionSocket>;
  private readonly connections: Connections;
  private readonly local: LocalRooms;
  /** Path, state, origin and per-address checks of each upgrade. */
  private readonly admission: Admission;
  /** To the bus (publish.ts), from the bus to the sockets (delivery.ts), and chat gap refills (chat-recovery.ts). */
  private readonly publisher: Publisher;
  private readonly delivery: Delivery;
  private readonly recovery: ChatRecovery;
  private readonly lifecycle: RoomLifecycle;
  private readonly handshake: Handshake;
  private readonly rooms: Rooms;
  /** Member frames to rooms: as they are, or counts in large rooms. */
  private readonly memberPushes: MemberPushes;
  private readonly calls: CallParticipation;
  private readonly readReceipts: ReadReceipts;
  /** Every envelope the bus hands this node (node.ts calls it): the delivery's own function, no hop through the gateway. */
  readonly onBusMessage: (channel: string, envelope: BusEnvelope) => void;

  constructor(deps: GatewayDeps) {
    const shared = new GatewayShared(deps);
    const { local, nodeId, roomBuckets } = shared;
    const limits = deps.options.limits;
    this.shared = shared;
    this.deps = deps;
    this.local = local;
    this.recovery = new ChatRecovery({
      local,
      history: deps.history,
      metrics: deps.metrics,
      log: deps.log,
      recoveryLimit: limits.recoveryLimit,
      fanOut: (target, payload, messageClass) => this.delivery.fanOut(target, payload, messageClass),
      stopped: () => this.state === 'closed',
    });
    this.memberPushes = new MemberPushes({
      local,
      presence: deps.presence,
      log: deps.log,
      listMax: limits.presenceListMax,
      intervalMs: limits.presenceCountIntervalMs,
      fanOut: (target, payload, messageClass, except, conflate) => this.delivery.fanOut(target, payload, messageClass, except, conflate),
    });
    this.delivery = new Delivery({
      nodeId,
      local,
      members: this.memberPushes,
      mailbox: deps.mailbox,
      metrics: deps.metrics,
      log: deps.log,
      tenants: deps.tenants,
      tracing: deps.tracing,
      chat: this.recovery,
      control: {
        roomEnd: (channel, command) => this.rooms.onRoomEnd(channel, command),
        userDisconnect: (channel, command) => this.connections.disconnectUser(channel, command),
      },
    });
    this.onBusMessage = this.delivery.onBusMessage;
    this.publisher = new Publisher({
      nodeId,
      bus: deps.bus,
      history: deps.history,
      events: deps.events,
      mailbox: deps.mailbox,
      namer: deps.namer,
      metrics: deps.metrics,
      log: deps.log,
      tenants: deps.tenants,
      tracing: deps.tracing,
      takeRoomToken: (channel) => roomBuckets.take(channel),
      source: (ref, channel) => this.lifecycle.source(ref, channel),
      deliverLocally: (channel, envelope) => {
        if (local.get(channel) === undefined) return false;
        this.delivery.onBusMessage(channel, envelope);
        return true;
      },
      running: () => this.state === 'running',
    });
    const publisher = this.publisher;
    this.lifecycle = new RoomLifecycle({
      sessions: deps.sessions,
      events: deps.events,
      namer: deps.namer,
      metrics: deps.metrics,
      log: deps.log,
      nodeId,
      local,
      announce: (channel, payload, except) => publisher.announce(channel, payload, except),
    });
    const failures = new Failures(deps.metrics, limits.maxErrorsPer10s);
    this.handshake = new Handshake({ ...deps, nodeId, local, failures, delivery: this.delivery });
    const lifecycle = this.lifecycle;
    this.calls = new CallParticipation({
      store: deps.calls,
      events: deps.events,
      metrics: deps.metrics,
      log: deps.log,
      maxRoomIdLength: limits.maxRoomIdLength,
      heartbeatMs: Math.max(1, Math.floor(deps.options.presenceTtlMs / 3)),
      source: (ref) => lifecycle.source(ref, deps.namer.room(ref.tenant, ref.room)),
      forget: (ref) => lifecycle.forgetSessionWhenIdle(ref, deps.namer.room(ref.tenant, ref.room)),
    });
    const presenceStates = new PresenceStates({
      presence: deps.presence,
      namer: deps.namer,
      maxRoomIdLength: limits.maxRoomIdLength,
      maxStateBytes: limits.presenceStateMaxBytes,
      announce: (channel, payload, except) => publisher.announce(channel, payload, except),
    });
    this.readReceipts = new ReadReceipts({
      receipts: deps.receipts,
      history: deps.history,
      local,
      namer: deps.namer,
      events: deps.events,
      metrics: deps.metrics,
      log: deps.log,
      maxRoomIdLength: limits.maxRoomIdLength,
      announce: (channel, payload) => publisher.announce(channel, payload, undefined),
      largeRoom: (channel) => this.memberPushes.isLargeRoom(channel),
      source: (ref, channel) => lifecycle.source(ref, channel),
    });
    const readReceipts = this.readReceipts;
    this.rooms = new Rooms({
      ...deps,
      nodeId,
      local,
      lifecycle,
      calls: this.calls,
      recovery: this.recovery,
      states: presenceStates,
      members: this.memberPushes,
      reads: readReceipts,
    });
    const messages = new Messages({
      maxRoomIdLength: limits.maxRoomIdLength,
      presence: deps.presence,
      tenants: deps.tenants,
      publisher,
      history: deps.history,
    });
    const historyPages = new HistoryPages({ history: deps.history, maxRoomIdLength: limits.maxRoomIdLength });
    const requests = new Requests({
      metrics: deps.metrics,
      failures,
      handshake: this.handshake,
      rooms: this.rooms,
      messages,
      historyPages,
      calls: this.calls,
      presenceStates,
      readReceipts,
    });
    this.admission = new Admission(deps.options, deps.metrics, deps.log);
    this.connections = new Connections({
      shared,
      metrics: deps.metrics,
      log: deps.log,
      limits,
      admission: this.admission,
      handshake: this.handshake,
      rooms: this.rooms,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      // With compression on, ws applies maxPayload to the inflated size and
      // stops inflating once it is passed (close 1009), so a deflate bomb
      // costs at most maxFrameBytes of memory.
      maxPayload: limits.maxFrameBytes,
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
        frame: (conn, data, isBinary) => requests.onFrame(conn, data, isBinary),
        error: (conn, error) => {
          // ws reports protocol violations here and closes with the right code
          // (1009 too big, 1007 invalid UTF-8); we count them.
          this.deps.metrics.errors.inc({ code: error.code ?? 'socket_error' });
          conn.debug({ err: error.message, code: error.code }, 'socket error');
        },
        closed: (conn, code) => this.connections.closed(conn, code),
      }),
    });
  }

  start(): void {
    this.connections.startHeartbeat();
    this.calls.start();
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
    const address = this.admission.admit(request, socket, this.state === 'running');
    if (address === undefined) return;
    this.wss.handleUpgrade(request, socket, head, (ws) => this.connections.accept(ws, address, request.socket));
  }

  /**
   * The per-address cap (`maxConnectionsPerIp`) for the Pusher endpoint
   * (src/pusher), counted together with /ws: the address to count the
   * upgrade under, or undefined when that address is at the cap.
   */
  admitAddress(request: IncomingMessage): ReturnType<Admission['admitAddress']> {
    return this.admission.admitAddress(request);
  }

  /** A connection of another endpoint (Pusher) opened (`open`) or closed under `address`, counted only under a cap as /ws's are. */
  countAddress(address: string, open: boolean): void {
    this.admission.count(address, open);
  }

  /** The server API's publish (docs/api.md): as a member's, with a sender chosen by the backend. */
  serverPublish(input: ServerPublish): ReturnType<Publisher['serverPublish']> {
    return this.publisher.serverPublish(input);
  }

  /** The server API's direct signal (docs/api.md). */
  serverSignal(input: ServerSignal): ReturnType<Publisher['serverSignal']> {
    return this.publisher.serverSignal(input);
  }

  /**
   * End a room on every node (server API): a `room.end` control envelope on
   * the room channel; each node holding members tells them (`room_ended`)
   * and takes them out of the room, with the usual leave events. Resolves
   * with how many nodes had members.
   */
  async endRoom(tenant: string, room: string, reason: string): Promise<number> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    return this.publisher.publishControl(this.deps.namer.room(tenant, room), { action: 'room.end', room, reason });
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
    return this.publisher.publishControl(this.deps.namer.user(tenant, user), command);
  }

  /** The bus subscribed `channels` again after losing them: rooms refill their chat from history (chat-recovery.ts). */
  onBusResubscribed(channels: string[]): void {
    this.recovery.onResubscribed(channels);
  }

  /** Presence entries of a node that stopped heartbeating expired (room-lifecycle.ts). */
  onPresenceExpired(ref: RoomRef, expiry: { users: string[]; roomEmpty: boolean }): void {
    this.lifecycle.onPresenceExpired(ref, expiry);
  }

  /** This node's members' presence entries were restored after it was cut off (room-lifecycle.ts). */
  onPresenceRestored(ref: RoomRef, rejoin: { users: string[]; roomStarted: boolean }): void {
    this.lifecycle.onPresenceRestored(ref, rejoin);
  }

  /**
   * Drain: refuse new upgrades, close every connection with 1001 ("going
   * away, reconnect") in batches spread over `windowMs` (drain-plan.ts; 0 =
   * all at once; connections.ts closes them), wait for their rooms to be
   * left, terminate stragglers after `timeoutMs`.
   */
  async drain(timeoutMs: number, windowMs = 0): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'draining';
    const deadline = await this.connections.closeAll(timeoutMs, windowMs);
    await Promise.race([
      // Leaving rooms queues session work (its events): wait for that too, before the lanes close.
      this.connections.cleanedUp().then(() => Promise.all([this.lifecycle.settled(), this.calls.settled()])),
      new Promise((resolve) => setTimeout(resolve, Math.max(100, deadline - Date.now())).unref()),
    ]);
    // Refreshed until every connection left its calls: stopped earlier, a long drain would let survivors end them.
    this.calls.stop();
    // The latest read positions still waiting for their interval go out before the lanes close.
    this.readReceipts.flush();
    this.state = 'closed';
  }
}
