/**
 * Which lane each message class takes, and what it is promised. The publish
 * path (src/gateway/publish.ts) and the fan-out (src/gateway/delivery.ts)
 * read every field here; no other code compares a class by name
 * (docs/architecture.md, "Routing is data").
 */
import type { RoomRight } from './auth/grants.js';
import type { ChannelNamer } from './bus/channels.js';
import { ErrorCode } from '../packages/protocol/src/codes.js';
import { NerveError } from '../packages/protocol/src/errors.js';
import type { MessageClass } from '../packages/protocol/src/frames.js';

export interface Route {
  /** `hot`: the Bus. `cold`: the EventLog only. */
  lane: 'hot' | 'cold';
  /** Channel kind on the hot lane: the room's channel or the target user's. */
  channel: 'room' | 'user' | 'none';
  /** `history`: stored in the room log, which publishes it with its offset (and nodes check that order); `none`: published as is. */
  keep: 'history' | 'none';
  /** The sender gets an `ack` frame. */
  ack: boolean;
  /** The sender's own connection receives the message too. */
  echoToSender: boolean;
  /** Dropped first when a recipient's send buffer is over the soft limit. */
  droppable: boolean;
  /** Also emitted on the cold lane as this event type. */
  coldEvent: 'message.created' | null;
  /** A room member receives it only with this right (member_joined/left are presence, like `joined.members`). */
  recipientRight: RoomRight | null;
  /** The `op` of the frames it reaches sockets in, for `nerve_frames_out_total`. */
  op: 'signal' | 'message' | 'member' | 'resync';
  /** Sampled into `nerve_delivery_latency_seconds` (src/instrument.ts) under its class label. */
  sampleLatency: boolean;
}

// One row per class, so the table reads as the one in docs/architecture.md.
// prettier-ignore
export const ROUTES: Readonly<Record<MessageClass, Readonly<Route>>> = {
  signal: { lane: 'hot', channel: 'user', keep: 'none', ack: true, echoToSender: false, droppable: false, coldEvent: null, recipientRight: null, op: 'signal', sampleLatency: false },
  ephemeral: { lane: 'hot', channel: 'room', keep: 'none', ack: false, echoToSender: false, droppable: true, coldEvent: null, recipientRight: null, op: 'message', sampleLatency: true },
  presence: { lane: 'hot', channel: 'room', keep: 'none', ack: false, echoToSender: false, droppable: false, coldEvent: null, recipientRight: 'presence', op: 'member', sampleLatency: false },
  chat: { lane: 'hot', channel: 'room', keep: 'history', ack: true, echoToSender: true, droppable: false, coldEvent: 'message.created', recipientRight: null, op: 'message', sampleLatency: true },
  lifecycle: { lane: 'cold', channel: 'none', keep: 'none', ack: false, echoToSender: false, droppable: false, coldEvent: null, recipientRight: null, op: 'resync', sampleLatency: false },
};

/** The bus channel a message of `route` to `target` (a room id or a user id) travels on. */
export function channelOf(route: Route, namer: ChannelNamer, tenant: string, target: string): string {
  if (route.lane !== 'hot' || route.channel === 'none') throw new NerveError(ErrorCode.Internal, 'this message class does not travel on the bus');
  return route.channel === 'room' ? namer.room(tenant, target) : namer.user(tenant, target);
}
