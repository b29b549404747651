/**
 * One Pusher client connection: its app, socket id, subscriptions, signed-in
 * user, activity clock and client-event bucket. The gateway (gateway.ts)
 * drives it; this module only holds state and writes frames.
 */
import { randomInt } from 'node:crypto';
import type { WebSocket } from 'ws';
import { TokenBucket } from '../gateway/rate-limit.js';
import type { Logger } from '../logger.js';
import type { PusherApp } from './apps.js';
import { encodePusher, type ChannelKind, type PusherCode } from './protocol.js';

/** A subscription of one socket to one channel. */
export interface Subscription {
  name: string;
  kind: ChannelKind;
  /** The bus channel of the channel's room. */
  busChannel: string;
  /** Presence channels: the member's user id and `user_info` (JSON text). */
  user?: string;
  info?: string;
  /** Frames that arrived while the subscription was being set up: sent after `subscription_succeeded`, in order. */
  held?: string[];
}

/** Pusher socket ids are two integers (`1234.5678`); the official server library refuses any other shape. */
export function newSocketId(): string {
  return `${randomInt(1, 2 ** 47)}.${randomInt(1, 2 ** 47)}`;
}

export class PusherSocket {
  readonly id = newSocketId();
  readonly subscriptions = new Map<string, Subscription>();
  /** The user id of `pusher:signin`, once signed in. */
  user: string | undefined;
  /** Last time anything arrived from the client, ms. */
  lastSeen = Date.now();
  /** When the server's `pusher:ping` went out, while it waits for the `pusher:pong`. */
  pingSentAt: number | undefined;
  readonly clientEvents: TokenBucket;
  /** Every message from the client, as the node's per-connection rate limit (`ratePerSecond`, `rateBurst`). */
  readonly inbound: TokenBucket;
  /** Subscribe, unsubscribe and sign-in of one socket run one after another. */
  queue: Promise<void> = Promise.resolve();
  state: 'open' | 'closed' = 'open';

  constructor(
    readonly app: PusherApp,
    readonly ws: WebSocket,
    readonly log: Logger,
    rate: { perSecond: number; burst: number },
  ) {
    this.clientEvents = new TokenBucket(app.maxClientEventsPerSecond, app.maxClientEventsPerSecond);
    this.inbound = new TokenBucket(rate.perSecond, rate.burst);
  }

  /** Write an encoded frame; nothing once closing. */
  send(frame: string): void {
    if (this.state !== 'open' || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(frame);
  }

  event(event: string, data: unknown, channel?: string): void {
    this.send(encodePusher({ event, ...(channel === undefined ? {} : { channel }), data }));
  }

  close(code: PusherCode | 1001, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.ws.close(code, reason.slice(0, 120));
  }
}
