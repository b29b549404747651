/**
 * The hot lane seam. A Bus carries envelopes between nodes on named
 * channels, at most once. Implementations: memory.ts (one process),
 * redis.ts, redis-sharded.ts and rabbitmq.ts. The contract every driver
 * meets is on the members of `Bus` below; test/conformance/bus.ts checks it.
 */
import type { LaneHealth } from '../lanes.js';
import type { MessageClass } from '../../packages/protocol/src/frames.js';

export const BUS_ENVELOPE_VERSION = 1;

export interface BusEnvelope {
  /** Envelope format version. */
  v: number;
  /**
   * `deliver`: hand `payload` (an encoded client frame) to every local
   * recipient of the channel. `control`: a JSON command for the nodes
   * (`ControlCommand`, envelope.ts, where every envelope is built).
   * `canary`: a health probe a node sends to itself.
   */
  type: 'deliver' | 'control' | 'canary';
  /** Event id, unique per message. */
  id: string;
  /** Node id of the publisher. */
  origin: string;
  /** Optional trace id, propagated to logs. */
  trace?: string;
  /** Message class of the payload: decides backpressure policy on the receiving node. */
  class: MessageClass;
  /** A connection id that must not receive the payload (the sender of an ephemeral message). */
  except?: string;
  /** The encoded client frame (deliver), or JSON (control, canary). */
  payload: string;
}

export type BusMessageHandler = (channel: string, envelope: BusEnvelope) => void;

/**
 * Called after held channels were subscribed again following a loss of their
 * subscription; `channels` (never empty) are live again and may have missed
 * envelopes while they were not. Should not throw (a throw is swallowed by the driver).
 */
export type BusResubscribedHandler = (channels: string[]) => void;

export interface Bus {
  /** Driver name, for logs and health: `memory`, `redis`, ... */
  readonly driver: string;
  /**
   * Open the bus's own connections. `onMessage` receives every envelope of
   * every acquired channel, on every subscribed node including the publisher,
   * once each and in one order per channel: nodes deliver to local sockets
   * only from the bus, which is how a room gets one order on every node.
   */
  start(onMessage: BusMessageHandler, onResubscribed?: BusResubscribedHandler): Promise<void>;
  /**
   * Take a reference on a channel; the driver subscribes on the first one and
   * resolves only once envelopes published afterwards will be received. A
   * rejection (`bus_unavailable`) takes no reference.
   */
  acquire(channel: string): Promise<void>;
  /** Drop a reference; unsubscribes on the last one. Releasing an unheld channel is a no-op. */
  release(channel: string): Promise<void>;
  /**
   * Publish to every node subscribed to `channel`; resolves with how many
   * there were (0: nobody, e.g. a signal's target is offline). Never hangs:
   * with the bus down it rejects at once with a `NerveError` `bus_unavailable`.
   * Delivery is at most once, but a loss is never silent: a driver that had to
   * subscribe held channels again (connection lost, canary found it deaf,
   * shard moved) calls `onResubscribed` with them once live; the node then
   * re-reads their chat history (src/gateway/chat-recovery.ts). Memory never does.
   */
  publish(channel: string, envelope: BusEnvelope): Promise<number>;
  /** Channels currently subscribed (reference count > 0). */
  channels(): string[];
  health(): LaneHealth;
  /** Close the connections `start` opened. Idempotent. */
  close(): Promise<void>;
}
