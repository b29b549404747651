/**
 * Channel membership on the Pusher side: subscribe (with the channel's
 * signature and presence member checks), unsubscribe, sign-in, and the
 * local subscriber sets that the bus channels are acquired and released by.
 * Occupancy and members are kept in the presence lane (docs/pusher.md).
 */
import { randomUUID } from 'node:crypto';
import { deliverEnvelope } from '../bus/envelope.js';
import { errorText } from '../errors.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { MemberLeftFrame } from '../../packages/protocol/src/frames.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from '../../packages/protocol/src/nesting.js';
import type { PusherApp } from '../config/pusher-apps.js';
import { answerInvalid, reportFact, type PusherDeps } from './context.js';
import { PusherCode, channelKind, encodePusher, errorFrame, isCacheChannel, isValidChannelName, subscriptionError, type ChannelKind } from './protocol.js';
import { channelAuthValid, signinValid } from './signature.js';
import type { PusherSocket, Subscription } from './socket.js';
import type { PusherMemberJoined } from './translate.js';

/** A channel with Pusher subscribers on this node. */
export interface LocalChannel {
  app: PusherApp;
  name: string;
  kind: ChannelKind;
  sockets: Set<PusherSocket>;
}

/**
 * Occupancy of a channel is kept, for apps with `channel_occupied` /
 * `channel_vacated` webhooks, as presence-lane entries (one per
 * subscription) in a room of this prefix, which no nerve room id can have:
 * the lane's verdicts (first entry, last entry, a crashed node's entries
 * swept once) are exactly the cluster-wide occupied / vacated.
 */
const OCCUPANCY_PREFIX = '#occupancy:';

export class PusherChannels {
  /** Bus channel → the channel's local subscribers. */
  readonly channels = new Map<string, LocalChannel>();
  /** Bus channel of a signed-in user → that user's local sockets. */
  readonly users = new Map<string, Set<PusherSocket>>();

  constructor(private readonly deps: PusherDeps) {}

  async subscribe(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
    const name = data.channel;
    if (!isValidChannelName(name)) return answerInvalid(this.deps, socket, 'channel names are 1-164 characters of A-Z a-z 0-9 _ - = @ , . ;');
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
      if (!channelAuthValid(app, data.auth, socket.id, name, channelData))
        return refuse(401, `Invalid signature: expected HMAC SHA256 hex digest of ${socket.id}:${name}${kind === 'presence' ? ':<channel_data>' : ''}`);
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
        socket.log.warn({ err: errorText(error), channel: name }, 'presence unavailable');
        await this.leave(socket, sub);
        return refuse(503, 'presence is unavailable; retry');
      }
    }
    socket.event('pusher_internal:subscription_succeeded', JSON.stringify(presence ? { presence } : {}), name);
    if (wantsOccupancy(app)) {
      const added = await this.deps.presence
        .add(occupancyRef(app, name), { user: socket.id, conn: socket.id, node: this.deps.options.nodeId, ts: Date.now() })
        .catch((error: unknown) => socket.log.warn({ err: errorText(error), channel: name }, 'occupancy not recorded'));
      if (added?.roomStarted) reportFact(this.deps, { type: 'channel_occupied', app, channel: name });
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

  async unsubscribe(socket: PusherSocket, name: unknown): Promise<void> {
    if (typeof name !== 'string') return answerInvalid(this.deps, socket, 'pusher:unsubscribe needs a channel');
    const sub = socket.subscriptions.get(name);
    if (sub) await this.leave(socket, sub);
  }

  /** Take the socket out of every channel and its user channel (it closed). */
  async leaveAll(socket: PusherSocket): Promise<void> {
    await Promise.all([...socket.subscriptions.values()].map((sub) => this.leave(socket, sub)));
    await this.releaseUser(socket);
  }

  /** Take the socket out of a channel: presence first (member_removed), then the local listeners and the bus. */
  private async leave(socket: PusherSocket, sub: Subscription): Promise<void> {
    socket.subscriptions.delete(sub.name);
    const app = socket.app;
    try {
      if (sub.kind === 'presence' && sub.user !== undefined) {
        const ref = { tenant: app.tenant, room: sub.name };
        const removed = await this.deps.presence.remove(ref, { user: sub.user, conn: socket.id });
        if (removed.userLeft) {
          await this.deps.store.removeMemberInfo(app.tenant, sub.name, sub.user).catch(() => {});
          const frame: MemberLeftFrame = { op: 'member_left', room: sub.name, user: sub.user, ts: Date.now() };
          await this.publishPresence(sub.busChannel, encodeFrame(frame), socket.id);
          reportFact(this.deps, { type: 'member_removed', app, channel: sub.name, userId: sub.user });
        }
      }
      if (wantsOccupancy(app) && !sub.held) {
        const removed = await this.deps.presence.remove(occupancyRef(app, sub.name), { user: socket.id, conn: socket.id });
        if (removed.roomEmpty) reportFact(this.deps, { type: 'channel_vacated', app, channel: sub.name });
      }
    } catch (error) {
      socket.log.warn({ err: errorText(error), channel: sub.name }, 'presence remove failed');
    } finally {
      await this.removeLocal(socket, sub.busChannel);
    }
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

  private async announceJoin(app: PusherApp, name: string, busChannel: string, user: string, info: string | undefined, socketId: string): Promise<void> {
    const frame: PusherMemberJoined = { op: 'member_joined', room: name, user, ts: Date.now(), ...(info === undefined ? {} : { info }) };
    await this.publishPresence(busChannel, JSON.stringify(frame), socketId);
    reportFact(this.deps, { type: 'member_added', app, channel: name, userId: user });
  }

  /** A member frame on the room channel, for every node's subscribers; a failure is logged, not the subscriber's. */
  private async publishPresence(channel: string, payload: string, except: string): Promise<void> {
    const envelope = deliverEnvelope(this.deps.options.nodeId, 'presence', randomUUID(), payload, except);
    try {
      await this.deps.bus.publish(channel, envelope);
    } catch (error) {
      this.deps.log.warn({ err: errorText(error) }, 'pusher presence event not published');
    }
  }

  async signin(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
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
    if (sockets.size === 1)
      await this.deps.bus.acquire(channel).catch(() => socket.log.warn('user channel not subscribed: terminate_connections may miss this socket'));
    socket.event('pusher:signin_success', { user_data: userData });
  }

  userChannel(app: PusherApp, user: string): string {
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
   * Presence entries of a crashed node expired; the nerve gateway already
   * published their `member_left` (Pusher subscribers get member_removed
   * from it). Here: forget their infos and report the facts.
   */
  onPresenceExpired(ref: { tenant: string; room: string }, users: string[], roomEmpty: boolean): 'pusher' | undefined {
    const app = this.deps.apps.find((candidate) => candidate.tenant === ref.tenant);
    if (ref.room.startsWith(OCCUPANCY_PREFIX)) {
      if (app && roomEmpty) reportFact(this.deps, { type: 'channel_vacated', app, channel: ref.room.slice(OCCUPANCY_PREFIX.length) });
      return 'pusher';
    }
    if (!app || channelKind(ref.room) !== 'presence') return undefined;
    for (const user of users) {
      void this.deps.store.removeMemberInfo(app.tenant, ref.room, user).catch(() => {});
      reportFact(this.deps, { type: 'member_removed', app, channel: ref.room, userId: user });
    }
    return undefined;
  }

  /** This node's presence entries came back after it was cut off; its occupancy entries may make a channel occupied again. */
  onPresenceRestored(ref: { tenant: string; room: string }, roomStarted: boolean): 'pusher' | undefined {
    if (!ref.room.startsWith(OCCUPANCY_PREFIX)) return undefined;
    const app = this.deps.apps.find((candidate) => candidate.tenant === ref.tenant);
    if (app && roomStarted) reportFact(this.deps, { type: 'channel_occupied', app, channel: ref.room.slice(OCCUPANCY_PREFIX.length) });
    return 'pusher';
  }
}

function occupancyRef(app: PusherApp, channel: string): { tenant: string; room: string } {
  return { tenant: app.tenant, room: `${OCCUPANCY_PREFIX}${channel}` };
}

/** Whether an app has a webhook for channel_occupied or channel_vacated (then occupancy is kept). */
function wantsOccupancy(app: PusherApp): boolean {
  return app.webhooks.some((target) => target.events.includes('channel_occupied') || target.events.includes('channel_vacated'));
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
