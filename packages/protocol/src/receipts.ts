/**
 * Read receipts: the `read` op, its answer and the `read` push
 * (docs/protocol.md, "Read positions"). A user's read position in a room is
 * a chat offset of the room log's current epoch; it only moves forward.
 * Types and bounds only, no dependencies.
 */

/** `RequestId` of frames.ts, spelled out: frames.ts imports this module, never the reverse (no cycle). */
type RequestId = string | number;

/**
 * The bounds of read positions (docs/protocol.md, "Read positions"):
 * - `perSecond` / `burst`: the `read` token bucket of a connection;
 * - `fanoutMs`: a node sends at most one `read` push per user and room per
 *   this many ms, with the latest position;
 * - `unreadMax`: `joined.unread` stops counting here (100 means 100 or more);
 * - `unreadScan`: at most this many entries after the read position are looked at to count;
 * - `listMax`: `joined.reads` is sent only while the room has at most this many read positions.
 */
export const READ_LIMITS = { perSecond: 5, burst: 20, fanoutMs: 500, unreadMax: 100, unreadScan: 200, listMax: 100 } as const;

/** Move your read position in a joined room forward to `offset`. */
export interface ReadFrame {
  op: 'read';
  rid: RequestId;
  room: string;
  /** A chat offset of the room log (≥ 0); above the newest one it is taken as the newest. */
  offset: number;
  /** The epoch `offset` belongs to: if the room log is in another epoch now, the answer is `epoch_mismatch`. */
  epoch?: string;
}

/** Answer to `read`: your stored read position, which may be ahead of the one you sent (it never moves back). */
export interface ReadAnswerFrame {
  op: 'read';
  rid: RequestId;
  room: string;
  offset: number;
  epoch: string;
}

/** A member's read position moved (conflated: at most one per user and room per `READ_LIMITS.fanoutMs` from a node, the latest). */
export interface ReadPushFrame {
  op: 'read';
  room: string;
  user: string;
  offset: number;
  epoch: string;
  ts: number;
}
