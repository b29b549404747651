/**
 * The rules that fold the member frames the SDK hands over into the member
 * list a room shows, and whether its chat may have older pages. Pure
 * functions: each returns the list it was given when nothing changed, so a
 * store can skip the re-render. (Chat itself is the SDK's `room.messages`.)
 */
import type { Member, MemberJoinedFrame, RoomChatMessage } from '@nerve-rt/client';

/** Whether a room log may hold messages before `list` (offsets start at 1). */
export function mayHaveOlder(list: readonly RoomChatMessage<unknown>[]): boolean {
  const first = list[0];
  return first !== undefined && first.offset > 1;
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
