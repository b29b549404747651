/**
 * Presence on Redis, shared by every node: one entry per connection with an
 * expiry that its instance refreshes every `heartbeatMs`; users are counted
 * once however many connections they have. A survivor removes a dead node's
 * entries `ttlMs` later and reports the users that left through `onExpire`,
 * once; an instance cut off that long adds its entries back (`onRejoin`).
 * How dead nodes are found and swept, and why a removed connection never
 * comes back: docs/architecture.md, "Presence across nodes". Layout and
 * scripts: redis-scripts.ts; options: redis-options.ts; the record of
 * this instance's own entries: redis-local.ts.
 */
import { escapeComponent, hashTag } from '../bus/channels.js';
import { errorText } from '../errors.js';
import type { RoomRef } from '../history/history.js';
import type { LuaArg, LuaScript } from '../redis/lua-script.js';
import { RedisScriptLane } from '../redis/script-lane.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { Member } from '../../packages/protocol/src/frames.js';
import type { AddResult, MemberList, Presence, PresenceEntry, RemoveResult } from './presence.js';
import { presenceSettings, type PresenceExpiry, type PresenceRejoin, type RedisPresenceOptions } from './redis-options.js';
import {
  addScript,
  heartbeatScript,
  indexRoomsScript,
  membersScript,
  registerScript,
  removeScript,
  restoreScript,
  setStateScript,
  hasUserScript,
  sweepScript,
} from './redis-scripts.js';
import { memberOf } from './state.js';
import { roomMember, sweepDeadNodes, SWEEP_BATCH, type SweepAccess } from './redis-sweep.js';
import type { LocalEntry, LocalRoom } from './redis-local.js';

interface ScriptReply {
  r1: number;
  r2: number;
  rest: unknown[];
}

export class RedisPresence extends RedisScriptLane implements Presence {
  readonly driver = 'redis';
  readonly clusterWide = true;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly heartbeatMs: number;
  private readonly onExpire: (room: RoomRef, expiry: PresenceExpiry) => void;
  private readonly onRejoin: (room: RoomRef, rejoin: PresenceRejoin) => void;
  private readonly now: () => number;
  private readonly keyTtlMs: number;
  /** This instance's id in the node registry. */
  readonly instanceId: string;
  /** This node's entries, refreshed by the heartbeat. */
  private readonly local = new Map<string, LocalRoom>();
  private timer: NodeJS.Timeout | undefined;
  /** Why the last heartbeat failed; cleared by the next one that succeeds. */
  private heartbeatFailure: string | undefined;
  /** The sweep of dead instances in progress, so that a slow one is not started twice. */
  private sweeping: Promise<void> | undefined;
  private readonly sweepAccess: SweepAccess;

  constructor(options: RedisPresenceOptions) {
    const settings = presenceSettings(options);
    super(options, { lane: 'presence', subject: 'presence is', connectFor: 'presence', store: 'presence store' });
    this.prefix = settings.prefix;
    this.ttlMs = settings.ttlMs;
    this.heartbeatMs = settings.heartbeatMs;
    this.keyTtlMs = settings.keyTtlMs;
    this.instanceId = settings.instanceId;
    this.onExpire = options.onExpire ?? (() => {});
    this.onRejoin = options.onRejoin ?? (() => {});
    this.now = options.now ?? Date.now;
    this.sweepAccess = {
      client: this.client,
      instanceId: this.instanceId,
      ttlMs: this.ttlMs,
      registryKey: this.registryKey(),
      nodeKey: (id, suffix) => this.nodeKey(id, suffix),
      command: (call) => this.command(call),
      sweepRoom: (room, now) => this.run(sweepScript, room, [now]),
      recordFailure: this.recordFailure,
    };
  }

  start(): Promise<void> {
    return this.startLane();
  }

  protected override async starting(): Promise<void> {
    try {
      await registerScript.run(this.client, [this.registryKey()], [this.instanceId, this.now() + this.ttlMs, this.keyTtlMs]);
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, 'cannot register presence in Redis', { cause: error });
    }
  }

  protected override async started(): Promise<void> {
    // A node restarted after a crash cleans up after its predecessor (and any other dead node) now, not a heartbeat later.
    await this.sweepDeadNodes(this.now()).catch(this.recordFailure);
    if (this.heartbeatMs > 0 && !this.timer) {
      this.timer = setInterval(() => {
        // Failures show in health(); the next beat retries.
        this.heartbeat().catch(this.recordFailure);
      }, this.heartbeatMs);
      this.timer.unref();
    }
  }

  /** Back after a loss: register and refresh (or add back) this node's entries now, not a heartbeat later. */
  protected override restored(): void {
    if (this.state === 'running') this.heartbeat().catch(this.recordFailure);
  }

  async add(room: RoomRef, entry: PresenceEntry): Promise<AddResult> {
    const member = JSON.stringify([entry.user, entry.conn]);
    const now = this.now();
    const base = roomBase(room);
    this.assertRunning();
    let local = this.local.get(base);
    const indexed = local !== undefined;
    if (!local) {
      local = { room: { tenant: room.tenant, room: room.room }, entries: new Map(), pending: 0, restoring: undefined, lingerUntil: 0 };
      this.local.set(base, local);
    }
    local.pending += 1;
    const work = (async () => {
      // Index first, so that whenever the entry exists the registration outlives it and the room is listed.
      await this.index(now, indexed ? [] : [room]);
      return this.run(addScript, room, [now, member, entry.user, entry.ts, now + this.ttlMs, this.keyTtlMs, entry.state ?? '']);
    })();
    // Known at once (a remove starting now must wait for this add), refreshed once the add replied.
    const known = local.entries.get(member);
    if (known && entry.state !== undefined) known.state = entry.state;
    const mine: LocalEntry | undefined = known ? undefined : { user: entry.user, since: entry.ts, state: entry.state ?? '', adding: work };
    if (mine) local.entries.set(member, mine);
    try {
      const reply = await work;
      if (mine) mine.adding = undefined;
      return { userJoined: reply.r1 === 1, roomStarted: reply.r2 === 1, count: Number(reply.rest[0] ?? 0) };
    } catch (error) {
      if (mine && local.entries.get(member) === mine) local.entries.delete(member);
      // The script may have run all the same: keep touching the room until such an entry expired (and was reported).
      local.lingerUntil = Math.max(local.lingerUntil, now + this.ttlMs);
      throw error;
    } finally {
      local.pending -= 1;
      void this.settle(base, local, this.now());
    }
  }

  async remove(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>): Promise<RemoveResult> {
    const member = JSON.stringify([entry.user, entry.conn]);
    this.assertRunning();
    const base = roomBase(room);
    const local = this.local.get(base);
    const entryOf = local?.entries.get(member);
    // Forgotten before anything is sent: no heartbeat or restore from now on includes this connection.
    if (local) {
      local.entries.delete(member);
      local.pending += 1;
    }
    try {
      // An add of this connection or a restore of its room still in flight runs first in Redis, so it cannot bring the connection back.
      const before = [entryOf?.adding, local?.restoring].filter((work) => work !== undefined);
      if (before.length > 0) await Promise.allSettled(before);
      const reply = await this.run(removeScript, room, [this.now(), member, entry.user]);
      return { userLeft: reply.r1 === 1, roomEmpty: reply.r2 === 1, count: Number(reply.rest[0] ?? 0) };
    } catch (error) {
      // The entry may still be in Redis, refreshed by nobody: keep touching the room until it expired (and was reported).
      if (local) local.lingerUntil = Math.max(local.lingerUntil, this.now() + this.ttlMs);
      throw error;
    } finally {
      if (local) {
        local.pending -= 1;
        await this.settle(base, local, this.now());
      }
    }
  }

  async members(room: RoomRef): Promise<Member[]> {
    return (await this.list(room)).members;
  }

  async has(room: RoomRef, user: string): Promise<boolean> {
    const reply = await this.run(hasUserScript, room, [this.now(), user]);
    return reply.r1 === 1;
  }

  async list(room: RoomRef, limit?: number): Promise<MemberList> {
    const bound = limit === undefined || !Number.isFinite(limit) ? -1 : Math.max(0, Math.floor(limit));
    const reply = await this.run(membersScript, room, [this.now(), bound]);
    const members: Member[] = [];
    for (let i = 1; i + 2 < reply.rest.length; i += 3) {
      members.push(memberOf(String(reply.rest[i]), Number(reply.rest[i + 1]), String(reply.rest[i + 2])));
    }
    return { members, count: Number(reply.rest[0] ?? 0) };
  }

  async setState(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>, state: string): Promise<boolean> {
    const member = JSON.stringify([entry.user, entry.conn]);
    this.assertRunning();
    const known = this.local.get(roomBase(room))?.entries.get(member);
    if (known) known.state = state;
    const reply = await this.run(setStateScript, room, [this.now(), member, entry.user, state, this.keyTtlMs]);
    return reply.r1 === 1;
  }

  /**
   * Refresh this instance's registration and entries (which also sweeps
   * their rooms), add back entries that expired while this instance was cut
   * off or stalled (reported through `onRejoin`), then sweep the rooms of
   * instances whose registration expired.
   */
  async heartbeat(): Promise<void> {
    const now = this.now();
    try {
      // Registration first: it must never expire before an entry it covers.
      await this.index(
        now,
        [...this.local.values()].map((local) => local.room),
      );
      await Promise.all([...this.local].map(([base, local]) => this.beat(base, local, now)));
      await this.sweepDeadNodes(now);
      this.heartbeatFailure = undefined;
    } catch (error) {
      // Shown by health() until a beat succeeds: while beats fail, survivors will report this
      // node's members as gone. The root cause (the store's own words), under the wrappers.
      let cause = error;
      while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
      this.heartbeatFailure = errorText(cause);
      throw error;
    }
  }

  protected override healthProblem(): string | undefined {
    return this.heartbeatFailure === undefined ? undefined : `heartbeat failed: ${this.heartbeatFailure}`;
  }

  /**
   * On close this node's entries are left to expire: the gateway removes its
   * connections (with leave events) before closing lanes, and a crash must
   * behave the same anyway.
   */
  protected override async stopping(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping?.catch(() => {});
    if (this.local.size === 0 && this.client.status === 'ready') {
      // Nothing of ours is left: leave the registry now. With entries left (a close that behaves like a crash) a survivor sweeps them.
      await Promise.all([this.client.zrem(this.registryKey(), this.instanceId), this.client.unlink(this.nodeKey(this.instanceId, 'rooms'))]).catch(
        this.recordFailure,
      );
    }
    this.local.clear();
  }

  /** The room's key for `suffix`; tests use it to delete what they created. */
  key(room: RoomRef, suffix: string): string {
    return `${this.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:presence:${suffix}`;
  }

  /** The node registry key (ZSET instance id → registration expiry). */
  registryKey(): string {
    return `${this.prefix}:presence:nodes`;
  }

  /** An instance's index key: the set of rooms it has entries in, or the lock of the survivor sweeping it. */
  nodeKey(instanceId: string, suffix: 'rooms' | 'sweep'): string {
    return `${this.prefix}:presence:node:{${instanceId}}:${suffix}`;
  }

  /**
   * Refresh this instance's entries in one room. They are read in the same
   * tick as the script is sent, and the script only refreshes entries that
   * exist, so a connection being removed is never written again. Those found
   * missing are restored.
   */
  private async beat(base: string, local: LocalRoom, now: number): Promise<void> {
    const args: LuaArg[] = [now, now + this.ttlMs, this.keyTtlMs];
    for (const [member, entry] of local.entries) if (!entry.adding) args.push(member);
    const reply = await this.run(heartbeatScript, local.room, args);
    if (reply.r1 > 0) await this.restore(local, reply.rest.map(String), now);
    // A room kept after a failed add or remove is forgotten once what it might hold has expired.
    await this.settle(base, local, now);
  }

  /**
   * Add back entries of this instance that the heartbeat found missing:
   * they expired while it was cut off or stalled (a survivor, or this
   * instance's own scripts, reported their leave). A connection whose remove
   * began meanwhile is left out (read in the same tick as the script is
   * sent), and a remove beginning later waits for this script.
   */
  private async restore(local: LocalRoom, missing: string[], now: number): Promise<void> {
    const args: LuaArg[] = [now, now + this.ttlMs, this.keyTtlMs];
    for (const member of missing) {
      const entry = local.entries.get(member);
      if (entry && !entry.adding) args.push(member, entry.user, entry.since, entry.state);
    }
    if (args.length === 3) return;
    const sent = this.run(restoreScript, local.room, args);
    const restoring = local.restoring ? Promise.allSettled([local.restoring, sent]) : sent;
    local.restoring = restoring;
    try {
      const reply = await sent;
      const users = reply.rest.map(String);
      if (users.length === 0) return;
      try {
        this.onRejoin({ tenant: local.room.tenant, room: local.room.room }, { users, roomStarted: reply.r2 === 1 });
      } catch (error) {
        this.lastError = `onRejoin threw: ${errorText(error)}`;
      }
    } finally {
      if (local.restoring === restoring) local.restoring = undefined;
    }
  }

  /**
   * Forget a room this instance has nothing in any more (no entry, nothing
   * in flight, not kept past `now`) and unlist it from its index.
   */
  private async settle(base: string, local: LocalRoom, now: number): Promise<void> {
    if (local.pending > 0 || local.entries.size > 0 || local.lingerUntil >= now || this.local.get(base) !== local) return;
    this.local.delete(base);
    // Best effort: a room left in the set costs a survivor one empty sweep. An add starting now lists it
    // again after this SREM (same key, same connection, so Redis applies them in that order).
    await this.command(() => this.client.srem(this.nodeKey(this.instanceId, 'rooms'), roomMember(local.room))).catch(this.recordFailure);
  }

  /** Register (or refresh) this instance until `now + ttlMs` and list `rooms` in its room set. */
  private async index(now: number, rooms: RoomRef[]): Promise<void> {
    this.assertRunning();
    const roomsKey = this.nodeKey(this.instanceId, 'rooms');
    const writes: Array<Promise<unknown>> = [registerScript.run(this.client, [this.registryKey()], [this.instanceId, now + this.ttlMs, this.keyTtlMs])];
    for (let i = 0; i < rooms.length; i += SWEEP_BATCH) {
      const batch = rooms.slice(i, i + SWEEP_BATCH).map(roomMember);
      writes.push(indexRoomsScript.run(this.client, [roomsKey], [this.keyTtlMs, ...batch]));
    }
    await this.command(() => Promise.all(writes));
  }

  /** Sweep the instances whose registration expired by `now`; one sweep at a time per instance of ours. */
  private sweepDeadNodes(now: number): Promise<void> {
    this.sweeping ??= sweepDeadNodes(this.sweepAccess, now).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** One index command; a store failure becomes an unavailable NerveError. */
  private async command<T>(call: () => Promise<T>): Promise<T> {
    this.assertRunning();
    try {
      return await call();
    } catch (error) {
      throw this.storeUnavailable(error);
    }
  }

  private async run(script: LuaScript, room: RoomRef, args: LuaArg[]): Promise<ScriptReply> {
    // Sent, not answered (OutcomeUnknownError): the entry may be written or removed; the caller's linger keeps such a room refreshed until it expired.
    const raw = await this.runScript(script, [this.key(room, 'conns'), this.key(room, 'users'), this.key(room, 'counts'), this.key(room, 'states')], args);
    if (!Array.isArray(raw) || raw.length < 4) throw new NerveError(ErrorCode.Internal, `unexpected reply from ${script.name}`);
    const left = Number(raw[3]);
    const users = raw.slice(4, 4 + left).map(String);
    if (users.length > 0) {
      try {
        this.onExpire({ tenant: room.tenant, room: room.room }, { users, roomEmpty: raw[2] === 1 });
      } catch (error) {
        // The expiry is already applied in Redis; a failing listener must not fail this call too.
        this.lastError = `onExpire threw: ${errorText(error)}`;
      }
    }
    return { r1: Number(raw[0]), r2: Number(raw[1]), rest: raw.slice(4 + left) };
  }
}

function roomBase(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}
