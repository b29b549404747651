/** The options of the Redis Streams history and their validation. */
import type { BusEnvelope } from '../bus/bus.js';
import { encodeEnvelope } from '../bus/envelope.js';
import { ConfigError } from '../config/errors.js';
import { integerAtLeast } from '../config/validate.js';
import type { RedisSentinelSettings } from '../redis/connection.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix } from '../redis/script-lane.js';
import type { ChatArchive } from './paging.js';
import { PUBLISH_COMMANDS, type PublishCommand } from './redis-scripts.js';

/** Bounds of the rooms whose id starts with `prefix`. */
interface HistoryPolicy {
  prefix: string;
  /** Messages kept (MAXLEN); default: the history's `maxMessages`. */
  maxMessages?: number;
  /** Idle time after which the room log expires, ms; default: the history's `ttlMs`. */
  ttlMs?: number;
}

export interface RedisStreamsHistoryOptions extends ScriptConnectionOptions {
  /**
   * How the append script publishes on the room channel: `PUBLISH` (classic
   * Pub/Sub, RedisBus) or `SPUBLISH` (sharded Pub/Sub, ShardedRedisBus;
   * Redis 7+, and the channel must share the slot of the room's keys).
   * Default `PUBLISH`.
   */
  publishCommand?: PublishCommand;
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** Messages kept per room (XADD MAXLEN). 0 keeps none (offsets still advance). Default 1000. */
  maxMessages?: number;
  /**
   * Per room-name prefix bounds, overriding `maxMessages` and `ttlMs` for
   * rooms whose id starts with `prefix` (the longest matching prefix wins).
   * Default none.
   */
  policies?: HistoryPolicy[];
  /**
   * Trim with `MAXLEN ~` (true: cheap, Redis keeps a little more than
   * `maxMessages`, up to one stream node) or `MAXLEN =` (false: exact).
   * Default true.
   */
  approximateTrim?: boolean;
  /** How long a repeated (room, sender, cmid) is recognised as a duplicate, ms. 0 disables. Default 120000. */
  idempotencyWindowMs?: number;
  /** Most messages `since` returns as a recovery. Default 1000. */
  recoveryLimit?: number;
  /** A room log with no append for this long expires, ms. Default 86400000 (24 h). */
  ttlMs?: number;
  /**
   * Turns the envelope into the bytes PUBLISHed. Must keep the payload's
   * text (escaped or not) so the script can fill in the offset and epoch.
   * Default `encodeEnvelope` of the Redis bus.
   */
  encode?: (envelope: BusEnvelope) => Buffer | string;
  /** Clock for the idempotency window, ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
  /** Where `page` reads what the stream no longer holds (the PostgreSQL chat tables). Default none: paging ends with the stream. */
  archive?: ChatArchive | undefined;
  /**
   * Replicas that must have a message before `append` resolves (Redis
   * `WAIT`). With n > 0 the script only stores; the message is published
   * once n replicas acknowledged it, so no node delivers what a failover
   * then loses, and an append whose WAIT falls short rejects with
   * `OutcomeUnknownError` (stored on the master, maybe not after a
   * failover; a retry with the same cmid settles it). Standalone / Sentinel
   * connections only. Default 0 (acked once the master has it).
   */
  waitReplicas?: number;
  /** How long an append waits for `waitReplicas`, ms (below the 5 s command timeout). Default 500. */
  waitTimeoutMs?: number;
  /**
   * With `waitReplicas`: wait for every replica online (checked each
   * second), not only `waitReplicas` of them, so a master that crashes
   * cannot be replaced by a replica that lacks an acked message. Default false.
   */
  waitAllReplicas?: boolean;
  /**
   * With `waitReplicas`: the sentinels to watch for a failover's start
   * (src/redis/failover-watch.ts). From `+selected-slave` until this
   * connection is on the new master, appends are refused (`unavailable`)
   * and those in flight answer `OutcomeUnknownError`: the old master's other
   * replicas would still pass WAIT for writes the failover then drops.
   * Default none.
   */
  failoverWatch?: RedisSentinelSettings | undefined;
}

/** The options after validation, every default applied. */
export interface HistorySettings {
  publishCommand: PublishCommand;
  prefix: string;
  maxMessages: number;
  trim: '~' | '=';
  idempotencyWindowMs: number;
  recoveryLimit: number;
  ttlMs: number;
  /** Longest prefix first, so the first match is the most specific. */
  policies: HistoryPolicy[];
  encode: (envelope: BusEnvelope) => Buffer | string;
  now: () => number;
  waitReplicas: number;
  waitTimeoutMs: number;
  waitAllReplicas: boolean;
}

/** Validate at construction; throws `ConfigError` naming the option. */
export function historySettings(options: RedisStreamsHistoryOptions): HistorySettings {
  const publishCommand = options.publishCommand ?? 'PUBLISH';
  if (!PUBLISH_COMMANDS.includes(publishCommand)) throw new ConfigError('publishCommand', PUBLISH_COMMANDS.join(' or '), publishCommand);
  const prefix = keyPrefix(options.prefix);
  const maxMessages = integerAtLeast('maxMessages', options.maxMessages ?? 1000, 0);
  const idempotencyWindowMs = integerAtLeast('idempotencyWindowMs', options.idempotencyWindowMs ?? 120_000, 0);
  const recoveryLimit = integerAtLeast('recoveryLimit', options.recoveryLimit ?? 1000, 1);
  const ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? 86_400_000, 1);
  const policies = [...(options.policies ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
  for (const policy of policies) {
    if (policy.maxMessages !== undefined) integerAtLeast('policies.maxMessages', policy.maxMessages, 0);
    if (policy.ttlMs !== undefined) integerAtLeast('policies.ttlMs', policy.ttlMs, 1);
  }
  const waitReplicas = integerAtLeast('waitReplicas', options.waitReplicas ?? 0, 0);
  const waitTimeoutMs = integerAtLeast('waitTimeoutMs', options.waitTimeoutMs ?? 500, 1);
  if (waitTimeoutMs >= 5000) throw new ConfigError('waitTimeoutMs', 'below the 5000 ms command timeout', waitTimeoutMs);
  if (waitReplicas > 0 && (options.nodes !== undefined || publishCommand === 'SPUBLISH')) {
    throw new ConfigError('waitReplicas', '0 on Redis Cluster (WAIT runs on one server)', waitReplicas);
  }
  return {
    publishCommand,
    prefix,
    maxMessages,
    trim: options.approximateTrim === false ? '=' : '~',
    idempotencyWindowMs,
    recoveryLimit,
    ttlMs,
    policies,
    encode: options.encode ?? encodeEnvelope,
    now: options.now ?? Date.now,
    waitReplicas,
    waitTimeoutMs,
    waitAllReplicas: waitReplicas > 0 && options.waitAllReplicas === true,
  };
}
