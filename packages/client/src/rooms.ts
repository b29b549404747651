/**
 * The rooms of one NerveClient: the last position seen in each, rejoins
 * after a reconnect (with the room's join token), and gap fills: when a chat
 * offset skips ahead (or the server sends `resync`), live chat is held, the
 * missed messages are fetched with a join from the last position and
 * delivered first, in offset order.
 */
import { ErrorCode } from '../../protocol/src/codes.js';
import type { ChatMessage, HistoryFrame, JoinedFrame, JoinFrame, MessageFrame, PresenceState, ResyncFrame, StreamPosition } from '../../protocol/src/frames.js';
import { offsetStep, positionStep } from '../../protocol/src/positions.js';
import { ClientErrorCode, errorText, NerveClientError } from './errors.js';
import type { Requests } from './requests.js';
import type { Emit, HistoryOptions, JoinOptions } from './types.js';

/** How a room's joins prove the right to join: a join token, or where to get one. */
export type JoinCredentials = Pick<JoinOptions, 'token' | 'getToken'>;

interface RoomEntry {
  /** Last position seen (from joined, rejoined or message frames). */
  position: StreamPosition | undefined;
  /** The server answered `joined` at least once: the room is rejoined after reconnects. */
  joined: boolean;
  /** The connection (generation) the room was last joined on: a join on another one shows the join token again. */
  joinedOn?: number;
  /** The join token (or its source) from `join()`, if any. */
  credentials?: JoinCredentials | undefined;
  /** While a rejoin or a gap fill is in flight: live chat held back, so the missed messages go first. */
  held: ChatMessage[] | undefined;
  /** The gap fill in flight (its token), if any; a reconnect's rejoin clears it and takes over. */
  fill?: number | undefined;
  /** Failed gap fills in a row (retry backoff). */
  fillFailures?: number;
  /** Another gap was reported (`resync`) while a rejoin or fill was in flight: fill again once it is done. */
  refill?: boolean;
  /** The presence state last given (`join({ presence })`, `setPresence`): sent with every rejoin. */
  state?: PresenceState | undefined;
}

export interface RoomHooks {
  emit: Emit;
  /** The current connection attempt; async steps of an older one give up. */
  generation(): number;
  /** Connected, with a socket. */
  connected(): boolean;
  /** The backoff before gap-fill attempt number `failures + 1`. */
  retryDelay(failures: number): number;
}

export class Rooms {
  readonly #rooms = new Map<string, RoomEntry>();
  readonly #requests: Requests;
  readonly #hooks: RoomHooks;
  /** Gap fill tokens, and the retry timers of failed fills. */
  #fillSeq = 0;
  readonly #fillTimers = new Set<ReturnType<typeof setTimeout>>();

  constructor(requests: Requests, hooks: RoomHooks) {
    this.#requests = requests;
    this.#hooks = hooks;
  }

  list(): Array<{ room: string; position: StreamPosition | undefined }> {
    return [...this.#rooms].map(([room, entry]) => ({ room, position: entry.position && { ...entry.position } }));
  }

  /** The last position seen in `room` (not a copy: callers copy before handing it out). */
  position(room: string): StreamPosition | undefined {
    return this.#rooms.get(room)?.position;
  }

  /** `join()` was called: track the room (its position is kept if it is known already; new credentials replace the old). */
  add(room: string, credentials?: JoinCredentials, state?: PresenceState): void {
    let entry = this.#rooms.get(room);
    if (!entry) {
      entry = { position: undefined, joined: false, held: undefined };
      this.#rooms.set(room, entry);
    }
    if (credentials?.token !== undefined || credentials?.getToken !== undefined) entry.credentials = credentials;
    if (state !== undefined) entry.state = state;
  }

  /** The presence state to send with the room's joins, if any. */
  state(room: string): PresenceState | undefined {
    return this.#rooms.get(room)?.state;
  }

  /** `setPresence()`: the state the next rejoin sends. */
  setState(room: string, state: PresenceState): void {
    const entry = this.#rooms.get(room);
    if (entry) entry.state = state;
  }

  /** Left or ended: not rejoined, its fills drop their answers. */
  delete(room: string): void {
    this.#rooms.delete(room);
  }

  /** The client closed. */
  clear(): void {
    this.#rooms.clear();
  }

  clearTimers(): void {
    for (const timer of this.#fillTimers) clearTimeout(timer);
    this.#fillTimers.clear();
  }

  /** A join was answered; a rejoin's position is adopted after its replay (#resume, #filled). */
  onJoined(frame: JoinedFrame, rejoin: boolean): void {
    const entry = this.#rooms.get(frame.room);
    if (!entry) return;
    entry.joined = true;
    entry.joinedOn = this.#hooks.generation();
    if (!rejoin) entry.position = { ...frame.position };
  }

  /** A join was refused: a room never joined is forgotten. */
  onJoinRefused(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry && !entry.joined) this.#rooms.delete(room);
  }

  /** After a (re)connect: rejoin rooms from their last position, then let the queued requests go. */
  async resume(generation: number): Promise<void> {
    const rooms = [...this.#rooms].filter(([, entry]) => entry.joined);
    const results = await Promise.allSettled(
      rooms.map(async ([room, entry]) => {
        const since = entry.position;
        entry.held = [];
        // This rejoin resumes from the same position as any gap fill in flight: it takes over.
        entry.fill = undefined;
        // A new connection holds no join grant: show the room's join token again.
        const token = await this.#joinToken(room, entry.credentials, generation);
        return this.#requests.rejoin(room, () => joinFrame(room, since, token, entry.state));
      }),
    );
    if (generation !== this.#hooks.generation()) return;
    results.forEach((result, index) => {
      const room = rooms[index]![0];
      const entryNow = this.#rooms.get(room);
      const held = entryNow?.held ?? [];
      if (entryNow) entryNow.held = undefined;
      if (result.status === 'rejected') {
        const error = result.reason as NerveClientError;
        if (error.code === ClientErrorCode.Disconnected || error.code === ClientErrorCode.Closed) return;
        if (entryNow?.position && rejoinRetryable(error.code)) {
          // A lane down for a moment must not make the app leave the room without knowing: retry
          // like a failed gap fill, from the same position, holding live chat (found by the chaos soak).
          entryNow.held = held;
          entryNow.fill = undefined;
          this.#retryFill(room, entryNow, this.#hooks.generation(), error.code, `rejoining ${room} failed, retrying: ${error.message}`, error);
          return;
        }
        this.#rooms.delete(room);
        this.#hooks.emit('error', new NerveClientError(error.code, `rejoining ${room} failed: ${error.message}`, { cause: error, room }));
        for (const message of held) this.#hooks.emit('message', message);
        return;
      }
      const joined = result.value;
      const entry = this.#rooms.get(room);
      if (!entry) return; // left meanwhile
      if (joined.recovered === false) {
        entry.position = { ...joined.position };
        this.#hooks.emit('recovery_failed', { room, joined });
      } else {
        this.#replay(entry, joined);
      }
      this.#hooks.emit('rejoined', joined);
      // Live messages that arrived during the rejoin, after the replay; duplicates are dropped.
      for (const message of held) this.onMessage(message);
      this.#refillIfAsked(room, entry);
    });
    if (generation !== this.#hooks.generation() || !this.#hooks.connected()) return;
    this.#requests.open();
  }

  /** `acceptGap`: deliver even past a gap (after `recovery_failed`, the app resyncs anyway). */
  onMessage(frame: MessageFrame, acceptGap = false): void {
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
    this.#hooks.emit('message', frame);
  }

  /** The server could not fill a gap in `room` itself: fetch it (as for an offset jump). */
  onResync(frame: ResyncFrame): void {
    const entry = this.#rooms.get(frame.room);
    if (!entry?.joined || !entry.position) return; // a join in flight: its answer is the resync
    this.#fill(frame.room, entry);
  }

  /**
   * Fetch the chat `room` is missing: hold live chat and join the room again
   * with `since` = the last position seen (a join of a joined room is
   * idempotent and answers with the messages after `since`); then replay the
   * answer and the held messages, in order. While a rejoin or fill is in
   * flight, one more is asked for after it (its answer may predate this gap).
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
    if (!since || !this.#hooks.connected()) {
      // Not connected: the reconnect rejoins from the same position (resume) and replays all of it.
      entry.held = undefined;
      return;
    }
    const token = ++this.#fillSeq;
    entry.fill = token;
    const generation = this.#hooks.generation();
    // A fill on the connection the room was joined on needs no join token (the grant lasts until the room is
    // left; an expired token would even be refused); a retried rejoin after a reconnect does.
    const credentials = entry.joinedOn === generation ? undefined : entry.credentials;
    // Its position is adopted by #filled, after the replay.
    this.#joinToken(room, credentials, generation)
      .then((joinToken) => this.#requests.rejoin(room, () => joinFrame(room, since, joinToken)))
      .then(
        (joined) => this.#filled(room, entry, token, joined),
        (error: unknown) => this.#fillFailed(room, entry, token, generation, error),
      );
  }

  /**
   * The join token a join on connection `generation` shows: the fixed one,
   * or a fresh one from `getToken` (the connection must still be current
   * when it arrives), or none.
   */
  async #joinToken(room: string, credentials: JoinCredentials | undefined, generation: number): Promise<string | undefined> {
    const getToken = credentials?.getToken;
    if (!getToken) return credentials?.token;
    const token = await fetchJoinToken(room, getToken);
    if (generation !== this.#hooks.generation())
      throw new NerveClientError(ClientErrorCode.Disconnected, 'connection lost while fetching a join token', { room });
    return token;
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
      this.#hooks.emit('recovery_failed', { room, joined });
      for (const message of held) this.onMessage(message, true);
    } else {
      this.#replay(entry, joined);
      for (const message of held) this.onMessage(message);
    }
    this.#refillIfAsked(room, entry);
  }

  /**
   * Deliver what a rejoin answered with as ordinary messages (onMessage drops
   * any already seen), then adopt its position, unless the replay itself
   * skipped ahead and started a fill: the position never passes a gap.
   */
  #replay(entry: RoomEntry, joined: JoinedFrame): void {
    for (const message of joined.history) this.onMessage(message);
    const seen = entry.position;
    if (entry.held) return;
    if (!seen || positionStep(seen, joined.position.offset, joined.position.epoch) !== 'seen') entry.position = { ...joined.position };
  }

  #fillFailed(room: string, entry: RoomEntry, token: number, generation: number, error: unknown): void {
    if (this.#rooms.get(room) !== entry || entry.fill !== token) return;
    entry.fill = undefined;
    const code = error instanceof NerveClientError ? error.code : ClientErrorCode.Disconnected;
    if (generation !== this.#hooks.generation() || code === ClientErrorCode.Disconnected || code === ClientErrorCode.Closed) {
      // The reconnect's rejoin resumes from the same position, which the held messages are all past.
      entry.held = undefined;
      entry.refill = false;
      return;
    }
    // Timeout or a refusal: say so, keep holding (the position stays before the gap), and try again with backoff.
    this.#retryFill(room, entry, generation, code, `fetching missed messages of ${room} failed: ${errorText(error)}`, error);
  }

  /** Emit `message` as an error of `room`, then fetch the room again from its position after the fill backoff. */
  #retryFill(room: string, entry: RoomEntry, generation: number, code: NerveClientError['code'], message: string, cause: unknown): void {
    const failures = (entry.fillFailures ?? 0) + 1;
    entry.fillFailures = failures;
    this.#hooks.emit('error', new NerveClientError(code, message, { cause, room }));
    const timer = setTimeout(() => {
      this.#fillTimers.delete(timer);
      if (this.#rooms.get(room) !== entry || entry.fill !== undefined || !entry.held || generation !== this.#hooks.generation()) return;
      this.#sendFill(room, entry);
    }, this.#hooks.retryDelay(failures));
    this.#fillTimers.add(timer);
  }

  /** A gap was reported while a rejoin or fill was in flight: fill once more. */
  #refillIfAsked(room: string, entry: RoomEntry): void {
    if (!entry.refill || entry.held || this.#rooms.get(room) !== entry) return;
    entry.refill = false;
    this.#fill(room, entry);
  }
}

/** A `history` request for one page of `room`'s older chat (NerveClient.history). */
export function historyFrame(room: string, options: HistoryOptions): Omit<HistoryFrame, 'rid'> {
  const frame: Omit<HistoryFrame, 'rid'> = { op: 'history', room };
  if (options.before !== undefined) frame.before = options.before;
  if (options.limit !== undefined) frame.limit = options.limit;
  if (options.epoch !== undefined) frame.epoch = options.epoch;
  return frame;
}

/** A `join` of `room`, from `since` and with a join `token` when given. */
export function joinFrame(room: string, since: StreamPosition | undefined, token: string | undefined, state?: PresenceState): Omit<JoinFrame, 'rid'> {
  const frame: Omit<JoinFrame, 'rid'> = { op: 'join', room };
  if (since) frame.since = { ...since };
  if (token !== undefined) frame.token = token;
  // The presence state goes with every join on a new connection: it comes back after a resume on another node.
  if (state !== undefined) frame.state = state;
  return frame;
}

/** A join token from the app's `getToken`; its failures (or an empty token) are `token_failed`. */
export async function fetchJoinToken(room: string, getToken: (room: string) => Promise<string>): Promise<string> {
  let token: unknown;
  try {
    token = await getToken(room);
  } catch (cause) {
    throw new NerveClientError(ClientErrorCode.TokenFailed, `getToken failed for the join token of ${room}`, { cause, room });
  }
  if (typeof token !== 'string' || token === '')
    throw new NerveClientError(ClientErrorCode.TokenFailed, `getToken returned no join token for ${room}`, { room });
  return token;
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
    code === ClientErrorCode.Timeout ||
    code === ClientErrorCode.TokenFailed
  );
}
