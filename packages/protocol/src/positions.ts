/**
 * The position rule, written once for the SDK, the gateway and the history:
 * where a chat offset stands against the last position seen in a room.
 * Offsets start at 1 and grow by one per stored message within an epoch; a
 * new epoch means the log was reset (docs/protocol.md, Resume and idempotency).
 */
import type { StreamPosition } from './frames.js';

/** `seen`: at or below the position (already delivered); `next`: the one right after it; `gap`: messages are missing. */
export type OffsetStep = 'seen' | 'next' | 'gap';

/**
 * Where `offset` stands after `seenOffset`; `sameEpoch` says whether both are
 * of one epoch. Takes the epoch comparison as a boolean so the gateway's hot
 * path can compare epochs without slicing them out of the payload.
 */
export function offsetStep(seenOffset: number, sameEpoch: boolean, offset: number): OffsetStep {
  if (sameEpoch) {
    if (offset <= seenOffset) return 'seen';
    return offset === seenOffset + 1 ? 'next' : 'gap';
  }
  // Another epoch: the log was reset. Only a reader that had seen nothing, getting the first message, misses nothing.
  return seenOffset === 0 && offset === 1 ? 'next' : 'gap';
}

/** `offsetStep` for a chat message at `offset`/`epoch` arriving after position `seen`. */
export function positionStep(seen: StreamPosition, offset: number, epoch: string): OffsetStep {
  return offsetStep(seen.offset, seen.epoch === epoch, offset);
}
