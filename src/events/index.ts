/** Public surface of the cold lane. */
export * from './event-log.js';
export * from './events.js';
export { MemoryEventLog, type DeadLetter, type MemoryEventLogOptions } from './memory.js';
export { RabbitEventLog, ATTEMPT_HEADER, REASON_HEADER, ERROR_HEADER, type RabbitEventLogOptions } from './rabbitmq.js';
export { Outbox, type OutboxOptions } from './outbox.js';
export { topicMatches } from './topic.js';
