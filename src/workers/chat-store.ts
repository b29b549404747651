/**
 * chat-store: message.created → PostgreSQL `chat_messages`, idempotent by
 * (tenant, message id): a redelivery or a second emission of the same message
 * inserts nothing. The SQL is src/postgres/chat-tables.ts, the one writer.
 */
import { eventData } from '../events/events.js';
import { ChatTables } from '../postgres/chat-tables.js';
import { requirePool, type WorkerDefinition } from './worker.js';

export const chatStore: WorkerDefinition = {
  name: 'chat-store',
  needsPostgres: true,
  defaults: { maxAttempts: 10, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const pool = requirePool(context);
    const tables = new ChatTables(context.schema);
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
          });
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
    ];
  },
};
