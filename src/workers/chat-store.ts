/**
 * chat-store: message.created → PostgreSQL `chat_messages`, idempotent by
 * (tenant, message id): a redelivery or a second emission of the same message
 * inserts nothing. The SQL is src/postgres/chat-tables.ts, the one writer.
 * Edit, delete and reaction entries are then folded into their target's
 * row (src/postgres/chat-folds.ts), and so are entries that came before it.
 * read.updated → `read_positions` (src/postgres/read-positions.ts), forward only.
 */
import { eventData } from '../events/events.js';
import { ChatFolds } from '../postgres/chat-folds.js';
import { ChatTables } from '../postgres/chat-tables.js';
import { ReadPositionTable } from '../postgres/read-positions.js';
import { requirePool, type WorkerDefinition } from './worker.js';

export const chatStore: WorkerDefinition = {
  name: 'chat-store',
  needsPostgres: true,
  defaults: { maxAttempts: 10, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const pool = requirePool(context);
    const tables = new ChatTables(context.schema);
    const folds = new ChatFolds(context.schema);
    const reads = new ReadPositionTable(context.schema);
    return [
      {
        spec: { queue: 'chat-store', bindings: ['message.created'] },
        async handler(event) {
          const data = eventData(event, 'message.created');
          await tables.insertEvent(pool, {
            tenant: event.tenant,
            id: data.messageId,
            room: event.room,
            session: event.session ?? null,
            from: data.from,
            sentAt: data.sentAt,
            offset: data.offset,
            epoch: data.epoch,
            body: data.body,
            cmid: data.cmid ?? null,
            eventId: event.id,
            action: data.action ?? null,
            target: data.target ?? null,
          });
          // A message.created without a room is no chat of a room log: nothing to fold.
          if (event.room !== undefined) {
            const scope = { tenant: event.tenant, room: event.room, epoch: data.epoch };
            if (data.target) await folds.afterEntry(pool, scope, data.target);
            else await folds.afterMessage(pool, scope, { id: data.messageId, offset: data.offset });
          }
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
      {
        // Its own queue, so a backlog of read positions never delays the chat rows.
        spec: { queue: 'chat-store-reads', bindings: ['read.updated'] },
        async handler(event) {
          const data = eventData(event, 'read.updated');
          if (event.room === undefined) return 'ack';
          await reads.record(pool, { tenant: event.tenant, room: event.room, user: data.user, epoch: data.epoch, offset: data.offset, at: event.ts });
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
    ];
  },
};
