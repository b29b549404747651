/**
 * A room's read positions as the SDK holds them (docs/protocol.md, "Read
 * positions"): yours and its unread count, from `joined` and then kept up to
 * date from live chat, your `read` answers and the room's `read` pushes;
 * others' positions by user. All in the room log's current epoch: a push of
 * another epoch is ignored, and a join resets everything.
 */
import type { ChatMessage, JoinedFrame, MessageFrame } from '../../protocol/src/frames.js';
import type { ReadPushFrame } from '../../protocol/src/receipts.js';

/** Most unread offsets remembered (each a chat message after your position); beyond, the count still grows. */
const MAX_TRACKED = 1000;

export class RoomReads {
  #epoch = '';
  #read = 0;
  /** Unread messages the server counted that came before the first tracked one (their offsets are unknown). */
  #untracked = 0;
  /** Offsets of the unread messages known here, ascending. */
  #offsets: number[] = [];
  readonly #others = new Map<string, number>();

  /** Your read position (a chat offset of the current epoch; 0: none). */
  get read(): number {
    return this.#read;
  }

  /** Chat messages after your position, not yours, not edit/delete/react entries (from `joined`, which counts up to 100, then live). */
  get unread(): number {
    return this.#untracked + this.#offsets.length;
  }

  /** Other users' read positions, user → offset (in a room with at most 100 positions at join, and from live pushes). */
  get positions(): ReadonlyMap<string, number> {
    return this.#others;
  }

  /** A `joined` answer (first join or rejoin): everything is the server's word again. */
  reset(joined: JoinedFrame, self: string | undefined): void {
    this.#epoch = joined.position.epoch;
    this.#read = joined.read ?? 0;
    this.#others.clear();
    for (const [user, offset] of Object.entries(joined.reads ?? {})) this.#others.set(user, offset);
    this.#offsets = joined.history.filter((message) => this.#counts(message, self)).map((message) => message.offset);
    this.#untracked = Math.max(0, (joined.unread ?? 0) - this.#offsets.length);
  }

  /** A live chat message (or a replayed one): counted when it is someone else's after your position. */
  onMessage(message: MessageFrame, self: string | undefined): void {
    if (message.class !== 'chat' || message.epoch !== this.#epoch || !this.#counts(message, self)) return;
    const last = this.#offsets[this.#offsets.length - 1];
    if (last !== undefined && message.offset <= last) return;
    this.#offsets.push(message.offset);
    if (this.#offsets.length > MAX_TRACKED) {
      this.#offsets.shift();
      this.#untracked += 1;
    }
  }

  /** Your position as the server stored it (a `read` answer, or a push about you from another device). */
  moveTo(offset: number, epoch: string): void {
    if (epoch !== this.#epoch || offset <= this.#read) return;
    this.#read = offset;
    const first = this.#offsets[0];
    // The untracked ones are older than the first tracked one (or than the join's history): passing it reads them.
    if (first === undefined || offset >= first - 1) this.#untracked = 0;
    this.#offsets = this.#offsets.filter((at) => at > offset);
  }

  /** A `read` push; false when it is of another epoch (ignored). */
  onPush(push: ReadPushFrame, self: string | undefined): boolean {
    if (push.epoch !== this.#epoch) return false;
    if (push.user === self) this.moveTo(push.offset, push.epoch);
    // Pushes from two nodes may cross: a position never moves back.
    else if (push.offset > (this.#others.get(push.user) ?? 0)) this.#others.set(push.user, push.offset);
    return true;
  }

  #counts(message: ChatMessage, self: string | undefined): boolean {
    return message.offset > this.#read && message.action === undefined && message.from !== self;
  }
}
