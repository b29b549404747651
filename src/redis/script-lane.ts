/**
 * The lifecycle every Redis script lane shares (history, presence, mailbox,
 * room sessions), written once as socket.io adapters share theirs: the
 * connection and its watchdog, state, last error, start, an idempotent
 * close, health and what a store failure becomes. A lane keeps its scripts
 * and key layout, and overrides the few hooks it needs.
 */
import type { Cluster, Redis } from 'ioredis';
import { ConfigError } from '../config/errors.js';
import type { LaneHealth } from '../lanes.js';
import { errorText } from '../errors.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { LinkStats, RedisLink } from './link.js';
import type { LuaArg, LuaScript } from './lua-script.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ScriptConnectionOptions } from './script-connection.js';

/** How a lane names itself in health, errors and metrics. */
export interface ScriptLaneNames {
  /** As in /readyz and the metric label: `history`, `presence`, `mailbox`, `sessions`. */
  lane: string;
  /** Subject of "… closed": `history is`, `room sessions are`. */
  subject: string;
  /** End of "cannot connect to Redis for …": `history`, `the mailbox`. */
  connectFor: string;
  /** Start of "… unavailable": `history store`, `room session store`. */
  store: string;
}

/** A lane's key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`); braces would break its hash tags. Default `dev:nerve`. */
export function keyPrefix(prefix = 'dev:nerve'): string {
  if (/[{}]/.test(prefix) || prefix.length === 0) throw new ConfigError('prefix', 'a non-empty key prefix without { or }', prefix);
  return prefix;
}

type LaneState = 'idle' | 'running' | 'closed';

export abstract class RedisScriptLane {
  abstract readonly driver: string;
  protected readonly client: Redis | Cluster;
  protected readonly ownsClient: boolean;
  protected readonly link: RedisLink;
  protected state: LaneState = 'idle';
  protected lastError: string | undefined;
  private closing: Promise<void> | undefined;
  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
  };
  /** Keeps a failure for health() (for calls whose caller does not wait). */
  protected readonly recordFailure = (error: unknown): void => {
    this.lastError = errorText(error);
  };

  /**
   * Opens no socket yet (owned connections connect lazily, at start), but a
   * subclass validates its own options before calling this, so that nothing
   * throws once a connection object exists. Throws `ConfigError` unless
   * exactly one of url, nodes and client is given.
   */
  constructor(
    options: ScriptConnectionOptions,
    private readonly names: ScriptLaneNames,
  ) {
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.ownsClient = owned;
    client.on('error', this.onError);
    this.link = watchScriptConnection({
      client,
      owned,
      lane: names.lane,
      probeIntervalMs: options.probeIntervalMs,
      log: options.logger,
      onRestored: () => this.restored(),
    });
  }

  /** Before the lane runs: what must be in place first (a registration, a watch). */
  protected async starting(): Promise<void> {}
  /** Once the lane runs. */
  protected async started(): Promise<void> {}
  /** On close, after new calls are refused and before the connection closes. */
  protected async stopping(): Promise<void> {}
  /** The connection is ready again after a loss (replaced by its watchdog, or Redis came back). */
  protected restored(): void {}
  /** A problem of the lane's own that health() shows once the connection is fine. */
  protected healthProblem(): string | undefined {
    return undefined;
  }

  /** Connect (an owned connection) and run; idempotent. */
  protected async startLane(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, `${this.names.subject} closed`);
    if (this.ownsClient && this.client.status === 'wait') {
      try {
        await this.client.connect();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, `cannot connect to Redis for ${this.names.connectFor}`, { cause: error });
      }
    }
    if (this.state === 'running') return;
    await this.starting();
    this.state = 'running';
    await this.started();
  }

  /** Refuses new calls, stops the watchdog and closes an owned connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed';
      await this.stopping();
      this.link.stop();
      if (this.ownsClient) await closeScriptConnection(this.client);
      this.client.off('error', this.onError);
    })();
    return this.closing;
  }

  health(): LaneHealth {
    const base = { lane: this.names.lane, driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `${this.names.subject} ${this.state}` };
    const problem = this.link.problem();
    if (problem !== undefined)
      return { ...base, ok: false, detail: `redis ${problem}${this.client.status !== 'ready' && this.lastError ? `: ${this.lastError}` : ''}` };
    const own = this.healthProblem();
    if (own !== undefined) return { ...base, ok: false, detail: own };
    return { ...base, ok: true };
  }

  /** Probe failures and replacements of the connection (src/redis/link.ts), for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  protected assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `${this.names.subject} ${this.state}`);
  }

  /** A store failure where nothing happened (not sent, or only read). */
  protected storeUnavailable(error: unknown): NerveError {
    return new NerveError(ErrorCode.Unavailable, `${this.names.store} unavailable`, { cause: error });
  }

  /**
   * Run `script` while the lane runs. A call sent and not answered keeps its
   * OutcomeUnknownError (it may have run: a mailbox emptied, an entry
   * written); any other failure is `unavailable`, which means nothing happened.
   */
  protected async runScript(script: LuaScript, keys: string[], args: LuaArg[]): Promise<unknown> {
    this.assertRunning();
    try {
      return await script.run(this.client, keys, args);
    } catch (error) {
      if (error instanceof OutcomeUnknownError) throw error;
      throw this.storeUnavailable(error);
    }
  }
}
