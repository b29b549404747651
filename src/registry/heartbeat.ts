/**
 * Keeps this node's registry entry fresh: writes it at start, every
 * `intervalMs`, at once when the node starts draining, and removes it on
 * stop. A failed write is logged (once per streak) and retried on the next
 * beat; it never affects the node's traffic. The entry lives 3 intervals, so
 * a node that misses three beats (crashed, partitioned) drops out.
 */
import { errorText } from '../errors.js';
import type { Logger } from '../logger.js';
import type { NodeEntry, NodeRegistry, RegisteredState } from './registry.js';

/** Missed heartbeats after which an entry expires. */
const REGISTRY_TTL_BEATS = 3;

export interface RegistryHeartbeatOptions {
  registry: NodeRegistry;
  intervalMs: number;
  /** Builds the entry (without `state` and `ttlMs`, which the heartbeat owns). */
  snapshot: () => Promise<Omit<NodeEntry, 'state' | 'ttlMs'>>;
  log: Logger;
}

export class RegistryHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private state: RegisteredState = 'running';
  private failing = false;
  private inFlight: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastId: string | undefined;

  constructor(private readonly options: RegistryHeartbeatOptions) {}

  /** First beat (awaited, so the node is listed once `start` resolves), then one per interval. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Write the entry now, out of turn (the registry's connection was replaced: it may have missed beats). */
  beatNow(): Promise<void> {
    return this.beat();
  }

  /** Announce `draining` now (nerve status and /admin show it during the drain window). */
  draining(): Promise<void> {
    this.state = 'draining';
    return this.beat();
  }

  /** Stop beating and remove the entry. Idempotent; never throws. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.inFlight;
    if (this.lastId === undefined) return;
    await this.options.registry.remove(this.lastId).catch((error: unknown) => {
      this.options.log.warn({ err: errorText(error) }, 'node registry: remove failed; the entry expires by itself');
    });
  }

  private beat(): Promise<void> {
    // One write at a time: a slow Redis must not pile up heartbeats.
    this.inFlight = this.inFlight.then(async () => {
      if (this.stopped) return;
      try {
        const entry = await this.options.snapshot();
        this.lastId = entry.id;
        await this.options.registry.announce({ ...entry, state: this.state, ttlMs: this.options.intervalMs * REGISTRY_TTL_BEATS });
        if (this.failing) this.options.log.info('node registry: heartbeat written again');
        this.failing = false;
      } catch (error) {
        if (!this.failing) this.options.log.warn({ err: errorText(error) }, 'node registry: heartbeat failed; retrying every interval');
        this.failing = true;
      }
    });
    return this.inFlight;
  }
}
