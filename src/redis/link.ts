/**
 * The watchdog of one Redis connection, shared by every Redis lane. A TCP
 * connection can stop answering without closing, and once bytes were lost
 * ioredis matches every later reply to the wrong command. So the link PINGs
 * every `intervalMs` (valid in subscriber mode too) and wants the answer
 * within it; when a probe fails or a command times out, the socket is
 * destroyed, never reused, and the owner is told once a fresh one is ready
 * (`onRestored`). Bounds: docs/operations.md, "Connection probes".
 */
import { Cluster, Redis, ReplyError } from 'ioredis';
import { integerAtLeast } from '../config/validate.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { errorText } from '../errors.js';
import type { LaneLogger } from '../log-types.js';

/** Default probe interval, ms (`probeIntervalMs`, `--probe-interval-ms`). */
export const DEFAULT_PROBE_INTERVAL_MS = 1000;

/** The part of a pino logger the link uses. */
export type LinkLogger = Pick<LaneLogger, 'info' | 'warn'>;

export interface RedisLinkOptions {
  client: Redis | Cluster;
  /** Lane name, as in /readyz and the metric label: `bus`, `history`, `presence`, `mailbox`, `sessions`, `registry`. */
  lane: string;
  /** Which connection of the lane (`publisher`, `subscriber 127.0.0.1:7000`...), for health and logs. Default `connection`. */
  role?: string;
  /** Milliseconds between probes, and the most a probe may take; 0 disables probing (commands that time out still cut). */
  intervalMs: number;
  /** Whether the link may cut the connection: only its owner's. A caller's client is probed and reported, never cut. Default true. */
  owned?: boolean;
  log?: LinkLogger;
  /** Told when the connection is ready again after it was lost (cut by the link or by the network); should not throw. */
  onRestored?: () => void;
}

/** Counters for metrics; monotonic. */
export interface LinkStats {
  lane: string;
  /** Probes that got no answer in time (or found the connection stuck connecting). */
  probeFailures: number;
  /** Connections destroyed and replaced because a probe failed or a command timed out. */
  replacements: number;
  /** Connections ready again after a loss, whatever the cause (replaced, Redis restarted, network). */
  reconnects: number;
}

/** Links by client, so a script call (src/redis/lua-script.ts) finds the link of the connection it runs on. */
const links = new WeakMap<Redis | Cluster, RedisLink>();

/** ioredis rejects a command whose `commandTimeout` ran out with this message and no code; there is nothing else to test. */
function isCommandTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

export class RedisLink {
  readonly lane: string;
  readonly role: string;
  private readonly client: Redis | Cluster;
  private readonly intervalMs: number;
  private readonly owned: boolean;
  private readonly log: LinkLogger | undefined;
  private readonly onRestored: () => void;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Bumped at every close and cut: a command that times out after its connection is gone must not cut the next one. */
  private epoch = 0;
  /** Why the connection is not trusted now (a failed probe, a timed-out command); cleared once a fresh one is ready or a probe is answered. */
  private failure: string | undefined;
  /** Since when the client has been connecting without becoming ready (ms), or 0. */
  private connectingSince = 0;
  private everReady = false;
  private lost = false;
  readonly stats: LinkStats;

  constructor(options: RedisLinkOptions) {
    this.client = options.client;
    this.lane = options.lane;
    this.role = options.role ?? 'connection';
    this.intervalMs = options.intervalMs;
    this.owned = options.owned ?? true;
    this.log = options.log;
    this.onRestored = options.onRestored ?? (() => {});
    this.stats = { lane: this.lane, probeFailures: 0, replacements: 0, reconnects: 0 };
    integerAtLeast('probeIntervalMs', this.intervalMs, 0);
    links.set(this.client, this);
    this.client.on('close', this.onClose);
    this.client.on('ready', this.onReady);
    if (this.client.status === 'ready') this.everReady = true;
  }

  /** The link watching `client`, if any. */
  static of(client: Redis | Cluster): RedisLink | undefined {
    return links.get(client);
  }

  /** Begin probing (idempotent). */
  start(): void {
    if (this.running || this.intervalMs === 0) return;
    this.running = true;
    this.schedule();
  }

  /** Stop probing and forget the client's listeners; the connection itself is its owner's to close. Idempotent. */
  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.client.off('close', this.onClose);
    this.client.off('ready', this.onReady);
    if (links.get(this.client) === this) links.delete(this.client);
  }

  /** Why the connection is not usable now, for health; undefined when it is. */
  problem(): string | undefined {
    if (this.failure !== undefined) return `${this.role} ${this.failure}`;
    if (this.client.status !== 'ready') return `${this.role} ${this.client.status}`;
    return undefined;
  }

  /**
   * Run one command (or script call) on this connection. A command issued
   * while the connection was not ready was never sent (no offline queue) and
   * its error passes through. One that was sent and got no reply (a timeout,
   * the connection lost under it) throws `OutcomeUnknownError`: it may have
   * run, or may still. A timeout also cuts the connection, whose replies can
   * no longer be trusted to match their commands. A reply error from Redis
   * passes through: the server answered.
   */
  async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    const sent = this.client.status === 'ready';
    const epoch = this.epoch;
    try {
      return await call();
    } catch (error) {
      if (!sent || error instanceof ReplyError) throw error;
      if (isCommandTimeout(error) && epoch === this.epoch) this.cut(`command timed out (${what})`);
      throw new OutcomeUnknownError(`${what}: sent to Redis, no reply (${errorText(error)}); it may have taken effect`, { cause: error });
    }
  }

  /**
   * Destroy the connection's socket (never reused) so that ioredis connects
   * a fresh one, and distrust it until a probe is answered. A caller's
   * client is only marked. Safe to call at any time.
   */
  cut(reason: string, nodes?: Redis[]): void {
    if (!this.owned) {
      this.failure = reason;
      return;
    }
    this.failure = `${reason}; connection replaced`;
    this.epoch += 1;
    this.stats.replacements += 1;
    this.log?.warn({ lane: this.lane, role: this.role, reason }, 'redis connection not answering; replacing it');
    if (this.client instanceof Cluster) {
      // The cluster drops a node whose connection closed and connects it again at its next slot map refresh, asked for now.
      for (const node of nodes ?? this.client.nodes('all')) destroy(node);
      this.client.refreshSlotsCache();
      return;
    }
    destroy(this.client);
  }

  /** Run one probe now; resolves with whether it was answered. Used by the timer and by tests. */
  async probe(): Promise<boolean> {
    const status = this.client.status;
    if (status !== 'ready') {
      // Reconnecting with backoff is a known outage, shown by problem(). A connection stuck
      // connecting (its handshake unanswered) is cut at the first probe a full interval later.
      if (status !== 'connect' && status !== 'connecting') {
        this.connectingSince = 0;
        return false;
      }
      const now = Date.now();
      if (this.connectingSince === 0) this.connectingSince = now;
      else if (now - this.connectingSince >= this.intervalMs) {
        this.connectingSince = 0;
        this.stats.probeFailures += 1;
        this.cut(`still ${status} after ${this.intervalMs} ms`);
      }
      return false;
    }
    this.connectingSince = 0;
    const epoch = this.epoch;
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const outcomes = await Promise.all(nodes.map((node) => pingWithin(node, this.intervalMs)));
    const answered = outcomes.map((outcome) => outcome === 'answered');
    // The connection was closed or cut meanwhile: this probe says nothing about the new one.
    if (epoch !== this.epoch || !this.running) return answered.every(Boolean);
    // Our own event loop stalled past the deadline: the silence may be ours, not the connection's; the next probe decides.
    if (outcomes.includes('late')) return false;
    if (answered.every(Boolean)) {
      if (this.failure !== undefined) this.log?.info({ lane: this.lane, role: this.role }, 'redis connection answers again');
      this.failure = undefined;
      return true;
    }
    this.stats.probeFailures += 1;
    const silent = nodes.filter((_, i) => !answered[i]);
    this.cut(`PING not answered within ${this.intervalMs} ms${this.client instanceof Cluster ? ` (${silent.map(nodeName).join(', ')})` : ''}`, silent);
    return false;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.probe().finally(() => this.schedule());
    }, this.intervalMs);
    // Probes alone must not keep the process alive.
    this.timer.unref();
  }

  private readonly onClose = (): void => {
    this.epoch += 1;
    if (this.everReady) this.lost = true;
  };

  private readonly onReady = (): void => {
    this.connectingSince = 0;
    // Ready means the handshake just got its answers on this fresh socket: trusted again.
    this.failure = undefined;
    const restored = this.lost;
    this.everReady = true;
    this.lost = false;
    if (!restored) return;
    this.stats.reconnects += 1;
    try {
      this.onRestored();
    } catch (error) {
      this.log?.warn({ lane: this.lane, role: this.role, err: errorText(error) }, 'redis link: onRestored threw');
    }
  };
}

/** Destroy one connection's socket; ioredis sees a close and reconnects (or, for a cluster node, drops it). */
function destroy(client: Redis): void {
  const status = client.status;
  if (status === 'wait' || status === 'end' || status === 'reconnecting' || status === 'close') return;
  if (client.stream) client.stream.destroy();
  else client.disconnect(true);
}

function nodeName(node: Redis): string {
  return `${node.options.host ?? '?'}:${node.options.port ?? '?'}`;
}

/**
 * PING `client` and wait `ms` for the answer. `late`: the deadline timer
 * itself ran more than half an interval late (this process's event loop was
 * blocked: a long GC, a CPU-starved host), so the silence proves nothing.
 * The verdict waits one turn (setImmediate runs after the poll phase), so
 * an answer already read from the socket during such a stall still counts.
 * Never rejects.
 */
function pingWithin(client: Redis, ms: number): Promise<'answered' | 'silent' | 'late'> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: 'answered' | 'silent' | 'late'): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const started = Date.now();
    const timer = setTimeout(() => {
      const lateBy = Date.now() - started - ms;
      setImmediate(() => settle(lateBy > ms / 2 ? 'late' : 'silent'));
    }, ms);
    client.ping().then(
      () => settle('answered'),
      () => settle('silent'),
    );
  });
}
