/**
 * The Pusher side of a node: `/app/{key}` WebSocket connections speaking
 * Pusher protocol 7 (docs/pusher.md). Channels are rooms of the app's
 * tenant and ride the node's own lanes: events are published as ephemeral
 * room messages through the nerve gateway (its per-room rate limit and
 * metrics apply), presence members are entries of nerve's presence lane,
 * and deliveries come from the bus like every other local delivery
 * (`onBusMessage`, called by the node next to the nerve gateway's).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { BUS_ENVELOPE_VERSION, type Bus, type BusEnvelope } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { Gateway } from '../gateway/gateway.js';
import type { History, RecoveryResult } from '../history/history.js';
import { TextFrame } from '../gateway/text-frame.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import type { Presence } from '../presence/presence.js';
import type { TenantGuard } from '../quotas/guard.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { MemberLeftFrame } from '../../packages/protocol/src/frames.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from '../../packages/protocol/src/nesting.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import type { PusherApp } from './apps.js';
import {
  CACHE_TTL_MS,
  MAX_EVENT_NAME,
  PUSHER_PROTOCOLS,
  PusherCode,
  channelKind,
  encodePusher,
  errorFrame,
  isCacheChannel,
  isValidChannelName,
  subscriptionError,
  type ChannelKind,
} from './protocol.js';
import { channelAuthValid, signinValid } from './signature.js';
import { PusherSocket, type Subscription } from './socket.js';
import type { PusherStore } from './store.js';
import { pusherFrameOf, type PusherMemberJoined } from './translate.js';

/**
 * Facts the Pusher side reports as they happen, for Pusher-format webhooks
 * (docs/pusher.md). `member_added` / `member_removed` are cluster-wide (one
 * node reports each, from the presence lane); `client_event` is reported by
 * the sender's node.
 */
export type PusherFact =
  | { type: 'channel_occupied' | 'channel_vacated'; app: PusherApp; channel: string }
  | { type: 'member_added' | 'member_removed'; app: PusherApp; channel: string; userId: string }
  | { type: 'client_event'; app: PusherApp; channel: string; event: string; data: unknown; socketId: string; userId?: string };

export interface PusherGatewayDeps {
  apps: readonly PusherApp[];
  options: NodeOptions;
  /** The nerve gateway: Pusher events are published through its `serverPublish`. */
  gateway: Gateway;
  bus: Bus;
  presence: Presence;
  /** The chat history: `nerve:resume` (docs/pusher.md, "Extensions") reads the missed `nerve-chat` events from it. */
  history: History;
  store: PusherStore;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  /** Tenant quotas and usage metering (src/quotas/): connections count against the app's tenant like nerve's; absent: neither. */
  tenants?: TenantGuard | undefined;
  /** Told of each PusherFact; must not throw. */
  onFact?: (fact: PusherFact) => void;
}

/** A channel with Pusher subscribers on this node. */
interface LocalChannel {
  app: PusherApp;
  name: string;
  kind: ChannelKind;
  sockets: Set<PusherSocket>;
}

/** Control payload on a signed-in user's channel: close that user's Pusher connections (HTTP API `terminate_connections`). */
export const TERMINATE = JSON.stringify({ action: 'pusher.terminate' });

/**
 * Occupancy of a channel is kept, for apps with `channel_occupied` /
 * `channel_vacated` webhooks, as presence-lane entries (one per
 * subscription) in a room of this prefix, which no nerve room id can have:
 * the lane's verdicts (first entry, last entry, a crashed node's entries
 * swept once) are exactly the cluster-wide occupied / vacated.
 */
export const OCCUPANCY_PREFIX = '#occupancy:';

/** nerve's extension events (docs/pusher.md, "Extensions"): the client asks for missed chat, the server says it is done. */
export const RESUME = 'nerve:resume';
export const RESUMED = 'nerve:resumed';

/** How often connections are checked for silence, ms. */
const SWEEP_MS = 1000;
/** How long the server waits for the `pusher:pong` to its `pusher:ping`, at most, ms (pusher-js waits as long for ours). */
const PONG_TIMEOUT_MS = 30_000;
const PATH = /^\/app\/([^/?]+)$/;
/** How long a drain waits for clients to close after its 4200 before cutting them, ms. */
const DRAIN_CLOSE_MS = 5000;

export class PusherGateway {
  private readonly byKey = new Map<string, PusherApp>();
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<PusherSocket>();
  private readonly perApp = new Map<string, number>();
  /** Bus channel → the channel's local subscribers. */
  private readonly channels = new Map<string, LocalChannel>();
  /** Bus channel of a signed-in user → that user's local sockets. */
  private readonly users = new Map<string, Set<PusherSocket>>();
  private sweeper: NodeJS.Timeout | undefined;
  /** While draining: called when the last connection closed. */
  private onEmpty: (() => void) | undefined;
  state: 'running' | 'draining' = 'running';

  constructor(private readonly deps: PusherGatewayDeps) {
    for (const app of deps.apps) this.byKey.set(app.key, app);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: deps.options.limits.maxFrameBytes, perMessageDeflate: false });
  }

  start(): void {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  connectionCount(): number {
    return this.sockets.size;
  }

  /** Take an upgrade whose path is `/app/...`; false when the path is not the Pusher endpoint (the nerve gateway takes it). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const target = request.url ?? '/';
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    if (!path.startsWith('/app/')) return false;
    // Until ws owns the socket (or while a refusal is written) an error must not go unhandled.
    socket.on('error', destroyOnError);
    if (this.state !== 'running') {
      this.deps.metrics.upgradesRejected.inc({ reason: 'draining' });
      const body = JSON.stringify({ code: 'draining', message: 'node is shutting down; reconnect to another node' });
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return true;
    }
    if (!this.originAllowed(request.headers.origin)) {
      this.deps.metrics.upgradesRejected.inc({ reason: 'origin_not_allowed' });
      const body = JSON.stringify({ code: 'origin_not_allowed', message: 'this origin may not open a WebSocket here' });
      socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return true;
    }
    // The node's per-address cap, shared with /ws and refused the same way (HTTP 429 before the upgrade, as the nerve gateway does).
    const { address, max } = this.deps.gateway.admitAddress(request);
    if (address === undefined) {
      this.deps.metrics.upgradesRejected.inc({ reason: ErrorCode.TooManyConnections });
      const body = JSON.stringify({ code: ErrorCode.TooManyConnections, message: `at most ${max} connections per address` });
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return true;
    }
    // Pusher refuses inside the WebSocket (an error frame, then a close code), so clients learn whether to reconnect.
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, path, new URLSearchParams(query < 0 ? '' : target.slice(query + 1)), socket, address));
    // ws put its own listener on the socket as it took it over: ours would stay for the connection's life.
    if (socket.listenerCount('error') > 1) socket.removeListener('error', destroyOnError);
    return true;
  }

  private originAllowed(origin: string | undefined): boolean {
    const allowed = this.deps.options.allowedOrigins;
    if (allowed.length === 0) return true;
    if (origin === undefined || origin === '') return this.deps.options.allowMissingOrigin;
    try {
      return allowed.includes(new URL(origin).origin);
    } catch {
      return false;
    }
  }

  private refuse(ws: WebSocket, code: PusherCode, message: string): void {
    // The WebSocket exists (Pusher refuses inside it): an error, not a refused upgrade.
    this.deps.metrics.errors.inc({ code: `pusher_${code}` });
    ws.send(errorFrame(code, message));
    ws.close(code, message.slice(0, 120));
  }

  private accept(ws: WebSocket, path: string, query: URLSearchParams, tcp: Duplex, address: string): void {
    ws.on('error', () => ws.terminate());
    const key = PATH.exec(path)?.[1];
    if (key === undefined) return this.refuse(ws, PusherCode.PathNotFound, 'the WebSocket path is /app/{key}');
    const protocol = query.get('protocol');
    if (protocol === null) return this.refuse(ws, PusherCode.NoProtocol, 'no protocol version supplied');
    if (!/^\d+$/.test(protocol)) return this.refuse(ws, PusherCode.InvalidVersion, 'invalid version string format');
    if (!PUSHER_PROTOCOLS.has(Number(protocol))) return this.refuse(ws, PusherCode.UnsupportedProtocol, `unsupported protocol version ${protocol}; nerve speaks 7`);
    const app = this.byKey.get(decodeURIComponent(key));
    if (!app) return this.refuse(ws, PusherCode.AppNotFound, `app ${key.slice(0, 64)} does not exist`);
    if (!app.enabled) return this.refuse(ws, PusherCode.AppDisabled, 'application disabled');
    const open = this.perApp.get(app.id) ?? 0;
    if (app.maxConnections > 0 && open >= app.maxConnections) return this.refuse(ws, PusherCode.OverQuota, 'application is over connection quota');

    const limits = this.deps.options.limits;
    const socket = new PusherSocket(app, ws, this.deps.log.child({ app: app.id }), { perSecond: limits.ratePerSecond, burst: limits.rateBurst }, tcp);
    this.sockets.add(socket);
    this.perApp.set(app.id, open + 1);
    this.deps.gateway.countAddress(address, true);
    socket.countedAddress = address;
    this.deps.metrics.connectionsTotal.inc();
    this.deps.metrics.pusherConnections.set(this.sockets.size);
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(socket, data, isBinary));
    ws.on('close', () => void this.onClosed(socket));
    const tenants = this.deps.tenants;
    const established = (): void => socket.event('pusher:connection_established', JSON.stringify({ socket_id: socket.id, activity_timeout: app.activityTimeoutS }));
    if (!tenants) return established();
    // The tenant's cluster-wide connection quota, as a nerve `connect` (src/gateway): messages wait in the queue for the verdict.
    socket.queue = new Promise<void>((resolve) => resolve(tenants.connect(app.tenant))).then(
      () => {
        if (socket.state !== 'open') return tenants.disconnected(app.tenant);
        socket.countedTenant = true;
        established();
      },
      () => {
        // Pusher's 4004 (do not reconnect): the quota holds until connections close or an operator raises it. Counted in nerve_quota_refusals_total.
        this.deps.metrics.errors.inc({ code: `pusher_${PusherCode.OverQuota}` });
        socket.send(errorFrame(PusherCode.OverQuota, 'over the connection quota of this app\'s tenant'));
        socket.close(PusherCode.OverQuota, 'over connection quota');
      },
    );
  }

  // ------------------------------------------------------------ frames

  private onMessage(socket: PusherSocket, data: RawData, isBinary: boolean): void {
    socket.lastSeen = Date.now();
    socket.pingSentAt = undefined;
    // Checked before parsing: a flood costs a token bucket, not a JSON parse, per message.
    if (socket.inbound.take() > 0) {
      this.deps.metrics.drops.inc({ reason: 'rate_limited' });
      return this.invalid(socket, `over ${this.deps.options.limits.ratePerSecond} messages per second: message dropped`);
    }
    if (isBinary) return this.invalid(socket, 'binary frames are not part of the protocol');
    const text = (data as Buffer).toString('utf8');
    // The nerve gateway's bound (docs/protocol.md, Limits): a client event's data is encoded again to be
    // published, and JSON.stringify overflows the stack a few thousand levels down.
    if (nestsDeeperThan(text)) return this.invalid(socket, `a message nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`);
    let message: { event?: unknown; channel?: unknown; data?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return this.invalid(socket, 'a message must be a JSON object');
    }
    if (typeof message !== 'object' || message === null || typeof message.event !== 'string') return this.invalid(socket, 'a message must be a JSON object with an event');
    const event = message.event;
    if (event === 'pusher:ping') return socket.event('pusher:pong', {});
    if (event === 'pusher:pong') return;
    const payload = typeof message.data === 'object' && message.data !== null ? (message.data as Record<string, unknown>) : {};
    let step: (() => Promise<void>) | undefined;
    if (event === 'pusher:subscribe') step = () => this.subscribe(socket, payload);
    else if (event === 'pusher:unsubscribe') step = () => this.unsubscribe(socket, payload.channel);
    else if (event === 'pusher:signin') step = () => this.signin(socket, payload);
    else if (event === RESUME) step = () => this.resume(socket, payload);
    else if (event.startsWith('client-')) step = () => this.clientEvent(socket, event, message.channel, message.data);
    if (!step) return this.invalid(socket, `unknown event ${event.slice(0, 64)}`);
    const run = step;
    socket.queue = socket.queue.then(async () => {
      if (socket.state !== 'open') return;
      await run().catch((error: unknown) => {
        socket.log.warn({ err: (error as Error).message, event }, 'pusher request failed');
        this.invalid(socket, 'internal error');
      });
    });
  }

  private invalid(socket: PusherSocket, message: string, code: PusherCode = PusherCode.InvalidMessage): void {
    this.deps.metrics.errors.inc({ code: `pusher_${code}` });
    socket.send(errorFrame(code, message));
  }

  private async subscribe(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
    const name = data.channel;
    if (!isValidChannelName(name)) return this.invalid(socket, 'channel names are 1-164 characters of A-Z a-z 0-9 _ - = @ , . ;');
    if (socket.subscriptions.has(name)) return;
    const app = socket.app;
    const kind = channelKind(name);
    const refuse = (status: number, error: string): void => {
      this.deps.metrics.errors.inc({ code: `pusher_subscription_${status}` });
      socket.send(subscriptionError(name, status, error));
    };
    let user: string | undefined;
    let info: string | undefined;
    if (kind !== 'public') {
      const channelData = kind === 'presence' && typeof data.channel_data === 'string' ? data.channel_data : undefined;
      if (!channelAuthValid(app, data.auth, socket.id, name, channelData)) return refuse(401, `Invalid signature: expected HMAC SHA256 hex digest of ${socket.id}:${name}${kind === 'presence' ? ':<channel_data>' : ''}`);
      if (kind === 'presence') {
        const member = parseMember(channelData, app.maxPresenceInfoBytes);
        if (typeof member === 'string') return refuse(400, member);
        ({ user, info } = member);
      }
    }
    const busChannel = this.deps.namer.room(app.tenant, name);
    const ref = { tenant: app.tenant, room: name };
    if (kind === 'presence' && user !== undefined) {
      const members = await this.deps.presence.members(ref);
      if (members.length >= app.maxPresenceMembers && !members.some((member) => member.user === user)) {
        return refuse(403, `presence channels hold at most ${app.maxPresenceMembers} members`);
      }
    }
    // Subscribe first and hold what arrives, so nothing published after the answer's member list is missed.
    const sub: Subscription = { name, kind, busChannel, held: [], ...(user === undefined ? {} : { user }), ...(info === undefined ? {} : { info }) };
    socket.subscriptions.set(name, sub);
    try {
      await this.addLocal(socket, app, name, kind, busChannel);
    } catch {
      socket.subscriptions.delete(name);
      await this.removeLocal(socket, busChannel);
      return refuse(503, 'the cross-node bus is unavailable; retry');
    }
    let presence: { ids: string[]; hash: Record<string, unknown>; count: number } | undefined;
    if (kind === 'presence' && user !== undefined) {
      try {
        if (info !== undefined) await this.deps.store.setMemberInfo(app.tenant, name, user, info);
        const added = await this.deps.presence.add(ref, { user, conn: socket.id, node: this.deps.options.nodeId, ts: Date.now() });
        if (added.userJoined) await this.announceJoin(app, name, busChannel, user, info, socket.id);
        const members = await this.deps.presence.members(ref);
        const ids = members.map((member) => member.user);
        const infos = await this.deps.store.memberInfo(app.tenant, name, ids);
        const hash: Record<string, unknown> = {};
        for (const id of ids) hash[id] = parseJson(infos.get(id));
        presence = { ids, hash, count: ids.length };
      } catch (error) {
        socket.log.warn({ err: (error as Error).message, channel: name }, 'presence unavailable');
        await this.leaveChannel(socket, sub);
        return refuse(503, 'presence is unavailable; retry');
      }
    }
    socket.event('pusher_internal:subscription_succeeded', JSON.stringify(presence ? { presence } : {}), name);
    if (wantsOccupancy(app)) {
      const added = await this.deps.presence
        .add(this.occupancyRef(app, name), { user: socket.id, conn: socket.id, node: this.deps.options.nodeId, ts: Date.now() })
        .catch((error: unknown) => socket.log.warn({ err: (error as Error).message, channel: name }, 'occupancy not recorded'));
      if (added?.roomStarted) this.fact({ type: 'channel_occupied', app, channel: name });
    }
    if (isCacheChannel(name)) {
      const cached = await this.deps.store.cached(app.tenant, name).catch(() => undefined);
      if (cached !== undefined) socket.send(cached);
      else socket.send(encodePusher({ event: 'pusher:cache_miss', channel: name }));
    }
    const held = sub.held ?? [];
    delete sub.held;
    for (const frame of held) socket.send(frame);
  }

  private async unsubscribe(socket: PusherSocket, name: unknown): Promise<void> {
    if (typeof name !== 'string') return this.invalid(socket, 'pusher:unsubscribe needs a channel');
    const sub = socket.subscriptions.get(name);
    if (sub) await this.leaveChannel(socket, sub);
  }

  /** Take the socket out of a channel: presence first (member_removed), then the local listeners and the bus. */
  private async leaveChannel(socket: PusherSocket, sub: Subscription): Promise<void> {
    socket.subscriptions.delete(sub.name);
    const app = socket.app;
    try {
      if (sub.kind === 'presence' && sub.user !== undefined) {
        const ref = { tenant: app.tenant, room: sub.name };
        const removed = await this.deps.presence.remove(ref, { user: sub.user, conn: socket.id });
        if (removed.userLeft) {
          await this.deps.store.removeMemberInfo(app.tenant, sub.name, sub.user).catch(() => {});
          const frame: MemberLeftFrame = { op: 'member_left', room: sub.name, user: sub.user, ts: Date.now() };
          await this.publishQuietly(sub.busChannel, 'presence', encodeFrame(frame), socket.id);
          this.fact({ type: 'member_removed', app, channel: sub.name, userId: sub.user });
        }
      }
      if (wantsOccupancy(app) && !sub.held) {
        const removed = await this.deps.presence.remove(this.occupancyRef(app, sub.name), { user: socket.id, conn: socket.id });
        if (removed.roomEmpty) this.fact({ type: 'channel_vacated', app, channel: sub.name });
      }
    } catch (error) {
      socket.log.warn({ err: (error as Error).message, channel: sub.name }, 'presence remove failed');
    } finally {
      await this.removeLocal(socket, sub.busChannel);
    }
  }

  private async announceJoin(app: PusherApp, name: string, busChannel: string, user: string, info: string | undefined, socketId: string): Promise<void> {
    const frame: PusherMemberJoined = { op: 'member_joined', room: name, user, ts: Date.now(), ...(info === undefined ? {} : { info }) };
    await this.publishQuietly(busChannel, 'presence', JSON.stringify(frame), socketId);
    this.fact({ type: 'member_added', app, channel: name, userId: user });
  }

  private async signin(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
    const userData = data.user_data;
    let id: unknown;
    try {
      id = typeof userData === 'string' ? (JSON.parse(userData) as { id?: unknown }).id : undefined;
    } catch {
      id = undefined;
    }
    if (typeof userData !== 'string' || typeof id !== 'string' || id === '' || id.length > 128 || !signinValid(socket.app, data.auth, socket.id, userData)) {
      this.deps.metrics.errors.inc({ code: `pusher_${PusherCode.Unauthorized}` });
      socket.send(errorFrame(PusherCode.Unauthorized, 'invalid sign-in: user_data must hold an id and auth must sign socket_id::user::user_data'));
      socket.close(PusherCode.Unauthorized, 'connection is unauthorized');
      return;
    }
    if (socket.user !== undefined) await this.releaseUser(socket);
    const channel = this.userChannel(socket.app, id);
    let sockets = this.users.get(channel);
    if (!sockets) this.users.set(channel, (sockets = new Set()));
    sockets.add(socket);
    socket.user = id;
    if (sockets.size === 1) await this.deps.bus.acquire(channel).catch(() => socket.log.warn('user channel not subscribed: terminate_connections may miss this socket'));
    socket.event('pusher:signin_success', { user_data: userData });
  }

  private userChannel(app: PusherApp, user: string): string {
    // `#` and `:` are never part of a nerve user id, so this channel is never a nerve user's.
    return this.deps.namer.user(app.tenant, `#pusher:${user}`);
  }

  private async releaseUser(socket: PusherSocket): Promise<void> {
    if (socket.user === undefined) return;
    const channel = this.userChannel(socket.app, socket.user);
    socket.user = undefined;
    const sockets = this.users.get(channel);
    if (!sockets?.delete(socket) || sockets.size > 0) return;
    this.users.delete(channel);
    await this.deps.bus.release(channel).catch(() => {});
  }

  /**
   * `nerve:resume` (docs/pusher.md, "Extensions"): the `nerve-chat` events
   * of a subscribed channel after `{epoch, offset}`, from the history, then
   * `nerve:resumed` with whether they are exactly the missed ones. Live
   * events keep flowing meanwhile, so the client drops offsets it has.
   */
  private async resume(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
    const { channel, epoch, offset } = data;
    if (typeof channel !== 'string') return this.invalid(socket, 'nerve:resume needs a channel');
    const sub = socket.subscriptions.get(channel);
    if (!sub || sub.held) return this.invalid(socket, `nerve:resume on ${channel.slice(0, 64)} before its subscription succeeded`);
    if (typeof epoch !== 'string' || epoch.length < 1 || epoch.length > 64) return this.invalid(socket, 'nerve:resume epoch must be a string of 1-64 characters');
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return this.invalid(socket, 'nerve:resume offset must be an integer from 0 to 2^53-1');
    let read: RecoveryResult;
    try {
      read = await this.deps.history.since({ tenant: socket.app.tenant, room: channel }, { epoch, offset }, this.deps.options.limits.recoveryLimit);
    } catch (error) {
      socket.log.warn({ err: (error as Error).message, channel }, 'history unavailable for nerve:resume');
      return this.invalid(socket, 'history unavailable: nerve:resume not answered; retry');
    }
    for (const message of read.messages) {
      const text = pusherFrameOf(channel, sub.kind, 'chat', encodeFrame(message));
      if (text !== undefined) socket.send(text);
    }
    if (read.messages.length > 0) this.deps.tenants?.delivered(socket.app.tenant, read.messages.length);
    socket.event(RESUMED, JSON.stringify({ recovered: read.recovered, count: read.messages.length, position: read.position }), channel);
  }

  private async clientEvent(socket: PusherSocket, event: string, channel: unknown, data: unknown): Promise<void> {
    const app = socket.app;
    if (!app.enableClientMessages) return this.invalid(socket, 'client events are not enabled for this app');
    if (typeof channel !== 'string') return this.invalid(socket, 'a client event needs a channel');
    const sub = socket.subscriptions.get(channel);
    if (!sub || sub.held) return this.invalid(socket, `client event on ${channel.slice(0, 64)} before its subscription succeeded`);
    if (sub.kind !== 'private' && sub.kind !== 'presence') return this.invalid(socket, 'client events go on private- and presence- channels only');
    if (event.length > MAX_EVENT_NAME) return this.invalid(socket, `event names are at most ${MAX_EVENT_NAME} characters`);
    if (Buffer.byteLength(JSON.stringify(data ?? null)) > app.maxEventBytes) return this.invalid(socket, `event data is over ${app.maxEventBytes} bytes`);
    if (socket.clientEvents.take() > 0) {
      this.deps.metrics.drops.inc({ reason: 'pusher_client_event_rate' });
      return this.invalid(socket, `over ${app.maxClientEventsPerSecond} client events per second`, PusherCode.ClientEventRateLimited);
    }
    const from = sub.user ?? socket.user ?? socket.id;
    try {
      await this.publish(app, channel, event, data, from, socket.id);
    } catch (error) {
      const code = isNerveError(error) ? error.code : undefined;
      if (code === ErrorCode.RateLimited) return this.invalid(socket, 'too many messages in this channel', PusherCode.ClientEventRateLimited);
      if (code === ErrorCode.QuotaExceeded) return this.invalid(socket, 'over the message quota of this app');
      // bus_unavailable, unavailable, outcome_unknown: said as is, the client may send it again.
      return this.invalid(socket, `event not delivered (${code ?? 'internal'})`);
    }
    this.fact({ type: 'client_event', app, channel, event, data, socketId: socket.id, ...(sub.kind === 'presence' && sub.user !== undefined ? { userId: sub.user } : {}) });
  }

  /**
   * Publish one Pusher event into a channel (client events and the HTTP
   * API): kept first when the channel is a cache channel, then sent as an
   * ephemeral room message through the nerve gateway. Throws its NerveError.
   */
  async publish(app: PusherApp, channel: string, event: string, data: unknown, from: string, except: string | undefined): Promise<void> {
    if (isCacheChannel(channel)) {
      // What a subscriber gets on subscribe: the event as any subscriber received it (no user_id: the sender is long gone).
      await this.deps.store.setCached(app.tenant, channel, encodePusher({ event, channel, data })).catch((error: unknown) =>
        this.deps.log.warn({ err: (error as Error).message, ttlMs: CACHE_TTL_MS }, 'cache channel event not kept'),
      );
    }
    await this.deps.gateway.serverPublish({ tenant: app.tenant, room: channel, class: 'ephemeral', data: { event, data }, from, except });
  }

  /** Close every Pusher connection of a signed-in user, on every node (HTTP API). Resolves with how many nodes had some. */
  async terminate(app: PusherApp, user: string): Promise<number> {
    const envelope: BusEnvelope = { v: BUS_ENVELOPE_VERSION, type: 'control', id: randomUUID(), origin: this.deps.options.nodeId, class: 'lifecycle', payload: TERMINATE };
    return this.deps.bus.publish(this.userChannel(app, user), envelope);
  }

  // ------------------------------------------------------------ bus

  /** Deliver an envelope to this node's Pusher subscribers; false when none listens on the channel. */
  onBusMessage(channel: string, envelope: BusEnvelope): boolean {
    if (envelope.type === 'control') {
      const sockets = this.users.get(channel);
      if (!sockets) return this.channels.has(channel);
      if (envelope.payload === TERMINATE) {
        for (const socket of [...sockets]) {
          socket.send(errorFrame(PusherCode.Unauthorized, 'connection terminated by the server'));
          socket.close(PusherCode.Unauthorized, 'terminated');
        }
      }
      return true;
    }
    const target = this.channels.get(channel);
    if (!target) return false;
    if (envelope.type !== 'deliver') return true;
    const text = pusherFrameOf(target.name, target.kind, envelope.class, envelope.payload);
    if (text === undefined) return true;
    // Encoded and framed once for every subscriber (the nerve gateway's fanOut does the same), not once per socket by ws.
    const frame = new TextFrame(Buffer.from(text));
    const hardLimit = this.deps.options.limits.sendBufferHardBytes;
    let sent = 0;
    for (const socket of target.sockets) {
      if (socket.id === envelope.except) continue;
      const sub = socket.subscriptions.get(target.name);
      if (!sub) continue;
      if (sub.held) {
        sub.held.push(frame);
        continue;
      }
      if (socket.ws.bufferedAmount > hardLimit) {
        this.deps.metrics.drops.inc({ reason: 'slow_consumer' });
        socket.send(errorFrame(null, 'send buffer over limit'));
        socket.close(PusherCode.OverCapacity, 'over capacity: the client reads too slowly');
        continue;
      }
      socket.send(frame);
      sent += 1;
    }
    if (sent > 0) {
      this.deps.metrics.deliveries.inc({ class: envelope.class }, sent);
      this.deps.tenants?.delivered(target.app.tenant, sent);
    }
    return true;
  }

  private async addLocal(socket: PusherSocket, app: PusherApp, name: string, kind: ChannelKind, busChannel: string): Promise<void> {
    let target = this.channels.get(busChannel);
    const first = target === undefined;
    if (!target) this.channels.set(busChannel, (target = { app, name, kind, sockets: new Set() }));
    target.sockets.add(socket);
    this.deps.store.setLocalCount(app.tenant, name, target.sockets.size);
    if (first) await this.deps.bus.acquire(busChannel);
  }

  private async removeLocal(socket: PusherSocket, busChannel: string): Promise<void> {
    const target = this.channels.get(busChannel);
    if (!target || !target.sockets.delete(socket)) return;
    this.deps.store.setLocalCount(target.app.tenant, target.name, target.sockets.size);
    if (target.sockets.size > 0) return;
    this.channels.delete(busChannel);
    await this.deps.bus.release(busChannel).catch(() => {});
  }

  private async publishQuietly(channel: string, messageClass: 'presence', payload: string, except: string): Promise<void> {
    const envelope: BusEnvelope = { v: BUS_ENVELOPE_VERSION, type: 'deliver', id: randomUUID(), origin: this.deps.options.nodeId, class: messageClass, payload, except };
    try {
      await this.deps.bus.publish(channel, envelope);
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'pusher presence event not published');
    }
  }

  private fact(fact: PusherFact): void {
    try {
      this.deps.onFact?.(fact);
    } catch {
      // A listener's failure is its own.
    }
  }

  /**
   * Presence entries of a crashed node expired; the nerve gateway already
   * published their `member_left` (Pusher subscribers get member_removed
   * from it). Here: forget their infos and report the facts.
   */
  onPresenceExpired(ref: { tenant: string; room: string }, users: string[], roomEmpty: boolean): 'pusher' | undefined {
    const app = this.deps.apps.find((candidate) => candidate.tenant === ref.tenant);
    if (ref.room.startsWith(OCCUPANCY_PREFIX)) {
      if (app && roomEmpty) this.fact({ type: 'channel_vacated', app, channel: ref.room.slice(OCCUPANCY_PREFIX.length) });
      return 'pusher';
    }
    if (!app || channelKind(ref.room) !== 'presence') return undefined;
    for (const user of users) {
      void this.deps.store.removeMemberInfo(app.tenant, ref.room, user).catch(() => {});
      this.fact({ type: 'member_removed', app, channel: ref.room, userId: user });
    }
    return undefined;
  }

  /** This node's presence entries came back after it was cut off; its occupancy entries may make a channel occupied again. */
  onPresenceRestored(ref: { tenant: string; room: string }, roomStarted: boolean): 'pusher' | undefined {
    if (!ref.room.startsWith(OCCUPANCY_PREFIX)) return undefined;
    const app = this.deps.apps.find((candidate) => candidate.tenant === ref.tenant);
    if (app && roomStarted) this.fact({ type: 'channel_occupied', app, channel: ref.room.slice(OCCUPANCY_PREFIX.length) });
    return 'pusher';
  }

  private occupancyRef(app: PusherApp, channel: string): { tenant: string; room: string } {
    return { tenant: app.tenant, room: `${OCCUPANCY_PREFIX}${channel}` };
  }

  // ------------------------------------------------------------ lifecycle

  private async onClosed(socket: PusherSocket): Promise<void> {
    socket.state = 'closed';
    if (!this.sockets.delete(socket)) return;
    if (socket.countedTenant) this.deps.tenants?.disconnected(socket.app.tenant);
    if (socket.countedAddress !== undefined) this.deps.gateway.countAddress(socket.countedAddress, false);
    this.deps.metrics.pusherConnections.set(this.sockets.size);
    if (this.sockets.size === 0) this.onEmpty?.();
    this.perApp.set(socket.app.id, Math.max(0, (this.perApp.get(socket.app.id) ?? 1) - 1));
    // After whatever the socket had queued, so a subscribe in flight is undone too.
    const done = socket.queue.then(async () => {
      await Promise.all([...socket.subscriptions.values()].map((sub) => this.leaveChannel(socket, sub)));
      await this.releaseUser(socket);
    });
    this.cleanups.add(done);
    await done.finally(() => this.cleanups.delete(done));
  }

  private readonly cleanups = new Set<Promise<void>>();

  /** Ping silent connections; close those that did not answer (4201). */
  private sweep(): void {
    const now = Date.now();
    for (const socket of this.sockets) {
      const activityMs = socket.app.activityTimeoutS * 1000;
      if (socket.pingSentAt !== undefined) {
        if (now - socket.pingSentAt > Math.min(PONG_TIMEOUT_MS, activityMs)) {
          socket.send(errorFrame(PusherCode.PongTimeout, 'pong reply not received'));
          socket.close(PusherCode.PongTimeout, 'pong reply not received');
        }
      } else if (now - socket.lastSeen > activityMs) {
        socket.pingSentAt = now;
        socket.event('pusher:ping', {});
      }
    }
  }

  /** Stop accepting and close every connection with 4200 (reconnect at once, to another node); resolves once their channels are left. */
  async drain(): Promise<void> {
    this.state = 'draining';
    if (this.sweeper) clearInterval(this.sweeper);
    for (const socket of [...this.sockets]) {
      socket.send(errorFrame(PusherCode.Reconnect, 'node is shutting down; reconnect'));
      socket.close(PusherCode.Reconnect, 'node is shutting down');
    }
    // Clients answer the close within a round trip; those that do not are cut after DRAIN_CLOSE_MS.
    if (this.sockets.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, DRAIN_CLOSE_MS);
        timer.unref();
        this.onEmpty = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.onEmpty = undefined;
    for (const socket of this.sockets) socket.ws.terminate();
    await Promise.allSettled([...this.cleanups]);
    this.wss.close();
  }
}

/** Whether an app has a webhook for channel_occupied or channel_vacated (then occupancy is kept). */
function wantsOccupancy(app: PusherApp): boolean {
  return app.webhooks.some((target) => target.events.includes('channel_occupied') || target.events.includes('channel_vacated'));
}

/** One listener for every socket being upgraded, not a closure each. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** The member of a presence subscription, from its `channel_data`; or why it is refused. */
function parseMember(channelData: string | undefined, maxInfoBytes: number): { user: string; info?: string } | string {
  if (channelData === undefined) return 'presence channels need channel_data with a user_id';
  // channel_data is JSON inside a string, so the message's depth check did not see into it; user_info is encoded again below.
  if (nestsDeeperThan(channelData)) return `channel_data nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`;
  let parsed: { user_id?: unknown; user_info?: unknown };
  try {
    parsed = JSON.parse(channelData) as typeof parsed;
  } catch {
    return 'channel_data is not JSON';
  }
  const raw = typeof parsed === 'object' && parsed !== null ? parsed.user_id : undefined;
  const user = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
  if (typeof user !== 'string' || user === '' || user.length > 128) return 'channel_data.user_id must be a string of 1-128 characters';
  if (parsed.user_info === undefined) return { user };
  const info = JSON.stringify(parsed.user_info);
  if (Buffer.byteLength(info) > maxInfoBytes) return `user_info is over ${maxInfoBytes} bytes`;
  return { user, info };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
