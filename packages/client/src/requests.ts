/**
 * Requests of one NerveClient: request ids, the queue while not ready,
 * timeouts, what a dropped socket does to each request, and the re-send of
 * chat publishes whose outcome the server could not tell.
 */
import { ErrorCode } from '../../protocol/src/codes.js';
import type { ClientFrame, ErrorFrame, JoinedFrame, RequestId, ServerFrame } from '../../protocol/src/frames.js';
import type { ReadPushFrame } from '../../protocol/src/receipts.js';
import { ClientErrorCode, errorFromFrame, NerveClientError } from './errors.js';

/** A client frame before its request id is assigned. */
export type Outgoing = ClientFrame extends infer F ? (F extends ClientFrame ? Omit<F, 'rid'> : never) : never;

/** What happens to a request that is in flight when its socket drops. */
export type OnDisconnect =
  /** Send it again on the next connection (chat publishes, with the same cmid; app joins). */
  | 'resend'
  /** Reject it with `disconnected` (signals, presence, pings, rejoins). */
  | 'reject'
  /** Consider it done (leave: a new connection is in no room). */
  | 'resolve';

/** Server frames that answer a request (the others are pushed). */
export type AnswerFrame = Exclude<
  ServerFrame,
  { op: 'message' | 'signal' | 'member_joined' | 'member_left' | 'member_updated' | 'member_count' | 'room_ended' | 'resync' } | ReadPushFrame
>;

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

export interface RequestHooks {
  /** Write a frame to the current socket; a no-op when there is none or it is not open. */
  write(frame: ClientFrame): void;
  /** An error no request promise can carry. */
  error(error: NerveClientError): void;
  /** A join was answered; `rejoin`: an automatic one, whose position the room adopts after its replay. */
  joined(frame: JoinedFrame, rejoin: boolean): void;
  /** A join of `room` was refused. */
  joinRefused(room: string): void;
  /** The backoff before re-send number `attempt` of a publish whose outcome was unknown. */
  retryDelay(attempt: number): number;
}

export class Requests {
  readonly #timeoutMs: number;
  readonly #hooks: RequestHooks;
  /** Connected and every room rejoined: requests go straight to the socket. */
  #ready = false;
  #nextRid = 1;
  /** Requests sent on the current socket, by request id. */
  readonly #inFlight = new Map<RequestId, Pending>();
  /** Requests waiting for the connection to be ready, oldest first. */
  #queue: Pending[] = [];
  /** Chat publishes waiting to be re-sent after `outcome_unknown` (rejected by close like the queue). */
  readonly #retrying = new Set<Pending>();

  constructor(timeoutMs: number, hooks: RequestHooks) {
    this.#timeoutMs = timeoutMs;
    this.#hooks = hooks;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** A fresh request id (the handshake's is `c<n>`). */
  takeRid(): number {
    return this.#nextRid++;
  }

  /** Issue a request now if the connection is ready, else queue it. */
  request<T extends ServerFrame | undefined>(build: () => Outgoing, answer: ServerFrame['op'], onDisconnect: OnDisconnect, room?: string): Promise<T> {
    const { pending, promise } = this.#create<T>(build, answer, onDisconnect, room);
    if (this.#ready) this.#send(pending);
    else this.#queue.push(pending);
    return promise;
  }

  /** Join `room` again now, before the queue (a reconnect's rejoin or a gap fill); rejected if the socket drops. */
  rejoin(room: string, build: () => Outgoing): Promise<JoinedFrame> {
    const { pending, promise } = this.#create<JoinedFrame>(build, 'joined', 'reject', room);
    pending.rejoin = true;
    this.#send(pending);
    return promise;
  }

  /** Send the frame `build` makes, which nothing answers but an error (ephemeral publishes); dropped unless ready. */
  fireAndForget(build: (rid: number) => ClientFrame): void {
    if (this.#ready) this.#hooks.write(build(this.#nextRid++));
  }

  /** Every room is rejoined: send the queue, and from now on every request at once. */
  open(): void {
    this.#ready = true;
    const queued = this.#queue;
    this.#queue = [];
    for (const pending of queued) this.#send(pending);
  }

  /** The socket is gone or going: queue new requests. */
  hold(): void {
    this.#ready = false;
  }

  /** The socket dropped and the client reconnects: requests that were on the wire are re-sent, rejected or resolved, per their kind. */
  requeue(): void {
    const resend: Pending[] = [];
    for (const pending of this.#inFlight.values()) {
      pending.rid = undefined;
      if (pending.onDisconnect === 'resend') resend.push(pending);
      else if (pending.onDisconnect === 'resolve') settleResolve(pending, undefined);
      else settleReject(pending, new NerveClientError(ClientErrorCode.Disconnected, 'connection lost before the answer'));
    }
    this.#inFlight.clear();
    // They were sent before anything still queued, so they go first.
    this.#queue = [...resend, ...this.#queue];
  }

  /** The client closed: every request rejects with `error`. */
  rejectAll(error: NerveClientError): void {
    for (const pending of this.#inFlight.values()) settleReject(pending, error);
    this.#inFlight.clear();
    const queued = this.#queue;
    this.#queue = [];
    for (const pending of queued) settleReject(pending, error);
    const retrying = [...this.#retrying];
    this.#retrying.clear();
    for (const pending of retrying) settleReject(pending, error);
  }

  /** `room` was left while not connected: a join of it still waiting to go out rejects. */
  dropQueuedJoins(room: string): void {
    const dropped = this.#queue.filter((pending) => pending.answer === 'joined' && pending.room === room);
    this.#queue = this.#queue.filter((pending) => !dropped.includes(pending));
    for (const pending of dropped) settleReject(pending, new NerveClientError(ClientErrorCode.Closed, `left ${room} before joining`, { room }));
  }

  onAnswer(frame: AnswerFrame): void {
    const rid = frame.rid;
    const pending = rid === undefined ? undefined : this.#inFlight.get(rid);
    if (!pending) {
      // Errors for fire-and-forget frames (ephemeral publishes) and late answers after a timeout.
      if (frame.op === 'error') this.#hooks.error(errorFromFrame(frame));
      return;
    }
    this.#inFlight.delete(rid!);
    if (frame.op === 'error') {
      // Leaving a room the server says we are not in is what the caller wanted.
      if (pending.answer === 'left' && frame.code === ErrorCode.NotJoined) {
        settleResolve(pending, undefined);
        return;
      }
      if (pending.answer === 'joined' && pending.room !== undefined) this.#hooks.joinRefused(pending.room);
      // Maybe stored: the re-send with the same cmid is acked once (duplicate: true if it was), so the app sees one ack.
      if (pending.answer === 'ack' && pending.onDisconnect === 'resend' && maybeStored(frame, pending)) {
        this.#resendLater(pending);
        return;
      }
      settleReject(pending, errorFromFrame(frame, pending.room));
      return;
    }
    if (frame.op !== pending.answer) {
      settleReject(pending, new NerveClientError(ClientErrorCode.BadFrame, `expected ${pending.answer}, got ${frame.op}`));
      return;
    }
    if (frame.op === 'joined') this.#hooks.joined(frame, pending.rejoin === true);
    settleResolve(pending, frame);
  }

  /**
   * Re-send a chat publish answered `outcome_unknown`, with the same cmid,
   * after a jittered backoff, so a stalled store is not hammered by every
   * client at once. It keeps its request timeout.
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
    }, this.#hooks.retryDelay(pending.unknownOutcomes));
  }

  #create<T extends ServerFrame | undefined>(
    build: () => Outgoing,
    answer: ServerFrame['op'],
    onDisconnect: OnDisconnect,
    room: string | undefined,
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
      pending.reject(new NerveClientError(ClientErrorCode.Timeout, `no ${answer} within ${this.#timeoutMs} ms`, room === undefined ? undefined : { room }));
    }, this.#timeoutMs);
    return { pending, promise };
  }

  #send(pending: Pending): void {
    const rid = this.#nextRid++;
    pending.rid = rid;
    this.#inFlight.set(rid, pending);
    this.#hooks.write({ ...pending.build(), rid });
  }
}

function settleResolve(pending: Pending, frame: ServerFrame | undefined): void {
  if (pending.timer !== undefined) clearTimeout(pending.timer);
  pending.timer = undefined;
  pending.resolve(frame);
}

function settleReject(pending: Pending, error: NerveClientError): void {
  if (pending.timer !== undefined) clearTimeout(pending.timer);
  pending.timer = undefined;
  pending.reject(error);
}

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
