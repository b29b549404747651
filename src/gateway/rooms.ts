/**
 * Room membership: `join` (subscribe, hold live frames, read history,
 * answer, release), `leave`, `presence`, and the leave every local member
 * makes when the server API ends the room. Presence changes go on to the
 * room lifecycle (room-lifecycle.ts).
 */
import type { Authenticator } from '../auth/authenticator.js';
import type { Bus } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { NodeOptions } from '../config/options.js';
import { errorText } from '../errors.js';
import type { LeaveReason } from '../events/events.js';
import type { History, RoomRef } from '../history/history.js';
import { clip, type Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { Presence } from '../presence/presence.js';
import type { TenantGuard } from '../quotas/guard.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { JoinFrame, LeaveFrame, PresenceFrame, RoomEndedFrame } from '../../packages/protocol/src/frames.js';
import { offsetStep } from '../../packages/protocol/src/positions.js';
import { scanChatTail, tailHasEpoch } from './chat-gap.js';
import type { ChatRecovery } from './chat-recovery.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';
import type { LocalRooms } from './local-rooms.js';
import type { MemberPushes } from './member-pushes.js';
import type { PresenceStates } from './presence-state.js';
import type { RoomLifecycle } from './room-lifecycle.js';
import type { CallParticipation } from './call-participation.js';
import type { ReadReceipts } from './read-receipts.js';

/** Every encoded chat message starts so (the frame is built with `op` and `class` first, in memory and Redis history alike). */
const CHAT_FRAME_PREFIX = '{"op":"message","class":"chat",';

interface RoomsDeps {
  options: NodeOptions;
  authenticator: Authenticator;
  namer: ChannelNamer;
  bus: Bus;
  presence: Presence;
  history: History;
  metrics: NodeMetrics;
  log: Logger;
  tenants?: TenantGuard | undefined;
  nodeId: string;
  local: LocalRooms;
  lifecycle: RoomLifecycle;
  calls: Pick<CallParticipation, 'leaveRoom'>;
  recovery: Pick<ChatRecovery, 'noteJoinPosition'>;
  states: Pick<PresenceStates, 'stateOf' | 'announce'>;
  members: Pick<MemberPushes, 'noteCount' | 'forget'>;
  reads: Pick<ReadReceipts, 'snapshot' | 'joined'>;
}

export class Rooms {
  constructor(private readonly deps: RoomsDeps) {}

  async join(conn: Connection, frame: JoinFrame): Promise<void> {
    const { deps } = this;
    const limits = deps.options.limits;
    checkRoom(frame.room, limits.maxRoomIdLength);
    if (frame.token !== undefined) {
      const authenticator = deps.authenticator;
      if (!authenticator.verifyJoinToken) throw new NerveError(ErrorCode.Forbidden, 'join tokens need JWT authentication');
      const grant = await authenticator.verifyJoinToken(frame.token, conn.identity!, frame.room);
      conn.grant(frame.room, new Set(grant.rights));
    }
    if (!conn.hasRight(frame.room, 'join')) {
      if (!conn.rooms.has(frame.room)) conn.revokeGrants(frame.room);
      throw new NerveError(ErrorCode.Forbidden, 'no `join` right in this room');
    }
    const rejoin = conn.rooms.has(frame.room);
    if (!rejoin && conn.rooms.size >= limits.maxRoomsPerConnection) {
      throw new NerveError(ErrorCode.TooManyRooms, `at most ${limits.maxRoomsPerConnection} rooms per connection`);
    }
    if (!rejoin) {
      const admitted = deps.tenants?.joinRoom(conn.tenant, frame.room);
      if (admitted) await admitted;
    }
    const ref: RoomRef = { tenant: conn.tenant, room: frame.room };
    const channel = deps.namer.room(conn.tenant, frame.room);
    // Checked before anything changes: a state too large refuses the join.
    const state = rejoin ? undefined : deps.states.stateOf(conn, frame.state);

    // Subscribe first and hold live frames, then read history, then answer
    // and release the held frames, skipping chat already in the answer.
    conn.startJoin(frame.room);
    let entered = false;
    try {
      if (!rejoin) {
        conn.rooms.add(frame.room);
        entered = true;
        if (deps.local.add(channel, 'room', conn.tenant, frame.room, conn)) await deps.bus.acquire(channel);
        deps.metrics.rooms.set(deps.local.rooms());
        const now = Date.now();
        const added = await deps.presence.add(ref, {
          user: conn.user,
          conn: conn.id,
          node: deps.nodeId,
          ts: now,
          ...(state === undefined ? {} : { state: state.text }),
        });
        deps.members.noteCount(channel, added.count);
        if (added.roomStarted) deps.lifecycle.sessionStarted(ref, channel, conn.user, now);
        if (added.userJoined) {
          await deps.lifecycle.memberJoined(ref, channel, conn.user, now, conn.id, {
            count: added.count,
            ...(state === undefined ? {} : { state: state.state }),
          });
        } else if (state !== undefined) await deps.states.announce(ref, conn.user, state.state, conn.id);
        deps.metrics.joins.inc();
      }
      const limit = frame.history ?? limits.historyOnJoin;
      const [read, list, snapshot] = await Promise.all([
        frame.since
          ? deps.history.since(ref, frame.since, limits.recoveryLimit)
          : deps.history.recent(ref, limit).then((recent) => ({ ...recent, recovered: undefined })),
        // A large room answers with its count and its first members, not all of them.
        deps.presence.list(ref, limits.presenceListMax > 0 ? limits.presenceListMax : undefined),
        deps.reads.snapshot(ref, conn.user),
      ]);
      const seesMembers = conn.hasRight(frame.room, 'presence');
      // Others' read positions are presence too: who is active, and where.
      const reads = await deps.reads.joined(ref, conn.user, snapshot, read.position, read.messages, seesMembers);
      conn.answer({
        op: 'joined',
        rid: frame.rid,
        room: frame.room,
        // The member list is presence: only with the `presence` right.
        members: seesMembers ? list.members : [],
        count: seesMembers ? list.count : 0,
        history: read.messages,
        position: read.position,
        ...(read.recovered === undefined ? {} : { recovered: read.recovered }),
        ...reads,
      });
      deps.recovery.noteJoinPosition(channel, read.position.epoch, read.position.offset);
      this.releaseHeld(conn, frame.room, channel, read.position.epoch, read.position.offset);
    } catch (error) {
      conn.endJoin(frame.room);
      // A join that failed half-way is undone, so the client is either in
      // the room (presence, subscription, events) or not at all.
      if (entered) await this.leaveRoom(conn, frame.room, 'join_failed').catch(() => {});
      throw error;
    }
  }

  /**
   * Send the frames held during a join, minus chat messages the join answer
   * already carried. Chat the answer carried can also come later: the
   * history read and the bus are separate connections, so a message stored
   * just before the read may reach this node on the bus after the answer
   * left. Unless this node already delivered the room up to the answer's
   * position, the connection keeps that position as a floor (fanOut skips
   * its chat at or below it).
   */
  private releaseHeld(conn: Connection, room: string, channel: string, epoch: string, offset: number): void {
    const held = conn.endJoin(room);
    for (const payload of held) {
      const tail = payload.startsWith(CHAT_FRAME_PREFIX) ? scanChatTail(payload) : undefined;
      if (tail && offsetStep(offset, tailHasEpoch(payload, tail, epoch), tail.offset) === 'seen') continue;
      conn.afterSend(conn.deliver(payload, false), 'message');
    }
    const cursor = this.deps.local.get(channel)?.chat;
    const caughtUp =
      cursor !== undefined &&
      cursor.known &&
      !cursor.recovering &&
      cursor.held === undefined &&
      offsetStep(cursor.offset, cursor.epoch === epoch, offset) === 'seen';
    if (caughtUp) conn.clearChatFloor(room);
    else conn.setChatFloor(room, epoch, offset);
  }

  async leave(conn: Connection, frame: LeaveFrame): Promise<void> {
    checkRoom(frame.room, this.deps.options.limits.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'not in that room');
    conn.revokeGrants(frame.room);
    await this.leaveRoom(conn, frame.room, 'left');
    conn.answer({ op: 'left', rid: frame.rid, room: frame.room });
  }

  /** Leave one room: presence, the lifecycle's notices and events, then the channel. Also on close, failed joins and room ends. */
  async leaveRoom(conn: Connection, room: string, reason: LeaveReason): Promise<void> {
    const { deps } = this;
    conn.rooms.delete(room);
    conn.endJoin(room);
    const ref: RoomRef = { tenant: conn.tenant, room };
    const channel = deps.namer.room(conn.tenant, room);
    // Its calls first (never throws): a call.ended comes before the participant.left.
    await deps.calls.leaveRoom(conn, room, reason);
    try {
      const removed = await deps.presence.remove(ref, { user: conn.user, conn: conn.id });
      if (removed.userLeft) await deps.lifecycle.memberLeft(ref, channel, conn.user, Date.now(), reason, conn.id, removed.count);
      if (removed.roomEmpty) {
        // A room emptied by an end-room request ended because of the API.
        deps.lifecycle.endSession(ref, channel, reason === 'room_ended' ? 'api' : 'empty');
      }
    } finally {
      // Only now: until it is out of the channel's listeners, the connection still gets the room's live chat.
      conn.clearChatFloor(room);
      if (deps.local.remove(channel, conn)) {
        deps.members.forget(channel);
        deps.lifecycle.forgetSessionWhenIdle(ref, channel);
        await deps.bus.release(channel).catch(() => {});
      }
      deps.metrics.rooms.set(deps.local.rooms());
    }
  }

  async presenceQuery(conn: Connection, frame: PresenceFrame): Promise<void> {
    checkRoom(frame.room, this.deps.options.limits.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room to see its members');
    requireRight(conn, frame.room, 'presence');
    const max = this.deps.options.limits.presenceListMax;
    const list = await this.deps.presence.list({ tenant: conn.tenant, room: frame.room }, max > 0 ? max : undefined);
    conn.answer({ op: 'presence', rid: frame.rid, room: frame.room, members: list.members, count: list.count });
  }

  /** A `room.end` command reached this node: every local member of the room leaves it. */
  onRoomEnd(channel: string, command: { room: string; reason: string }): void {
    const target = this.deps.local.get(channel);
    if (target?.kind !== 'room' || target.id !== command.room) return;
    const frame: RoomEndedFrame = { op: 'room_ended', room: command.room, reason: command.reason.slice(0, 200), ts: Date.now() };
    const payload = encodeFrame(frame);
    this.deps.log.info({ tenant: target.tenant, room: clip(command.room), members: target.connections.size }, 'room ended by the server API');
    for (const conn of [...target.connections]) {
      // In the connection's request queue, after its pipelined publishes are answered,
      // so it never races the client's own join, leave or publish.
      conn.enqueue(async () => {
        await conn.answered;
        if (!conn.rooms.has(command.room)) return;
        conn.revokeGrants(command.room);
        await this.leaveRoom(conn, command.room, 'room_ended').catch((error: unknown) => conn.log.warn({ err: errorText(error) }, 'leave on room end failed'));
        if (conn.state === 'open') conn.afterSend(conn.deliver(payload, false), 'room_ended');
      });
    }
  }
}
