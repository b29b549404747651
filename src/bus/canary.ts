/**
 * Canary probes for a pub/sub subscriber that is connected but deaf (a
 * half-open connection behind a NAT, a subscription the server dropped):
 * nothing in the client notices, and every room on the node goes silent. So
 * every `intervalMs` the bus publishes a `canary` envelope to a private
 * channel of its own and expects it back within `timeoutMs`; if it does not
 * come, the subscriber is reconnected (which resubscribes everything).
 */
import { randomUUID } from 'node:crypto';

export interface CanaryOptions {
  /** Milliseconds between rounds. 0 disables the canary. */
  intervalMs: number;
  /** Milliseconds a probe may take to come back before the channel is declared deaf. */
  timeoutMs: number;
  /** The private channels to probe this round (one per subscriber connection). */
  channels(): string[];
  /** Whether probing `channel` makes sense now (its connections are up); a known outage is not a canary failure. */
  canProbe(channel: string): boolean;
  /** Publish probe `id` on `channel`. A rejected publish is not a canary failure (the subscriber was not tested). */
  send(channel: string, id: string): Promise<unknown>;
  /** Called when the probe on `channel` did not come back. */
  onDeaf(channel: string): void;
  /** Called when the probe on `channel` came back. */
  onHealthy(channel: string): void;
}

export class Canary {
  private readonly waiting = new Map<string, () => void>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Set by stop(): late probe outcomes are ignored. */
  private stopped = false;
  /** Probes that did not come back. */
  failures = 0;

  constructor(private readonly options: CanaryOptions) {}

  start(): void {
    if (this.options.intervalMs <= 0 || this.running || this.stopped) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // Pending probes resolve as `back` so a closing bus reports no false failure.
    for (const resolve of this.waiting.values()) resolve();
    this.waiting.clear();
  }

  /** Feed a received canary envelope id; returns whether it was one of ours. */
  received(id: string): boolean {
    const resolve = this.waiting.get(id);
    if (!resolve) return false;
    this.waiting.delete(id);
    resolve();
    return true;
  }

  /** Run one round now; resolves with the channels found deaf. Used by the timer and by tests. */
  async round(): Promise<string[]> {
    const deaf: string[] = [];
    await Promise.all(
      this.options.channels().map(async (channel) => {
        if (!this.options.canProbe(channel)) return;
        const outcome = await this.probe(channel);
        if (outcome === 'back') {
          this.options.onHealthy(channel);
        } else if (outcome === 'lost' && !this.stopped && this.options.canProbe(channel)) {
          // Re-checked: a connection that dropped during the probe is a known
          // outage, already being reconnected, not a deaf subscriber.
          this.failures += 1;
          deaf.push(channel);
          this.options.onDeaf(channel);
        }
      }),
    );
    return deaf;
  }

  /** `back`: received; `lost`: published but never received; `unsent`: the publish failed (the publisher's problem, counted there). */
  private probe(channel: string): Promise<'back' | 'lost' | 'unsent'> {
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve('lost');
      }, this.options.timeoutMs);
      this.waiting.set(id, () => {
        clearTimeout(timer);
        resolve('back');
      });
      this.options.send(channel, id).catch(() => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve('unsent');
      });
    });
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.round().finally(() => this.schedule());
    }, this.options.intervalMs);
    // The canary alone must not keep the process alive.
    this.timer.unref();
  }
}
