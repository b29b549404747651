/**
 * Pusher Channels protocol 7, the parts a server needs: channel kinds,
 * name rules, error and close codes, and the frames it sends. The rules are
 * Pusher's (https://pusher.com/docs/channels/library_auth_reference/pusher-websockets-protocol);
 * docs/pusher.md says which are supported.
 */

/** The protocol version nerve speaks (`?protocol=7`); 5 and 6 differ only in features nerve does not offer, and are accepted too. */
export const PUSHER_PROTOCOLS: ReadonlySet<number> = new Set([5, 6, 7]);

/**
 * Close codes and `pusher:error` codes. 4000-4099: do not reconnect;
 * 4100-4199: reconnect after a back-off; 4200-4299: reconnect at once;
 * 4300-4399: errors that do not close the connection.
 */
export const PusherCode = {
  /** No app has the key of `/app/{key}`. */
  AppNotFound: 4001,
  /** The app is disabled (`enabled: false`). */
  AppDisabled: 4003,
  /** The app is over its connection quota (`maxConnections`). */
  OverQuota: 4004,
  /** The WebSocket path is not `/app/{key}`. */
  PathNotFound: 4005,
  /** `protocol` is not a number. */
  InvalidVersion: 4006,
  /** `protocol` is a version nerve does not speak. */
  UnsupportedProtocol: 4007,
  /** No `protocol` query parameter. */
  NoProtocol: 4008,
  /** The connection's user was terminated (`terminate_connections`) or its sign-in was refused. */
  Unauthorized: 4009,
  /** Over capacity (a client reading too slowly): reconnect after a back-off. */
  OverCapacity: 4100,
  /** The node is shutting down: reconnect at once (to another node). */
  Reconnect: 4200,
  /** The server's `pusher:ping` got no `pusher:pong` in time. */
  PongTimeout: 4201,
  /** Closed after inactivity. */
  Inactive: 4202,
  /** A client event over the per-connection rate (`maxClientEventsPerSecond`); the connection stays open. */
  ClientEventRateLimited: 4301,
  /**
   * nerve's word for any other refused message (malformed JSON, an unknown
   * event, a bad channel name, a client event not allowed); the connection
   * stays open. Pusher leaves these codes unspecified within 4300-4399.
   */
  InvalidMessage: 4302,
} as const;
export type PusherCode = (typeof PusherCode)[keyof typeof PusherCode];

export type ChannelKind = 'public' | 'private' | 'presence' | 'encrypted';

/** Pusher's channel name rule: letters, digits and `_ - = @ , . ;`, at most 164 characters. */
const CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,164}$/;
/** Longest event name (Pusher: 200 characters). */
export const MAX_EVENT_NAME = 200;

export function isValidChannelName(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_NAME.test(name);
}

export function channelKind(name: string): ChannelKind {
  if (name.startsWith('private-encrypted-')) return 'encrypted';
  if (name.startsWith('private-')) return 'private';
  if (name.startsWith('presence-')) return 'presence';
  return 'public';
}

/** Cache channels (`cache-`, `private-cache-`, `private-encrypted-cache-`, `presence-cache-`) keep their last event for 30 minutes. */
export function isCacheChannel(name: string): boolean {
  return /^(private-encrypted-|private-|presence-)?cache-/.test(name);
}

/** How long a cache channel keeps its last event, ms (Pusher: 30 minutes). */
export const CACHE_TTL_MS = 30 * 60_000;

/** A frame nerve sends a Pusher client. `data` is a JSON string for protocol events, as Pusher sends them. */
export interface PusherFrame {
  event: string;
  channel?: string;
  data?: unknown;
  user_id?: string;
}

export function encodePusher(frame: PusherFrame): string {
  return JSON.stringify(frame);
}

export function errorFrame(code: PusherCode | null, message: string): string {
  return encodePusher({ event: 'pusher:error', data: { code, message } });
}

/** What pusher-js shows a channel whose subscription failed (`pusher:subscription_error`). */
export function subscriptionError(channel: string, status: number, error: string): string {
  return encodePusher({ event: 'pusher:subscription_error', channel, data: { type: 'AuthError', error, status } });
}
