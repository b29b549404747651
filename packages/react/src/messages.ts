/**
 * The rules that fold what the SDK hands over into the lists a room shows:
 * chat by offset (live messages, replays after a resume, older pages), and
 * members by user. Pure functions: each returns the list it was given when
 * nothing changed, so a store can skip the re-render.
 */
import type { Member, MemberJoinedFrame, RoomChatMessage } from '@nerve-rt/client';

/**
 * `list` with `message` in offset order. A message already held (same
 * offset) changes nothing. A message of another epoch means the room log was
 * reset: the SDK has emitted `recovery_failed` with the new log's history
 * first, so the message starts the list over when that did not happen.
 */
export function addChat<T>(list: readonly RoomChatMessage<T>[], message: RoomChatMessage<T>): readonly RoomChatMessage<T>[] {
  const last = list[list.length - 1];
  if (!last) return [message];
  if (last.epoch !== message.epoch) return [message];
  if (message.offset > last.offset) return [...list, message];
  const at = insertionPoint(list, message.offset);
  if (list[at]?.offset === message.offset) return list;
  return [...list.slice(0, at), message, ...list.slice(at)];
}

/** An older page (oldest first) in front of `list`; messages already held are skipped. */
export function addOlder<T>(list: readonly RoomChatMessage<T>[], page: readonly RoomChatMessage<T>[]): readonly RoomChatMessage<T>[] {
  const first = list[0];
  if (!first) return [...page];
  const older = page.filter((message) => message.epoch === first.epoch && message.offset < first.offset);
  return older.length === 0 ? list : [...older, ...list];
}

/** Whether a room log may hold messages before `list` (offsets start at 1). */
export function mayHaveOlder(list: readonly RoomChatMessage<unknown>[]): boolean {
  const first = list[0];
  return first !== undefined && first.offset > 1;
}

/** The first index whose offset is at or above `offset` (binary search; `list` is in offset order). */
function insertionPoint(list: readonly RoomChatMessage<unknown>[], offset: number): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (list[middle]!.offset < offset) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** `members` with the user of a `member_joined` frame (once per user; a repeat updates its state). */
export function addMember(members: readonly Member[], frame: MemberJoinedFrame): readonly Member[] {
  const member: Member = frame.state === undefined ? { user: frame.user, since: frame.ts } : { user: frame.user, since: frame.ts, state: frame.state };
  const at = members.findIndex((existing) => existing.user === frame.user);
  if (at < 0) return [...members, member];
  const existing = members[at]!;
  if (frame.state === undefined || existing.state === frame.state) return members;
  return members.map((entry, index) => (index === at ? { ...existing, state: frame.state } : entry));
}

/** `members` without `user`. */
export function removeMember(members: readonly Member[], user: string): readonly Member[] {
  return members.some((member) => member.user === user) ? members.filter((member) => member.user !== user) : members;
}
