/**
 * The edge of the Pusher side: `/app/{key}` WebSocket connections speaking
 * Pusher protocol 7 (docs/pusher.md). It takes upgrades, admits and counts
 * connections, reads their messages onto each socket's queue, pings the
 * silent ones and drains them; channels.ts keeps the subscriptions and
 * events.ts the events, both on the node's own lanes.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { errorText } from '../errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from '../../packages/protocol/src/nesting.js';
import type { PusherApp } from '../config/pusher-apps.js';
import { PusherChannels } from './channels.js';
import { answerInvalid, type PusherDeps } from './context.js';
import { PusherEvents, RESUME } from './events.js';
import { PUSHER_PROTOCOLS, PusherCode, errorFrame } from './protocol.js';
import { PusherSocket } from './socket.js';

/** How often connections are checked for silence, ms. */
const SWEEP_MS = 1000;
/** How long the server waits for the `pusher:pong` to its `pusher:ping`, at most, ms (pusher-js waits as long for ours). */
const PONG_TIMEOUT_MS = 30_000;
const PATH = /^\/app\/([^/?]+)$/;
/** How long a drain waits for clients to close after its 4200 before cutting them, ms. */
const DRAIN_CLOSE_MS = 5000;

export class PusherGateway {
  readonly channels: PusherChannels;
  readonly events: PusherEvents;
  private readonly byKey = new Map<string, PusherApp>();
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<PusherSocket>();
  private readonly perApp = new Map<string, number>();
  /** Each closed socket's leaving of its channels, awaited by the drain. */
  private readonly cleanups = new Set<Promise<void>>();
  private sweeper: NodeJS.Timeout | undefined;
  /** While draining: called when the last connection closed. */
  private onEmpty: (() => void) | undefined;
  state: 'running' | 'draining' = 'running';

  constructor(private readonly deps: PusherDeps) {
    for (const app of deps.apps) this.byKey.set(app.key, app);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: deps.options.limits.maxFrameBytes, perMessageDeflate: false });
    this.channels = new PusherChannels(deps);
    this.events = new PusherEvents(deps, this.channels);
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
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
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
      socket.end(
        `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return true;
    }
    // Pusher refuses inside the WebSocket (an error frame, then a close code), so clients learn whether to reconnect.
    this.wss.handleUpgrade(request, socket, head, (ws) =>
      this.accept(ws, path, new URLSearchParams(query < 0 ? '' : target.slice(query + 1)), socket, address),
    );
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
    if (!PUSHER_PROTOCOLS.has(Number(protocol)))
      return this.refuse(ws, PusherCode.UnsupportedProtocol, `unsupported protocol version ${protocol}; nerve speaks 7`);
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
    const established = (): void =>
      socket.event('pusher:connection_established', JSON.stringify({ socket_id: socket.id, activity_timeout: app.activityTimeoutS }));
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
        socket.send(errorFrame(PusherCode.OverQuota, "over the connection quota of this app's tenant"));
        socket.close(PusherCode.OverQuota, 'over connection quota');
      },
    );
  }

  private onMessage(socket: PusherSocket, data: RawData, isBinary: boolean): void {
    socket.lastSeen = Date.now();
    socket.pingSentAt = undefined;
    // Checked before parsing: a flood costs a token bucket, not a JSON parse, per message.
    if (socket.inbound.take() > 0) {
      this.deps.metrics.drops.inc({ reason: 'rate_limited' });
      return answerInvalid(this.deps, socket, `over ${this.deps.options.limits.ratePerSecond} messages per second: message dropped`);
    }
    if (isBinary) return answerInvalid(this.deps, socket, 'binary frames are not part of the protocol');
    const text = (data as Buffer).toString('utf8');
    // The nerve gateway's bound (docs/protocol.md, Limits): a client event's data is encoded again to be
    // published, and JSON.stringify overflows the stack a few thousand levels down.
    if (nestsDeeperThan(text)) return answerInvalid(this.deps, socket, `a message nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`);
    let message: { event?: unknown; channel?: unknown; data?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return answerInvalid(this.deps, socket, 'a message must be a JSON object');
    }
    if (typeof message !== 'object' || message === null || typeof message.event !== 'string')
      return answerInvalid(this.deps, socket, 'a message must be a JSON object with an event');
    const event = message.event;
    if (event === 'pusher:ping') return socket.event('pusher:pong', {});
    if (event === 'pusher:pong') return;
    const payload = typeof message.data === 'object' && message.data !== null ? (message.data as Record<string, unknown>) : {};
    let step: (() => Promise<void>) | undefined;
    if (event === 'pusher:subscribe') step = () => this.channels.subscribe(socket, payload);
    else if (event === 'pusher:unsubscribe') step = () => this.channels.unsubscribe(socket, payload.channel);
    else if (event === 'pusher:signin') step = () => this.channels.signin(socket, payload);
    else if (event === RESUME) step = () => this.events.resume(socket, payload);
    else if (event.startsWith('client-')) step = () => this.events.clientEvent(socket, event, message.channel, message.data);
    if (!step) return answerInvalid(this.deps, socket, `unknown event ${event.slice(0, 64)}`);
    const run = step;
    socket.queue = socket.queue.then(async () => {
      if (socket.state !== 'open') return;
      await run().catch((error: unknown) => {
        socket.log.warn({ err: errorText(error), event }, 'pusher request failed');
        answerInvalid(this.deps, socket, 'internal error');
      });
    });
  }

  private async onClosed(socket: PusherSocket): Promise<void> {
    socket.state = 'closed';
    if (!this.sockets.delete(socket)) return;
    if (socket.countedTenant) this.deps.tenants?.disconnected(socket.app.tenant);
    if (socket.countedAddress !== undefined) this.deps.gateway.countAddress(socket.countedAddress, false);
    this.deps.metrics.pusherConnections.set(this.sockets.size);
    if (this.sockets.size === 0) this.onEmpty?.();
    this.perApp.set(socket.app.id, Math.max(0, (this.perApp.get(socket.app.id) ?? 1) - 1));
    // After whatever the socket had queued, so a subscribe in flight is undone too.
    const done = socket.queue.then(() => this.channels.leaveAll(socket));
    this.cleanups.add(done);
    await done.finally(() => this.cleanups.delete(done));
  }

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

/** One listener for every socket being upgraded, not a closure each. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}
