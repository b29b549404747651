/**
 * The `call` op and what keeps call timing right afterwards: this node's
 * connections in each call, refreshed in the call store every heartbeat,
 * the calls of dead nodes swept, and the `call.started` / `call.ended`
 * events, each emitted by the one node the store reported it to
 * (docs/events.md). Leaving a room (or closing) leaves its calls.
 */
import type { CallRef, CallStart, CallStore, EndedCall } from '../calls/calls.js';
import { errorText } from '../errors.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { EventLog, LifecycleEvent } from '../events/event-log.js';
import { callEnded, callStarted, type EventSource, type LeaveReason } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { CallFrame } from '../../packages/protocol/src/frames.js';
import { isValidRoomId } from '../../packages/protocol/src/ids.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';

/** Most calls one connection may be in at once (`too_many_calls`). */
export const MAX_CALLS_PER_CONNECTION = 8;

interface CallParticipationDeps {
  store: CallStore;
  events: EventLog;
  metrics: NodeMetrics;
  log: Logger;
  maxRoomIdLength: number;
  /** How often this node refreshes its participants and sweeps the calls of dead nodes, ms; 0: never (tests call `beat()`). */
  heartbeatMs: number;
  /** Where an event of the room happened (its room session): RoomLifecycle.source. */
  source: (ref: RoomRef) => Promise<EventSource>;
  /** Drop the room session id `source` cached, unless this node has members in the room (a swept call's room often has none here). */
  forget: (ref: RoomRef) => void;
}

interface LocalCall {
  ref: CallRef;
  /** This node's connections in the call → their user. */
  conns: Map<string, string>;
}

export class CallParticipation {
  readonly #calls = new Map<string, LocalCall>();
  /** Connection id → keys of its calls. */
  readonly #byConn = new Map<string, Set<string>>();
  /** Events and leaves in flight; drain waits for them before the lanes close. */
  readonly #work = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;

  constructor(private readonly deps: CallParticipationDeps) {}

  start(): void {
    if (this.deps.heartbeatMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.beat(), this.deps.heartbeatMs);
    this.#timer.unref();
  }

  /** Stop the heartbeat (drain: the connections' leaves follow). Idempotent. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  settled(): Promise<unknown> {
    return Promise.allSettled([...this.#work, this.#beating]);
  }

  /** The `call` op: join or leave a call of a joined room in which the connection may signal. */
  async request(conn: Connection, frame: CallFrame): Promise<void> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    if (!isValidRoomId(frame.call)) throw new NerveError(ErrorCode.InvalidCall, 'call ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -');
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room first');
    requireRight(conn, frame.room, 'signal');
    const ref: CallRef = { tenant: conn.tenant, room: frame.room, call: frame.call };
    const key = callKey(ref);
    const now = Date.now();
    if (frame.action === 'join') {
      const mine = this.#byConn.get(conn.id);
      if (!mine?.has(key) && (mine?.size ?? 0) >= MAX_CALLS_PER_CONNECTION) {
        throw new NerveError(ErrorCode.TooManyCalls, `at most ${MAX_CALLS_PER_CONNECTION} calls per connection`);
      }
      const result = await unanswered(this.deps.store.join(ref, { user: conn.user, conn: conn.id }, now));
      this.#track(ref, key, conn.id, conn.user);
      this.#reported(ref, result.started, result.ended);
    } else {
      await unanswered(this.#leave(ref, key, conn.id, now, 'left'));
    }
    conn.answer({ op: 'call', rid: frame.rid, room: frame.room, call: frame.call, action: frame.action, ts: now });
  }

  /** The connection leaves `room` (leave, close, room end): it leaves the room's calls. Never throws. */
  async leaveRoom(conn: Connection, room: string, reason: LeaveReason): Promise<void> {
    const keys = this.#byConn.get(conn.id);
    if (!keys) return;
    const now = Date.now();
    const leaving: Array<Promise<void>> = [];
    for (const key of keys) {
      const local = this.#calls.get(key);
      if (local?.ref.room === room) leaving.push(this.#leave(local.ref, key, conn.id, now, reason));
    }
    await Promise.all(leaving.map((leave) => leave.catch((error: unknown) => this.#storeFailed(error, 'leave'))));
  }

  /**
   * Refresh this node's participants (ending calls whose others expired,
   * and joining again those of ours that expired while this node was cut
   * off), then sweep the calls no live node refreshes. One at a time.
   */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    const now = Date.now();
    const { store } = this.deps;
    await Promise.all(
      [...this.#calls].map(async ([key, local]) => {
        try {
          const refreshed = await store.refresh(local.ref, [...local.conns.keys()], now);
          this.#reported(local.ref, undefined, refreshed.ended, 'node_crash');
          for (const conn of refreshed.missing) {
            const user = this.#calls.get(key)?.conns.get(conn);
            if (user === undefined) continue;
            const joined = await store.join(local.ref, { user, conn }, now);
            this.#reported(local.ref, joined.started, joined.ended);
          }
        } catch (error) {
          this.#storeFailed(error, 'refresh');
        }
      }),
    );
    try {
      for (const swept of await store.sweep(now)) this.#reported(swept.ref, undefined, swept.ended, 'node_crash');
    } catch (error) {
      this.#storeFailed(error, 'sweep');
    }
  }

  /** Forgotten locally first: should the store call fail, the entry is refreshed by nobody and expires. */
  async #leave(ref: CallRef, key: string, conn: string, now: number, reason: LeaveReason): Promise<void> {
    this.#untrack(key, conn);
    const result = await this.deps.store.leave(ref, conn, now);
    this.#reported(ref, undefined, result.ended, reason);
  }

  #track(ref: CallRef, key: string, conn: string, user: string): void {
    let local = this.#calls.get(key);
    if (!local) {
      local = { ref, conns: new Map() };
      this.#calls.set(key, local);
    }
    local.conns.set(conn, user);
    let keys = this.#byConn.get(conn);
    if (!keys) {
      keys = new Set();
      this.#byConn.set(conn, keys);
    }
    keys.add(key);
  }

  #untrack(key: string, conn: string): void {
    const local = this.#calls.get(key);
    if (local?.conns.delete(conn) && local.conns.size === 0) this.#calls.delete(key);
    const keys = this.#byConn.get(conn);
    if (keys?.delete(key) && keys.size === 0) this.#byConn.delete(conn);
  }

  /** Emit what the store reported to this node: an earlier life's end first (its participants had expired), then a start. */
  #reported(ref: CallRef, started: CallStart | undefined, ended: EndedCall | undefined, reason: LeaveReason = 'node_crash'): void {
    if (ended) this.#emit(ref, (source) => callEnded({ ...source, id: `${ended.id}.ended` }, endedData(ref, ended, reason)));
    if (started) {
      this.#emit(ref, (source) =>
        callStarted(
          { ...source, id: `${started.id}.started` },
          { call: ref.call, callSession: started.id, startedAt: started.startedAt, startedBy: started.startedBy },
        ),
      );
    }
  }

  /** The event id derives from the call's life, so an event emitted twice is one to every consumer. */
  #emit(ref: CallRef, build: (source: EventSource) => LifecycleEvent): void {
    const work = (async () => {
      const event = build(await this.deps.source(ref));
      this.deps.forget(ref);
      await this.deps.events.publish(event);
    })().catch((error: unknown) => {
      this.deps.metrics.drops.inc({ reason: 'event_unavailable' });
      this.deps.log.error({ err: errorText(error), tenant: ref.tenant, room: ref.room }, 'call event not accepted');
    });
    this.#work.add(work);
    void work.finally(() => this.#work.delete(work));
  }

  #storeFailed(error: unknown, call: string): void {
    this.deps.metrics.errors.inc({ code: 'call_store_unavailable' });
    this.deps.log.error({ err: errorText(error), call }, 'call store failed');
  }
}

/**
 * A store call sent and not answered is `unavailable` to the client too: a
 * join that did land is refreshed by nobody and expires at its join time
 * (nothing billed), a leave that did not is the same expiry.
 */
async function unanswered<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof OutcomeUnknownError) throw new NerveError(ErrorCode.Unavailable, 'the call store did not answer', { cause: error });
    throw error;
  }
}

function endedData(ref: CallRef, ended: EndedCall, reason: LeaveReason) {
  const participants = [...ended.participants].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  return {
    call: ref.call,
    callSession: ended.id,
    startedAt: ended.startedAt,
    endedAt: ended.endedAt,
    ms: Math.max(0, ended.endedAt - ended.startedAt),
    participants,
    peakParticipants: ended.peakParticipants,
    reason,
  };
}

function callKey(ref: CallRef): string {
  return JSON.stringify([ref.tenant, ref.room, ref.call]);
}
