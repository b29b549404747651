/**
 * NerveClient: one logical connection to a nerve cluster, surviving socket
 * losses. It composes the connection (states, socket, reconnect), the
 * requests (ids, timeouts, re-sends) and the rooms (positions, rejoins, gap
 * fills), with the token refresh (token-refresh.ts) and the routing of each
 * server frame to the part it concerns (frame-routing.ts). Browser-safe:
 * of the protocol it imports only codes, frame types and the position rule.
 */
import type {
  AckFrame,
  CallAction,
  CallAnswerFrame,
  HistoryAnswerFrame,
  JoinedFrame,
  JoinFrame,
  Member,
  PongFrame,
  PresenceAnswerFrame,
  PresenceSetAnswerFrame,
  PresenceState,
  PublishFrame,
  RefreshedFrame,
  ServerFrame,
  SignalKind,
  StreamPosition,
  WelcomeFrame,
} from '../../protocol/src/frames.js';
import { retryDelays } from './backoff.js';
import { CallTiming } from './call-timing.js';
import { Connection } from './connection.js';
import { TypedEmitter } from './emitter.js';
import { ClientErrorCode, NerveClientError } from './errors.js';
import { FrameRouter } from './frame-routing.js';
import { randomId } from './ids.js';
import { Requests, type OnDisconnect, type Outgoing } from './requests.js';
import type { ReadAnswerFrame } from '../../protocol/src/receipts.js';
import { roomReads, type MessageActionRequest, type Room } from './room.js';
import { fetchJoinToken, historyFrame, joinFrame, Rooms } from './rooms.js';
import { TokenRefresh } from './token-refresh.js';
import {
  ClientState,
  type ChatPublishOptions,
  type Emit,
  type EphemeralPublishOptions,
  type HistoryOptions,
  type HistoryPage,
  type JoinOptions,
  type NerveClientEvents,
  type NerveClientOptions,
} from './types.js';

/**
 * One logical connection to a nerve cluster: connects, authenticates,
 * reconnects with backoff and resumes every joined room where it left off.
 * Events: {@link NerveClientEvents}; failures: {@link NerveClientError}.
 *
 * ```ts
 * const client = new NerveClient({ url: 'wss://nerve.example.com/ws', getToken });
 * await client.connect();
 * ```
 */
export class NerveClient extends TypedEmitter<NerveClientEvents> {
  /** How long a request waits for its answer, ms (`requestTimeoutMs`, default 10000). */
  readonly requestTimeoutMs: number;
  readonly #connection: Connection;
  readonly #requests: Requests;
  readonly #rooms: Rooms;
  readonly #router: FrameRouter;
  readonly #tokens: TokenRefresh;
  /** Calls joined with `call()`, joined again after a reconnect. */
  readonly #calls = new CallTiming();

  /** Checks the options (throws `TypeError` or `RangeError` naming the bad one); does not connect. */
  constructor(options: NerveClientOptions) {
    super();
    const emit: Emit = (name, value) => this.#router.dispatch(name, value);
    this.#connection = new Connection(options, {
      emit,
      takeRid: () => this.#requests.takeRid(),
      frame: (frame) => this.#router.route(frame),
      welcomed: (welcome) => {
        this.#tokens.schedule(welcome.expiresAt);
        void this.#rooms.resume(this.#connection.generation);
      },
      stopped: () => {
        this.#rooms.clearTimers();
        this.#tokens.cancel();
        this.#requests.hold();
      },
      reconnecting: () => this.#requests.requeue(),
      closed: (error) => {
        this.#requests.rejectAll(error);
        this.#rooms.clear();
      },
    });
    this.requestTimeoutMs = this.#connection.timeoutMs;
    this.#tokens = new TokenRefresh(options, {
      generation: () => this.#connection.generation,
      refresh: () => this.refreshToken(),
      error: (error) => emit('error', error),
    });
    const retryDelay = retryDelays(options.reconnect);
    this.#requests = new Requests(this.requestTimeoutMs, {
      write: (frame) => this.#connection.write(frame),
      error: (error) => emit('error', error),
      joined: (frame, rejoin) => {
        this.#rooms.onJoined(frame, rejoin);
        this.#router.joined(frame);
      },
      joinRefused: (room) => this.#rooms.onJoinRefused(room),
      retryDelay,
    });
    this.#rooms = new Rooms(this.#requests, {
      emit,
      generation: () => this.#connection.generation,
      connected: () => this.#connection.connected,
      retryDelay,
    });
    this.#router = new FrameRouter(
      {
        emit: (name, value) => this.emit(name, value),
        user: () => this.user,
        relist: (room) => void this.presence(room).catch(() => {}),
      },
      this.#rooms,
      this.#requests,
    );
    this.on('rejoined', (joined) => {
      // A refused rejoin of a call is the app's to see, as an `error` event.
      for (const call of this.#calls.of(joined.room)) {
        this.call(joined.room, call, 'join').catch((error: unknown) => {
          if (error instanceof NerveClientError) emit('error', error);
        });
      }
    });
  }

  /** The connection state; every change is a `state` event. */
  get state(): ClientState {
    return this.#connection.state;
  }

  /** The URL of the current (or last) connection attempt; before the first, the first URL of a list ('' for a function). */
  get url(): string {
    return this.#connection.url;
  }

  /** The latest welcome (connection id, node, user, limits, ICE servers), once connected. */
  get welcome(): WelcomeFrame | undefined {
    return this.#connection.welcome;
  }

  /** The authenticated user id, once connected. */
  get user(): string | undefined {
    return this.#connection.welcome?.user;
  }

  /** The current connection id, once connected. */
  get connId(): string | undefined {
    return this.#connection.state === ClientState.Connected ? this.#connection.welcome?.connId : undefined;
  }

  /** Rooms this client is in (or joining), with the last position seen. */
  rooms(): Array<{
    /** The room id. */
    room: string;
    /** The last position seen in it; undefined until the first join is answered. */
    position: StreamPosition | undefined;
  }> {
    return this.#rooms.list();
  }

  /** The last position seen in `room`, used to resume. */
  position(room: string): StreamPosition | undefined {
    const position = this.#rooms.position(room);
    return position && { ...position };
  }

  /**
   * Connect (if not already) and resolve with the welcome. Failed attempts are
   * retried with backoff. Rejects with `connect_timeout` when no welcome came
   * within `connectTimeoutMs` (default 10 s; the client then stops, state
   * `closed`, unless it was reconnecting), and when the client closes before
   * connecting (`auth_failed` and other terminal close codes, or `close()`).
   */
  connect(): Promise<WelcomeFrame> {
    return this.#connection.connect();
  }

  /**
   * Close the connection with 1000 and stop reconnecting. Every pending
   * request rejects with `closed`. Idempotent; resolves when the socket has
   * closed (or after `requestTimeoutMs` if it never reports so).
   */
  close(): Promise<void> {
    return this.#connection.close();
  }

  /**
   * The room `name` as an object, its payloads typed: `Chat` types the `data`
   * of its chat messages (events, history, `publish`), `Ephemeral` that of its
   * ephemeral ones (default: the same). The types cost nothing at run time
   * and are not checked: they are the app's word. One object per name, kept
   * for the client's life; `room()` does not join.
   *
   * ```ts
   * const lobby = client.room<{ text: string }>('lobby');
   * lobby.on('message', (m) => m.class === 'chat' && show(m.from, m.data.text));
   * await lobby.join({ getToken: (room) => backend.joinToken(room) });
   * ```
   */
  room<Chat = unknown, Ephemeral = Chat>(name: string): Room<Chat, Ephemeral> {
    return this.#router.handle(name, this) as unknown as Room<Chat, Ephemeral>;
  }

  /**
   * Replace the connection's token now: `token`, or one from `getToken`.
   * The new token must name the same user. Resolves with `refreshed`.
   */
  async refreshToken(token?: string): Promise<RefreshedFrame> {
    const fresh = token ?? (await this.#tokens.fetch());
    const answer = await this.#request<RefreshedFrame>(() => ({ op: 'refresh', token: fresh }), 'refreshed', 'reject');
    this.#tokens.schedule(answer.expiresAt);
    this.#router.dispatch('refreshed', answer);
    return answer;
  }

  #request<T extends ServerFrame | undefined>(build: () => Outgoing, answer: ServerFrame['op'], onDisconnect: OnDisconnect, room?: string): Promise<T> {
    if (this.#connection.state === ClientState.Closed) return rejectClosed();
    return this.#requests.request<T>(build, answer, onDisconnect, room);
  }

  /**
   * Join a room. Resolves with `joined` (members, recent history, position).
   * The room is rejoined automatically after every reconnect, resuming from
   * the last position seen, with its join token (`token`, or a fresh one from
   * `getToken`) when it was joined with one.
   */
  join(room: string, options: JoinOptions = {}): Promise<JoinedFrame> {
    if (this.#connection.state === ClientState.Closed) return rejectClosed();
    this.#rooms.add(room, options, options.presence);
    const send = (token: string | undefined): Promise<JoinedFrame> => {
      const build = (): Outgoing => {
        const frame: Omit<JoinFrame, 'rid'> = joinFrame(room, options.since ?? this.#rooms.position(room), token, this.#rooms.state(room));
        if (options.history !== undefined) frame.history = options.history;
        return frame;
      };
      return this.#requests.request<JoinedFrame>(build, 'joined', 'resend', room);
    };
    const getToken = options.getToken;
    if (!getToken) return send(options.token);
    return fetchJoinToken(room, getToken).then(send, (error: unknown) => {
      this.#rooms.onJoinRefused(room);
      throw error;
    });
  }

  /** Leave a room. Idempotent: leaving a room the server does not have us in resolves too. */
  leave(room: string): Promise<void> {
    this.#rooms.delete(room);
    this.#calls.forget(room);
    if (!this.#requests.ready) {
      // Not connected: the next connection will simply not rejoin. Drop any join still waiting to go out.
      this.#requests.dropQueuedJoins(room);
      return this.#connection.state === ClientState.Closed
        ? Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed'))
        : Promise.resolve();
    }
    return this.#request<LeftFrameOrUndefined>(() => ({ op: 'leave', room }), 'left', 'resolve', room).then(() => undefined);
  }

  /**
   * Publish into a joined room. Chat (the default) resolves with the `ack`
   * once stored; re-sent with the same `cmid` after a reconnect or an
   * `outcome_unknown` answer (one ack per message, `duplicate: true` when the
   * first try was stored); rejects with `timeout` after `requestTimeoutMs`.
   * Ephemeral resolves at once: at most once, dropped while disconnected,
   * errors arrive as `error` events.
   */
  publish(room: string, data: unknown, options?: ChatPublishOptions): Promise<AckFrame>;
  publish(room: string, data: unknown, options: EphemeralPublishOptions): Promise<void>;
  publish(room: string, data: unknown, options: ChatPublishOptions | EphemeralPublishOptions = {}): Promise<AckFrame | void> {
    if (options.class === 'ephemeral') {
      if (this.#connection.state === ClientState.Closed) return rejectClosed();
      const key = options.key;
      this.#requests.fireAndForget((rid) => {
        const frame: PublishFrame = { op: 'publish', rid, room, class: 'ephemeral', data };
        if (key !== undefined) frame.key = key;
        return frame;
      });
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

  /**
   * One page of a joined room's older chat, oldest first: `{ messages, more,
   * epoch }`. Page back with `before` = the offset of the oldest message you
   * hold (the first of `joined.history`, then `page.messages[0].offset`)
   * until `more` is false. The server reads the room's recent log and, past
   * it, the PostgreSQL chat archive when it has one. Does not move the room's
   * position nor emit `message`. Re-sent after a reconnect (it is a read).
   * Rejects with `not_joined`, `forbidden`, `epoch_mismatch` (the log was
   * reset: join again), `unavailable` (retry), or `timeout`.
   */
  history(room: string, options: HistoryOptions = {}): Promise<HistoryPage> {
    return this.#request<HistoryAnswerFrame>(() => historyFrame(room, options), 'history', 'resend', room).then((answer) => ({
      messages: answer.messages,
      more: answer.more,
      epoch: answer.epoch,
    }));
  }

  /**
   * Tell the server this connection joined or left call `call` (room id
   * syntax) of joined room `room`, so that it times the call: the
   * `call.started` / `call.ended` events billing reads (docs/protocol.md,
   * "Calls"). `PeerCall` with `room` and `RoomCall` do it for you. A call
   * joined is joined again after a reconnect. Needs the `signal` right in
   * the room. Rejects with `not_joined`, `forbidden`, `invalid_call`,
   * `too_many_calls`, `unavailable` or `timeout`.
   */
  call(room: string, call: string, action: CallAction): Promise<CallAnswerFrame> {
    this.#calls.note(room, call, action);
    return this.#request<CallAnswerFrame>(() => ({ op: 'call', room, call, action }), 'call', 'reject', room);
  }

  /** @internal `room.edit`, `room.delete`, `room.react`: re-sent with the same `cmid` like chat; resolves with the entry's ack. */
  act(frame: MessageActionRequest): Promise<AckFrame> {
    return this.#request<AckFrame>(() => frame, 'ack', 'resend', frame.room);
  }

  /**
   * Move your read position in joined room `room` forward to `offset`
   * (default: the room's position, the newest message loaded). Resolves with
   * the stored offset (never lower than before). See `Room.markRead`.
   */
  markRead(room: string, offset?: number): Promise<number> {
    const build = (): Outgoing => {
      const position = this.#rooms.position(room);
      return { op: 'read', room, offset: offset ?? position?.offset ?? 0, ...(position ? { epoch: position.epoch } : {}) };
    };
    return this.#request<ReadAnswerFrame>(build, 'read', 'resend', room).then((answer) => {
      const handle = this.#router.room(room);
      if (handle) roomReads(handle).moveTo(answer.offset, answer.epoch);
      return answer.offset;
    });
  }

  /** Members of a joined room, cluster-wide (in a large room the first ones; `room(name).members.count` has them all). */
  presence(room: string): Promise<Member[]> {
    return this.#request<PresenceAnswerFrame>(() => ({ op: 'presence', room }), 'presence', 'reject', room).then((frame) => {
      this.#router.room(room)?.members.reset(frame);
      return frame.members;
    });
  }

  /**
   * Replace this user's presence state in a joined room (a JSON object of at
   * most the server's `presence-state-max-bytes`, 1024 by default). It is
   * kept and sent with every rejoin, so it survives a reconnect to another
   * node. Resolves with the state the members see (your token's `presence`
   * claim merged over it); rejects with `not_joined`, `presence_too_large`,
   * `rate_limited` (2 per second per room, 10 in a burst) or `timeout`.
   */
  setPresence(room: string, state: PresenceState): Promise<PresenceState> {
    this.#rooms.setState(room, state);
    return this.#request<PresenceSetAnswerFrame>(() => ({ op: 'presence_set', room, state }), 'presence_set', 'reject', room).then((answer) => {
      const user = this.user;
      if (user !== undefined) this.#router.room(room)?.members.apply({ op: 'member_updated', room, user, state: answer.state, ts: Date.now() });
      return answer.state;
    });
  }

  /** Round trip to the node; resolves with the round-trip time in ms. */
  ping(): Promise<number> {
    const started = Date.now();
    return this.#request<PongFrame>(() => ({ op: 'ping' }), 'pong', 'reject').then(() => Date.now() - started);
  }
}

type LeftFrameOrUndefined = Extract<ServerFrame, { op: 'left' }> | undefined;

function rejectClosed(): Promise<never> {
  return Promise.reject(new NerveClientError(ClientErrorCode.Closed, 'client is closed; call connect() first'));
}
