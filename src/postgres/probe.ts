/**
 * The PostgreSQL pool's watchdog, the counterpart of src/redis/link.ts: every
 * `intervalMs` one `SELECT 1` that must answer within `intervalMs`, so a
 * stalled or unreachable database is noticed within 2 × `intervalMs` and
 * /readyz names it (lane `postgres`). A probe that times out releases its
 * connection with the error, so the pool destroys it instead of handing it
 * out again; the next probe (and query) gets a fresh one. Counted as
 * `probeFailures`, and `reconnects` when a probe passes again.
 */
import type pg from 'pg';
import { errorText } from '../errors.js';
import type { LaneHealth } from '../lanes.js';
import type { LinkStats } from '../redis/link.js';

export class PostgresProbe {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private failure: string | undefined;
  private readonly stats: LinkStats = { lane: 'postgres', probeFailures: 0, replacements: 0, reconnects: 0 };

  constructor(
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
  ) {}

  /** Probe now, then every interval (idempotent; 0 disables). */
  start(): void {
    if (this.running || this.intervalMs === 0) return;
    this.running = true;
    void this.probe().finally(() => this.schedule());
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One probe; resolves with whether it was answered in time. Never rejects. */
  async probe(): Promise<boolean> {
    try {
      // query_timeout: pg fails the query and the pool destroys that connection (released with the error).
      await this.pool.query({ text: 'SELECT 1', query_timeout: this.intervalMs } as pg.QueryConfig);
      if (this.failure !== undefined) this.stats.reconnects += 1;
      this.failure = undefined;
      return true;
    } catch (error) {
      if (!this.running) return false;
      this.stats.probeFailures += 1;
      this.failure = `SELECT 1 failed: ${errorText(error)}`;
      return false;
    }
  }

  health(): LaneHealth {
    return this.failure === undefined ? { lane: 'postgres', driver: 'pg', ok: true } : { lane: 'postgres', driver: 'pg', ok: false, detail: this.failure };
  }

  linkStats(): LinkStats[] {
    return [{ ...this.stats }];
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.probe().finally(() => this.schedule()), this.intervalMs);
    this.timer.unref();
  }
}
