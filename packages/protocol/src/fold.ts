/**
 * The folding rule, written once for the SDK's message list, the chat-store
 * worker's PostgreSQL rows and the server API (docs/protocol.md, "Folding"):
 * how the entries of `edit`, `delete` and `react` change their target.
 * Entries of one target apply in offset order. Applying the same run of
 * entries again, in order, to a message that already has them folded
 * changes nothing, so a folded archive row and the entries after it agree.
 */
import { isReactionEmoji, type MessageAction, type MessageTarget, type Reaction, type ReactionData } from './actions.js';
import type { ChatMessage } from './frames.js';

/** A chat entry of an edit, a delete or a reaction. */
export type ActionEntry = ChatMessage & { action: MessageAction; target: MessageTarget };

/** Whether `message` is an entry of an edit, a delete or a reaction (not a message to show). */
export function isActionEntry(message: ChatMessage): message is ActionEntry {
  return message.action !== undefined && message.target !== undefined;
}

/** Whether `entry` applies to `message`: its target's id and offset, in the same epoch. */
function targets(entry: ActionEntry, message: ChatMessage): boolean {
  return entry.target.id === message.id && entry.target.offset === message.offset && entry.epoch === message.epoch;
}

/** A `react` entry's data, or undefined when it is not one (such an entry changes nothing). */
function reactionData(data: unknown): ReactionData | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { emoji, on } = data as Record<string, unknown>;
  if (!isReactionEmoji(emoji) || typeof on !== 'boolean') return undefined;
  return { emoji, on };
}

/**
 * `message` with `entry` applied; `message` itself when the entry does not
 * apply to it or changes nothing. A deleted message stays as it is (later
 * edits and reactions of a tombstone are ignored); an edit replaces `data`
 * and sets `editedAt`; a delete leaves the tombstone (no data, no
 * reactions); a reaction adds or removes its sender in the emoji's set.
 */
export function applyEntry(message: ChatMessage, entry: ActionEntry): ChatMessage {
  if (!targets(entry, message) || message.deleted === true || isActionEntry(message)) return message;
  switch (entry.action) {
    case 'edit':
      return { ...message, data: entry.data, editedAt: entry.ts };
    case 'delete':
      return tombstone(message);
    case 'react':
      return react(message, entry);
  }
}

/** `applyEntry` for each of `entries`, in offset order. */
export function foldEntries(message: ChatMessage, entries: readonly ActionEntry[]): ChatMessage {
  const ordered = [...entries].sort(byOffset);
  return ordered.reduce(applyEntry, message);
}

/**
 * `message` as first stored, as far as the fold can tell: without the
 * fields folding adds (a deleted message stays deleted, an edited one keeps
 * its latest data). Folding every entry of the message into it again gives
 * the folded message, whatever order the entries were first applied in.
 */
export function unfolded(message: ChatMessage): ChatMessage {
  const { editedAt, reactions, ...rest } = message;
  void editedAt;
  void reactions;
  return rest;
}

/** What `foldMessages` makes of a run of chat. */
export interface FoldedRun {
  /** The messages, entries folded in and left out, in offset order. */
  messages: ChatMessage[];
  /** Entries whose target is not among `messages`, in offset order. */
  pending: ActionEntry[];
}

/** Fold the entries of `run` (chat of one room log, any order) into the messages it holds. */
export function foldMessages(run: readonly ChatMessage[]): FoldedRun {
  const ordered = [...run].sort(byOffset);
  const byKey = new Map<string, ChatMessage>();
  const pending: ActionEntry[] = [];
  for (const message of ordered) {
    if (!isActionEntry(message)) {
      byKey.set(keyOf(message), message);
      continue;
    }
    const key = targetKeyOf(message);
    const target = byKey.get(key);
    if (target) byKey.set(key, applyEntry(target, message));
    else pending.push(message);
  }
  return { messages: [...byKey.values()], pending };
}

/** The key `foldMessages` finds a message by: epoch, offset and id. */
export function keyOf(message: Pick<ChatMessage, 'epoch' | 'offset' | 'id'>): string {
  return `${message.epoch}\u0000${message.offset}\u0000${message.id}`;
}

/** The `keyOf` of the message `entry` targets: the target's offset and id, in the entry's epoch. */
export function targetKeyOf(entry: ActionEntry): string {
  return keyOf({ epoch: entry.epoch, offset: entry.target.offset, id: entry.target.id });
}

/** Compare two chat entries of one log by offset: the order every fold applies them in. For `sort`. */
export function byOffset(a: Pick<ChatMessage, 'offset'>, b: Pick<ChatMessage, 'offset'>): number {
  return a.offset - b.offset;
}

function tombstone(message: ChatMessage): ChatMessage {
  const { op, class: messageClass, room, id, from, ts, offset, epoch } = message;
  return { op, class: messageClass, room, id, from, ts, offset, epoch, data: null, deleted: true };
}

function react(message: ChatMessage, entry: ActionEntry): ChatMessage {
  const reaction = reactionData(entry.data);
  if (!reaction) return message;
  const current = message.reactions ?? [];
  const index = current.findIndex((r) => r.emoji === reaction.emoji);
  const users = index >= 0 ? current[index]!.users : [];
  const holds = users.includes(entry.from);
  if (holds === reaction.on) return message;
  const nextUsers = reaction.on ? [...users, entry.from] : users.filter((user) => user !== entry.from);
  const next: Reaction[] = [...current];
  if (nextUsers.length === 0) next.splice(index, 1);
  else if (index >= 0) next[index] = { emoji: reaction.emoji, count: nextUsers.length, users: nextUsers };
  else next.push({ emoji: reaction.emoji, count: nextUsers.length, users: nextUsers });
  const { reactions, ...rest } = message;
  void reactions;
  return next.length > 0 ? { ...rest, reactions: next } : rest;
}
