/**
 * One benchmark connection, for either system, behind one small interface so
 * every scenario drives nerve and Socket.IO with the same code, sizes and
 * counts. nerve is spoken raw (docs/protocol.md) over `ws`; Socket.IO through
 * socket.io-client (websocket transport only, `forceNew`, no reconnection).
 */
import { createHmac } from 'node:crypto';
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import * as pusherJs from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback } from 'pusher-js';

/** The systems a run compares; `limit1` and `limit3` are bench/limit-server.ts and speak nerve's protocol. */
export type System = 'nerve' | 'socketio' | 'limit1' | 'limit3';
/** What a load worker can open: a system's own client, or pusher-js against nerve's Pusher endpoint (docs/pusher.md). */
export type ConnKind = System | 'pusher';

/**
 * The Pusher app of the bench cluster (`--pusher-apps`). Its own tenant, so its
 * channels never meet the native rooms; client events on and at the highest rate an app allows,
 * because the load generator, not the app's limiter, must be the bottleneck.
 */
export const BENCH_PUSHER_APP = {
  id: '4242',
  key: 'bench-key',
  secret: 'bench-secret-0123456789',
  tenant: 'pusherbench',
  enableClientMessages: true,
  // The largest the app settings take; a burst over it would show as error frames and missing deliveries.
  maxClientEventsPerSecond: 10_000,
} as const;
export type MessageClass = 'chat' | 'ephemeral';

/** A delivered room message or signal, as the scenarios need it. */
export interface Delivery {
  room?: string;
  from?: string;
  kind?: string;
  data: unknown;
}

export interface BenchConn {
  readonly user: string;
  join(room: string): Promise<void>;
  /** Fire a publish; chat waits for nothing here either (the flow control is `ping`). */
  publish(room: string, cls: MessageClass, data: unknown): void;
  /** Round trip that answers after every request sent before it (the server runs a connection's requests in order). */
  ping(): Promise<void>;
  signal(to: string, kind: string, data: unknown): void;
  onMessage: ((message: Delivery) => void) | undefined;
  onSignal: ((signal: Delivery) => void) | undefined;
  /** Error frames (nerve) seen so far, e.g. rate_limited; must stay 0 for a valid run. */
  readonly errors: number;
  /** The last error frame (nerve), for diagnostics. */
  readonly lastError: string | undefined;
  close(): void;
}

interface Pending {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

/** How many joins in this process were retried after a retryable refusal. */
export function joinRetries(): number {
  return NerveConn.joinRetries;
}

class NerveConn implements BenchConn {
  onMessage: ((message: Delivery) => void) | undefined;
  onSignal: ((signal: Delivery) => void) | undefined;
  errors = 0;
  lastError: string | undefined;
  private rid = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(
    readonly user: string,
    private readonly socket: WebSocket,
  ) {
    socket.on('message', (raw: WebSocket.RawData) => this.onFrame(raw));
    socket.on('close', (code: number, reason: Buffer) => {
      this.closeCode = `${code} ${reason.toString()}`;
      const error = new Error(`socket closed (${this.closeCode})`);
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
    });
  }

  static open(url: string, user: string, timeoutMs: number): Promise<NerveConn> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { perMessageDeflate: false });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`nerve connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.on('error', (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('open', () => {
        const conn = new NerveConn(user, socket);
        conn.request({ op: 'connect', v: 1, user }).then(
          (frame) => {
            clearTimeout(timer);
            if (frame.op === 'welcome') resolve(conn);
            else reject(new Error(`connect refused: ${JSON.stringify(frame)}`));
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
      });
    });
  }

  private onFrame(raw: WebSocket.RawData): void {
    const frame = JSON.parse(raw.toString()) as Record<string, unknown>;
    switch (frame.op) {
      case 'message':
        this.onMessage?.(frame as unknown as Delivery);
        return;
      case 'signal':
        this.onSignal?.(frame as unknown as Delivery);
        return;
      default: {
        if (typeof frame.rid === 'number') this.lastAnsweredRid = frame.rid;
        if (frame.op === 'error') {
          this.errors += 1;
          this.lastError = JSON.stringify(frame).slice(0, 300);
        }
        if (typeof frame.rid !== 'number') return;
        const pending = this.pending.get(frame.rid);
        if (!pending) return;
        this.pending.delete(frame.rid);
        pending.resolve(frame);
      }
    }
  }

  private request(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      // ws drops a send on a closed socket without a word: say so, with the close code.
      if (this.socket.readyState !== WebSocket.OPEN) {
        reject(new Error(`socket closed (${this.closeCode ?? 'no close code yet'}; last error ${this.lastError ?? 'none'})`));
        return;
      }
      this.pending.set(rid, { resolve, reject });
      this.socket.send(JSON.stringify({ ...frame, rid }));
    });
  }

  /** Joins retried after a retryable refusal (counted across connections: the scale run reports it). */
  static joinRetries = 0;

  async join(room: string): Promise<void> {
    // Like the SDK: a refusal the server marks as passing (a bus reconnecting, a full queue) is retried with backoff.
    for (let attempt = 0; ; attempt += 1) {
      // history: 0 — the join answer carries no backlog, like Socket.IO's.
      const frame = await this.request({ op: 'join', room, history: 0 });
      if (frame.op === 'joined') return;
      const retryable = frame.code === 'bus_unavailable' || frame.code === 'unavailable' || frame.code === 'rate_limited';
      if (!retryable || attempt >= 5) throw new Error(`join refused: ${JSON.stringify(frame)}`);
      NerveConn.joinRetries += 1;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }

  publish(room: string, cls: MessageClass, data: unknown): void {
    // Answers (chat ack, or an error) come back with this rid; `errors` counts the errors.
    this.socket.send(JSON.stringify({ op: 'publish', rid: ++this.rid, room, class: cls, data }));
  }

  /** Close code and reason once the socket closed, for diagnostics. */
  private closeCode: string | undefined;
  /** The highest request id answered so far, for diagnostics. */
  private lastAnsweredRid = 0;

  async ping(): Promise<void> {
    const rid = this.rid + 1;
    let timer: NodeJS.Timeout | undefined;
    // A ping unanswered for 30 s says why, instead of leaving the coordinator to time out blind.
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `ping ${rid} unanswered after 30 s: socket state ${this.socket.readyState}, ${this.socket.bufferedAmount} bytes unsent, ` +
                `last answered rid ${this.lastAnsweredRid}, ${this.pending.size} requests pending, ${this.errors} errors, last ${this.lastError ?? 'none'}`,
            ),
          ),
        30_000,
      );
    });
    try {
      const frame = await Promise.race([this.request({ op: 'ping' }), stalled]);
      if (frame.op !== 'pong') throw new Error(`ping refused: ${JSON.stringify(frame)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(to: string, kind: string, data: unknown): void {
    this.socket.send(JSON.stringify({ op: 'signal', rid: ++this.rid, to, kind, data }));
  }

  close(): void {
    this.socket.terminate();
  }
}

class SocketIoConn implements BenchConn {
  onMessage: ((message: Delivery) => void) | undefined;
  onSignal: ((signal: Delivery) => void) | undefined;
  readonly errors = 0;
  readonly lastError: string | undefined = undefined;

  constructor(
    readonly user: string,
    private readonly socket: Socket,
  ) {
    socket.on('message', (message: Delivery) => this.onMessage?.(message));
    socket.on('signal', (signal: Delivery) => this.onSignal?.(signal));
  }

  static open(url: string, user: string, timeoutMs: number): Promise<SocketIoConn> {
    return new Promise((resolve, reject) => {
      const socket = io(url, {
        transports: ['websocket'],
        forceNew: true,
        reconnection: false,
        timeout: timeoutMs,
        auth: { user },
      });
      const timer = setTimeout(() => {
        socket.disconnect();
        reject(new Error(`socket.io connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('welcome', () => {
        clearTimeout(timer);
        resolve(new SocketIoConn(user, socket));
      });
      socket.once('connect_error', (error: Error) => {
        clearTimeout(timer);
        socket.disconnect();
        reject(error);
      });
    });
  }

  async join(room: string): Promise<void> {
    await this.socket.emitWithAck('join', room);
  }

  publish(room: string, cls: MessageClass, data: unknown): void {
    if (cls === 'chat') this.socket.emit('publish', { room, class: cls, data }, () => {});
    else this.socket.emit('publish', { room, class: cls, data });
  }

  async ping(): Promise<void> {
    await this.socket.emitWithAck('rtt');
  }

  signal(to: string, kind: string, data: unknown): void {
    this.socket.emit('signal', { to, kind, data });
  }

  close(): void {
    this.socket.disconnect();
  }
}

// pusher-js is CommonJS (module.exports = Pusher) with ES-style typings: at run time the class is the namespace's default.
type PusherClient = InstanceType<typeof pusherJs.default.default>;
const PusherClient = pusherJs.default as unknown as typeof pusherJs.default.default;

/** The event name every bench room message travels under, as a Pusher client event. */
const PUSHER_EVENT = 'client-bench';
/** The same, triggered through the HTTP API (where `client-` names are the clients' own). */
export const PUSHER_API_EVENT = 'bench';

/**
 * pusher-js against nerve's Pusher endpoint. A room is the private channel
 * `private-<room>` (private: client events need it), authorized here with
 * the app secret as an app's auth endpoint would; a publish is a client
 * event, which nerve relays as an ephemeral room message. `ping` is
 * `pusher:ping` → `pusher:pong`: the node answers a connection's frames in
 * order, so it flow-controls the publisher like the native ping.
 */
class PusherConn implements BenchConn {
  onMessage: ((message: Delivery) => void) | undefined;
  readonly onSignal = undefined;
  errors = 0;
  lastError: string | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly pongs: Array<() => void> = [];

  constructor(
    readonly user: string,
    private readonly pusher: PusherClient,
  ) {
    pusher.connection.bind('message', (event: { event: string }) => {
      if (event.event === 'pusher:pong') this.pongs.shift()?.();
    });
    pusher.connection.bind('error', (error: unknown) => this.error(error));
  }

  private error(error: unknown): void {
    this.errors += 1;
    this.lastError = JSON.stringify(error).slice(0, 300);
  }

  /** `url` is ws://host:port (the node); resolves on `pusher:connection_established`. */
  static open(url: string, user: string, timeoutMs: number): Promise<PusherConn> {
    const { hostname, port } = new URL(url);
    const sign = (socketId: string, channel: string) =>
      `${BENCH_PUSHER_APP.key}:${createHmac('sha256', BENCH_PUSHER_APP.secret).update(`${socketId}:${channel}`).digest('hex')}`;
    const pusher = new PusherClient(BENCH_PUSHER_APP.key, {
      cluster: 'nerve',
      wsHost: hostname,
      wsPort: Number(port),
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      // pusher-js pings on its own after this much silence; far off, so every pong seen answers one of ours.
      activityTimeout: 600_000,
      channelAuthorization: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) =>
          callback(null, { auth: sign(socketId, channelName) }),
      },
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pusher.disconnect();
        reject(new Error(`pusher-js connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      pusher.connection.bind('state_change', ({ current }: { current: string }) => {
        if (current === 'connected') {
          clearTimeout(timer);
          resolve(new PusherConn(user, pusher));
        } else if (current === 'failed' || current === 'unavailable') {
          clearTimeout(timer);
          pusher.disconnect();
          reject(new Error(`pusher-js connection ${current}`));
        }
      });
    });
  }

  join(room: string): Promise<void> {
    const name = `private-${room}`;
    const channel = this.pusher.subscribe(name);
    this.channels.set(room, channel);
    for (const event of [PUSHER_EVENT, PUSHER_API_EVENT]) channel.bind(event, (data: unknown) => this.onMessage?.({ room, data }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no subscription_succeeded for ${name} within 30 s`)), 30_000);
      channel.bind('pusher:subscription_succeeded', () => {
        clearTimeout(timer);
        resolve();
      });
      channel.bind('pusher:subscription_error', (error: unknown) => {
        clearTimeout(timer);
        this.error(error);
        reject(new Error(`subscribe ${name} refused: ${JSON.stringify(error)}`));
      });
    });
  }

  publish(room: string, _cls: MessageClass, data: unknown): void {
    const channel = this.channels.get(room);
    if (!channel?.trigger(PUSHER_EVENT, data)) this.error({ publish: `not subscribed to ${room}` });
  }

  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('pusher:pong not seen within 30 s')), 30_000);
      this.pongs.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.pusher.connection.send_event('pusher:ping', {});
    });
  }

  signal(): void {
    throw new Error('pusher-js connections carry no nerve signals');
  }

  close(): void {
    this.pusher.disconnect();
  }
}

export function openConn(kind: ConnKind, url: string, user: string, timeoutMs = 30_000): Promise<BenchConn> {
  if (kind === 'pusher') return PusherConn.open(url, user, timeoutMs);
  return kind === 'socketio' ? SocketIoConn.open(url, user, timeoutMs) : NerveConn.open(url, user, timeoutMs);
}
