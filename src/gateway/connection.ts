/**
 * One client connection: its socket, identity, rooms, limits, the ordered
 * queue its requests run in, and its state machine (`#setState`, the one
 * place the state changes). Sending goes through `deliver`, which applies
 * the slow-consumer policy; `answer` and `close` count what they do.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Identity } from '../auth/authenticator.js';
import { grantMatches, type RoomRight } from '../auth/grants.js';
import { errorText } from '../errors.js';
import type { Logger } from '../logger.js';
import { clip } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { ServerFrame } from '../../packages/protocol/src/frames.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { CloseCode } from '../../packages/protocol/src/codes.js';
import { TokenBucket, WindowCounter } from './rate-limit.js';
import type { WriteBatch } from '../write-batch.js';
import { canWriteDirectly, TextFrame } from './text-frame.js';
import { ConflatedFrames, type BufferState, type OutgoingFrame } from './conflation.js';

/** handshake → open → closing → closed; handshake and open may go straight to closed (the peer went away). */
export const ConnectionState = {
  Handshake: 'handshake',
  Open: 'open',
  Closing: 'closing',
  Closed: 'closed',
} as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

type SendOutcome = 'sent' | 'dropped' | 'conflated' | 'slow' | 'closed';

interface ConnectionLimits {
  ratePerSecond: number;
  rateBurst: number;
  sendBufferSoftBytes: number;
  sendBufferHardBytes: number;
}

/** The starting point of every connection's request chains: one settled promise shared by all, not two per connection. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * What every connection of a gateway shares: made once and referenced by
 * each connection, one field instead of three.
 */
export interface ConnectionContext {
  log: Logger;
  limits: ConnectionLimits;
  /** Corks each connection's TCP socket for the rest of the tick, so a turn's frames leave in one write. */
  writes: WriteBatch;
  /** Counts frames out, drops and closes. */
  metrics: Pick<NodeMetrics, 'framesOut' | 'drops' | 'closes'>;
}

/** A peer that never answers the close handshake is cut after this long, ms. */
const CLOSE_GRACE_MS = 5000;

export class Connection {
  #state: ConnectionState = ConnectionState.Handshake;
  get state(): ConnectionState {
    return this.#state;
  }
  #identity: Identity | undefined;
  get identity(): Identity | undefined {
    return this.#identity;
  }
  #rooms: Set<string> | undefined;
  /** Room ids (not channel names) this connection has joined; made on first use, like the maps below. */
  get rooms(): Set<string> {
    this.#rooms ??= new Set();
    return this.#rooms;
  }
  /**
   * Rooms whose `join` is in flight: live frames for them are held here until
   * the join is answered (rooms.ts). Like the other per-room maps, made on first
   * use: an empty Map costs about 200 bytes for each of tens of thousands of sockets.
   */
  #joining: Map<string, string[]> | undefined;
  /** Heartbeat: set by pong, cleared by each ping round. */
  #alive = true;
  /** Requests run one after another, in arrival order. */
  #queue: Promise<void> = SETTLED;
  /** Settles once every publish started so far has been answered (publishes are pipelined; see requests.ts). Never rejects. */
  #answered: Promise<void> = SETTLED;
  #pending = 0;
  readonly bucket: TokenBucket;
  #errorWindow: WindowCounter | undefined;
  /** Client faults in the last 10 s; made at the first one (a window is about 200 bytes, and most connections make no error). */
  get errorWindow(): WindowCounter {
    this.#errorWindow ??= new WindowCounter(10_000);
    return this.#errorWindow;
  }
  /** Rights granted by join tokens, per room id; dropped when the room is left. */
  #joinGrants: Map<string, ReadonlySet<RoomRight>> | undefined;
  /** Closes the connection with 4002 when no `connect` frame arrives in time; cleared by opening. */
  #handshakeTimer: NodeJS.Timeout | undefined;
  /** Closes the connection with 4010 when its token expires (re-armed by `refresh`). */
  #expiryTimer: NodeJS.Timeout | undefined;
  #countedUser = false;
  #countedTenant = false;
  /** Counted in the gateway's per-user connection count (undone on close). */
  get countedUser(): boolean {
    return this.#countedUser;
  }
  /** Admitted by the tenant's connection quota and counted in usage (src/quotas/guard.ts): released when closed. */
  get countedTenant(): boolean {
    return this.#countedTenant;
  }

  constructor(
    readonly id: string,
    readonly socket: WebSocket,
    readonly remoteAddress: string,
    private readonly context: ConnectionContext,
    /** The TCP socket under `socket`: corked by `context.writes`, and written to directly for prebuilt frames. */
    private readonly tcp: Duplex,
  ) {
    this.bucket = new TokenBucket(context.limits.ratePerSecond, context.limits.rateBurst);
    this.plainFrames = socket.extensions === '';
  }

  /** No WebSocket extension was negotiated (read once: the handshake is over, see canWriteDirectly). */
  private readonly plainFrames: boolean;

  #log: Logger | undefined;

  /** This connection's logger (a child with its id), made on first use: most connections never log above debug. */
  get log(): Logger {
    this.#log ??= this.context.log.child({ conn: this.id });
    return this.#log;
  }

  /** Log at debug level, without making a child logger when debug is off. */
  debug(context: Record<string, unknown>, message: string): void {
    if (this.context.log.isLevelEnabled('debug')) this.log.debug(context, message);
  }

  /** Start holding live frames for `room` until its join is answered. */
  startJoin(room: string): void {
    this.#joining ??= new Map();
    this.#joining.set(room, []);
  }

  /** The frames held for `room` while its join is in flight; undefined when no join is. */
  heldFor(room: string): string[] | undefined {
    return this.#joining?.get(room);
  }

  /** Stop holding for `room`; returns what was held (empty when nothing was). */
  endJoin(room: string): string[] {
    const held = this.#joining?.get(room) ?? [];
    this.#joining?.delete(room);
    return held;
  }

  /**
   * Per room, the position the last `join` answer carried, while live chat
   * at or below it may still come from the bus (its copy on the bus can
   * arrive after the answer): such chat is in the answer already and is not
   * sent. Dropped by the first live chat past it, and by leaving the room.
   */
  #chatFloors: Map<string, { epoch: string; offset: number }> | undefined;

  setChatFloor(room: string, epoch: string, offset: number): void {
    this.#chatFloors ??= new Map();
    this.#chatFloors.set(room, { epoch, offset });
  }

  chatFloor(room: string): { epoch: string; offset: number } | undefined {
    return this.#chatFloors?.get(room);
  }

  clearChatFloor(room: string): void {
    this.#chatFloors?.delete(room);
  }

  /** Whether the token's grants or a join token give `right` in `room`. Builds no set: fan-out asks per recipient. */
  hasRight(room: string, right: RoomRight): boolean {
    const grants = this.#identity?.grants;
    // A token without grants allows everything but `moderate`, which is never implied (grants.ts):
    // the common case, answered before any lookup since fan-out asks it for every recipient.
    if (grants === undefined && right !== 'moderate') return true;
    if (this.#joinGrants?.get(room)?.has(right) === true) return true;
    if (grants === undefined) return false;
    for (const grant of grants) if (grantMatches(grant, room) && grant.rights.includes(right)) return true;
    return false;
  }

  grant(room: string, rights: ReadonlySet<RoomRight>): void {
    this.#joinGrants ??= new Map();
    this.#joinGrants.set(room, rights);
  }

  revokeGrants(room: string): void {
    this.#joinGrants?.delete(room);
  }

  get user(): string {
    return this.#identity?.user ?? '';
  }

  get tenant(): string {
    return this.#identity?.tenant ?? '';
  }

  /** The one place the state changes, logged old → new. */
  #setState(next: ConnectionState): void {
    const previous = this.#state;
    this.#state = next;
    // Checked first: no log object per connect when debug is off.
    if (this.context.log.isLevelEnabled('debug')) this.log.debug({ from: previous, to: next }, 'connection state');
  }

  /** Close with 4002 unless a `connect` opens the connection within `timeoutMs`. */
  armHandshake(timeoutMs: number): void {
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = undefined;
      if (this.#state === ConnectionState.Handshake) this.close(CloseCode.HandshakeTimeout, 'no connect frame in time');
    }, timeoutMs);
    this.#handshakeTimer.unref();
  }

  /** The identity an authentication (connect or refresh) established. */
  identify(identity: Identity): void {
    this.#identity = identity;
  }

  /** Counted in the per-user connection count. */
  countUser(): void {
    this.#countedUser = true;
  }

  /** Admitted by the tenant's connection quota. */
  countTenant(): void {
    this.#countedTenant = true;
  }

  /** handshake → open, once welcomed. */
  open(): void {
    if (this.#state !== ConnectionState.Handshake) return;
    this.#setState(ConnectionState.Open);
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
  }

  /** Close with 4010 when the token expires; a refresh re-arms it. */
  armExpiry(): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    const expiresAt = this.#identity?.expiresAt;
    if (expiresAt === undefined) return;
    // setTimeout takes at most 2^31-1 ms; a far expiry re-arms on the way.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      if (this.#state !== ConnectionState.Open) return;
      if ((this.#identity?.expiresAt ?? Infinity) > Date.now()) return this.armExpiry();
      this.log.info({ user: clip(this.user) }, 'token expired without refresh');
      this.close(CloseCode.TokenExpired, 'token expired');
    }, delay);
    this.#expiryTimer.unref();
  }

  /** Start the close handshake (counted by code); a no-op once closing. */
  close(code: number, reason: string): void {
    if (this.#state === ConnectionState.Closing || this.#state === ConnectionState.Closed) return;
    this.#setState(ConnectionState.Closing);
    this.context.metrics.closes.inc({ code: String(code) });
    this.debug({ code, reason }, 'closing connection');
    this.socket.close(code, reason);
    setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS).unref();
  }

  /** The socket closed: → closed, timers cleared. False when it was closed already. */
  closed(): boolean {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    if (this.#state === ConnectionState.Closed) return false;
    this.#setState(ConnectionState.Closed);
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    return true;
  }

  /** Heartbeat round: false when the previous ping went unanswered; else ping again. */
  ping(): boolean {
    if (!this.#alive) return false;
    this.#alive = false;
    this.socket.ping();
    return true;
  }

  pong(): void {
    this.#alive = true;
  }

  /** Requests admitted and not yet answered. */
  get pending(): number {
    return this.#pending;
  }

  /** Count a request in; false when `max` are pending already. */
  startRequest(max: number): boolean {
    if (this.#pending >= max) return false;
    this.#pending += 1;
    return true;
  }

  endRequest(): void {
    this.#pending -= 1;
  }

  /** Settles once every request so far has run and every publish so far was answered. Never rejects. */
  get idle(): Promise<void> {
    return this.#queue.then(() => this.#answered);
  }

  /** Settles once every publish started so far has been answered. Never rejects. */
  get answered(): Promise<void> {
    return this.#answered;
  }

  /** Run `step` after the requests before it (it must not reject: every later request waits on this chain). */
  enqueue(step: () => void | Promise<void>): void {
    this.#queue = this.#queue.then(step);
  }

  /**
   * A pipelined publish (requests.ts): answered by `outcome`'s function
   * once it and every answer before it are in, so answers keep request order.
   */
  answerInTurn(outcome: Promise<() => void>): void {
    this.#answered = Promise.all([this.#answered, outcome]).then(([, send]) => {
      this.#pending -= 1;
      try {
        send();
      } catch (error) {
        // Never reject: every later request of the connection waits on this chain.
        this.log.error({ err: errorText(error) }, 'answering a publish failed');
      }
    });
  }

  /** Send one answer frame (not droppable), counted, closing the connection if its buffer is over the hard limit. */
  answer(frame: ServerFrame): void {
    this.afterSend(this.deliver(encodeFrame(frame), false), frame.op);
  }

  /** Count a frame sent as `op`; a slow consumer is closed. */
  afterSend(outcome: SendOutcome, op: string): void {
    if (outcome === 'sent') this.context.metrics.framesOut.inc({ op });
    else if (outcome === 'slow') {
      this.context.metrics.drops.inc({ reason: 'slow_consumer' });
      this.close(CloseCode.SlowConsumer, 'send buffer over limit');
    }
  }

  /**
   * Write already-encoded bytes. Droppable frames are skipped while the
   * socket's send buffer is over the soft limit; any frame finding it over
   * the hard limit marks the connection slow (the caller closes it).
   */
  deliver(payload: OutgoingFrame, droppable: boolean, conflateKey?: () => string | undefined): SendOutcome {
    if (this.#state === ConnectionState.Closing || this.#state === ConnectionState.Closed) return 'closed';
    const buffered = this.socket.bufferedAmount;
    const limits = this.context.limits;
    if (buffered > limits.sendBufferHardBytes) return 'slow';
    if (droppable && buffered > limits.sendBufferSoftBytes) {
      // Latest wins (conflation.ts): a keyed ephemeral message replaces the one still waiting.
      const key = conflateKey?.();
      if (key === undefined) return 'dropped';
      this.conflated ??= new ConflatedFrames(
        () => this.#bufferState(),
        (held) => this.write(held),
      );
      return this.conflated.hold(key, payload) ? 'dropped' : 'conflated';
    }
    // Held frames go first, so a fresher message never precedes an older one.
    this.context.writes.hold(this.tcp);
    if (this.conflated !== undefined && this.conflated.size > 0) this.conflated.flush();
    this.write(payload);
    return 'sent';
  }

  /** Keyed ephemeral frames held while the socket is over the soft limit (made at the first). */
  private conflated: ConflatedFrames | undefined;

  #bufferState(): BufferState {
    if (this.#state === ConnectionState.Closing || this.#state === ConnectionState.Closed) return 'closed';
    return this.socket.bufferedAmount <= this.context.limits.sendBufferSoftBytes ? 'drained' : 'full';
  }

  private write(payload: OutgoingFrame): void {
    if (!(payload instanceof TextFrame)) this.socket.send(payload, { binary: false });
    else if (canWriteDirectly(this.socket, this.plainFrames)) this.tcp.write(payload.wire);
    else this.socket.send(payload.payload, { binary: false });
  }
}
