/**
 * Chat gap detection on a node: per room channel, the position of the last
 * chat message this node delivered from the bus, so that a message the bus
 * lost (a subscriber that was reconnecting, deaf, or moved to another shard)
 * is noticed and re-read from the history instead of being lost silently.
 *
 * The hot path reads a chat payload's offset and epoch without parsing it:
 * every chat message is encoded from `{...draft, offset, epoch}` (memory and
 * Redis history alike), so the JSON ends with `"offset":N,"epoch":"E"}`.
 * `data` comes before those keys, so a user's own `"offset"` key cannot be
 * mistaken for the real one. A payload of any other shape is read with
 * JSON.parse (never expected; kept so a format change degrades, not breaks).
 */

/** Where a chat payload's position sits; one scratch instance, reused (no allocation per message). */
export interface ChatTail {
  offset: number;
  /** The epoch is `payload.slice(epochStart, epochEnd)`, read only when it changes. */
  epochStart: number;
  epochEnd: number;
  /** Set when the payload was parsed the slow way: its epoch. */
  parsedEpoch: string | undefined;
}

const scratch: ChatTail = { offset: 0, epochStart: 0, epochEnd: 0, parsedEpoch: undefined };

const EPOCH_KEY = ',"epoch":"';
const OFFSET_KEY = '"offset":';
const ZERO = 48;
const NINE = 57;
const QUOTE = 34;
const BACKSLASH = 92;
const BRACE = 125;

/**
 * The offset and epoch of an encoded chat message, or undefined when the
 * payload has none. The result is a shared scratch object: use it before the
 * next call.
 */
export function scanChatTail(payload: string): ChatTail | undefined {
  const length = payload.length;
  if (length > 2 && payload.charCodeAt(length - 1) === BRACE && payload.charCodeAt(length - 2) === QUOTE) {
    const at = payload.lastIndexOf(EPOCH_KEY);
    if (at > 0) {
      const epochStart = at + EPOCH_KEY.length;
      const epochEnd = length - 2;
      let plain = epochEnd > epochStart;
      for (let i = epochStart; plain && i < epochEnd; i += 1) {
        const code = payload.charCodeAt(i);
        if (code === QUOTE || code === BACKSLASH) plain = false;
      }
      let digits = at;
      while (digits > 0) {
        const code = payload.charCodeAt(digits - 1);
        if (code < ZERO || code > NINE) break;
        digits -= 1;
      }
      if (plain && digits < at && digits - OFFSET_KEY.length >= 0 && payload.startsWith(OFFSET_KEY, digits - OFFSET_KEY.length)) {
        let offset = 0;
        for (let i = digits; i < at; i += 1) offset = offset * 10 + (payload.charCodeAt(i) - ZERO);
        if (Number.isSafeInteger(offset)) {
          scratch.offset = offset;
          scratch.epochStart = epochStart;
          scratch.epochEnd = epochEnd;
          scratch.parsedEpoch = undefined;
          return scratch;
        }
      }
    }
  }
  return parseChatTail(payload);
}

function parseChatTail(payload: string): ChatTail | undefined {
  let message: { offset?: unknown; epoch?: unknown };
  try {
    message = JSON.parse(payload) as { offset?: unknown; epoch?: unknown };
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const { offset, epoch } = message;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || typeof epoch !== 'string') return undefined;
  scratch.offset = offset;
  scratch.epochStart = 0;
  scratch.epochEnd = 0;
  scratch.parsedEpoch = epoch;
  return scratch;
}

/** Whether the scanned payload's epoch is `epoch`, without slicing it out. */
export function tailHasEpoch(payload: string, tail: ChatTail, epoch: string): boolean {
  if (tail.parsedEpoch !== undefined) return tail.parsedEpoch === epoch;
  return tail.epochEnd - tail.epochStart === epoch.length && payload.startsWith(epoch, tail.epochStart);
}

/** The scanned payload's epoch (allocates: only when it changes). */
export function tailEpoch(payload: string, tail: ChatTail): string {
  return tail.parsedEpoch ?? payload.slice(tail.epochStart, tail.epochEnd);
}

/** Most live chat payloads held for one room while its gap is being filled; beyond, members are told to resync. */
export const MAX_HELD_DURING_RECOVERY = 10_000;

/** Per room channel on this node: what was delivered, and a recovery in flight. */
export class RoomChatCursor {
  /** Whether `epoch`/`offset` are known (set by the first chat delivered or the first join answer). */
  known = false;
  epoch = '';
  /** Offset of the last chat message delivered to this node's members (0: none). */
  offset = 0;
  /** While the gap is being filled: live chat payloads held back, in bus order. */
  held: string[] | undefined;
  /** A recovery (history read) is running. */
  recovering = false;
  /** Another loss was reported while recovering: read again once the current read is done. */
  again = false;
  /** `held` overflowed: some live messages were dropped, members must resync. */
  overflowed = false;

  set(epoch: string, offset: number): void {
    this.known = true;
    this.epoch = epoch;
    this.offset = offset;
  }

  /** Hold a live payload while recovering; false when the hold is full (the payload is dropped). */
  hold(payload: string): boolean {
    const held = (this.held ??= []);
    if (held.length >= MAX_HELD_DURING_RECOVERY) {
      this.overflowed = true;
      return false;
    }
    held.push(payload);
    return true;
  }
}

/** Runs at most `max` tasks at once (history reads after a Redis restart: one per room, not all together). */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next waiter, so `running` never exceeds `max`.
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
