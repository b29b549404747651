/**
 * The message lifecycle ops: `edit`, `delete` and `react` (docs/protocol.md,
 * "Editing, deleting and reacting"). Each becomes a chat entry of the room
 * log with an `action` and the `target` it applies to; fold.ts applies the
 * entries to their targets. Types, bounds and the emoji check, no dependencies.
 */

/** `RequestId` of frames.ts, spelled out: frames.ts imports this module, never the reverse (no cycle). */
type RequestId = string | number;

/** What an entry with `action` does to its target (fold.ts). */
export type MessageAction = 'edit' | 'delete' | 'react';

/** The ops that make entries, and the `action` each stamps. */
export const MESSAGE_ACTIONS = ['edit', 'delete', 'react'] as const satisfies readonly MessageAction[];

/** The message an entry applies to, as stored on the entry. */
export interface MessageTarget {
  id: string;
  offset: number;
}

/**
 * What an `edit`, `delete` or `react` names: a chat message of the room by
 * its `id` and `offset` (the server reads it at that offset, in the hot
 * history or the archive). With `epoch`, a room log now in another epoch is
 * refused with `epoch_mismatch`, as on `history`.
 */
export interface MessageTargetRef extends MessageTarget {
  epoch?: string;
}

/** One emoji's reactions to a message; `count` is `users.length`. */
export interface Reaction {
  emoji: string;
  count: number;
  /** Who holds this reaction, in the order they reacted. */
  users: string[];
}

/** The `data` of a `react` entry. */
export interface ReactionData {
  emoji: string;
  on: boolean;
}

/** The longest reaction `emoji`, in UTF-16 code units (a long emoji ZWJ sequence is about 25). */
export const MAX_REACTION_LENGTH = 32;

/**
 * Whether `value` is a reaction `emoji`: a string of 1–32 UTF-16 code units.
 * The one check the schema and the fold share (zod's `max` counts code
 * points, which would let 32 astral emojis, 64 units, pass).
 */
export function isReactionEmoji(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_REACTION_LENGTH;
}

/** Replace the `data` of a chat message: your own, or anyone's with the `moderate` right. */
export interface EditFrame {
  op: 'edit';
  rid: RequestId;
  room: string;
  target: MessageTargetRef;
  /** The new payload, any JSON value. */
  data: unknown;
  /** Client message id of the edit entry: a retry with the same id is stored once, as on `publish`. */
  cmid?: string;
}

/** Delete a chat message, leaving a tombstone: your own, or anyone's with the `moderate` right. */
export interface DeleteFrame {
  op: 'delete';
  rid: RequestId;
  room: string;
  target: MessageTargetRef;
  cmid?: string;
}

/** Add (`on: true`, the default) or take back (`on: false`) your reaction to a chat message. */
export interface ReactFrame {
  op: 'react';
  rid: RequestId;
  room: string;
  target: MessageTargetRef;
  /** Any string of 1–32 UTF-16 code units: an emoji, or a short name such as `+1`. */
  emoji: string;
  on?: boolean;
  cmid?: string;
}

/** The three lifecycle frames. */
export type MessageActionFrame = EditFrame | DeleteFrame | ReactFrame;
