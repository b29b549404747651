/**
 * Limits of the event schemas (events.ts), in one place for the schemas and
 * for the hand-written check of the hot event (fast-events.ts), which
 * events.ts imports and so cannot import from it.
 */
export const EVENT_BOUNDS = {
  /** Longest id field: event id, session, node, message id, epoch, cmid, connection, call session. */
  maxId: 128,
  /** What a `message.created` entry does to an earlier message (`action`). */
  messageActions: ['edit', 'delete', 'react'],
} as const;
