/**
 * Room lifecycle: what a presence change means for the room's session
 * (src/sessions) and its cold-lane events (room.created, participant.*,
 * room.ended), and the member_joined / member_left notices to the room.
 * Session work runs per room in order, after the join or leave that caused
 * it, never making it wait or fail.
 */
import { randomUUID } from 'node:crypto';
import type { ChannelNamer } from '../bus/channels.js';
import type { EventLog, LifecycleEvent } from '../events/event-log.js';
import { participantJoined, participantLeft, roomCreated, roomEnded, type EventSource, type LeaveReason } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import { errorText } from '../errors.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { RoomSessions } from '../sessions/sessions.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { MemberJoinedFrame, MemberLeftFrame, PresenceState } from '../../packages/protocol/src/frames.js';
import type { LocalRooms } from './local-rooms.js';

interface RoomLifecycleDeps {
  sessions: RoomSessions;
  events: EventLog;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  nodeId: string;
  local: LocalRooms;
  /** Publish a presence notice on the room channel, best effort (never throws); `except`: the connection that must not get it. */
  announce: (channel: string, payload: string, except: string | undefined) => Promise<void>;
}

export class RoomLifecycle {
  /**
   * Session id per room channel, as last learned from the store (start,
   * join, or a read on a miss); dropped when the session ends or this node
   * has no member left in the room, so a later session is read afresh.
   */
  readonly #sessionIds = new Map<string, string>();
  /** Per room channel, the tail of its session work (store call, then event), run in order after the join or leave. */
  readonly #sessionWork = new Map<string, Promise<void>>();

  constructor(private readonly deps: RoomLifecycleDeps) {}

  /** Settles once the session work queued so far is done (drain waits for it before the lanes close). */
  settled(): Promise<unknown> {
    return Promise.allSettled([...this.#sessionWork.values()]);
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
  sessionStarted(ref: RoomRef, channel: string, createdBy: string | undefined, now: number): void {
    this.sessionStep(ref, channel, async () => {
      const id = await this.stored('start', ref, () => this.deps.sessions.start(ref, now));
      // Whatever this node cached belongs to an earlier session.
      if (id === undefined) this.#sessionIds.delete(channel);
      else this.#sessionIds.set(channel, id);
      this.emitEvent(roomCreated(await this.source(ref, channel), createdBy === undefined ? {} : { createdBy }));
    });
  }

  /**
   * A user joined a room cluster-wide (first connection, or restored):
   * member_joined to the room (never to `conn`, whose join answer lists the
   * members), then the session step and participant.joined. `notice`: the
   * count after the join and the member's state, when known.
   */
  async memberJoined(
    ref: RoomRef,
    channel: string,
    user: string,
    now: number,
    conn?: string,
    notice: { count?: number; state?: PresenceState } = {},
  ): Promise<void> {
    // Queued first, in this tick: session steps keep the order of the presence changes that caused them.
    this.sessionStep(ref, channel, async () => {
      const id = await this.stored('joined', ref, () => this.deps.sessions.joined(ref, user, now));
      if (id !== undefined) this.#sessionIds.set(channel, id);
      this.emitEvent(participantJoined(await this.source(ref, channel), { user, ...(conn === undefined ? {} : { conn }) }));
    });
    const event: MemberJoinedFrame = { op: 'member_joined', room: ref.room, user, ts: now, ...notice };
    await this.deps.announce(channel, encodeFrame(event), conn);
  }

  /** A user left a room cluster-wide (last connection, or expired): member_left, then the session step and participant.left. */
  async memberLeft(ref: RoomRef, channel: string, user: string, now: number, reason: LeaveReason, conn?: string, count?: number): Promise<void> {
    // Queued first, in this tick: a room.ended queued right after must see this leave recorded.
    this.sessionStep(ref, channel, async () => {
      const ms = await this.stored('left', ref, () => this.deps.sessions.left(ref, user, now));
      this.emitEvent(
        participantLeft(await this.source(ref, channel), { user, reason, ...(conn === undefined ? {} : { conn }), ...(ms === undefined ? {} : { ms }) }),
      );
    });
    const event: MemberLeftFrame = { op: 'member_left', room: ref.room, user, ts: now, ...(count === undefined ? {} : { count }) };
    await this.deps.announce(channel, encodeFrame(event), conn);
  }

  /**
   * Where an event happened: tenant, room, this node, and the room's
   * session: the cached id, else the store's (cached from then on), else,
   * with the store unavailable, a new id so the event still goes out.
   */
  async source(ref: RoomRef, channel: string): Promise<EventSource> {
    let session = this.#sessionIds.get(channel);
    if (session === undefined) {
      session = (await this.stored('current', ref, () => this.deps.sessions.current(ref))) ?? randomUUID();
      this.#sessionIds.set(channel, session);
    }
    return { tenant: ref.tenant, room: ref.room, node: this.deps.nodeId, session };
  }

  /** Presence emptied the room (on this node only, cluster-wide): close its session and emit room.ended. */
  endSession(ref: RoomRef, channel: string, reason: 'empty' | 'api' = 'empty'): void {
    const now = Date.now();
    this.sessionStep(ref, channel, async () => {
      const ended = await this.stored('end', ref, () => this.deps.sessions.end(ref, now));
      const source = ended ? { tenant: ref.tenant, room: ref.room, node: this.deps.nodeId, session: ended.id } : await this.source(ref, channel);
      this.#sessionIds.delete(channel);
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

  /** Once the session work queued so far is done, drop the cached id if this node has no member in the room. */
  forgetSessionWhenIdle(ref: RoomRef, channel: string): void {
    this.sessionStep(ref, channel, async () => {
      if (this.deps.local.get(channel) === undefined) this.#sessionIds.delete(channel);
    });
  }

  /**
   * In order per room on this node (start → joined → left → end), so each
   * event carries the figures of the steps before it.
   */
  private sessionStep(ref: RoomRef, channel: string, step: () => Promise<void>): void {
    const previous = this.#sessionWork.get(channel) ?? Promise.resolve();
    const next = previous.then(step).catch((error: unknown) => {
      this.deps.log.error({ err: errorText(error), tenant: ref.tenant, room: ref.room }, 'room session step failed');
    });
    this.#sessionWork.set(channel, next);
    void next.finally(() => {
      if (this.#sessionWork.get(channel) === next) this.#sessionWork.delete(channel);
    });
  }

  /** A session store call; on failure `undefined`, logged and counted (events go out with what this node has). */
  private async stored<T>(call: string, ref: RoomRef, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (error) {
      this.deps.metrics.errors.inc({ code: 'session_unavailable' });
      this.deps.log.error({ err: errorText(error), call, tenant: ref.tenant, room: ref.room }, 'room session store failed');
      return undefined;
    }
  }

  /** Lifecycle events from joins and leaves: failures are logged and counted, never thrown at the client. */
  private emitEvent(event: LifecycleEvent): void {
    this.deps.events.publish(event).catch((error: unknown) => {
      this.deps.metrics.drops.inc({ reason: 'event_unavailable' });
      this.deps.log.error({ err: errorText(error), type: event.type }, 'lifecycle event not accepted');
    });
  }
}
