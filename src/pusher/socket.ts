/**
 * One Pusher client connection: its app, socket id, subscriptions, signed-in
 * user, activity clock and client-event bucket. gateway.ts, channels.ts
 * and events.ts drive it; this module only holds state and writes frames.
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { canWriteDirectly, TextFrame } from '../gateway/text-frame.js';
import { TokenBucket } from '../gateway/rate-limit.js';
import type { Logger } from '../logger.js';
import type { PusherApp } from '../config/pusher-apps.js';
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
  held?: Array<string | TextFrame>;
}

/** Pusher socket ids are two integers (`1234.5678`); the official server library refuses any other shape. */
function newSocketId(): string {
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
  /** Admitted by the tenant's connection quota and metered (src/quotas/guard.ts): told when it closes. */
  countedTenant = false;
  /** The client address counted against `maxConnectionsPerIp` (with /ws's), uncounted when it closes. */
  countedAddress: string | undefined;

  constructor(
    readonly app: PusherApp,
    readonly ws: WebSocket,
    readonly log: Logger,
    rate: { perSecond: number; burst: number },
    /** The TCP socket under `ws`: a delivery's prebuilt frame is written to it directly (text-frame.ts). */
    private readonly tcp: Duplex,
  ) {
    // Fixed by the handshake (the Pusher endpoint offers no compression, so always true there); read once, not per delivery.
    this.plainFrames = ws.extensions === '';
    this.clientEvents = new TokenBucket(app.maxClientEventsPerSecond, app.maxClientEventsPerSecond);
    this.inbound = new TokenBucket(rate.perSecond, rate.burst);
  }

  private readonly plainFrames: boolean;

  /**
   * Write an encoded frame; nothing once closing. A TextFrame is a delivery
   * shared by every subscriber of a channel: its bytes were encoded and
   * framed once, and are written as they are (as text) instead of `ws`
   * encoding the string again for each socket.
   */
  send(frame: string | TextFrame): void {
    if (this.state !== 'open' || this.ws.readyState !== this.ws.OPEN) return;
    if (!(frame instanceof TextFrame)) this.ws.send(frame);
    else if (canWriteDirectly(this.ws, this.plainFrames)) this.tcp.write(frame.wire);
    else this.ws.send(frame.payload, { binary: false });
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
