/**
 * The connection of one NerveClient: its state machine, one WebSocket at a
 * time, the `connect` handshake, and the reconnect with full-jitter backoff
 * after a non-terminal close. What the frames mean is the client's business.
 */
import { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from '../../protocol/src/codes.js';
import { PROTOCOL_VERSION, type ClientFrame, type ConnectFrame, type ServerFrame, type WelcomeFrame } from '../../protocol/src/frames.js';
import { Backoff, DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS } from './backoff.js';
import { ClientErrorCode, errorFromFrame, NerveClientError } from './errors.js';
import { SOCKET_OPEN, type SocketCloseEvent, type SocketMessageEvent, type WebSocketConstructor, type WebSocketLike } from './socket.js';
import { ClientState, type Emit, type NerveClientOptions } from './types.js';
import { UrlRotation } from './url-rotation.js';

export interface ConnectionHooks {
  emit: Emit;
  /** A fresh request id for the handshake. */
  takeRid(): number;
  /** A server frame other than the handshake's answer. */
  frame(frame: ServerFrame): void;
  /** A welcome arrived (state `connected`, `connect()` callers resolved). */
  welcomed(welcome: WelcomeFrame): void;
  /** The socket is gone or going: stop timers, queue new requests. */
  stopped(): void;
  /** The socket dropped and a reconnect follows. */
  reconnecting(): void;
  /** The client is closed for good, with `error`. */
  closed(error: NerveClientError): void;
}

interface ConnectWaiter {
  resolve: (welcome: WelcomeFrame) => void;
  reject: (error: NerveClientError) => void;
  /** A `connect()` made while reconnecting: its own deadline (the client goes on reconnecting after it). */
  timer?: ReturnType<typeof setTimeout>;
}

const WS_URL = /^wss?:\/\//i;

export class Connection {
  /** The URL of the current (or last) connection attempt; before any, the first URL. */
  url: string;
  readonly #nextUrl: () => string;
  /** Set when `url` is a list: told which node failed or answered. */
  readonly #rotation: UrlRotation | undefined;
  readonly #options: NerveClientOptions;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number | undefined;
  readonly #WebSocket: WebSocketConstructor;
  readonly #backoff: Backoff | undefined;
  readonly #hooks: ConnectionHooks;

  #state: ClientState = ClientState.Closed;
  #socket: WebSocketLike | undefined;
  #welcome: WelcomeFrame | undefined;
  /** Incremented for every connection attempt; async steps of an older attempt check it and give up. */
  #generation = 0;
  #everConnected = false;
  #handshakeRid: string | undefined;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** The `connectTimeoutMs` deadline of the first connection (state `connecting`). */
  #connectDeadline: ReturnType<typeof setTimeout> | undefined;
  #connectWaiters: ConnectWaiter[] = [];
  #closing: Promise<void> | undefined;

  /** Checks `url`, `requestTimeoutMs`, `connectTimeoutMs` and the WebSocket implementation, in that order. */
  constructor(options: NerveClientOptions, hooks: ConnectionHooks) {
    const url = options.url;
    if (typeof url === 'string') {
      checkUrl(url);
      this.url = url;
      this.#nextUrl = () => url;
    } else if (Array.isArray(url)) {
      if (url.length === 0) throw new TypeError('url must not be an empty list');
      const urls = (url as readonly unknown[]).map(checkUrl);
      const rotation = new UrlRotation(urls);
      this.#rotation = rotation;
      this.url = urls[0]!;
      this.#nextUrl = () => rotation.next();
    } else if (typeof url === 'function') {
      const pick = url;
      this.url = '';
      this.#nextUrl = () => checkUrl(pick());
    } else {
      throw new TypeError(`url must be a ws:// or wss:// URL, a list of them, or a function, got ${JSON.stringify(url)}`);
    }
    const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`requestTimeoutMs must be a positive integer, got ${timeoutMs}`);
    }
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    if (connectTimeoutMs !== false && (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs <= 0)) {
      throw new RangeError(`connectTimeoutMs must be a positive integer or false, got ${String(connectTimeoutMs)}`);
    }
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      // Node 20 has no global WebSocket (22 does); say how to fix it, not just what is missing.
      throw new TypeError(
        'no WebSocket implementation: this runtime has no global WebSocket (Node before 22). ' +
          'Install ws (npm install ws) and pass it: import { WebSocket } from "ws"; new NerveClient({ url, WebSocket })',
      );
    }
    this.#options = options;
    this.#timeoutMs = timeoutMs;
    this.#connectTimeoutMs = connectTimeoutMs === false ? undefined : connectTimeoutMs;
    this.#WebSocket = WebSocketImpl;
    this.#hooks = hooks;
    this.#backoff =
      options.reconnect === false
        ? undefined
        : new Backoff({
            minDelayMs: options.reconnect?.minDelayMs ?? DEFAULT_MIN_DELAY_MS,
            maxDelayMs: options.reconnect?.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
            ...(options.reconnect?.random ? { random: options.reconnect.random } : {}),
          });
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  get state(): ClientState {
    return this.#state;
  }

  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Connected, with a socket. */
  get connected(): boolean {
    return this.#state === ClientState.Connected && this.#socket !== undefined;
  }

  /** The only writer of the state; every change is emitted as `state`, old → new (with why, on a change to `closed`). */
  #setState(next: ClientState, error?: NerveClientError): void {
    const from = this.#state;
    if (from === next) return;
    this.#state = next;
    this.#hooks.emit('state', error === undefined ? { from, to: next } : { from, to: next, error });
  }

  connect(): Promise<WelcomeFrame> {
    if (this.#state === ClientState.Connected && this.#welcome) return Promise.resolve(this.#welcome);
    let waiter!: ConnectWaiter;
    const promise = new Promise<WelcomeFrame>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    this.#connectWaiters.push(waiter);
    const limit = this.#connectTimeoutMs;
    if (this.#state === ClientState.Closed) {
      this.#closing = undefined;
      this.#everConnected = false;
      this.#backoff?.reset();
      this.#setState(ClientState.Connecting);
      // Without a deadline a dead or silent server would leave connect() pending for ever (issue 17).
      if (limit !== undefined) this.#connectDeadline = setTimeout(() => this.#connectTimedOut(limit), limit);
      void this.#open();
    } else if (this.#state === ClientState.Reconnecting && limit !== undefined) {
      // The client has rooms to resume: only this call gives up, the reconnecting goes on.
      waiter.timer = setTimeout(() => {
        this.#connectWaiters = this.#connectWaiters.filter((item) => item !== waiter);
        waiter.reject(connectTimeoutError(limit, this.url));
      }, limit);
    }
    return promise;
  }

  /** No welcome since `connect()` within `connectTimeoutMs`, before any connection: stop. */
  #connectTimedOut(limit: number): void {
    this.#connectDeadline = undefined;
    if (this.#state !== ClientState.Connecting) return;
    this.#terminate(connectTimeoutError(limit, this.url), CloseCode.Normal, 'connect timeout');
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const socket = this.#socket;
    this.#closing = socket ? waitForSocketClose(socket, this.#timeoutMs) : Promise.resolve();
    this.#terminate(new NerveClientError(ClientErrorCode.Closed, 'client closed'), CloseCode.Normal, 'client closed');
    return this.#closing;
  }

  /** Write `frame` to the socket if it is open; else the close event follows and re-queues what needs it. */
  write(frame: ClientFrame): void {
    const socket = this.#socket;
    if (socket?.readyState !== SOCKET_OPEN) return;
    try {
      socket.send(JSON.stringify(frame));
    } catch (cause) {
      this.#hooks.emit('error', new NerveClientError(ClientErrorCode.Disconnected, 'send failed', { cause }));
    }
  }

  /** Stop everything: close the socket, reject every waiter, state `closed`. */
  #terminate(error: NerveClientError, code: number, reason: string): void {
    this.#generation += 1;
    this.#stop();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) closeQuietly(socket, code, reason);
    this.#hooks.closed(error);
    if (this.#connectDeadline !== undefined) clearTimeout(this.#connectDeadline);
    this.#connectDeadline = undefined;
    for (const waiter of this.#takeWaiters()) waiter.reject(error);
    this.#setState(ClientState.Closed, error);
  }

  /** Every `connect()` caller still waiting, their own deadlines cleared. */
  #takeWaiters(): ConnectWaiter[] {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    return waiters;
  }

  #stop(): void {
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer);
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#handshakeTimer = undefined;
    this.#reconnectTimer = undefined;
    this.#hooks.stopped();
  }

  /** One connection attempt: fetch a token, open a socket, send `connect`; all of it within `requestTimeoutMs`. */
  async #open(): Promise<void> {
    const generation = ++this.#generation;
    // Armed before getToken, so a token endpoint that hangs counts against the attempt too.
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = undefined;
      if (generation !== this.#generation) return;
      // A getToken still pending for this attempt gives up when it resolves.
      this.#generation += 1;
      const socket = this.#socket;
      this.#socket = undefined;
      if (socket) {
        this.#rotation?.failed(this.url, socket.readyState === SOCKET_OPEN);
        closeQuietly(socket, 4000, 'handshake timeout');
      }
      this.#hooks.emit('error', new NerveClientError(ClientErrorCode.Timeout, 'no welcome within requestTimeoutMs'));
      this.#lost(1006, 'handshake timeout');
    }, this.#timeoutMs);
    let token = this.#options.token;
    if (this.#options.getToken) {
      try {
        token = await this.#options.getToken();
        if (typeof token !== 'string' || token === '') throw new TypeError('getToken returned an empty token');
      } catch (cause) {
        if (generation !== this.#generation) return;
        this.#hooks.emit('error', new NerveClientError(ClientErrorCode.TokenFailed, 'getToken failed', { cause }));
        this.#lost(1006, 'token failed');
        return;
      }
      if (generation !== this.#generation) return;
    }
    let socket: WebSocketLike;
    try {
      this.url = this.#nextUrl();
      socket = new this.#WebSocket(this.url);
    } catch (cause) {
      // A URL the WebSocket implementation refuses will never work: give up.
      this.#terminate(new NerveClientError(ClientErrorCode.TransportFailed, 'could not create a WebSocket', { cause }), CloseCode.Normal, 'transport failed');
      return;
    }
    this.#socket = socket;
    const rid = `c${this.#hooks.takeRid()}`;
    this.#handshakeRid = rid;
    let opened = false;
    socket.onopen = () => {
      if (socket !== this.#socket) return;
      opened = true;
      const frame: ConnectFrame = { op: 'connect', rid, v: PROTOCOL_VERSION };
      if (token !== undefined) frame.token = token;
      if (this.#options.user !== undefined) frame.user = this.#options.user;
      this.write(frame);
    };
    socket.onmessage = (event: SocketMessageEvent) => {
      if (socket === this.#socket) this.#onData(event.data);
    };
    socket.onclose = (event: SocketCloseEvent) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      // Lost or never opened: try the other nodes before this one again.
      this.#rotation?.failed(this.url, opened);
      this.#lost(event.code, event.reason);
    };
    // Errors are always followed by a close event, which does the work.
    socket.onerror = () => {};
  }

  /** The current socket is gone (already detached). Decide between reconnecting and closing. */
  #lost(code: number, reason: string): void {
    this.#stop();
    this.#handshakeRid = undefined;
    const willReconnect = this.#backoff !== undefined && !TERMINAL_CLOSE_CODES.has(code);
    this.#hooks.emit('disconnected', { code, reason, willReconnect });
    if (!willReconnect) {
      const error =
        code === CloseCode.AuthFailed
          ? new NerveClientError(ErrorCode.AuthFailed, `authentication failed: ${reason || 'closed with 4001'}`)
          : code === CloseCode.UnsupportedVersion
            ? new NerveClientError(ErrorCode.UnsupportedVersion, 'protocol version not supported by the server')
            : new NerveClientError(ClientErrorCode.Closed, `connection closed with ${code}${reason ? `: ${reason}` : ''}`);
      this.#terminate(error, CloseCode.Normal, 'closed');
      return;
    }
    this.#hooks.reconnecting();
    this.#setState(this.#everConnected ? ClientState.Reconnecting : ClientState.Connecting);
    const delay = this.#backoff.next();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#open();
    }, delay);
  }

  #onData(data: unknown): void {
    let frame: ServerFrame;
    try {
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer);
      frame = JSON.parse(text) as ServerFrame;
      if (typeof frame !== 'object' || frame === null || typeof frame.op !== 'string') throw new TypeError('no op');
    } catch (cause) {
      this.#hooks.emit('error', new NerveClientError(ClientErrorCode.BadFrame, 'server sent an unreadable frame', { cause }));
      return;
    }
    if ('rid' in frame && frame.rid !== undefined && frame.rid === this.#handshakeRid) this.#onHandshakeAnswer(frame);
    else this.#hooks.frame(frame);
  }

  #onHandshakeAnswer(frame: ServerFrame): void {
    this.#handshakeRid = undefined;
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    if (frame.op === 'error') {
      const error = errorFromFrame(frame);
      if (frame.code === ErrorCode.AuthFailed || frame.code === ErrorCode.UnsupportedVersion) {
        this.#terminate(error, CloseCode.Normal, frame.code);
        return;
      }
      this.#hooks.emit('error', error);
      const socket = this.#socket;
      this.#socket = undefined;
      this.#rotation?.failed(this.url, true);
      if (socket) closeQuietly(socket, 4000, 'handshake refused');
      this.#lost(1006, frame.code);
      return;
    }
    if (frame.op !== 'welcome') {
      this.#hooks.emit('error', new NerveClientError(ClientErrorCode.BadFrame, `expected welcome, got ${frame.op}`));
      return;
    }
    this.#welcome = frame;
    this.#rotation?.answered(this.url);
    this.#everConnected = true;
    this.#backoff?.reset();
    if (this.#connectDeadline !== undefined) clearTimeout(this.#connectDeadline);
    this.#connectDeadline = undefined;
    this.#setState(ClientState.Connected);
    this.#hooks.emit('welcome', frame);
    for (const waiter of this.#takeWaiters()) waiter.resolve(frame);
    this.#hooks.welcomed(frame);
  }
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

function connectTimeoutError(limit: number, url: string): NerveClientError {
  return new NerveClientError(ClientErrorCode.ConnectTimeout, `no welcome from ${url || 'the server'} within connectTimeoutMs (${limit} ms)`);
}

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || !WS_URL.test(url)) throw new TypeError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  return url;
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing, or still connecting in an implementation that refuses: nothing left to do.
  }
}

/** Resolve when `socket` reports its close, or after `timeoutMs`. Replaces any close handler already set. */
function waitForSocketClose(socket: WebSocketLike, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    socket.onclose = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}
