/**
 * Connection frames: the handshake (`connect` → `welcome` with the limits
 * and ICE servers), keep-alive, token refresh and the error answer any
 * request may get (docs/protocol.md, "Connection lifecycle", `error`).
 */
import type { ErrorCode } from './codes.js';
import type { RequestId } from './frame-basics.js';

export const PROTOCOL_VERSION = 1;

export interface ConnectFrame {
  op: 'connect';
  rid: RequestId;
  /** Protocol version the client speaks. */
  v: number;
  /** Credential for the configured authenticator (a JWT, for example). */
  token?: string;
  /** Client-chosen user id; accepted only by the dev authenticator. */
  user?: string;
}

export interface PingFrame {
  op: 'ping';
  rid: RequestId;
}

/** Replace the connection's token before it expires. The new token must name the same user and tenant. */
export interface RefreshFrame {
  op: 'refresh';
  rid: RequestId;
  token: string;
}

export interface Limits {
  /** Largest accepted WebSocket frame, in bytes. */
  maxFrameBytes: number;
  /** Most rooms one connection may be in at once. */
  maxRoomsPerConnection: number;
  /** Longest accepted room id. */
  maxRoomIdLength: number;
  /** Sustained frames per second per connection (token bucket refill rate). */
  ratePerSecond: number;
  /** Burst size of the per-connection token bucket. */
  rateBurst: number;
  /** The server sends a WebSocket ping every this many milliseconds; a connection that has not answered the previous one is cut. */
  heartbeatMs: number;
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface WelcomeFrame {
  op: 'welcome';
  rid: RequestId;
  v: number;
  connId: string;
  nodeId: string;
  user: string;
  tenant: string;
  limits: Limits;
  iceServers: IceServer[];
  /** When the connection's token expires (ms since epoch): refresh before then or the connection is closed with 4010. Absent when it never expires. */
  expiresAt?: number;
}

/** Answer to `refresh`: the connection now runs on the new token. */
export interface RefreshedFrame {
  op: 'refreshed';
  rid: RequestId;
  /** When the new token expires (ms since epoch); absent when it never expires. */
  expiresAt?: number;
}

export interface PongFrame {
  op: 'pong';
  rid: RequestId;
  ts: number;
}

export interface ErrorFrame {
  op: 'error';
  /** The request this answers, when the request had a readable id. */
  rid?: RequestId;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  /** With `quota_exceeded`: which tenant quota refused the request. */
  quota?: string;
}
