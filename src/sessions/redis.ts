/**
 * Room sessions on Redis, shared by every node, so that all of a session's
 * events carry one id and `room.ended` covers every member wherever they
 * were. One hash per room session (scripts: redis-scripts.ts):
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:session
 *     id, startedAt, createdAt, peak, present; m:<user> ms in finished stays; s:<user> start of the current stay
 * Every write sets the key's expiry to `ttlMs`, so a session whose `end`
 * never ran (a node crashed) cannot live forever; one untouched for `ttlMs`
 * loses its record, and its `room.ended` then reports an empty session.
 */
import { randomUUID } from 'node:crypto';
import { escapeComponent, hashTag } from '../bus/channels.js';
import { integerAtLeast } from '../config/validate.js';
import type { ParticipantTime } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import type { LuaArg, LuaScript } from '../redis/lua-script.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix, RedisScriptLane } from '../redis/script-lane.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { currentScript, endScript, joinedScript, leftScript, startScript } from './redis-scripts.js';
import { DEFAULT_SESSION_TTL_MS, START_SKEW_MS, type EndedSession, type RoomSessions, type RoomSessionsOptions } from './sessions.js';

export interface RedisRoomSessionsOptions extends RoomSessionsOptions, ScriptConnectionOptions {
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** A session record not updated for this long is deleted, ms. Default 86400000 (a day). */
  ttlMs?: number;
}

export class RedisRoomSessions extends RedisScriptLane implements RoomSessions {
  readonly driver = 'redis';
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: RedisRoomSessionsOptions) {
    const prefix = keyPrefix(options.prefix);
    const ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_SESSION_TTL_MS, 1000);
    super(options, { lane: 'sessions', subject: 'room sessions are', connectFor: 'room sessions', store: 'room session store' });
    this.prefix = prefix;
    this.ttlMs = ttlMs;
    this.now = options.now ?? Date.now;
  }

  open(): Promise<void> {
    return this.startLane();
  }

  async start(room: RoomRef, now: number): Promise<string> {
    return String(await this.run(startScript, room, [now, randomUUID(), this.ttlMs, START_SKEW_MS]));
  }

  async current(room: RoomRef): Promise<string> {
    return String(await this.run(currentScript, room, [this.now(), randomUUID(), this.ttlMs]));
  }

  async joined(room: RoomRef, user: string, now: number): Promise<string> {
    return String(await this.run(joinedScript, room, [now, randomUUID(), this.ttlMs, user]));
  }

  async left(room: RoomRef, user: string, now: number): Promise<number | undefined> {
    const reply = await this.run(leftScript, room, [now, this.ttlMs, user]);
    return reply === null || reply === undefined ? undefined : Number(reply);
  }

  async end(room: RoomRef, now: number): Promise<EndedSession> {
    const reply = await this.run(endScript, room, [now, randomUUID()]);
    if (!Array.isArray(reply) || reply.length < 3) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the session end script');
    const startedAt = Number(reply[1]);
    const participants: ParticipantTime[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) participants.push({ user: String(reply[i]), ms: Number(reply[i + 1]) });
    return {
      id: String(reply[0]),
      startedAt,
      durationMs: Math.max(0, now - startedAt),
      participants,
      peakParticipants: Number(reply[2]),
    };
  }

  /** The room's session key; tests use it to check and delete what they created. */
  key(room: RoomRef): string {
    return `${this.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:session`;
  }

  private run(script: LuaScript, room: RoomRef, args: LuaArg[]): Promise<unknown> {
    return this.runScript(script, [this.key(room)], args);
  }
}
