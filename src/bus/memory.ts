/**
 * In-process Bus. One `MemoryBusHub` stands for the broker; every node of a
 * process-local cluster (tests) gets its own `MemoryBus` on the same hub.
 * Delivery is synchronous, in publish order, to every subscribed bus.
 */
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { RefCountedBus } from './base.js';
import type { BusEnvelope } from './bus.js';

export class MemoryBusHub {
  private readonly subscribers = new Map<string, Set<MemoryBus>>();

  subscribe(channel: string, bus: MemoryBus): void {
    let set = this.subscribers.get(channel);
    if (!set) {
      set = new Set();
      this.subscribers.set(channel, set);
    }
    set.add(bus);
  }

  unsubscribe(channel: string, bus: MemoryBus): void {
    const set = this.subscribers.get(channel);
    if (!set) return;
    set.delete(bus);
    if (set.size === 0) this.subscribers.delete(channel);
  }

  publish(channel: string, envelope: BusEnvelope): number {
    const set = this.subscribers.get(channel);
    if (!set) return 0;
    // Copy: a handler may subscribe or unsubscribe while we iterate.
    const receivers = [...set];
    for (const bus of receivers) bus.receive(channel, envelope);
    return receivers.length;
  }

  /** Number of buses subscribed to `channel` (the PUBSUB NUMSUB of this hub). */
  subscriberCount(channel: string): number {
    return this.subscribers.get(channel)?.size ?? 0;
  }
}

export interface MemoryBusOptions {
  /** Share a hub to connect several nodes in one process. Default: a private hub. */
  hub?: MemoryBusHub;
}

export class MemoryBus extends RefCountedBus {
  readonly driver = 'memory';
  readonly hub: MemoryBusHub;
  private state: 'idle' | 'running' | 'closed' = 'idle';

  constructor(options: MemoryBusOptions = {}) {
    super();
    this.hub = options.hub ?? new MemoryBusHub();
  }

  // Nothing here waits: the hooks answer with settled promises (a throw becomes a rejection, as the seam promises).

  protected open(): Promise<void> {
    this.state = 'running';
    return Promise.resolve();
  }

  protected subscribeChannel(channel: string): Promise<void> {
    this.hub.subscribe(channel, this);
    return Promise.resolve();
  }

  protected unsubscribeChannel(channel: string): Promise<void> {
    this.hub.unsubscribe(channel, this);
    return Promise.resolve();
  }

  publish(channel: string, envelope: BusEnvelope): Promise<number> {
    if (this.state !== 'running') return Promise.reject(new NerveError(ErrorCode.BusUnavailable, `memory bus is ${this.state}`));
    // Delivery is synchronous: a receiving handler that throws rejects this publish.
    return new Promise((resolve) => resolve(this.hub.publish(channel, envelope)));
  }

  /** Called by the hub. */
  receive(channel: string, envelope: BusEnvelope): void {
    if (this.state === 'running') this.handler(channel, envelope);
  }

  health(): LaneHealth {
    return { lane: 'bus', driver: this.driver, ok: this.state === 'running' };
  }

  protected shutdown(): Promise<void> {
    for (const channel of this.channels()) this.hub.unsubscribe(channel, this);
    this.state = 'closed';
    return Promise.resolve();
  }
}
