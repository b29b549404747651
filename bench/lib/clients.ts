/**
 * One benchmark connection, for either system, behind one small interface so
 * every scenario drives nerve and Socket.IO with the same code, sizes and
 * counts. nerve is spoken raw (docs/protocol.md) over `ws`; Socket.IO through
 * socket.io-client (websocket transport only, `forceNew`, no reconnection);
 * pusher-js in pusher-conn.ts. The interface itself is in bench-conn.ts.
 */
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import type { BenchConn, ConnKind, Delivery, MessageClass } from './bench-conn.js';
import { PusherConn } from './pusher-conn.js';

export { BENCH_PUSHER_APP, type BenchConn, type ConnKind, type MessageClass, type System } from './bench-conn.js';
export { PUSHER_API_EVENT } from './pusher-conn.js';

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

export function openConn(kind: ConnKind, url: string, user: string, timeoutMs = 30_000): Promise<BenchConn> {
  if (kind === 'pusher') return PusherConn.open(url, user, timeoutMs);
  return kind === 'socketio' ? SocketIoConn.open(url, user, timeoutMs) : NerveConn.open(url, user, timeoutMs);
}
