/**
 * Chat frames: publishing into a room, the messages it delivers and keeps,
 * the ack of a publish, and paging back through the history
 * (docs/protocol.md, `publish`, `message`, `ack`, `history`). Edits, deletes and reactions
 * are in actions.ts; read positions in receipts.ts.
 */
import type { MessageAction, MessageTarget, Reaction } from './actions.js';
import type { PublishClass, RequestId } from './frame-basics.js';

export interface PublishFrame {
  op: 'publish';
  rid: RequestId;
  room: string;
  class: PublishClass;
  /** Any JSON value. */
  data: unknown;
  /** Client message id: a retry with the same id is not stored or delivered twice (chat only). */
  cmid?: string;
  /** For ephemeral messages: a key such as `cursor`; while a recipient reads slowly only the latest message per (sender, key) is kept for it. */
  key?: string;
  /** W3C Trace Context of the sender's span (`00-<trace id>-<span id>-<flags>`); the server's spans for this message join its trace when tracing is on. */
  traceparent?: string;
}

/** The default and the largest `limit` of a `history` request (docs/protocol.md, `history`). */
export const HISTORY_PAGE_LIMITS = { default: 50, max: 100 } as const;

/**
 * Page back through a joined room's chat, beyond what `join` returned: the
 * newest `limit` messages with an offset below `before`. The cursor is the
 * offset, the same one across the hot history and the PostgreSQL archive.
 */
export interface HistoryFrame {
  op: 'history';
  rid: RequestId;
  room: string;
  /** Only messages with `offset < before` (an integer ≥ 1); absent = the newest messages. Pass the oldest offset you hold. */
  before?: number;
  /** How many messages at most, 1–100 (default 50). */
  limit?: number;
  /** The epoch your offsets belong to: if the room log is in another epoch now, the answer is `epoch_mismatch`. */
  epoch?: string;
}

/** A chat message as delivered and as kept in history. */
export interface ChatMessage {
  op: 'message';
  class: 'chat';
  room: string;
  /** Server-assigned event id. */
  id: string;
  /** Authenticated sender user id. */
  from: string;
  /** Server time, ms since epoch. */
  ts: number;
  /** Position in the room log; strictly increasing within an epoch. */
  offset: number;
  epoch: string;
  data: unknown;
  cmid?: string;
  /**
   * On the entries of `edit`, `delete` and `react` only: they apply to
   * `target` and are folded into it (fold.ts), not shown as messages.
   */
  action?: MessageAction;
  /** The message an entry with `action` applies to. */
  target?: MessageTarget;
  /** Folded (archive rows, the SDK's message list): the `ts` of the edit whose `data` this is. */
  editedAt?: number;
  /** Folded: the message was deleted; its `data` is null. */
  deleted?: true;
  /** Folded: reactions per emoji, in order of first use. */
  reactions?: Reaction[];
}

export interface EphemeralMessage {
  op: 'message';
  class: 'ephemeral';
  room: string;
  id: string;
  from: string;
  ts: number;
  data: unknown;
  key?: string;
}

export type MessageFrame = ChatMessage | EphemeralMessage;

export interface AckFrame {
  op: 'ack';
  rid: RequestId;
  /** Event id of the stored or routed message. */
  id: string;
  ts: number;
  /** Chat only: where the message was stored. */
  offset?: number;
  epoch?: string;
  /** Chat only: true when `cmid` matched an earlier publish and nothing new was stored. */
  duplicate?: boolean;
  /**
   * Signal only: true when no node had the target user but the user was
   * connected moments ago, so the signal waits in their mailbox and is
   * delivered if they reconnect within the mailbox TTL (not proof of delivery).
   */
  queued?: boolean;
}

/** Answer to `history`: one page of the room's chat, oldest first. */
export interface HistoryAnswerFrame {
  op: 'history';
  rid: RequestId;
  room: string;
  /** Oldest first, every one with `offset < before`, at most `limit`, all of the epoch below. */
  messages: ChatMessage[];
  /** True only when the server knows of an older stored message than the first of `messages`: ask again with `before` = its offset. */
  more: boolean;
  /** The room log's current epoch, which every offset here belongs to. */
  epoch: string;
}
