/**
 * The WAIT mode of the Redis Streams history (`waitReplicas` > 0): an append
 * is acked and published only once replicas have it, one WAIT shared by the
 * appends of a burst; with `failoverWatch`, appends are fenced from the
 * start of a Sentinel failover until the connection is on the new master.
 */
import { Redis, type Cluster } from 'ioredis';
import { errorText } from '../errors.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { RedisSentinelSettings } from '../redis/connection.js';
import { FailoverWatch } from '../redis/failover-watch.js';
import { publishScript } from './redis-scripts.js';

/** How often `waitAllReplicas` counts the replicas online, ms. */
const REPLICA_CHECK_MS = 1000;

/** Longest a fence outlives `+switch-master` when the history connection never reports ready again, ms. */
const UNFENCE_FALLBACK_MS = 10_000;

interface Acked {
  replicas: number;
  needed: number;
}

export interface ReplicaWaitOptions {
  client: Redis | Cluster;
  waitReplicas: number;
  waitTimeoutMs: number;
  waitAllReplicas: boolean;
  failoverWatch: RedisSentinelSettings | undefined;
  /** Whether the history runs (a fence lifted while it is not is lifted at once). */
  running: () => boolean;
  /** Keeps a problem for the history's health. */
  report: (problem: string) => void;
}

export class ReplicaWait {
  /** Why appends are refused now (a failover under way), or undefined. */
  fenced: string | undefined;
  /** Bumped when a failover starts: an append begun before it cannot be acked. */
  generation = 0;
  private readonly client: Redis | Cluster;
  private readonly watch: FailoverWatch | undefined;
  /** Appends stored and waiting for the next WAIT (see `replicated`). */
  private waiters: Array<{ resolve: (acked: Acked) => void; reject: (error: unknown) => void }> = [];
  /** Whether a WAIT is scheduled or in flight. */
  private waiting = false;
  /** Replicas online at the last check (`checkReplicas`). */
  private replicasOnline = 0;
  private replicaTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Rooms whose pending envelopes to publish at the end of this tick: meta key → the call (see `publishPending`). */
  private toPublish = new Map<string, { keys: [string, string]; channel: string; upto: number; done: Promise<unknown>; run: () => void }>();
  /** A reconnect may be to another master (a failover): count its replicas at once. */
  private readonly onReady = (): void => void this.checkReplicas();

  constructor(private readonly options: ReplicaWaitOptions) {
    this.client = options.client;
    if (options.failoverWatch) {
      const watch = new FailoverWatch(options.failoverWatch);
      watch.on('started', (detail) => this.fence(detail));
      watch.on('ended', (detail) => this.unfence(detail));
      this.watch = watch;
    }
  }

  /** Count the replicas (with `waitAllReplicas`) and subscribe to the sentinels; rejects when none answers. */
  async start(): Promise<void> {
    if (this.options.waitAllReplicas) {
      this.client.on('ready', this.onReady);
      await this.checkReplicas().catch(() => {});
      this.replicaTimer = setInterval(() => void this.checkReplicas(), REPLICA_CHECK_MS);
      this.replicaTimer.unref();
    }
    await this.watch?.start();
  }

  stop(): void {
    this.closed = true;
    this.watch?.close();
    clearInterval(this.replicaTimer);
    this.client.off('ready', this.onReady);
  }

  /** A failover began: no append is acked until this connection is on the new master. */
  private fence(detail: string): void {
    this.fenced = `Redis failover under way (${detail})`;
    this.generation += 1;
    this.options.report(this.fenced);
  }

  /**
   * The failover ended. After a switch, reconnect (ioredis asks the
   * sentinels for the new master) and accept appends once ready there; the
   * connection may not have left the old master yet, and ioredis' own
   * detector races with this event. An aborted failover changed nothing.
   */
  private unfence(detail: string): void {
    if (this.fenced === undefined) return;
    const client = this.client;
    if (!detail.startsWith('+switch-master') || !(client instanceof Redis) || !this.options.running()) {
      this.fenced = undefined;
      return;
    }
    const generation = this.generation;
    const lift = (): void => {
      clearTimeout(timer);
      client.off('ready', lift);
      if (this.generation === generation) this.fenced = undefined;
    };
    client.once('ready', lift);
    // Never refuse chat for good: should no `ready` come (the connection
    // replaced meanwhile), WAIT still stands between the old master and an ack.
    const timer = setTimeout(lift, UNFENCE_FALLBACK_MS);
    timer.unref();
    client.disconnect(true);
  }

  /**
   * Run `publishScript` for a room up to `upto`, once per room per tick
   * with the highest offset asked (a burst of one room's appends answered
   * by one WAIT is one script call); resolves when it ran.
   */
  publishPending(keys: [string, string], channel: string, upto: number): Promise<unknown> {
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
          this.options.report(`publishing pending chat failed: ${errorText(error)}`);
          reject(error instanceof Error ? error : new Error(errorText(error)));
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
   * meanwhile share the next one (a burst costs one replica round trip).
   */
  async replicated(): Promise<void> {
    let acked: Acked;
    try {
      acked = await new Promise<Acked>((resolve, reject) => {
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
        `history append stored on the master but on ${acked.replicas} of ${acked.needed} replicas within ${this.options.waitTimeoutMs} ms: a failover may lose it; retry with the same cmid`,
      );
    }
  }

  /**
   * With `waitAllReplicas`: how many replicas are online now (INFO
   * replication), so WAIT asks for all of them. Kept on a failed check: a
   * WAIT that asks too much answers `outcome_unknown`, never a false ack.
   */
  private async checkReplicas(): Promise<void> {
    if (this.closed || this.client.status !== 'ready') return;
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
    const needed = Math.max(this.options.waitReplicas, this.options.waitAllReplicas ? this.replicasOnline : 0);
    this.client.wait(needed, this.options.waitTimeoutMs).then(
      (replicas) => settle((waiter) => waiter.resolve({ replicas, needed })),
      (error: unknown) => settle((waiter) => waiter.reject(error)),
    );
  }
}
