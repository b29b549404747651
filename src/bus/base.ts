/**
 * Reference counting shared by every Bus driver, so each driver implements
 * only the three hooks below (the socket.io adapter model: cluster logic
 * once, drivers small).
 */
import type { LaneHealth } from '../lanes.js';
import type { Bus, BusEnvelope, BusMessageHandler, BusResubscribedHandler } from './bus.js';

/** The `pending` of a channel with nothing in flight: one settled promise for every channel, not one each. */
const IDLE: Promise<void> = Promise.resolve();

interface ChannelState {
  refs: number;
  /**
   * Bumped each time `refs` drops to 0: a failed acquire gives its
   * reference back only if no release/acquire cycle happened meanwhile, so
   * it can never take the reference of a later, successful acquire.
   */
  generation: number;
  /** The subscribe or unsubscribe in flight for this channel; operations on one channel are serialized. */
  pending: Promise<void>;
  subscribed: boolean;
}

export abstract class RefCountedBus implements Bus {
  abstract readonly driver: string;
  protected handler: BusMessageHandler = () => {};
  private resubscribedHandler: BusResubscribedHandler | undefined;
  private readonly states = new Map<string, ChannelState>();

  /** Subscribe the driver's connection to `channel`; resolve when live. */
  protected abstract subscribeChannel(channel: string): Promise<void>;
  /** Unsubscribe from `channel`. */
  protected abstract unsubscribeChannel(channel: string): Promise<void>;
  abstract publish(channel: string, envelope: BusEnvelope): Promise<number>;
  abstract health(): LaneHealth;
  protected abstract open(): Promise<void>;
  protected abstract shutdown(): Promise<void>;

  private closing: Promise<void> | undefined;

  async start(onMessage: BusMessageHandler, onResubscribed?: BusResubscribedHandler): Promise<void> {
    this.handler = onMessage;
    this.resubscribedHandler = onResubscribed;
    await this.open();
  }

  /**
   * Driver hook: `channels` were subscribed again after their subscription
   * was lost (reconnect, canary recovery, shard move) and may have missed
   * envelopes. Only channels still referenced are reported (canaries and
   * channels released meanwhile are not); nothing is reported when none is
   * left. Never throws.
   */
  protected reportResubscribed(channels: Iterable<string>): void {
    const handler = this.resubscribedHandler;
    if (!handler) return;
    const held: string[] = [];
    for (const channel of channels) {
      if ((this.states.get(channel)?.refs ?? 0) > 0) held.push(channel);
    }
    if (held.length === 0) return;
    try {
      handler(held);
    } catch {
      // The handler's own failure must not break the driver's reconnect path.
    }
  }

  acquire(channel: string): Promise<void> {
    let state = this.states.get(channel);
    if (!state) {
      state = { refs: 0, generation: 0, pending: IDLE, subscribed: false };
      this.states.set(channel, state);
    }
    state.refs += 1;
    const taken = state;
    const generation = state.generation;
    // A failed acquire takes no reference: otherwise the caller, who never got
    // the channel, would have to release it, and a forgotten release leaks a
    // subscription once the broker is back.
    return this.reconcile(channel, state).catch((error: unknown) => {
      if (taken.generation === generation && taken.refs > 0) {
        taken.refs -= 1;
        if (taken.refs === 0) {
          taken.generation += 1;
          void this.reconcile(channel, taken).catch(() => {});
        }
      }
      throw error;
    });
  }

  release(channel: string): Promise<void> {
    const state = this.states.get(channel);
    if (!state || state.refs === 0) return Promise.resolve();
    state.refs -= 1;
    if (state.refs === 0) state.generation += 1;
    return this.reconcile(channel, state);
  }

  /** Channels whose reference count is positive. */
  channels(): string[] {
    return [...this.states.entries()].filter(([, state]) => state.refs > 0).map(([channel]) => channel);
  }

  /** Driver hook for reconnects: the channels to subscribe again. */
  protected wantedChannels(): string[] {
    return this.channels();
  }

  /**
   * Bring the subscription in line with the reference count, after whatever
   * is in flight for this channel. Serializing per channel makes a fast
   * join/leave/join sequence end subscribed, never in a stale state.
   */
  private reconcile(channel: string, state: ChannelState): Promise<void> {
    const next = state.pending.then(async () => {
      if (state.refs > 0 && !state.subscribed) {
        await this.subscribeChannel(channel);
        state.subscribed = true;
      } else if (state.refs === 0 && state.subscribed) {
        state.subscribed = false;
        await this.unsubscribeChannel(channel);
      }
      // Nothing queued behind this operation, and it is done: the channel is
      // idle. Forget it if unsubscribed; else drop the spent promise (a held
      // channel, e.g. each connected user's, would keep one for its life).
      if (state.pending === tail) {
        if (state.refs === 0 && !state.subscribed && this.states.get(channel) === state) this.states.delete(channel);
        else state.pending = IDLE;
      }
    });
    // A failed subscribe must not poison later operations on the channel.
    const tail = next.catch(() => {});
    state.pending = tail;
    return next;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown().finally(() => this.states.clear());
    return this.closing;
  }
}
