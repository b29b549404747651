/**
 * Call participation on Redis, shared by every node. One JSON record per
 * call (scripts and layout: redis-scripts.ts):
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:call:<call>
 * plus one index of the calls to sweep, outside every room's slot:
 *   {prefix}:calls:active   ZSET JSON [tenant, room, call] → when to look at it next (ms)
 * Joins and refreshes push a call's time a TTL ahead; a survivor's sweep
 * takes the calls whose time passed, which are those no live node refreshes
 * (all of their nodes died), and ends them at their participants' last-seen
 * time. A call whose nodes are alive is also swept by their own refreshes.
 */
import { randomUUID } from 'node:crypto';
import { escapeComponent, hashTag } from '../bus/channels.js';
import { integerAtLeast } from '../config/validate.js';
import type { LuaArg, LuaScript } from '../redis/lua-script.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix, RedisScriptLane } from '../redis/script-lane.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import {
  CALL_KEY_TTL_MS,
  DEFAULT_CALL_TTL_MS,
  type CallJoinResult,
  type CallLeaveResult,
  type CallRef,
  type CallRefreshResult,
  type CallStart,
  type CallStore,
  type CallStoreOptions,
  type EndedCall,
  type SweptCall,
} from './calls.js';
import { joinScript, leaveScript, refreshScript, sweepScript, unlistScript } from './redis-scripts.js';

export interface RedisCallStoreOptions extends CallStoreOptions, ScriptConnectionOptions {
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
}

/** Calls looked at per sweep; the next sweep takes the rest. */
const SWEEP_BATCH = 50;

export class RedisCallStore extends RedisScriptLane implements CallStore {
  readonly driver = 'redis';
  private readonly prefix: string;
  private readonly ttlMs: number;

  constructor(options: RedisCallStoreOptions) {
    const prefix = keyPrefix(options.prefix);
    const ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_CALL_TTL_MS, 100);
    super(options, { lane: 'calls', subject: 'call store is', connectFor: 'calls', store: 'call store' });
    this.prefix = prefix;
    this.ttlMs = ttlMs;
  }

  open(): Promise<void> {
    return this.startLane();
  }

  async join(ref: CallRef, entry: { user: string; conn: string }, now: number): Promise<CallJoinResult> {
    const reply = await this.run(joinScript, ref, [now, entry.conn, entry.user, this.ttlMs, CALL_KEY_TTL_MS, randomUUID()]);
    await this.list([ref], now);
    const result: CallJoinResult = { joined: Number(reply[0]) === 1 };
    const started = parseStart(reply[1]);
    const ended = parseEnded(reply[2]);
    if (started) result.started = started;
    if (ended) result.ended = ended;
    return result;
  }

  async leave(ref: CallRef, conn: string, now: number): Promise<CallLeaveResult> {
    // An ended call stays in the index: the sweep forgets it (a cheap read), which no concurrent join can undo.
    const reply = await this.run(leaveScript, ref, [now, conn, this.ttlMs, CALL_KEY_TTL_MS]);
    const ended = parseEnded(reply[1]);
    return { left: Number(reply[0]) === 1, ...(ended ? { ended } : {}) };
  }

  async refresh(ref: CallRef, conns: string[], now: number): Promise<CallRefreshResult> {
    const reply = await this.run(refreshScript, ref, [now, this.ttlMs, CALL_KEY_TTL_MS, ...conns]);
    await this.list([ref], now);
    const ended = parseEnded(reply[0]);
    return { missing: reply.slice(1).map(String), ...(ended ? { ended } : {}) };
  }

  async sweep(now: number): Promise<SweptCall[]> {
    const index = this.indexKey();
    const due = await this.command(() => this.client.zrangebyscore(index, '-inf', now, 'LIMIT', 0, SWEEP_BATCH));
    const swept: SweptCall[] = [];
    await Promise.all(
      due.map(async (member) => {
        const ref = parseMember(member);
        if (!ref) {
          await this.command(() => this.client.zrem(index, member));
          return;
        }
        const reply = await this.run(sweepScript, ref, [now, this.ttlMs, CALL_KEY_TTL_MS]);
        const ended = parseEnded(reply[0]);
        if (ended) swept.push({ ref, ended });
        const next = Number(reply[1]);
        if (next > 0) await this.command(() => this.client.zadd(index, next, member));
        else await this.runScript(unlistScript, [index], [member, now]);
      }),
    );
    return swept;
  }

  /** The call's record key; tests use it to check and delete what they created. */
  key(ref: CallRef): string {
    return `${this.prefix}:${escapeComponent(ref.tenant)}:room:${hashTag(ref.tenant, ref.room)}:call:${escapeComponent(ref.call)}`;
  }

  /** The index of calls to sweep. */
  indexKey(): string {
    return `${this.prefix}:calls:active`;
  }

  /** Look at these calls again a TTL from now, unless refreshed before. */
  private async list(refs: CallRef[], now: number): Promise<void> {
    const args: Array<string | number> = [];
    for (const ref of refs) args.push(now + this.ttlMs, memberOf(ref));
    await this.command(() => this.client.zadd(this.indexKey(), ...args));
  }

  private async run(script: LuaScript, ref: CallRef, args: LuaArg[]): Promise<unknown[]> {
    const raw = await this.runScript(script, [this.key(ref)], args);
    if (!Array.isArray(raw)) throw new NerveError(ErrorCode.Internal, `unexpected reply from ${script.name}`);
    return raw as unknown[];
  }

  /** One index command; a store failure becomes `unavailable`. */
  private async command<T>(call: () => Promise<T>): Promise<T> {
    this.assertRunning();
    try {
      return await call();
    } catch (error) {
      throw this.storeUnavailable(error);
    }
  }
}

function memberOf(ref: CallRef): string {
  return JSON.stringify([ref.tenant, ref.room, ref.call]);
}

function parseMember(member: string): CallRef | undefined {
  try {
    const value: unknown = JSON.parse(member);
    if (Array.isArray(value) && value.length === 3 && value.every((part) => typeof part === 'string')) {
      const [tenant, room, call] = value as [string, string, string];
      return { tenant, room, call };
    }
  } catch {
    // Not ours: dropped from the index.
  }
  return undefined;
}

function parseStart(raw: unknown): CallStart | undefined {
  if (typeof raw !== 'string' || raw === '') return undefined;
  const value = JSON.parse(raw) as { id: string; startedAt: number; by: string };
  return { id: value.id, startedAt: value.startedAt, startedBy: value.by };
}

function parseEnded(raw: unknown): EndedCall | undefined {
  if (typeof raw !== 'string' || raw === '') return undefined;
  const value = JSON.parse(raw) as { id: string; startedAt: number; endedAt: number; peak: number; users: Record<string, number> | unknown[] };
  // cjson writes an empty table as {} or [] alike.
  const users = Array.isArray(value.users) ? {} : value.users;
  return {
    id: value.id,
    startedAt: value.startedAt,
    endedAt: value.endedAt,
    participants: Object.entries(users).map(([user, ms]) => ({ user, ms })),
    peakParticipants: value.peak,
  };
}
