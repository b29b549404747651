/**
 * History on Redis Streams: one stream per room, stored and published by one
 * Lua script (XADD then PUBLISH, or SPUBLISH on Redis Cluster), so every
 * node delivers a room's messages in offset order. The published bytes are
 * `encode(target.envelope(message))` with the stored message's offset and
 * epoch filled in by the script; by default `encode` is the Redis bus codec
 * (src/bus/envelope.ts), so the Redis bus decodes history publishes like its
 * own.
 *
 * Keys, all under the room's hash tag (`hashTag` in src/bus/channels.ts):
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:history:meta    hash { epoch, last }
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:history:stream  entries `0-<offset>`, field `m`
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:history:idem:{from}:{cmid}
 * (each component escaped as in src/bus/channels.ts). A room log with no
 * append for `ttlMs` expires; its next use starts a new epoch.
 *
 * Deployments:
 * - standalone Redis (`url`), `publishCommand: 'PUBLISH'`: RedisBus;
 * - Redis Cluster (`nodes`, or a `Cluster` as `client`),
 *   `publishCommand: 'SPUBLISH'`: ShardedRedisBus. A script may touch one
 *   slot only, so the room channel must hash to the slot of the room's keys:
 *   build the node's ChannelNamer with `hashTags: true` (project issue 3).
 *   `append` refuses a channel of another slot with an `internal` error
 *   instead of letting the cluster answer CROSSSLOT.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import type { BusEnvelope } from '../bus/bus.js';
import { escapeComponent, hashTag } from '../bus/channels.js';
import { encodeEnvelope } from '../bus/envelope.js';
import { keySlot } from '../redis/key-slot.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { integerAtLeast } from '../config/validate.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import type {
  AppendResult,
  AppendTarget,
  ChatDraft,
  History,
  RecentResult,
  RecoveryResult,
  RoomRef,
} from './history.js';
import { clampLimit, newEpoch } from './recovery.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ClusterSeed } from '../redis/script-connection.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { LinkLogger, LinkStats, RedisLink } from '../redis/link.js';
import { FailoverWatch } from '../redis/failover-watch.js';
import type { RedisSentinelSettings } from '../redis/connection.js';
import { PUBLISH_COMMANDS, appendScripts, publishScript, readScript, storeOnlyAppendScript, type PublishCommand } from './redis-scripts.js';

/**
 * Placeholders the append script swaps for the offset and epoch. They only
 * have to be impossible for a client to put in its own message: a secret
 * random prefix per process makes them so, and a counter makes each one
 * unique, at a fraction of the cost of fresh random bytes per message.
 */
const PLACEHOLDER_PREFIX = `n${randomBytes(16).toString('hex')}`;
let placeholders = 0;
function placeholder(): string {
  placeholders = (placeholders + 1) % Number.MAX_SAFE_INTEGER;
  return PLACEHOLDER_PREFIX + placeholders.toString(36);
}

/** How often `waitAllReplicas` counts the replicas online, ms. */
const REPLICA_CHECK_MS = 1000;

/** Longest a fence outlives `+switch-master` when the history connection never reports ready again, ms. */
const UNFENCE_FALLBACK_MS = 10_000;

/** Bounds of the rooms whose id starts with `prefix`. */
export interface HistoryPolicy {
  prefix: string;
  /** Messages kept (MAXLEN); default: the history's `maxMessages`. */
  maxMessages?: number;
  /** Idle time after which the room log expires, ms; default: the history's `ttlMs`. */
  ttlMs?: number;
}

export interface RedisStreamsHistoryOptions {
  /** Standalone Redis URL; the history opens and closes its own connection. Exactly one of `url`, `nodes` and `client` is required. */
  url?: string;
  /** Redis Cluster seed nodes; the history opens and closes its own `Cluster` connection. */
  nodes?: ClusterSeed[];
  /** A connection owned by the caller (not closed by `close`): a `Redis` or a `Cluster`. */
  client?: Redis | Cluster;
  /** Extra ioredis options for an owned connection (every cluster node with `nodes`): password, TLS... Default none. */
  redisOptions?: RedisOptions;
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
  /** Milliseconds between PINGs on the connection; a silent one is replaced (src/redis/link.ts). 0 disables. Default 1000. */
  probeIntervalMs?: number;
  /** Where the connection's probe failures and replacements are logged (a pino logger fits). Default: not logged. */
  logger?: LinkLogger;
}

export class RedisStreamsHistory implements History {
  readonly driver = 'redis-streams';
  private readonly client: Redis | Cluster;
  private readonly ownsClient: boolean;
  private readonly link: RedisLink;
  private readonly publishCommand: PublishCommand;
  private readonly prefix: string;
  private readonly maxMessages: number;
  private readonly trim: '~' | '=';
  private readonly idempotencyWindowMs: number;
  private readonly recoveryLimit: number;
  private readonly ttlMs: number;
  private readonly policies: HistoryPolicy[];
  private readonly encode: (envelope: BusEnvelope) => Buffer | string;
  private readonly now: () => number;
  private readonly waitReplicas: number;
  private readonly waitTimeoutMs: number;
  /** Appends stored and waiting for the next WAIT (see `replicated`). */
  private waiters: Array<{ resolve: (acked: { replicas: number; needed: number }) => void; reject: (error: unknown) => void }> = [];
  private readonly waitAllReplicas: boolean;
  /** Replicas online at the last check (`checkReplicas`). */
  private replicasOnline = 0;
  private replicaTimer: NodeJS.Timeout | undefined;
  /** Whether a WAIT is scheduled or in flight. */
  private waiting = false;
  /** Rooms whose pending envelopes to publish at the end of this tick: meta key → the call (see `publishPending`). */
  private toPublish = new Map<string, { keys: [string, string]; channel: string; upto: number; done: Promise<unknown>; run: () => void }>();
  private readonly watch: FailoverWatch | undefined;
  /** Why appends are refused now (a failover under way), or undefined. */
  private fenced: string | undefined;
  /** Bumped when a failover starts: an append begun before it cannot be acked. */
  private fenceGeneration = 0;
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;
  /** A reconnect may be to another master (a failover): count its replicas at once. */
  private readonly onReady = (): void => void this.checkReplicas();
  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
  };

  constructor(options: RedisStreamsHistoryOptions) {
    this.publishCommand = options.publishCommand ?? 'PUBLISH';
    if (!PUBLISH_COMMANDS.includes(this.publishCommand)) {
      throw new ConfigError('publishCommand', PUBLISH_COMMANDS.join(' or '), this.publishCommand);
    }
    this.prefix = options.prefix ?? 'dev:nerve';
    if (/[{}]/.test(this.prefix) || this.prefix.length === 0) throw new ConfigError('prefix', 'a non-empty key prefix without { or }', this.prefix);
    this.maxMessages = integerAtLeast('maxMessages', options.maxMessages ?? 1000, 0);
    this.trim = options.approximateTrim === false ? '=' : '~';
    this.idempotencyWindowMs = integerAtLeast('idempotencyWindowMs', options.idempotencyWindowMs ?? 120_000, 0);
    this.recoveryLimit = integerAtLeast('recoveryLimit', options.recoveryLimit ?? 1000, 1);
    this.ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? 86_400_000, 1);
    // Longest prefix first, so the first match is the most specific.
    this.policies = [...(options.policies ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
    for (const policy of this.policies) {
      if (policy.maxMessages !== undefined) integerAtLeast('policies.maxMessages', policy.maxMessages, 0);
      if (policy.ttlMs !== undefined) integerAtLeast('policies.ttlMs', policy.ttlMs, 1);
    }
    this.encode = options.encode ?? encodeEnvelope;
    this.now = options.now ?? Date.now;
    this.waitReplicas = integerAtLeast('waitReplicas', options.waitReplicas ?? 0, 0);
    this.waitTimeoutMs = integerAtLeast('waitTimeoutMs', options.waitTimeoutMs ?? 500, 1);
    this.waitAllReplicas = this.waitReplicas > 0 && options.waitAllReplicas === true;
    if (this.waitTimeoutMs >= 5000) throw new ConfigError('waitTimeoutMs', 'below the 5000 ms command timeout', this.waitTimeoutMs);
    if (this.waitReplicas > 0 && (options.nodes !== undefined || this.publishCommand === 'SPUBLISH')) {
      throw new ConfigError('waitReplicas', '0 on Redis Cluster (WAIT runs on one server)', this.waitReplicas);
    }
    if (options.failoverWatch && this.waitReplicas > 0) {
      const watch = new FailoverWatch(options.failoverWatch);
      watch.on('started', (detail) => this.fence(detail));
      watch.on('ended', (detail) => this.unfence(detail));
      this.watch = watch;
    }
    // Last: nothing above may throw after a connection object exists.
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.ownsClient = owned;
    this.client.on('error', this.onError);
    this.link = watchScriptConnection({ client, owned, lane: 'history', probeIntervalMs: options.probeIntervalMs, log: options.logger });
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'history is closed');
    if (this.ownsClient && this.client.status === 'wait') {
      try {
        await this.client.connect();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, 'cannot connect to Redis for history', { cause: error });
      }
    }
    if (this.waitAllReplicas) {
      this.client.on('ready', this.onReady);
      await this.checkReplicas().catch(() => {});
      this.replicaTimer = setInterval(() => void this.checkReplicas(), REPLICA_CHECK_MS);
      this.replicaTimer.unref();
    }
    if (this.watch) {
      try {
        await this.watch.start();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, 'cannot subscribe to the sentinels for history', { cause: error });
      }
    }
    this.state = 'running';
  }

  /** A failover began: no append is acked until this connection is on the new master. */
  private fence(detail: string): void {
    this.fenced = `Redis failover under way (${detail})`;
    this.fenceGeneration += 1;
    this.lastError = this.fenced;
  }

  /**
   * The failover ended. After a switch, reconnect (ioredis asks the
   * sentinels for the new master) and accept appends once ready there; the
   * connection may not have left the old master yet, and ioredis' own
   * detector races with this event. An aborted failover changed nothing.
   */
  private unfence(detail: string): void {
    if (this.fenced === undefined) return;
    const generation = this.fenceGeneration;
    const client = this.client;
    let timer: NodeJS.Timeout | undefined;
    const lift = (): void => {
      clearTimeout(timer);
      client.off('ready', lift);
      if (this.fenceGeneration === generation) this.fenced = undefined;
    };
    if (!detail.startsWith('+switch-master') || !(client instanceof Redis) || this.state !== 'running') return lift();
    client.once('ready', lift);
    // Never refuse chat for good: should no `ready` come (the connection
    // replaced meanwhile), WAIT still stands between the old master and an ack.
    timer = setTimeout(lift, UNFENCE_FALLBACK_MS);
    timer.unref();
    client.disconnect(true);
  }

  async append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    this.assertRunning();
    // Nothing sent yet: a plain refusal, the client retries with the same cmid.
    if (this.fenced !== undefined) throw new NerveError(ErrorCode.Unavailable, this.fenced);
    const generation = this.fenceGeneration;
    const offsetToken = placeholder();
    const epochToken = placeholder();
    // The offset placeholder is a string in the template; the script swaps the quoted token for a bare number.
    const template = { ...draft, offset: offsetToken, epoch: epochToken } as unknown as ChatMessage;
    const envelope = target.envelope(template);
    for (const field of [envelope.id, envelope.origin, envelope.trace, envelope.except]) {
      // Those fields may be length-prefixed on the wire: a substitution there would corrupt the envelope.
      if (field !== undefined && (field.includes(offsetToken) || field.includes(epochToken))) {
        throw new NerveError(ErrorCode.Internal, 'the envelope may carry the offset and epoch only inside its payload');
      }
    }
    const keys = [this.key(room, 'meta'), this.key(room, 'stream')];
    // WAIT mode: the room's pending envelopes (offset → bytes) until a WAIT covers them.
    if (this.waitReplicas > 0) keys.push(this.key(room, 'pending'));
    if (this.publishCommand === 'SPUBLISH' && keySlot(target.channel) !== keySlot(keys[0]!)) {
      // The cluster would refuse the script (a script touches one slot); say why here.
      throw new NerveError(
        ErrorCode.Internal,
        `channel ${target.channel} does not hash to the slot of room ${room.tenant}/${room.room}: SPUBLISH from the history script needs a ChannelNamer with hashTags`,
      );
    }
    if (draft.cmid !== undefined && this.idempotencyWindowMs > 0) {
      keys.push(this.key(room, `idem:${escapeComponent(draft.from)}:${escapeComponent(draft.cmid)}`));
    }
    const policy = this.policyFor(room);
    const reply = await this.call('append', () =>
      (this.waitReplicas > 0 ? storeOnlyAppendScript : appendScripts[this.publishCommand]).run(this.client, keys, [
        newEpoch(),
        policy.ttlMs,
        offsetToken,
        epochToken,
        JSON.stringify(template),
        target.channel,
        this.encode(envelope),
        policy.maxMessages,
        this.trim,
        this.now(),
        this.idempotencyWindowMs,
      ]),
    );
    if (!Array.isArray(reply) || reply.length !== 2 || typeof reply[1] !== 'string') {
      throw new NerveError(ErrorCode.Internal, 'unexpected reply from the history append script');
    }
    const result = { message: JSON.parse(reply[1]) as ChatMessage, duplicate: reply[0] === 1 };
    if (this.waitReplicas === 0) return result;
    await this.replicated();
    if (this.fenceGeneration !== generation) {
      // Replicas acknowledged it, but perhaps not the one being promoted: neither acked nor published.
      throw new OutcomeUnknownError('history append stored while a Redis failover began: a failover may lose it; retry with the same cmid');
    }
    // Durable now: publish every pending envelope of the room up to this
    // offset, in offset order (a duplicate's original too, if its own WAIT
    // fell short; otherwise nothing is pending and nothing goes out). The ack
    // waits for it: reads end at the last offset published, and an acked
    // message must be readable.
    try {
      await this.publishPending([keys[0]!, keys[2]!], target.channel, result.message.offset);
    } catch (error) {
      throw new OutcomeUnknownError('history append stored and replicated but not yet published; retry with the same cmid', { cause: error });
    }
    // And that the publish (`pub` moved on) is on the replicas too: after a
    // crash, the promoted replica must not read an acked message as pending.
    await this.replicated();
    return result;
  }

  /**
   * Run `publishScript` for a room up to `upto`, once per room per tick
   * with the highest offset asked (a burst of one room's appends answered
   * by one WAIT is one script call); resolves when it ran.
   */
  private publishPending(keys: [string, string], channel: string, upto: number): Promise<unknown> {
    const queued = this.toPublish.get(keys[0]);
    if (queued) {
      queued.upto = Math.max(queued.upto, upto);
      return queued.done;
    }
    if (this.toPublish.size === 0) {
      process.nextTick(() => {
        const calls = this.toPublish;
        this.toPublish = new Map();
        for (const call of calls.values()) call.run();
      });
    }
    let run!: () => void;
    const done = new Promise<unknown>((resolve, reject) => {
      run = () => {
        publishScript.run(this.client, entry.keys, [entry.upto, entry.channel]).then(resolve, (error: unknown) => {
          this.lastError = `publishing pending chat failed: ${error instanceof Error ? error.message : String(error)}`;
          reject(error);
        });
      };
    });
    const entry = { keys, channel, upto, done, run: () => run() };
    this.toPublish.set(keys[0], entry);
    return done;
  }

  /**
   * Resolve once `waitReplicas` replicas have every write this connection
   * made so far; reject with OutcomeUnknownError when WAIT answers fewer (in
   * time) or fails. Called after the script's reply, so any WAIT sent from
   * now on covers the script. One WAIT at a time: the appends answered
   * meanwhile share the next one, sent when it returns (a burst costs one
   * replica round trip, and a WAIT that runs to its timeout while replicas
   * are missing holds the connection once, not once per message).
   */
  private async replicated(): Promise<void> {
    let acked: { replicas: number; needed: number };
    try {
      acked = await new Promise<{ replicas: number; needed: number }>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        if (!this.waiting) {
          this.waiting = true;
          process.nextTick(() => this.sendWait());
        }
      });
    } catch (error) {
      throw new OutcomeUnknownError('history append stored on the master, replication unknown: retry with the same cmid', { cause: error });
    }
    if (acked.replicas < acked.needed) {
      throw new OutcomeUnknownError(
        `history append stored on the master but on ${acked.replicas} of ${acked.needed} replicas within ${this.waitTimeoutMs} ms: a failover may lose it; retry with the same cmid`,
      );
    }
  }

  /**
   * With `waitAllReplicas`: how many replicas are online now (INFO
   * replication, every REPLICA_CHECK_MS and at each reconnect), so WAIT asks
   * for all of them. Kept on a failed check: a WAIT that asks too much
   * answers `outcome_unknown`, never a false ack.
   */
  private async checkReplicas(): Promise<void> {
    if (this.state === 'closed' || this.client.status !== 'ready') return;
    try {
      const info = await this.client.info('replication');
      this.replicasOnline = (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
    } catch {
      // The next check (or reconnect) tries again.
    }
  }

  private sendWait(): void {
    const waiters = this.waiters;
    this.waiters = [];
    const settle = (each: (waiter: (typeof waiters)[number]) => void): void => {
      for (const waiter of waiters) each(waiter);
      if (this.waiters.length > 0) process.nextTick(() => this.sendWait());
      else this.waiting = false;
    };
    const needed = Math.max(this.waitReplicas, this.waitAllReplicas ? this.replicasOnline : 0);
    this.client.wait(needed, this.waitTimeoutMs).then(
      (replicas) => settle((waiter) => waiter.resolve({ replicas, needed })),
      (error: unknown) => settle((waiter) => waiter.reject(error)),
    );
  }

  async recent(room: RoomRef, limit: number): Promise<RecentResult> {
    const { messages, position } = await this.read(room, 'recent', clampLimit(limit, Math.max(this.policyFor(room).maxMessages, 0)), { offset: 0, epoch: '' });
    return { messages, position };
  }

  since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    return this.read(room, 'since', clampLimit(limit, this.recoveryLimit), position);
  }

  /** Probe failures and replacements of the connection (src/redis/link.ts), for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  health(): LaneHealth {
    const base = { lane: 'history', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `history is ${this.state}` };
    const problem = this.link.problem();
    if (problem !== undefined) return { ...base, ok: false, detail: `redis ${problem}${this.client.status !== 'ready' && this.lastError ? `: ${this.lastError}` : ''}` };
    return { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed';
      this.link.stop();
      this.watch?.close();
      clearInterval(this.replicaTimer);
      this.client.off('ready', this.onReady);
      if (this.ownsClient) await closeScriptConnection(this.client);
      this.client.off('error', this.onError);
    })();
    return this.closing;
  }

  /** The bounds that apply to `room`: its longest matching policy, else the defaults. */
  policyFor(room: RoomRef): { maxMessages: number; ttlMs: number } {
    const policy = this.policies.find((candidate) => room.room.startsWith(candidate.prefix));
    return { maxMessages: policy?.maxMessages ?? this.maxMessages, ttlMs: policy?.ttlMs ?? this.ttlMs };
  }

  /** The room's key for `suffix`; tests use it to delete what they created. */
  key(room: RoomRef, suffix: string): string {
    return `${this.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:history:${suffix}`;
  }

  private async read(room: RoomRef, mode: 'recent' | 'since', limit: number, position: StreamPosition): Promise<RecoveryResult> {
    this.assertRunning();
    const reply = await this.call('read', () =>
      readScript.run(this.client, [this.key(room, 'meta'), this.key(room, 'stream')], [
        newEpoch(),
        this.policyFor(room).ttlMs,
        mode,
        limit,
        position.offset,
        position.epoch,
      ]),
    );
    if (!Array.isArray(reply) || reply.length < 3 || typeof reply[1] !== 'string' || typeof reply[2] !== 'number') {
      throw new NerveError(ErrorCode.Internal, 'unexpected reply from the history read script');
    }
    const messages = reply.slice(3).map((text) => JSON.parse(String(text)) as ChatMessage);
    return { messages, position: { offset: reply[2], epoch: reply[1] }, recovered: reply[0] === 1 };
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
  }

  /**
   * A store failure: `unavailable` when nothing happened (not sent, or a
   * read); an append sent and not answered may be stored, and says so.
   */
  private async call<T>(what: 'append' | 'read', command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      if (what === 'append' && error instanceof OutcomeUnknownError) {
        throw new OutcomeUnknownError('history append sent, no reply: the message may be stored; retry with the same cmid', { cause: error });
      }
      throw new NerveError(ErrorCode.Unavailable, 'history store unavailable', { cause: error });
    }
  }
}
