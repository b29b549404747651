/** The options of the Redis presence, their validation, and what its expiry and rejoin reports carry. */
import { randomUUID } from 'node:crypto';
import { ConfigError } from '../config/errors.js';
import type { RoomRef } from '../history/history.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix } from '../redis/script-lane.js';

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

export interface RedisPresenceOptions extends ScriptConnectionOptions {
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
}

/** Room keys and index keys live this many TTLs: longer than any entry, so a dead node's rooms are still there to sweep. */
export const KEY_TTL_FACTOR = 3;

export interface PresenceSettings {
  prefix: string;
  ttlMs: number;
  heartbeatMs: number;
  keyTtlMs: number;
  instanceId: string;
}

/** Validate at construction; throws `ConfigError` naming the option. */
export function presenceSettings(options: RedisPresenceOptions): PresenceSettings {
  const prefix = keyPrefix(options.prefix);
  const ttlMs = options.ttlMs ?? 30_000;
  if (!Number.isInteger(ttlMs) || ttlMs < 100) throw new ConfigError('ttlMs', 'an integer ≥ 100', ttlMs);
  const heartbeatMs = options.heartbeatMs ?? Math.floor(ttlMs / 3);
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 0 || heartbeatMs >= ttlMs) {
    throw new ConfigError('heartbeatMs', `an integer from 0 to ${ttlMs - 1} (below ttlMs)`, heartbeatMs);
  }
  const instanceId = options.instanceId ?? randomUUID();
  if (/[{}]/.test(instanceId) || instanceId.length === 0) throw new ConfigError('instanceId', 'a non-empty id without { or }', instanceId);
  return { prefix, ttlMs, heartbeatMs, keyTtlMs: ttlMs * KEY_TTL_FACTOR, instanceId };
}
