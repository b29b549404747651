/**
 * The hot lane seam. A Bus carries envelopes between nodes on named
 * channels, at most once. Implementations: memory.ts (one process),
 * redis.ts, redis-sharded.ts and rabbitmq.ts.
 *
 * Contract every driver meets (test/conformance/bus.ts checks it):
 * - The bus owns its connections: `start` opens them, `close` closes them; `close` is idempotent.
 * - `acquire`/`release` are reference counted per channel; the driver subscribes
 *   on the first acquire and unsubscribes on the last release; `acquire`
 *   resolves only once messages published afterwards will be received; an
 *   `acquire` that rejects (`bus_unavailable`) takes no reference.
 * - Every subscribed node, including the publishing one, receives each
 *   envelope once, and all receivers of one channel see its envelopes in the
 *   same order. Nodes deliver to local sockets only from the bus, which is how
 *   a room gets one order on every node (docs/architecture.md).
 * - `publish` resolves with how many nodes were subscribed to the channel
 *   (0 means nobody: a signal's target is offline). It never hangs: when the
 *   bus is down it rejects at once with a `NerveError` of code `bus_unavailable`.
 * - Delivery is at most once, but a loss is never silent: a driver that had to
 *   subscribe a held channel again (its connection was lost, its canary found
 *   it deaf, a shard moved) calls `onResubscribed` with those channels once
 *   they are live again; envelopes published on them meanwhile may have been
 *   missed. The node re-reads chat history for them (src/gateway/chat-recovery.ts).
 *   A driver that never loses subscriptions (memory) never calls it.
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
   * Open connections; `onMessage` receives every envelope of every acquired
   * channel; `onResubscribed`, when given, hears of channels that may have
   * missed envelopes (see the contract above).
   */
  start(onMessage: BusMessageHandler, onResubscribed?: BusResubscribedHandler): Promise<void>;
  /** Take a reference on a channel; subscribes on the first one. */
  acquire(channel: string): Promise<void>;
  /** Drop a reference; unsubscribes on the last one. Releasing an unheld channel is a no-op. */
  release(channel: string): Promise<void>;
  /** Publish to every node subscribed to `channel`; resolves with how many there were. */
  publish(channel: string, envelope: BusEnvelope): Promise<number>;
  /** Channels currently subscribed (reference count > 0). */
  channels(): string[];
  health(): LaneHealth;
  /** Idempotent. */
  close(): Promise<void>;
}
