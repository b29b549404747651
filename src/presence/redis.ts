/**
 * Presence on Redis, shared by every node. Each connection is an entry with
 * an expiry time; the instance that added it refreshes it every
 * `heartbeatMs`. When a node dies its entries stop being refreshed and,
 * `ttlMs` later, a survivor removes them and reports the users that left
 * through `onExpire`, once, on the instance whose script removed them (the
 * gateway turns that into member_left, participant.left and room.ended).
 * Users are counted once however many connections they have. Layout and
 * scripts: src/presence/redis-scripts.ts.
 *
 * Who sweeps a dead node's rooms: any script touching a room removes its
 * expired entries, but a room whose members were all on the dead node may
 * never be touched again. So every instance registers itself in a node
 * registry (expiry refreshed by its heartbeat, never earlier than the expiry
 * of an entry it wrote) and keeps the set of rooms it has entries in. Each
 * heartbeat (and start) looks for registrations that expired, takes a short
 * lock per dead instance so that one survivor does the work, sweeps each of
 * its rooms and deletes its index. The room scripts stay the only place
 * where entries are removed, so a leave is reported exactly once even when
 * sweeps overlap. Worst case a dead node's members leave `ttlMs +
 * heartbeatMs` after its last heartbeat. Room keys live `KEY_TTL_FACTOR`
 * TTLs so the sweeper still finds them; if every node is down longer than
 * that, the keys expire without leave events (nobody is there to send them).
 *
 * Expiry times come from each node's clock (`now`), so clocks must agree to
 * well within `ttlMs` (NTP does). An instance judged dead only because it
 * was cut off (or its event loop stalled) longer than `ttlMs` registers
 * again at its next heartbeat, which finds its entries gone and adds them
 * back explicitly (`restoreScript`), reporting the users that thereby joined
 * again through `onRejoin` (their leave went out through `onExpire`).
 *
 * A connection that left never comes back: `remove` forgets the local entry
 * before it sends its script, the heartbeat script only refreshes entries
 * that exist (it never creates one), the entries to restore are read in the
 * same tick as the restore is sent, and a remove waits for an add of the
 * same connection or a restore of its room still in flight. So a remove
 * runs in Redis after every script that could create its entry, whatever
 * the wire order (a NOSCRIPT retry can reorder scripts on one connection).
 *
 * Runs on standalone Redis (`url`) or Redis Cluster (`nodes`, or a `Cluster`
 * as `client`): a room's keys share its hash tag (`hashTag` in
 * src/bus/channels.ts, the same as its history keys and, with hashTags, its
 * channel), so every room script touches one slot; the index keys live in
 * other slots and are only touched by single-key commands.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { escapeComponent, hashTag } from '../bus/channels.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { Member } from '../../packages/protocol/src/frames.js';
import type { AddResult, Presence, PresenceEntry, RemoveResult } from './presence.js';
import {
  addScript,
  forgetNodeScript,
  heartbeatScript,
  indexRoomsScript,
  membersScript,
  registerScript,
  removeScript,
  restoreScript,
  sweepScript,
  unlockScript,
} from './redis-scripts.js';
import type { LuaArg, LuaScript } from '../redis/lua-script.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ClusterSeed } from '../redis/script-connection.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { LinkLogger, LinkStats, RedisLink } from '../redis/link.js';

export interface PresenceExpiry {
  /** Users whose last connection expired. */
  users: string[];
  /** The room has no member left: its session ended. */
  roomEmpty: boolean;
}

export interface PresenceRejoin {
  /** Users who joined again: their entries had expired (their leave was reported) and this instance added them back. */
  users: string[];
  /** The room had no member left: a new session begins. */
  roomStarted: boolean;
}

export interface RedisPresenceOptions {
  /** Standalone Redis URL; the presence opens and closes its own connection. Exactly one of `url`, `nodes` and `client` is required. */
  url?: string;
  /** Redis Cluster seed nodes; the presence opens and closes its own `Cluster` connection. */
  nodes?: ClusterSeed[];
  /** A connection owned by the caller (not closed by `close`): a `Redis` or a `Cluster`. */
  client?: Redis | Cluster;
  /** Extra ioredis options for an owned connection (every cluster node with `nodes`): password, TLS... Default none. */
  redisOptions?: RedisOptions;
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** An entry not refreshed for this long is gone, ms. Default 30000. */
  ttlMs?: number;
  /** How often this node refreshes its entries, ms; 0 disables the timer (tests call `heartbeat()`). Default ttlMs / 3. */
  heartbeatMs?: number;
  /** Told when expired connections made users leave a room; should not throw. Default: nothing. */
  onExpire?: (room: RoomRef, expiry: PresenceExpiry) => void;
  /**
   * Told when this instance added back entries of its own that had expired
   * (it was cut off or stalled longer than `ttlMs`), making users join a
   * room again: the counterpart of `onExpire`, on this instance only;
   * should not throw. Default: nothing.
   */
  onRejoin?: (room: RoomRef, rejoin: PresenceRejoin) => void;
  /** Clock, ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
  /**
   * This instance's id in the node registry; must not contain `{` or `}`.
   * Must be new at every start (a restarted node sweeps up after its
   * predecessor as after any dead node). Default a random UUID.
   */
  instanceId?: string;
  /**
   * Milliseconds between PINGs on the connection; a silent one is replaced
   * (src/redis/link.ts), and once the new one is ready a heartbeat runs at
   * once, adding back this node's entries. 0 disables. Default 1000.
   */
  probeIntervalMs?: number;
  /** Where the connection's probe failures and replacements are logged (a pino logger fits). Default: not logged. */
  logger?: LinkLogger;
}

/** Room keys and index keys live this many TTLs: longer than any entry, so a dead node's rooms are still there to sweep. */
export const KEY_TTL_FACTOR = 3;
/** Dead instances looked at per heartbeat; the next heartbeat takes the rest. */
const DEAD_NODES_PER_BEAT = 16;
/** Rooms of a dead instance swept per round trip (SSCAN COUNT), and rooms per index update. */
const SWEEP_BATCH = 100;

interface LocalEntry {
  user: string;
  since: number;
  /** The add still in flight: until it replied the heartbeat leaves the entry alone, and a remove of it waits for it. */
  adding: Promise<unknown> | undefined;
}

interface LocalRoom {
  room: RoomRef;
  /** member (JSON [user, conn]) → entry. A remove deletes its entry before it sends its script. */
  entries: Map<string, LocalEntry>;
  /** Adds and removes in flight: the room stays (and stays indexed) while one may still create an entry or unlist the room. */
  pending: number;
  /** The restore in flight in this room: a remove starting meanwhile waits for it. */
  restoring: Promise<unknown> | undefined;
  /**
   * After a failed add or remove (whose script may have run), the room is
   * kept (heartbeated, indexed) until then, ms, so that an entry nothing
   * refreshes expires and is reported within a TTL. 0: not kept.
   */
  lingerUntil: number;
}

interface ScriptReply {
  r1: number;
  r2: number;
  rest: unknown[];
}

export class RedisPresence implements Presence {
  readonly driver = 'redis';
  private readonly client: Redis | Cluster;
  private readonly ownsClient: boolean;
  private readonly link: RedisLink;
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
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  /** Why the last heartbeat failed; cleared by the next one that succeeds. */
  private heartbeatFailure: string | undefined;
  private closing: Promise<void> | undefined;
  /** The sweep of dead instances in progress, so that a slow one is not started twice. */
  private sweeping: Promise<void> | undefined;
  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
  };
  private readonly recordFailure = (error: unknown): void => {
    this.lastError = error instanceof Error ? error.message : String(error);
  };

  constructor(options: RedisPresenceOptions) {
    this.prefix = options.prefix ?? 'dev:nerve';
    if (/[{}]/.test(this.prefix) || this.prefix.length === 0) throw new ConfigError('prefix', 'a non-empty key prefix without { or }', this.prefix);
    this.ttlMs = options.ttlMs ?? 30_000;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 100) throw new ConfigError('ttlMs', 'an integer ≥ 100', this.ttlMs);
    this.heartbeatMs = options.heartbeatMs ?? Math.floor(this.ttlMs / 3);
    if (!Number.isInteger(this.heartbeatMs) || this.heartbeatMs < 0 || this.heartbeatMs >= this.ttlMs) {
      throw new ConfigError('heartbeatMs', `an integer from 0 to ${this.ttlMs - 1} (below ttlMs)`, this.heartbeatMs);
    }
    this.onExpire = options.onExpire ?? (() => {});
    this.onRejoin = options.onRejoin ?? (() => {});
    this.now = options.now ?? Date.now;
    this.keyTtlMs = this.ttlMs * KEY_TTL_FACTOR;
    this.instanceId = options.instanceId ?? randomUUID();
    if (/[{}]/.test(this.instanceId) || this.instanceId.length === 0) {
      throw new ConfigError('instanceId', 'a non-empty id without { or }', this.instanceId);
    }
    // Last: nothing above may throw after a connection object exists.
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.ownsClient = owned;
    this.client.on('error', this.onError);
    // Back after a loss: register and refresh (or add back) this node's entries now, not a heartbeat later.
    this.link = watchScriptConnection({
      client,
      owned,
      lane: 'presence',
      probeIntervalMs: options.probeIntervalMs,
      log: options.logger,
      onRestored: () => {
        if (this.state === 'running') this.heartbeat().catch(this.recordFailure);
      },
    });
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'presence is closed');
    if (this.ownsClient && this.client.status === 'wait') {
      try {
        await this.client.connect();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, 'cannot connect to Redis for presence', { cause: error });
      }
    }
    if (this.state === 'running') return;
    const now = this.now();
    try {
      await registerScript.run(this.client, [this.registryKey()], [this.instanceId, now + this.ttlMs, this.keyTtlMs]);
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, 'cannot register presence in Redis', { cause: error });
    }
    this.state = 'running';
    // A node restarted after a crash cleans up after its predecessor (and any other dead node) now, not a heartbeat later.
    await this.sweepDeadNodes(now).catch(this.recordFailure);
    if (this.heartbeatMs > 0 && !this.timer) {
      this.timer = setInterval(() => {
        // Failures show in health(); the next beat retries.
        this.heartbeat().catch(this.recordFailure);
      }, this.heartbeatMs);
      this.timer.unref();
    }
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
      return this.run(addScript, room, [now, member, entry.user, entry.ts, now + this.ttlMs, this.keyTtlMs]);
    })();
    // Known at once (a remove starting now must wait for this add), refreshed once the add replied.
    const mine: LocalEntry | undefined = local.entries.has(member) ? undefined : { user: entry.user, since: entry.ts, adding: work };
    if (mine) local.entries.set(member, mine);
    try {
      const reply = await work;
      if (mine) mine.adding = undefined;
      return { userJoined: reply.r1 === 1, roomStarted: reply.r2 === 1 };
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
      return { userLeft: reply.r1 === 1, roomEmpty: reply.r2 === 1 };
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
    const reply = await this.run(membersScript, room, [this.now()]);
    const members: Member[] = [];
    for (let i = 0; i + 1 < reply.rest.length; i += 2) {
      members.push({ user: String(reply.rest[i]), since: Number(reply.rest[i + 1]) });
    }
    return members;
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
      await this.index(now, [...this.local.values()].map((local) => local.room));
      await Promise.all([...this.local].map(([base, local]) => this.beat(base, local, now)));
      await this.sweepDeadNodes(now);
      this.heartbeatFailure = undefined;
    } catch (error) {
      // Shown by health() until a beat succeeds: while beats fail, this
      // node's entries are not refreshed and survivors will report its
      // members as gone, even though the connection looks fine.
      // The root cause (the store's own words), under the unavailable / outcome-unknown wrappers.
      let cause = error;
      while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
      this.heartbeatFailure = cause instanceof Error ? cause.message : String(cause);
      throw error;
    }
  }

  /** Probe failures and replacements of the connection (src/redis/link.ts), for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  health(): LaneHealth {
    const base = { lane: 'presence', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `presence is ${this.state}` };
    const problem = this.link.problem();
    if (problem !== undefined) return { ...base, ok: false, detail: `redis ${problem}${this.client.status !== 'ready' && this.lastError ? `: ${this.lastError}` : ''}` };
    if (this.heartbeatFailure !== undefined) return { ...base, ok: false, detail: `heartbeat failed: ${this.heartbeatFailure}` };
    return { ...base, ok: true };
  }

  /**
   * Stops the heartbeat and closes an owned connection. This node's entries
   * are left to expire: the gateway removes its connections (with leave
   * events) before closing lanes, and a crash must behave the same anyway.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed';
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      await this.sweeping?.catch(() => {});
      if (this.local.size === 0 && this.client.status === 'ready') {
        // Nothing of ours is left: leave the registry now. With entries left (a close that behaves like a crash) a survivor sweeps them.
        await Promise.all([
          this.client.zrem(this.registryKey(), this.instanceId),
          this.client.unlink(this.nodeKey(this.instanceId, 'rooms')),
        ]).catch(this.recordFailure);
      }
      this.local.clear();
      this.link.stop();
      if (this.ownsClient) await closeScriptConnection(this.client);
      this.client.off('error', this.onError);
    })();
    return this.closing;
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
      if (entry && !entry.adding) args.push(member, entry.user, entry.since);
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
        this.lastError = `onRejoin threw: ${error instanceof Error ? error.message : String(error)}`;
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
    this.sweeping ??= (async () => {
      try {
        const dead = await this.command(() => this.client.zrangebyscore(this.registryKey(), '-inf', now, 'LIMIT', 0, DEAD_NODES_PER_BEAT));
        await Promise.all(dead.filter((id) => id !== this.instanceId).map((id) => this.sweepNode(id, now)));
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /**
   * Sweep every room of dead instance `id`, then forget it. The lock only
   * saves survivors from doing the same work twice: the leaves themselves
   * are reported once by the room scripts whatever happens. It expires
   * after `ttlMs` if this survivor dies mid-sweep.
   */
  private async sweepNode(id: string, now: number): Promise<void> {
    const lock = this.nodeKey(id, 'sweep');
    const taken = await this.command(() => this.client.set(lock, this.instanceId, 'PX', this.ttlMs, 'NX'));
    if (taken !== 'OK') return;
    try {
      const roomsKey = this.nodeKey(id, 'rooms');
      let cursor = '0';
      do {
        const [next, members] = await this.command(() => this.client.sscan(roomsKey, cursor, 'COUNT', SWEEP_BATCH));
        cursor = next;
        await Promise.all(
          members.map((member) => {
            const room = parseRoomMember(member);
            return room ? this.run(sweepScript, room, [now]) : undefined;
          }),
        );
        // SSCAN still returns every member present for the whole scan after earlier ones are removed.
        if (members.length > 0) await this.command(() => this.client.srem(roomsKey, ...members));
      } while (cursor !== '0');
      await this.command(() => forgetNodeScript.run(this.client, [this.registryKey()], [id, now]));
    } finally {
      await unlockScript.run(this.client, [lock], [this.instanceId]).catch(this.recordFailure);
    }
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `presence is ${this.state}`);
  }

  /** One index command; a store failure becomes an unavailable NerveError. */
  private async command<T>(call: () => Promise<T>): Promise<T> {
    this.assertRunning();
    try {
      return await call();
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, 'presence store unavailable', { cause: error });
    }
  }

  private async run(script: LuaScript, room: RoomRef, args: LuaArg[]): Promise<ScriptReply> {
    this.assertRunning();
    let raw: unknown;
    try {
      raw = await script.run(this.client, [this.key(room, 'conns'), this.key(room, 'users'), this.key(room, 'counts')], args);
    } catch (error) {
      // Sent, not answered: the entry may be written (or removed). The caller's linger keeps such a room refreshed until it expired.
      if (error instanceof OutcomeUnknownError) throw error;
      throw new NerveError(ErrorCode.Unavailable, 'presence store unavailable', { cause: error });
    }
    if (!Array.isArray(raw) || raw.length < 4) throw new NerveError(ErrorCode.Internal, `unexpected reply from ${script.name}`);
    const left = Number(raw[3]);
    const users = raw.slice(4, 4 + left).map(String);
    if (users.length > 0) {
      try {
        this.onExpire({ tenant: room.tenant, room: room.room }, { users, roomEmpty: raw[2] === 1 });
      } catch (error) {
        // The expiry is already applied in Redis; a failing listener must not fail this call too.
        this.lastError = `onExpire threw: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    return { r1: Number(raw[0]), r2: Number(raw[1]), rest: raw.slice(4 + left) };
  }
}

function roomBase(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}

/** A room as a member of an instance's room set. */
function roomMember(room: RoomRef): string {
  return JSON.stringify([room.tenant, room.room]);
}

function parseRoomMember(member: string): RoomRef | undefined {
  try {
    const value: unknown = JSON.parse(member);
    if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'string') return { tenant: value[0], room: value[1] };
  } catch {
    // Not ours: skipped, and removed with the rest of the set.
  }
  return undefined;
}
