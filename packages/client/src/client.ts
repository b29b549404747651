/**
 * NerveClient: one logical connection to a nerve cluster, surviving socket
 * losses. It owns one WebSocket at a time; when the socket drops with a
 * non-terminal close code it reconnects with jittered backoff, rejoins every
 * room from the last position it saw (`since: {offset, epoch}`), and re-sends
 * the chat messages that were never acknowledged, with their original `cmid`
 * so the server stores each one once.
 *
 * Browser-safe: imports only the runtime-free parts of the protocol module
 * (codes and frame types), never the zod schemas.
 */
import { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from '../../protocol/src/codes.js';
import {
  PROTOCOL_VERSION,
  type AckFrame,
  type ChatMessage,
  type ClientFrame,
  type ConnectFrame,
  type ErrorFrame,
  type JoinedFrame,
  type JoinFrame,
  type Member,
  type MemberJoinedFrame,
  type MemberLeftFrame,
  type MessageFrame,
  type PongFrame,
  type PresenceAnswerFrame,
  type PublishFrame,
  type RefreshedFrame,
  type RequestId,
  type ResyncFrame,
  type RoomEndedFrame,
  type ServerFrame,
  type SignalDelivery,
  type SignalKind,
  type StreamPosition,
  type WelcomeFrame,
} from '../../protocol/src/frames.js';
import { offsetStep, positionStep } from '../../protocol/src/positions.js';
import { Backoff, backoffDelay, DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS } from './backoff.js';
import { TypedEmitter } from './emitter.js';
import { ClientErrorCode, NerveClientError } from './errors.js';
import { randomId } from './ids.js';
import { SOCKET_OPEN, type SocketCloseEvent, type SocketMessageEvent, type WebSocketConstructor, type WebSocketLike } from './socket.js';

/** Connection states. `setState` is the only writer and emits every change as `state`. */
export const ClientState = {
  /** `connect()` was called and no connection has been established yet. */
  Connecting: 'connecting',
  /** Authenticated (a `welcome` arrived) and the socket is open. */
  Connected: 'connected',
  /** A connection was lost with a non-terminal close code; waiting for the backoff or retrying. */
  Reconnecting: 'reconnecting',
  /** Not connected and not trying: before `connect()`, after `close()`, or after a terminal close code. */
  Closed: 'closed',
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

export interface ReconnectOptions {
  /** Smallest reconnect delay and base of the exponential window, ms. Default 250. */
  minDelayMs?: number;
  /** Largest reconnect delay, ms. Default 10000. */
  maxDelayMs?: number;
  /** Randomness in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

export interface NerveClientOptions {
  /**
   * Where to connect. Required. One WebSocket URL (e.g. a load balancer,
   * `wss://nerve.example.com/ws`); or a list of node URLs, tried in turn:
   * the first attempt uses the first URL and every later attempt (a
   * reconnect, or a retry after a failed attempt) moves to the next one, so
   * a client whose node died resumes on another; or a function called before
   * every attempt that returns the URL to use.
   */
  url: string | readonly string[] | (() => string);
  /** User id to claim; accepted only by a node running the dev authenticator. Default none. */
  user?: string;
  /** A fixed credential (e.g. a JWT) sent in `connect`. Default none. */
  token?: string;
  /**
   * Called before every connection attempt for a fresh credential; wins
   * over `token`. Also called shortly before the connection's token expires
   * (`welcome.expiresAt`), and the new token is sent with `refresh` so the
   * connection survives the expiry (else the server closes it with 4010 and
   * the client reconnects with a fresh token). Default none.
   */
  getToken?: () => Promise<string>;
  /**
   * How long before the token's expiry to refresh it, ms. Default: a fifth
   * of the remaining lifetime, between 1 s and 60 s.
   */
  refreshLeadMs?: number;
  /** WebSocket implementation. Default `globalThis.WebSocket`; Node callers pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** How long a request (and the connect handshake) may wait for its answer, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Reconnect backoff, or `false` to never reconnect on its own. Default `{ minDelayMs: 250, maxDelayMs: 10000 }`. */
  reconnect?: ReconnectOptions | false;
}

export interface JoinOptions {
  /** Resume from this position: the answer carries the missed messages and `recovered`. Default: the position this client last saw in the room, if any. */
  since?: StreamPosition;
  /** Recent chat messages to return when not resuming. Default: the node's `historyOnJoin`. */
  history?: number;
}

export interface ChatPublishOptions {
  class?: 'chat';
  /** Client message id; a retry with the same id is stored once. Default: a random id. */
  cmid?: string;
}

export interface EphemeralPublishOptions {
  class: 'ephemeral';
  /** Coalescing key such as `cursor` or `typing`; under pressure only the latest per key is kept. */
  key?: string;
}

export interface StateChange {
  from: ClientState;
  to: ClientState;
}

export interface DisconnectInfo {
  /** WebSocket close code (1006 when the socket failed without a close frame). */
  code: number;
  reason: string;
  /** Whether the client is going to reconnect on its own. */
  willReconnect: boolean;
}

export interface RecoveryFailed {
  room: string;
  /** The rejoin's answer: `history` holds recent messages to resync from, `position` the new position. */
  joined: JoinedFrame;
}

/** Events of `NerveClient`, name → payload. */
export interface NerveClientEvents {
  /** Every state change, old → new. */
  state: StateChange;
  /** Every successful handshake (the first one and each reconnect). */
  welcome: WelcomeFrame;
  /** The socket closed; `willReconnect` says what happens next. */
  disconnected: DisconnectInfo;
  /** A chat or ephemeral message in a joined room (chat: also the missed ones replayed after a resume). */
  message: MessageFrame;
  /** A direct signal addressed to this user. */
  signal: SignalDelivery;
  member_joined: MemberJoinedFrame;
  member_left: MemberLeftFrame;
  /** Failures no request promise can carry: unmatched error frames, failed rejoins, token failures. */
  error: NerveClientError;
  /** A room was joined again after a reconnect. */
  rejoined: JoinedFrame;
  /**
   * A rejoin could not return exactly the missed messages (`recovered: false`):
   * resync the room from `joined.history`. Also after a gap fill (a chat offset
   * jumped, the epoch changed, or the server sent `resync`) answered so.
   */
  recovery_failed: RecoveryFailed;
  /** The server API ended a room this client was in; it is not rejoined. */
  room_ended: RoomEndedFrame;
  /** The connection's token was replaced before it expired (`getToken` + `refresh`). */
  refreshed: RefreshedFrame;
}

/** A client frame before its request id is assigned. */
type Outgoing = ClientFrame extends infer F ? (F extends ClientFrame ? Omit<F, 'rid'> : never) : never;

/** What happens to a request that is in flight when its socket drops. */
type OnDisconnect =
  /** Send it again on the next connection (chat publishes, with the same cmid; app joins). */
  | 'resend'
  /** Reject it with `disconnected` (signals, presence, pings, rejoins). */
  | 'reject'
  /** Consider it done (leave: a new connection is in no room). */
  | 'resolve';

interface Pending {
  build: () => Outgoing;
  /** The server op that answers this request. */
  answer: ServerFrame['op'];
  onDisconnect: OnDisconnect;
  /** Room a join or leave concerns. */
  room?: string;
  /** An automatic rejoin: its answer's position is adopted only after the replay. */
  rejoin?: boolean;
  resolve: (frame: ServerFrame | undefined) => void;
  reject: (error: NerveClientError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  rid?: RequestId;
  /** Chat publishes answered `outcome_unknown` so far (each is re-sent, same cmid, after a backoff). */
  unknownOutcomes?: number;
  /** The backoff before such a re-send. */
  retryTimer?: ReturnType<typeof setTimeout> | undefined;
}

interface RoomEntry {
  /** Last position seen (from joined, rejoined or message frames). */
  position: StreamPosition | undefined;
  /** The server answered `joined` at least once: the room is rejoined after reconnects. */
  joined: boolean;
  /**
   * While a rejoin or a gap fill is in flight: live chat messages held back,
   * so that the replayed (missed) ones are delivered first and in offset order.
   */
  held: ChatMessage[] | undefined;
  /** The gap fill in flight (its token), if any; a reconnect's rejoin clears it and takes over. */
  fill?: number | undefined;
  /** Failed gap fills in a row (retry backoff). */
  fillFailures?: number;
  /** Another gap was reported (`resync`) while a rejoin or fill was in flight: fill again once it is done. */
  refill?: boolean;
}

/** Whether `history`, read from `since` on, skips a message anywhere (the server could not read part of it). */
function hasHole(since: StreamPosition | undefined, history: readonly MessageFrame[]): boolean {
  let seen = since;
  for (const message of history) {
    if (message.class !== 'chat') continue;
    const step = seen ? positionStep(seen, message.offset, message.epoch) : 'next';
    if (step === 'seen') continue;
    if (step === 'gap') return true;
    seen = { offset: message.offset, epoch: message.epoch };
  }
  return false;
}

interface ConnectWaiter {
  resolve: (welcome: WelcomeFrame) => void;
  reject: (error: NerveClientError) => void;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

const WS_URL = /^wss?:\/\//i;

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || !WS_URL.test(url)) throw new TypeError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  return url;
}

export class NerveClient extends TypedEmitter<NerveClientEvents> {
  /** The URL of the current (or last) connection attempt; before any, the first URL. */
  #url: string;
  readonly #nextUrl: () => string;
  readonly requestTimeoutMs: number;
  readonly #options: NerveClientOptions;
  readonly #WebSocket: WebSocketConstructor;
  readonly #backoff: Backoff | undefined;
  /** Delay before gap-fill attempt number `failures + 1`. */
  readonly #fillDelay: (failures: number) => number;

  #state: ClientState = ClientState.Closed;
  #socket: WebSocketLike | undefined;
  #welcome: WelcomeFrame | undefined;
  /** Incremented for every connection attempt; async steps of an older attempt check it and give up. */
  #generation = 0;
  #everConnected = false;
  #handshakeRid: RequestId | undefined;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Connected and every room rejoined: requests go straight to the socket. */
  #ready = false;
  #nextRid = 1;
  /** Requests sent on the current socket, by request id. */
  readonly #inFlight = new Map<RequestId, Pending>();
  /** Requests waiting for the connection to be ready, oldest first. */
  #queue: Pending[] = [];
  readonly #rooms = new Map<string, RoomEntry>();
  #connectWaiters: ConnectWaiter[] = [];
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #closing: Promise<void> | undefined;
  /** Gap fill tokens, and the retry timers of failed fills (cleared with the other timers). */
  #fillSeq = 0;
  readonly #fillTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Chat publishes waiting to be re-sent after `outcome_unknown` (rejected by close like the queue). */
  readonly #retrying = new Set<Pending>();

  constructor(options: NerveClientOptions) {
    super();
    const url = options.url;
    if (typeof url === 'string') {
      checkUrl(url);
      this.#url = url;
      this.#nextUrl = () => url;
    } else if (Array.isArray(url)) {
      if (url.length === 0) throw new TypeError('url must not be an empty list');
      const urls = (url as readonly unknown[]).map(checkUrl);
      let next = 0;
      this.#url = urls[0]!;
      this.#nextUrl = () => urls[next++ % urls.length]!;
    } else if (typeof url === 'function') {
      const pick = url as () => string;
      this.#url = '';
      this.#nextUrl = () => checkUrl(pick());
    } else {
      throw new TypeError(`url must be a ws:// or wss:// URL, a list of them, or a function, got ${JSON.stringify(url)}`);
    }
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) {
      throw new RangeError(`requestTimeoutMs must be a positive integer, got ${requestTimeoutMs}`);
    }
    const WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      // Node 20 has no global WebSocket (22 does); say how to fix it, not just what is missing.
      throw new TypeError(
        'no WebSocket implementation: this runtime has no global WebSocket (Node before 22). ' +
          'Install ws (npm install ws) and pass it: import { WebSocket } from "ws"; new NerveClient({ url, WebSocket })',
      );
    }
    this.requestTimeoutMs = requestTimeoutMs;
    this.#options = options;
    this.#WebSocket = WebSocketImpl;
    // Gap fills that fail, and chat publishes answered outcome_unknown, retry on the same jittered
    // curve as reconnects, so the members of a room whose history lane is down do not retry in lockstep.
    const retry = options.reconnect === false ? {} : (options.reconnect ?? {});
    this.#fillDelay = (failures) =>
      backoffDelay(failures - 1, retry.minDelayMs ?? DEFAULT_MIN_DELAY_MS, retry.maxDelayMs ?? DEFAULT_MAX_DELAY_MS, (retry.random ?? Math.random)());
    this.#backoff =
      options.reconnect === false
        ? undefined
        : new Backoff({
            minDelayMs: options.reconnect?.minDelayMs ?? DEFAULT_MIN_DELAY_MS,
            maxDelayMs: options.reconnect?.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
            ...(options.reconnect?.random ? { random: options.reconnect.random } : {}),
          });
  }

  // ------------------------------------------------------------------ state

  get state(): ClientState {
    return this.#state;
  }

  /** The URL of the current (or last) connection attempt; before the first, the first URL of a list ('' for a function). */
  get url(): string {
    return this.#url;
  }

  /** The latest welcome (connection id, node, user, limits, ICE servers), once connected. */
  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  /** The authenticated user id, once connected. */
  get user(): string | undefined {
    return this.#welcome?.user;
  }

  /** The current connection id, once connected. */
  get connId(): string | undefined {
    return this.#state === ClientState.Connected ? this.#welcome?.connId : undefined;
  }

  /** Rooms this client is in (or joining), with the last position seen. */
  rooms(): Array<{ room: string; position: StreamPosition | undefined }> {
    return [...this.#rooms].map(([room, entry]) => ({ room, position: entry.position && { ...entry.position } }));
  }

  /** The last position seen in `room`, used to resume. */
  position(room: string): StreamPosition | undefined {
    const position = this.#rooms.get(room)?.position;
    return position && { ...position };
  }

  #setState(next: ClientState): void {
    const from = this.#state;
    if (from === next) return;
    this.#state = next;
    this.emit('state', { from, to: next });
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Connect (if not already) and resolve with the welcome. Failed attempts are
   * retried with backoff; the promise rejects only when the client closes
   * before connecting (terminal close code such as 4001, or `close()`).
   */
  connect(): Promise<WelcomeFrame> {
    if (this.#state === ClientState.Connected && this.#welcome) return Promise.resolve(this.#welcome);
    const promise = new Promise<WelcomeFrame>((resolve, reject) => {
      this.#connectWaiters.push({ resolve, reject });
    });
    if (this.#state === ClientState.Closed) {
      this.#closing = undefined;
      this.#everConnected = false;
      this.#backoff?.reset();
      this.#setState(ClientState.Connecting);
      void this.#open();
    }
    return promise;
  }

  /**
   * Close the connection with 1000 and stop reconnecting. Every pending
   * request rejects with `closed`. Idempotent; resolves when the socket has
   * closed (or after `requestTimeoutMs` if it never reports so).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const socket = this.#socket;
    this.#closing = socket ? waitForSocketClose(socket, this.requestTimeoutMs) : Promise.resolve();
    this.#terminate(new NerveClientError(ClientErrorCode.Closed, 'client closed'), CloseCode.Normal, 'client closed');
    return this.#closing;
  }

  /** Stop everything: close the socket, reject every waiter, state `closed`. */
  #terminate(error: NerveClientError, code: number, reason: string): void {
    this.#generation += 1;
    this.#clearTimers();
    this.#ready = false;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) closeQuietly(socket, code, reason);
    for (const pending of this.#inFlight.values()) this.#settleReject(pending, error);
    this.#inFlight.clear();
    const queued = this.#queue;
    this.#queue = [];
    for (const pending of queued) this.#settleReject(pending, error);
    const retrying = [...this.#retrying];
    this.#retrying.clear();
    for (const pending of retrying) this.#settleReject(pending, error);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
    this.#rooms.clear();
    this.#setState(ClientState.Closed);
  }

  #clearTimers(): void {
    for (const timer of this.#fillTimers) clearTimeout(timer);
    this.#fillTimers.clear();
    if (this.#refreshTimer !== undefined) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer);
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#handshakeTimer = undefined;
    this.#reconnectTimer = undefined;
  }

  /** One connection attempt: fetch a token, open a socket, send `connect`. */
  async #open(): Promise<void> {
    const generation = ++this.#generation;
    let token = this.#options.token;
    if (this.#options.getToken) {
      try {
        token = await this.#options.getToken();
        if (typeof token !== 'string' || token === '') throw new TypeError('getToken returned an empty token');
      } catch (cause) {
        if (generation !== this.#generation) return;
        this.emit('error', new NerveClientError(ClientErrorCode.TokenFailed, 'getToken failed', { cause }));
        this.#lost(1006, 'token failed');
        return;
      }
      if (generation !== this.#generation) return;
    }
    let socket: WebSocketLike;
    try {
      this.#url = this.#nextUrl();
      socket = new this.#WebSocket(this.#url);
    } catch (cause) {
      // A URL the WebSocket implementation refuses will never work: give up.
      this.#terminate(
        new NerveClientError(ClientErrorCode.TransportFailed, 'could not create a WebSocket', { cause }),
        CloseCode.Normal,
        'transport failed',
      );
      return;
    }
    this.#socket = socket;
    const rid = `c${this.#nextRid++}`;
    this.#handshakeRid = rid;
    socket.onopen = () => {
      if (socket !== this.#socket) return;
      const frame: ConnectFrame = { op: 'connect', rid, v: PROTOCOL_VERSION };
      if (token !== undefined) frame.token = token;
      if (this.#options.user !== undefined) frame.user = this.#options.user;
      this.#write(socket, frame);
    };
    socket.onmessage = ((event: SocketMessageEvent) => {
      if (socket === this.#socket) this.#onData(event.data);
    }) as (event: never) => void;
    socket.onclose = ((event: SocketCloseEvent) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      this.#lost(event.code, event.reason);
    }) as (event: never) => void;
    // Errors are always followed by a close event, which does the work.
    socket.onerror = () => {};
    this.#handshakeTimer = setTimeout(() => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      closeQuietly(socket, 4000, 'handshake timeout');
      this.emit('error', new NerveClientError(ClientErrorCode.Timeout, 'no welcome within requestTimeoutMs'));
      this.#lost(1006, 'handshake timeout');
    }, this.requestTimeoutMs);
  }

  /** The current socket is gone (already detached). Decide between reconnecting and closing. */
  #lost(code: number, reason: string): void {
    this.#clearTimers();
    this.#ready = false;
    this.#handshakeRid = undefined;
    const willReconnect = this.#backoff !== undefined && !TERMINAL_CLOSE_CODES.has(code);
    this.emit('disconnected', { code, reason, willReconnect });
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
    // Requests that were on the wire: resend, reject or resolve, per their kind.
    const resend: Pending[] = [];
    for (const pending of this.#inFlight.values()) {
      pending.rid = undefined;
      if (pending.onDisconnect === 'resend') resend.push(pending);
      else if (pending.onDisconnect === 'resolve') this.#settleResolve(pending, undefined);
      else this.#settleReject(pending, new NerveClientError(ClientErrorCode.Disconnected, 'connection lost before the answer'));
    }
    this.#inFlight.clear();
    // They were sent before anything still queued, so they go first.
    this.#queue = [...resend, ...this.#queue];
    this.#setState(this.#everConnected ? ClientState.Reconnecting : ClientState.Connecting);
    const delay = this.#backoff!.next();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#open();
    }, delay);
  }

  // ------------------------------------------------------------------ incoming

  #onData(data: unknown): void {
    let frame: ServerFrame;
    try {
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer);
      frame = JSON.parse(text) as ServerFrame;
      if (typeof frame !== 'object' || frame === null || typeof frame.op !== 'string') throw new TypeError('no op');
    } catch (cause) {
      this.emit('error', new NerveClientError(ClientErrorCode.BadFrame, 'server sent an unreadable frame', { cause }));
      return;
    }
    if ('rid' in frame && frame.rid !== undefined && frame.rid === this.#handshakeRid) {
      this.#onHandshakeAnswer(frame);
      return;
    }
    switch (frame.op) {
      case 'message':
        this.#onMessage(frame);
        return;
      case 'signal':
        this.emit('signal', frame);
        return;
      case 'member_joined':
        this.emit('member_joined', frame);
        return;
      case 'member_left':
        this.emit('member_left', frame);
        return;
      case 'welcome':
        return;
      case 'room_ended':
        this.#rooms.delete(frame.room);
        this.emit('room_ended', frame);
        return;
      case 'resync':
        this.#onResync(frame);
        return;
      default:
        this.#onAnswer(frame);
    }
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
      this.emit('error', error);
      const socket = this.#socket;
      this.#socket = undefined;
      if (socket) closeQuietly(socket, 4000, 'handshake refused');
      this.#lost(1006, frame.code);
      return;
    }
    if (frame.op !== 'welcome') {
      this.emit('error', new NerveClientError(ClientErrorCode.BadFrame, `expected welcome, got ${frame.op}`));
      return;
    }
    this.#welcome = frame;
    this.#everConnected = true;
    this.#backoff?.reset();
    this.#setState(ClientState.Connected);
    this.emit('welcome', frame);
    this.#scheduleRefresh(frame.expiresAt);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) waiter.resolve(frame);
    void this.#resume(this.#generation);
  }

  /** After a (re)connect: rejoin rooms from their last position, then flush the queue. */
  async #resume(generation: number): Promise<void> {
    const rooms = [...this.#rooms].filter(([, entry]) => entry.joined);
    const results = await Promise.allSettled(
      rooms.map(([room, entry]) => {
        const since = entry.position;
        entry.held = [];
        // This rejoin resumes from the same position as any gap fill in flight: it takes over.
        entry.fill = undefined;
        const pending = this.#makePending<JoinedFrame>(
          () => (since ? { op: 'join', room, since } : { op: 'join', room }),
          'joined',
          'reject',
          room,
        );
        pending.pending.rejoin = true;
        this.#send(pending.pending);
        return pending.promise;
      }),
    );
    if (generation !== this.#generation) return;
    results.forEach((result, index) => {
      const room = rooms[index]![0];
      const held = this.#rooms.get(room)?.held ?? [];
      const entryNow = this.#rooms.get(room);
      if (entryNow) entryNow.held = undefined;
      if (result.status === 'rejected') {
        const error = result.reason as NerveClientError;
        if (error.code === ClientErrorCode.Disconnected || error.code === ClientErrorCode.Closed) return;
        if (entryNow?.position && rejoinRetryable(error.code)) {
          // A lane down for a moment (the history store timed out) must not make
          // the app leave the room without knowing: the room keeps its place and
          // the rejoin is retried like a failed gap fill, from the same
          // position, holding live chat meanwhile (found by the chaos soak).
          entryNow.held = held;
          entryNow.fill = undefined;
          this.#retryFill(room, entryNow, this.#generation, error.code, `rejoining ${room} failed, retrying: ${error.message}`, error);
          return;
        }
        this.#rooms.delete(room);
        this.emit('error', new NerveClientError(error.code, `rejoining ${room} failed: ${error.message}`, { cause: error, room }));
        for (const message of held) this.emit('message', message);
        return;
      }
      const joined = result.value;
      const entry = this.#rooms.get(room);
      if (!entry) return; // left meanwhile
      if (joined.recovered === false) {
        entry.position = { ...joined.position };
        this.emit('recovery_failed', { room, joined });
      } else {
        this.#replay(entry, joined);
      }
      this.emit('rejoined', joined);
      // Live messages that arrived during the rejoin, after the replay; duplicates are dropped.
      for (const message of held) this.#onMessage(message);
      this.#refillIfAsked(room, entry);
    });
    if (generation !== this.#generation || this.#state !== ClientState.Connected) return;
    this.#ready = true;
    const queued = this.#queue;
    this.#queue = [];
    for (const pending of queued) this.#send(pending);
  }

  /** `acceptGap`: deliver even past a gap (after `recovery_failed`, the app resyncs anyway). */
  #onMessage(frame: MessageFrame, acceptGap = false): void {
    if (frame.class === 'chat') {
      const entry = this.#rooms.get(frame.room);
      if (entry?.held) {
        entry.held.push(frame);
        return;
      }
      if (entry) {
        const step = entry.position ? positionStep(entry.position, frame.offset, frame.epoch) : 'next';
        // Already delivered (resume overlap).
        if (step === 'seen') return;
        if (step === 'gap' && entry.joined && !acceptGap) {
          // Messages between the last one seen and this one are missing: fetch them first; this one waits.
          this.#fill(frame.room, entry);
          entry.held?.push(frame);
          return;
        }
        entry.position = { offset: frame.offset, epoch: frame.epoch };
      }
    }
    this.emit('message', frame);
  }

  // ------------------------------------------------------------------ gap fills

  /** The server could not fill a gap in `room` itself: fetch it (as for an offset jump). */
  #onResync(frame: ResyncFrame): void {
    const entry = this.#rooms.get(frame.room);
    if (!entry?.joined || !entry.position) return; // a join in flight: its answer is the resync
    this.#fill(frame.room, entry);
  }

  /**
   * Fetch the chat `room` is missing: hold live chat and join the room again
   * with `since` = the last position seen (a join of a joined room is
   * idempotent and answers with the messages after `since`); then replay the
   * answer and the held messages, in order. The position never passes a gap
   * that was not filled. While a rejoin or fill is in flight, one more is
   * asked for after it (its answer may predate this gap).
   */
  #fill(room: string, entry: RoomEntry): void {
    if (entry.held) {
      entry.refill = true;
      return;
    }
    entry.held = [];
    this.#sendFill(room, entry);
  }

  #sendFill(room: string, entry: RoomEntry): void {
    const since = entry.position;
    if (!since || this.#state !== ClientState.Connected || !this.#socket) {
      // Not connected: the reconnect rejoins from the same position (#resume) and replays all of it.
      entry.held = undefined;
      return;
    }
    const token = ++this.#fillSeq;
    entry.fill = token;
    const generation = this.#generation;
    const { pending, promise } = this.#makePending<JoinedFrame>(() => ({ op: 'join', room, since: { ...since } }), 'joined', 'reject', room);
    // Its position is adopted by #filled, after the replay.
    pending.rejoin = true;
    this.#send(pending);
    promise.then(
      (joined) => this.#filled(room, entry, token, joined),
      (error: unknown) => this.#fillFailed(room, entry, token, generation, error),
    );
  }

  #filled(room: string, entry: RoomEntry, token: number, joined: JoinedFrame): void {
    if (this.#rooms.get(room) !== entry || entry.fill !== token) return; // left, or a reconnect's rejoin took over
    entry.fill = undefined;
    entry.fillFailures = 0;
    const held = entry.held ?? [];
    entry.held = undefined;
    const first = held[0];
    // The answer must reach the held messages (they were stored before it was read), and must itself have no hole;
    // one that fails either is treated as unrecoverable rather than asked again forever.
    const short = first !== undefined && joined.position.epoch === first.epoch && offsetStep(joined.position.offset, true, first.offset) === 'gap';
    if (joined.recovered === false || short || hasHole(entry.position, joined.history)) {
      entry.position = { ...joined.position };
      this.emit('recovery_failed', { room, joined });
      for (const message of held) this.#onMessage(message, true);
    } else {
      this.#replay(entry, joined);
      for (const message of held) this.#onMessage(message);
    }
    this.#refillIfAsked(room, entry);
  }

  /**
   * Deliver what a rejoin (a reconnect's or a gap fill's) answered with, as
   * ordinary messages (#onMessage drops any already seen), then adopt its
   * position — unless the replay itself skipped ahead and started a fill:
   * the position never passes a gap that was not filled.
   */
  #replay(entry: RoomEntry, joined: JoinedFrame): void {
    for (const message of joined.history) this.#onMessage(message);
    const seen = entry.position;
    if (entry.held) return;
    if (!seen || seen.epoch !== joined.position.epoch || seen.offset < joined.position.offset) entry.position = { ...joined.position };
  }

  #fillFailed(room: string, entry: RoomEntry, token: number, generation: number, error: unknown): void {
    if (this.#rooms.get(room) !== entry || entry.fill !== token) return;
    entry.fill = undefined;
    const code = error instanceof NerveClientError ? error.code : ClientErrorCode.Disconnected;
    if (generation !== this.#generation || code === ClientErrorCode.Disconnected || code === ClientErrorCode.Closed) {
      // The reconnect's rejoin resumes from the same position, which the held messages are all past.
      entry.held = undefined;
      entry.refill = false;
      return;
    }
    // Timeout or a refusal: say so, keep holding (the position stays before the gap), and try again with backoff.
    this.#retryFill(room, entry, generation, code, `fetching missed messages of ${room} failed: ${(error as Error).message}`, error);
  }

  /** Emit `message` as an error of `room`, then fetch the room again from its position after the fill backoff. */
  #retryFill(room: string, entry: RoomEntry, generation: number, code: NerveClientError['code'], message: string, cause: unknown): void {
    const failures = (entry.fillFailures ?? 0) + 1;
    entry.fillFailures = failures;
    this.emit('error', new NerveClientError(code, message, { cause, room }));
    const timer = setTimeout(() => {
      this.#fillTimers.delete(timer);
      if (this.#rooms.get(room) !== entry || entry.fill !== undefined || !entry.held || generation !== this.#generation) return;
      this.#sendFill(room, entry);
    }, this.#fillDelay(failures));
    this.#fillTimers.add(timer);
  }

  /** A gap was reported while a rejoin or fill was in flight: fill once more. */
  #refillIfAsked(room: string, entry: RoomEntry): void {
    if (!entry.refill || entry.held || this.#rooms.get(room) !== entry) return;
    entry.refill = false;
    this.#fill(room, entry);
  }

  #onAnswer(frame: Exclude<ServerFrame, MessageFrame | SignalDelivery | MemberJoinedFrame | MemberLeftFrame | RoomEndedFrame | ResyncFrame>): void {
    const rid = frame.rid;
    const pending = rid === undefined ? undefined : this.#inFlight.get(rid);
    if (!pending) {
      // Errors for fire-and-forget frames (ephemeral publishes) and late answers after a timeout.
      if (frame.op === 'error') this.emit('error', errorFromFrame(frame));
      return;
    }
    this.#inFlight.delete(rid!);
    if (frame.op === 'error') {
      // Leaving a room the server says we are not in is what the caller wanted.
      if (pending.answer === 'left' && frame.code === ErrorCode.NotJoined) {
        this.#settleResolve(pending, undefined);
        return;
      }
      if (pending.answer === 'joined' && pending.room !== undefined) {
        const entry = this.#rooms.get(pending.room);
        if (entry && !entry.joined) this.#rooms.delete(pending.room);
      }
      // Maybe stored: the re-send with the same cmid is acked once (duplicate: true if it was), so the app sees one ack.
      if (pending.answer === 'ack' && pending.onDisconnect === 'resend' && maybeStored(frame, pending)) {
        this.#resendLater(pending);
        return;
      }
      this.#settleReject(pending, errorFromFrame(frame, pending.room));
      return;
    }
    if (frame.op !== pending.answer) {
      this.#settleReject(pending, new NerveClientError(ClientErrorCode.BadFrame, `expected ${pending.answer}, got ${frame.op}`));
      return;
    }
    if (frame.op === 'joined') {
      const entry = this.#rooms.get(frame.room);
      if (entry) {
        entry.joined = true;
        // A rejoin's position is adopted by #resume, after the missed messages are replayed.
        if (!pending.rejoin) entry.position = { ...frame.position };
      }
    }
    this.#settleResolve(pending, frame);
  }

  /**
   * Re-send a chat publish answered `outcome_unknown`, with the same cmid,
   * after a jittered backoff (the curve of reconnects: a stalled store is
   * not hammered by every client at once). It keeps its request timeout: if
   * no ack comes within `requestTimeoutMs` of the publish, it rejects with
   * `timeout`.
   */
  #resendLater(pending: Pending): void {
    pending.rid = undefined;
    pending.unknownOutcomes = (pending.unknownOutcomes ?? 0) + 1;
    this.#retrying.add(pending);
    pending.retryTimer = setTimeout(() => {
      pending.retryTimer = undefined;
      if (!this.#retrying.delete(pending)) return;
      if (this.#ready) this.#send(pending);
      else this.#queue.push(pending);
    }, this.#fillDelay(pending.unknownOutcomes));
  }

  // ------------------------------------------------------------------ requests

  #makePending<T extends ServerFrame | undefined>(
    build: () => Outgoing,
    answer: ServerFrame['op'],
    onDisconnect: OnDisconnect,
    room?: string,
  ): { pending: Pending; promise: Promise<T> } {
    let pending!: Pending;
    const promise = new Promise<T>((resolve, reject) => {
      pending = {
        build,
        answer,
        onDisconnect,
        resolve: resolve as (frame: ServerFrame | undefined) => void,
        reject,
        timer: undefined,
        ...(room === undefined ? {} : { room }),
      };
    });
    pending.timer = setTimeout(() => {
      pending.timer = undefined;
      if (pending.rid !== undefined) this.#inFlight.delete(pending.rid);
      this.#queue = this.#queue.filter((item) => item !== pending);
      if (pending.retryTimer !== undefined) clearTimeout(pending.retryTimer);
      this.#retrying.delete(pending);
      pending.reject(new NerveClientError(ClientErrorCode.Timeout, `no ${answer} within ${this.requestTimeoutMs} ms`, room === undefined ? undefined : { room }));
    }, this.requestTimeoutMs);
    return { pending, promise };
  }

  /** Ask `getToken` for a new token shortly before `expiresAt` and send it with `refresh`. */
  #scheduleRefresh(expiresAt: number | undefined): void {
    if (this.#refreshTimer !== undefined) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (expiresAt === undefined || !this.#options.getToken) return;
    const remaining = expiresAt - Date.now();
    const lead = this.#options.refreshLeadMs ?? Math.min(60_000, Math.max(1_000, Math.floor(remaining / 5)));
    const generation = this.#generation;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      if (generation !== this.#generation) return;
      this.refreshToken().catch((error: unknown) => {
        // The server closes the connection at expiry (4010); the reconnect fetches a new token.
        if (generation === this.#generation) this.emit('error', error instanceof NerveClientError ? error : new NerveClientError(ClientErrorCode.TokenFailed, 'token refresh failed', { cause: error }));
      });
    }, Math.min(Math.max(0, remaining - lead), 2 ** 31 - 1));
  }

  /**
   * Replace the connection's token now: `token`, or one from `getToken`.
   * The new token must name the same user. Resolves with `refreshed`.
   */
  async refreshToken(token?: string): Promise<RefreshedFrame> {
    let fresh = token;
    if (fresh === undefined) {
      const getToken = this.#options.getToken;
      if (!getToken) throw new NerveClientError(ClientErrorCode.TokenFailed, 'no token given and no getToken option');
      try {
        fresh = await getToken();
      } catch (cause) {
        throw new NerveClientError(ClientErrorCode.TokenFailed, 'getToken failed', { cause });
      }
      if (typeof fresh !== 'string' || fresh === '') throw new NerveClientError(ClientErrorCode.TokenFailed, 'getToken returned an empty token');
    }
    const value = fresh;
    const answer = await this.#request<RefreshedFrame>(() => ({ op: 'refresh', token: value }), 'refreshed', 'reject');
    this.#scheduleRefresh(answer.expiresAt);
    this.emit('refreshed', answer);
    return answer;
  }

  /** Issue a request now if the connection is ready, else queue it. */
  #request<T extends ServerFrame | undefined>(
    build: () => Outgoing,
    answer: ServerFrame['op'],
    onDisconnect: OnDisconnect,
    room?: string,
  ): Promise<T> {
    if (this.#state === ClientState.Closed) {
      return Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed; call connect() first'));
    }
    const { pending, promise } = this.#makePending<T>(build, answer, onDisconnect, room);
    if (this.#ready) this.#send(pending);
    else this.#queue.push(pending);
    return promise;
  }

  #send(pending: Pending): void {
    const socket = this.#socket;
    const rid = this.#nextRid++;
    pending.rid = rid;
    this.#inFlight.set(rid, pending);
    if (socket) this.#write(socket, { ...pending.build(), rid } as ClientFrame);
  }

  #write(socket: WebSocketLike, frame: ClientFrame): void {
    if (socket.readyState !== SOCKET_OPEN) return; // the close event follows and re-queues what needs it
    try {
      socket.send(JSON.stringify(frame));
    } catch (cause) {
      this.emit('error', new NerveClientError(ClientErrorCode.Disconnected, 'send failed', { cause }));
    }
  }

  #settleResolve(pending: Pending, frame: ServerFrame | undefined): void {
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    pending.timer = undefined;
    pending.resolve(frame);
  }

  #settleReject(pending: Pending, error: NerveClientError): void {
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    pending.timer = undefined;
    pending.reject(error);
  }

  // ------------------------------------------------------------------ public operations

  /**
   * Join a room. Resolves with `joined` (members, recent history, position).
   * The room is rejoined automatically after every reconnect, resuming from
   * the last position seen.
   */
  join(room: string, options: JoinOptions = {}): Promise<JoinedFrame> {
    if (this.#state === ClientState.Closed) {
      return Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed; call connect() first'));
    }
    if (!this.#rooms.has(room)) this.#rooms.set(room, { position: undefined, joined: false, held: undefined });
    const build = (): Outgoing => {
      const frame: Omit<JoinFrame, 'rid'> = { op: 'join', room };
      const since = options.since ?? this.#rooms.get(room)?.position;
      if (since) frame.since = since;
      if (options.history !== undefined) frame.history = options.history;
      return frame;
    };
    return this.#request<JoinedFrame>(build, 'joined', 'resend', room);
  }

  /** Leave a room. Idempotent: leaving a room the server does not have us in resolves too. */
  leave(room: string): Promise<void> {
    this.#rooms.delete(room);
    if (!this.#ready) {
      // Not connected: the next connection will simply not rejoin. Drop any join still waiting to go out.
      const dropped = this.#queue.filter((pending) => pending.answer === 'joined' && pending.room === room);
      this.#queue = this.#queue.filter((pending) => !dropped.includes(pending));
      for (const pending of dropped) this.#settleReject(pending, new NerveClientError(ClientErrorCode.Closed, `left ${room} before joining`, { room }));
      return this.#state === ClientState.Closed
        ? Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed'))
        : Promise.resolve();
    }
    return this.#request<LeftFrameOrUndefined>(() => ({ op: 'leave', room }), 'left', 'resolve', room).then(() => undefined);
  }

  /**
   * Publish into a joined room. Chat (the default) resolves with the `ack`
   * once stored; if the connection drops first, it is re-sent after the
   * reconnect with the same `cmid`, and so it is, after a backoff, when the
   * server answers `outcome_unknown` (the store did not answer in time):
   * one ack per message, `duplicate: true` when the first try was stored.
   * Rejects with `timeout` when no ack came within `requestTimeoutMs`. Ephemeral resolves at once: at-most-once,
   * dropped while disconnected, errors arrive as `error` events.
   */
  publish(room: string, data: unknown, options?: ChatPublishOptions): Promise<AckFrame>;
  publish(room: string, data: unknown, options: EphemeralPublishOptions): Promise<void>;
  publish(room: string, data: unknown, options: ChatPublishOptions | EphemeralPublishOptions = {}): Promise<AckFrame | void> {
    if (options.class === 'ephemeral') {
      if (this.#state === ClientState.Closed) {
        return Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed; call connect() first'));
      }
      const socket = this.#socket;
      if (this.#ready && socket) {
        const frame: PublishFrame = { op: 'publish', rid: this.#nextRid++, room, class: 'ephemeral', data };
        if (options.key !== undefined) frame.key = options.key;
        this.#write(socket, frame);
      }
      return Promise.resolve();
    }
    const cmid = options.cmid ?? randomId();
    return this.#request<AckFrame>(() => ({ op: 'publish', room, class: 'chat', data, cmid }), 'ack', 'resend', room);
  }

  /**
   * Send a direct signal to every connection of user `to`. Resolves with the
   * ack; rejects with code `peer_offline` when the user is connected nowhere.
   * Queued while reconnecting; a signal in flight when the socket drops
   * rejects with `disconnected` (signals are at-most-once).
   */
  signal(to: string, kind: SignalKind, data: unknown): Promise<AckFrame> {
    return this.#request<AckFrame>(() => ({ op: 'signal', to, kind, data }), 'ack', 'reject');
  }

  /** Members of a joined room, cluster-wide. */
  presence(room: string): Promise<Member[]> {
    return this.#request<PresenceAnswerFrame>(() => ({ op: 'presence', room }), 'presence', 'reject', room).then(
      (frame) => frame.members,
    );
  }

  /** Round trip to the node; resolves with the round-trip time in ms. */
  ping(): Promise<number> {
    const started = Date.now();
    return this.#request<PongFrame>(() => ({ op: 'ping' }), 'pong', 'reject').then(() => Date.now() - started);
  }
}

type LeftFrameOrUndefined = Extract<ServerFrame, { op: 'left' }> | undefined;

/**
 * Whether a chat publish answered `code` may have been stored, so it is
 * re-sent rather than failed: `outcome_unknown`, or a refusal of a re-send
 * (the store still down, rate limited, over a per-second tenant quota: those
 * carry `retryAfterMs`) after an earlier try's outcome was unknown.
 * Rejecting then would tell the app "not stored" about a message that may be.
 */
function maybeStored(frame: ErrorFrame, pending: Pending): boolean {
  const code = frame.code;
  if (code === ErrorCode.OutcomeUnknown) return true;
  const retrying = (pending.unknownOutcomes ?? 0) > 0;
  const transientQuota = code === ErrorCode.QuotaExceeded && frame.retryAfterMs !== undefined;
  return retrying && (code === ErrorCode.Unavailable || code === ErrorCode.BusUnavailable || code === ErrorCode.RateLimited || transientQuota);
}

/**
 * Whether a rejoin answered `code` is tried again rather than dropping the
 * room: the server or a lane was down for a moment, nothing says the user
 * may not be in the room.
 */
function rejoinRetryable(code: string): boolean {
  return (
    code === ErrorCode.Unavailable ||
    code === ErrorCode.BusUnavailable ||
    code === ErrorCode.OutcomeUnknown ||
    code === ErrorCode.Internal ||
    code === ErrorCode.RateLimited ||
    code === ClientErrorCode.Timeout
  );
}

function errorFromFrame(frame: ErrorFrame, room?: string): NerveClientError {
  const options: { retryAfterMs?: number; room?: string; quota?: string } = {};
  if (frame.retryAfterMs !== undefined) options.retryAfterMs = frame.retryAfterMs;
  if (frame.quota !== undefined) options.quota = frame.quota;
  if (room !== undefined) options.room = room;
  return new NerveClientError(frame.code, frame.message, options);
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing, or still connecting in an implementation that refuses: nothing left to do.
  }
}

/** Resolve when `socket` reports its close, or after `timeoutMs`. Chains any handler already set. */
function waitForSocketClose(socket: WebSocketLike, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    socket.onclose = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}
