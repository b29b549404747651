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

/**
 * The part of a WebSocket the SDK uses: the browser's, React Native's, Node
 * 22's global one and the `ws` package's all fit (and so does a test fake).
 */
export interface WebSocketLike {
  /** `WebSocket.readyState`: the SDK sends only when it is 1 (open). */
  readonly readyState: number;
  /** Send one text frame. */
  send(data: string): void;
  /** Start the close handshake. */
  close(code?: number, reason?: string): void;
  // `never` parameters: the SDK only assigns these handlers, and the real
  // implementations declare richer event types (DOM `MessageEvent`, `ws`'s
  // `WebSocket.MessageEvent`) that a narrower parameter type would reject.
  /** Set by the SDK: the socket opened. */
  onopen: ((event: never) => void) | null;
  /** Set by the SDK: a frame arrived (`event.data`, text). */
  onmessage: ((event: never) => void) | null;
  /** Set by the SDK: the socket closed (`event.code`, `event.reason`). */
  onclose: ((event: never) => void) | null;
  /** Set by the SDK: a socket error (a close event always follows). */
  onerror: ((event: never) => void) | null;
}

/** A WebSocket class, `new (url) => socket`: the `WebSocket` option of `NerveClient`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
