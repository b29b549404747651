/**
 * One client connection: its socket, identity, rooms, limits and the
 * ordered queue its requests run in. Sending goes through `deliver`, which
 * applies the slow-consumer policy.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Identity } from '../auth/authenticator.js';
import type { RoomRight } from '../auth/grants.js';
import type { Logger } from '../logger.js';
import type { ServerFrame } from '../../packages/protocol/src/frames.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { TokenBucket, WindowCounter } from './rate-limit.js';
import type { WriteBatch } from '../write-batch.js';
import { canWriteDirectly, TextFrame } from './text-frame.js';

export type ConnectionState = 'handshake' | 'open' | 'closing' | 'closed';

export type SendOutcome = 'sent' | 'dropped' | 'conflated' | 'slow' | 'closed';

export interface ConnectionLimits {
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
}

export class Connection {
  state: ConnectionState = 'handshake';
  identity: Identity | undefined;
  #rooms: Set<string> | undefined;
  /** Room ids (not channel names) this connection has joined; made on first use, like the maps below. */
  get rooms(): Set<string> {
    this.#rooms ??= new Set();
    return this.#rooms;
  }
  /**
   * Rooms whose `join` is in flight: live frames for them are held here
   * until the join answer is sent, so history and live traffic meet with no
   * gap and no duplicate (see Gateway.join). Like the other per-room maps
   * below, made on first use: most connections never need them, and an
   * empty Map costs about 200 bytes for each of tens of thousands of sockets.
   */
  #joining: Map<string, string[]> | undefined;
  /** Heartbeat: set by pong, cleared by each ping round. */
  alive = true;
  /** Requests run one after another, in arrival order. */
  queue: Promise<void> = SETTLED;
  /** Settles once every publish started so far has been answered (publishes are pipelined; see Gateway.pipelinePublish). Never rejects. */
  answered: Promise<void> = SETTLED;
  pending = 0;
  readonly bucket: TokenBucket;
  #errorWindow: WindowCounter | undefined;
  /** Client faults in the last 10 s; made at the first one (a window is about 200 bytes, and most connections make no error). */
  get errorWindow(): WindowCounter {
    this.#errorWindow ??= new WindowCounter(10_000);
    return this.#errorWindow;
  }
  /** Rights granted by join tokens, per room id; dropped when the room is left. */
  #joinGrants: Map<string, ReadonlySet<RoomRight>> | undefined;
  /** Closes the connection with 4002 when no `connect` frame arrives in time; cleared by the welcome. */
  handshakeTimer: NodeJS.Timeout | undefined;
  /** Closes the connection with 4010 when its token expires (re-armed by `refresh`). */
  expiryTimer: NodeJS.Timeout | undefined;
  /** Counted in the gateway's per-user connection count (undone on close). */
  countedUser = false;
  /** Admitted by the tenant's connection quota and counted in usage (src/quotas/guard.ts): released when closed. */
  countedTenant = false;

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

  /** Rights a join token granted in `room`. */
  grantsFor(room: string): ReadonlySet<RoomRight> | undefined {
    return this.#joinGrants?.get(room);
  }

  grant(room: string, rights: ReadonlySet<RoomRight>): void {
    this.#joinGrants ??= new Map();
    this.#joinGrants.set(room, rights);
  }

  revokeGrants(room: string): void {
    this.#joinGrants?.delete(room);
  }

  get user(): string {
    return this.identity?.user ?? '';
  }

  get tenant(): string {
    return this.identity?.tenant ?? '';
  }

  /** Send one answer frame (not droppable). */
  send(frame: ServerFrame): SendOutcome {
    return this.deliver(encodeFrame(frame), false);
  }

  /**
   * Write already-encoded bytes. Droppable frames are skipped while the
   * socket's send buffer is over the soft limit; any frame finding it over
   * the hard limit marks the connection slow (the caller closes it).
   */
  deliver(payload: string | Buffer | TextFrame, droppable: boolean, conflateKey?: () => string | undefined): SendOutcome {
    if (this.state === 'closing' || this.state === 'closed') return 'closed';
    const buffered = this.socket.bufferedAmount;
    const limits = this.context.limits;
    if (buffered > limits.sendBufferHardBytes) return 'slow';
    if (droppable && buffered > limits.sendBufferSoftBytes) {
      // Latest wins: a keyed ephemeral message (cursor, typing) replaces the
      // one still waiting for this socket instead of piling up behind it.
      const key = conflateKey?.();
      if (key === undefined) return 'dropped';
      this.conflated ??= new Map();
      const replaced = this.conflated.has(key);
      this.conflated.delete(key);
      this.conflated.set(key, payload);
      this.scheduleFlush();
      return replaced ? 'dropped' : 'conflated';
    }
    // Held frames go first, so a fresher message never precedes an older one.
    this.context.writes.hold(this.tcp);
    if (this.conflated !== undefined && this.conflated.size > 0) this.flushHeld();
    this.write(payload);
    return 'sent';
  }

  private write(payload: string | Buffer | TextFrame): void {
    if (!(payload instanceof TextFrame)) this.socket.send(payload, { binary: false });
    else if (canWriteDirectly(this.socket, this.plainFrames)) this.tcp.write(payload.wire);
    else this.socket.send(payload.payload, { binary: false });
  }

  private flushHeld(): void {
    if (this.conflated === undefined) return;
    for (const held of this.conflated.values()) this.write(held);
    this.conflated.clear();
  }

  /** Keyed ephemeral frames held while the socket is over the soft limit, latest per key. */
  private conflated: Map<string, string | Buffer | TextFrame> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setInterval(() => {
      if (this.state === 'closing' || this.state === 'closed') {
        this.conflated?.clear();
      } else if (this.socket.bufferedAmount <= this.context.limits.sendBufferSoftBytes) {
        this.flushHeld();
      }
      if (this.conflated === undefined || this.conflated.size === 0) {
        clearInterval(this.flushTimer);
        this.flushTimer = undefined;
      }
    }, 25);
    this.flushTimer.unref();
  }
}
