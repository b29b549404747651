/**
 * Which lane each message class takes, and what it is promised. The gateway
 * looks a class up here; no other code decides routes (DESIGN.md, "Routing
 * is data").
 */
import type { MessageClass } from '../packages/protocol/src/frames.js';

export interface Route {
  /** `hot`: the Bus. `cold`: the EventLog. */
  lane: 'hot' | 'cold';
  /** Channel kind on the hot lane. */
  channel: 'room' | 'user' | 'none';
  /** Kept for replay: `history` (room log), `none`. */
  keep: 'history' | 'none';
  /** The sender gets an `ack` frame. */
  ack: boolean;
  /** The sender's own connection receives the message too. */
  echoToSender: boolean;
  /** Dropped first when a recipient's send buffer is over the soft limit. */
  droppable: boolean;
  /** Also emitted on the cold lane as this event type. */
  coldEvent: 'message.created' | null;
}

export const ROUTES: Readonly<Record<MessageClass, Route>> = {
  signal: { lane: 'hot', channel: 'user', keep: 'none', ack: true, echoToSender: false, droppable: false, coldEvent: null },
  ephemeral: { lane: 'hot', channel: 'room', keep: 'none', ack: false, echoToSender: false, droppable: true, coldEvent: null },
  presence: { lane: 'hot', channel: 'room', keep: 'none', ack: false, echoToSender: false, droppable: false, coldEvent: null },
  chat: { lane: 'hot', channel: 'room', keep: 'history', ack: true, echoToSender: true, droppable: false, coldEvent: 'message.created' },
  lifecycle: { lane: 'cold', channel: 'none', keep: 'none', ack: false, echoToSender: false, droppable: false, coldEvent: null },
};

export function routeOf(messageClass: MessageClass): Route {
  return ROUTES[messageClass];
}
