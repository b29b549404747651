/**
 * The part of a WebSocket the SDK uses. The browser's `WebSocket` and the
 * `ws` package's `WebSocket` both fit, and so does a test fake.
 */

/** `WebSocket.OPEN`, the only ready state in which the SDK sends. */
export const SOCKET_OPEN = 1;

export interface SocketMessageEvent {
  data: unknown;
}

export interface SocketCloseEvent {
  code: number;
  reason: string;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `never` parameters: the SDK only assigns these handlers, and the real
  // implementations declare richer event types (DOM `MessageEvent`, `ws`'s
  // `WebSocket.MessageEvent`) that a narrower parameter type would reject.
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;
