/**
 * The clients of the reconnect-storm scenario (`npm run bench:scale --
 * --storm`, bench/lib/scale-storm.ts), inside a load worker. Each speaks
 * nerve's protocol raw (docs/protocol.md) and reconnects the way the SDK does
 * (packages/client/src/connection.ts, rooms.ts): on a lost socket it waits a
 * full-jitter backoff (250 ms + U[0, 250 ms), doubling per failed attempt),
 * picks a URL of its node list with the SDK's own `UrlRotation` (a node
 * that has not failed recently, at random), connects, and rejoins its room with
 * `since` = the last position it saw. The SDK itself would cost the load
 * processes several times the CPU per client, on the 2 cores the servers use.
 */
import WebSocket from 'ws';
import { UrlRotation } from '../../packages/client/src/url-rotation.js';
import { nowMs } from './stats.js';

/** One storm client: its node list (its own node first), its room, and what it does while the scenario's load runs. */
export interface StormSpec {
  urls: string[];
  user: string;
  room: string;
  /** `chat`: publishes into its room at the chat rate; `ping`: a bystander measuring round trips; none: listens. */
  role?: 'chat' | 'ping';
}

interface Position {
  offset: number;
  epoch: string;
}

/** The SDK's defaults (packages/client/src/backoff.ts). */
const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;
const CONNECT_TIMEOUT_MS = 30_000;
const RETRYABLE = new Set(['bus_unavailable', 'unavailable', 'rate_limited']);

interface Answer {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}
const IGNORE: Answer = { resolve: () => {}, reject: () => {} };

export class StormConn {
  /** The URL it first opened (the scenario kills one node and waits for the clients that were on it). */
  readonly firstUrl: string;
  /** When the socket was lost (nowMs), and when the rejoin with `since` was answered. */
  droppedAt = 0;
  resumedAt = 0;
  /** The rejoin's `recovered` (docs/protocol.md, "Resume and idempotency"). */
  recovered: boolean | undefined;
  /** Connect or rejoin attempts that failed during resumes. */
  failedAttempts = 0;
  lastError: string | undefined;
  /** Chat messages delivered to this client. */
  received = 0;
  /** While the scenario runs a ping load on it: answered pings as [sentAtMs, rttMs]. */
  readonly pings: number[] = [];
  private socket: WebSocket | undefined;
  private position: Position | undefined;
  private readonly rotation: UrlRotation;
  /** The URL of the current socket. */
  private url = '';
  private attempt = 0;
  private rid = 0;
  private readonly pending = new Map<number, Answer>();
  private closing = false;
  /** Welcomed (first connection) or resumed: a loss of this socket starts a resume. During an attempt, the attempt handles it. */
  private live = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly spec: StormSpec) {
    this.firstUrl = spec.urls[0] as string;
    this.rotation = new UrlRotation(spec.urls);
  }

  get role(): StormSpec['role'] {
    return this.spec.role;
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** First connection: connect and welcome (no room yet). Rejects on failure; no reconnect until it succeeded once. */
  async start(): Promise<void> {
    await this.connect(this.rotation.next());
    this.live = true;
  }

  /** Join the room without history; the answer's position is where a resume starts. */
  async join(): Promise<void> {
    await this.joinRoom(undefined);
  }

  /** Fire a chat message into the room; its ack (or error) is read and dropped. */
  chat(data: unknown): void {
    if (!this.open) return;
    const rid = ++this.rid;
    this.pending.set(rid, IGNORE);
    this.socket?.send(JSON.stringify({ op: 'publish', rid, room: this.spec.room, class: 'chat', data }));
  }

  /** One ping; its round trip is recorded in `pings` when answered. */
  ping(): void {
    if (!this.open) return;
    const rid = ++this.rid;
    const sentAt = nowMs();
    this.pending.set(rid, { resolve: () => this.pings.push(sentAt, nowMs() - sentAt), reject: () => {} });
    this.socket?.send(JSON.stringify({ op: 'ping', rid }));
  }

  close(): void {
    this.closing = true;
    clearTimeout(this.timer);
    this.socket?.terminate();
  }

  private request(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN) return Promise.reject(new Error('socket not open'));
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve, reject });
      socket.send(JSON.stringify({ ...frame, rid }));
    });
  }

  /** Open a socket to `url` and run `connect` → `welcome`; the socket's loss then starts a resume. */
  private connect(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { perMessageDeflate: false });
      let settled = false;
      let opened = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        this.rotation.failed(url, opened);
        clearTimeout(timer);
        socket.terminate();
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      socket.on('error', (error: Error) => fail(error));
      socket.on('message', (raw: WebSocket.RawData) => this.onFrame(raw));
      socket.on('close', () => {
        fail(new Error('socket closed during connect'));
        this.onClose(socket);
      });
      socket.once('open', () => {
        opened = true;
        this.socket = socket;
        this.request({ op: 'connect', v: 1, user: this.spec.user }).then((frame) => {
          if (frame.op === 'welcome') {
            settled = true;
            clearTimeout(timer);
            this.url = url;
            this.rotation.answered(url);
            resolve();
          } else fail(new Error(`connect refused: ${JSON.stringify(frame).slice(0, 200)}`));
        }, fail);
      });
    });
  }

  private async joinRoom(since: Position | undefined): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      const frame = await this.request({ op: 'join', room: this.spec.room, ...(since ? { since } : { history: 0 }) });
      if (frame.op === 'joined') {
        const position = frame.position as Position | undefined;
        if (position && (!this.position || position.epoch !== this.position.epoch || position.offset > this.position.offset)) this.position = position;
        if (since) this.recovered = frame.recovered === true;
        return;
      }
      if (!RETRYABLE.has(String(frame.code)) || attempt >= 5) throw new Error(`join refused: ${JSON.stringify(frame).slice(0, 200)}`);
      await new Promise((resolve) => setTimeout(resolve, MIN_DELAY_MS * 2 ** attempt));
    }
  }

  private onFrame(raw: WebSocket.RawData): void {
    const frame = JSON.parse(raw.toString()) as Record<string, unknown>;
    if (frame.op === 'message') {
      if (frame.class !== 'chat') return;
      this.received += 1;
      if (typeof frame.offset === 'number' && typeof frame.epoch === 'string') this.position = { offset: frame.offset, epoch: frame.epoch };
      return;
    }
    if (typeof frame.rid !== 'number') return;
    const answer = this.pending.get(frame.rid);
    if (!answer) return;
    this.pending.delete(frame.rid);
    answer.resolve(frame);
  }

  private onClose(socket: WebSocket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    const lost = new Error('socket closed');
    for (const answer of this.pending.values()) answer.reject(lost);
    this.pending.clear();
    if (!this.live || this.closing) return;
    this.rotation.failed(this.url, true);
    this.live = false;
    this.droppedAt = nowMs();
    this.resumedAt = 0;
    this.recovered = undefined;
    this.schedule();
  }

  /** The SDK's full-jitter backoff: min + U[0, min · 2^attempt), at most max. */
  private schedule(): void {
    const window = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** Math.min(this.attempt, 30));
    const delay = Math.min(MAX_DELAY_MS, Math.floor(MIN_DELAY_MS + Math.random() * window));
    this.attempt += 1;
    this.timer = setTimeout(() => void this.resume(), delay);
  }

  /** Reconnect to the URL the rotation picks and rejoin with `since`. */
  private async resume(): Promise<void> {
    if (this.closing) return;
    const url = this.rotation.next();
    try {
      await this.connect(url);
      await this.joinRoom(this.position);
      this.attempt = 0;
      this.live = true;
      this.resumedAt = nowMs();
    } catch (error) {
      this.failedAttempts += 1;
      this.lastError = error instanceof Error ? error.message : String(error);
      // Not live, so dropping a half-done socket (a refused join) schedules nothing by itself.
      this.socket?.terminate();
      if (!this.closing) this.schedule();
    }
  }
}
