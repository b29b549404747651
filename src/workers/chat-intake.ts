/**
 * The chat-store worker's side of the chat intake (`nerve worker chat-store
 * --chat-intake`; wire format in src/history/chat-intake.ts, design in
 * docs/architecture.md, "The chat intake"). Each request is stored with
 * PostgresHistory, published on the hot lane, answered, then acked; a failed
 * or invalid one is answered with its code and dead-lettered, never requeued,
 * so it cannot block the queue. Requests are handed to `append` in delivery
 * order, which keeps a room's order; a redelivered one is found by its id.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { Connection, ConsumerStatus, type AsyncMessage, type Consumer } from 'rabbitmq-client';
import { chatEnvelope } from '../bus/envelope.js';
import { RabbitBus } from '../bus/rabbitmq.js';
import { closeWithin } from '../close-within.js';
import {
  chatIntakeNames,
  deadLetterQueueDeclaration,
  intakeQueueDeclaration,
  failedReply,
  intakeTopology,
  parseIntakeRequest,
  storedReply,
  type ChatIntakeReply,
} from '../history/chat-intake.js';
import { PostgresHistory } from '../history/postgres.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import type { WorkerMetrics } from './metrics.js';

export interface ChatIntakeOptions {
  url: string;
  env: string;
  service: string;
  pool: pg.Pool;
  schema: string;
  /** Requests in the handler at once (appends of different rooms run concurrently). */
  prefetch: number;
  /** How long a repeated (room, sender, cmid) is recognised, ms: the nodes' `--idempotency-window-ms`. */
  idempotencyWindowMs: number;
  /** Names this process's broker connections and the `origin` of nothing (envelopes keep the sending node's). */
  processId: string;
  logger: Logger;
  metrics: WorkerMetrics;
}

export interface ChatIntakeHandle {
  readonly queue: string;
  /** Broker connections up and the bus publishing. */
  health(): { ok: boolean; detail?: string };
  /** Stop consuming, let requests in the handler settle (reply, ack), close. Idempotent. */
  close(): Promise<void>;
}

export async function startChatIntake(options: ChatIntakeOptions): Promise<ChatIntakeHandle> {
  const names = chatIntakeNames(options.env, options.service);
  const log = options.logger.child({ intake: names.queue });
  const bus = new RabbitBus({
    url: options.url,
    env: options.env,
    service: options.service,
    nodeId: `chat-store-${options.processId}`.replace(/[^A-Za-z0-9._~-]/g, '-').slice(0, 64),
    publishOnly: true,
    logger: log,
  });
  await bus.start(() => {});
  const history = new PostgresHistory({ pool: options.pool, schema: options.schema, bus, idempotencyWindowMs: options.idempotencyWindowMs, migrate: false });
  await history.start();

  const connection = new Connection({
    url: options.url,
    connectionName: `nerve-chat-intake-${options.processId}`,
    retryLow: 50,
    retryHigh: 2000,
    heartbeat: 10,
  });
  connection.on('error', (err) => log.warn({ err }, 'chat intake connection error'));
  const topology = intakeTopology(names);
  // The dead-letter queue is not the consumer's own queue: declared here (and by every node).
  await connection.onConnect(10_000, true).catch(async (error: unknown) => {
    await Promise.allSettled([connection.close(), history.close(), bus.close()]);
    throw error;
  });
  await connection.queueDeclare(deadLetterQueueDeclaration(names));

  const handle = async (message: AsyncMessage, reply: (body: ChatIntakeReply) => Promise<void>): Promise<ConsumerStatus> => {
    const started = performance.now();
    const answer = async (body: ChatIntakeReply): Promise<void> => {
      // A request without replyTo (published by hand) is still stored; nobody waits for it.
      if (message.replyTo) await reply(body).catch((err: unknown) => log.warn({ err }, 'chat intake reply failed'));
    };
    const parsed = parseIntakeRequest(message.body);
    if (!parsed.ok) {
      options.metrics.chatIntake.inc({ outcome: 'invalid' });
      log.warn({ reason: parsed.reason }, 'chat intake: invalid request dead-lettered');
      await answer(failedReply(ErrorCode.Internal, `invalid chat intake request: ${parsed.reason}`));
      return ConsumerStatus.DROP;
    }
    const { request } = parsed;
    // Called before any await: appends of one room queue up in delivery order.
    const appended = history.append({ tenant: request.tenant, room: request.room }, request.draft, {
      channel: request.channel,
      envelope: (stored) => chatEnvelope(stored, request.origin),
    });
    try {
      const result = await appended;
      options.metrics.chatIntake.inc({ outcome: result.duplicate ? 'duplicate' : 'stored' });
      await answer(storedReply(result));
      return ConsumerStatus.ACK;
    } catch (error) {
      options.metrics.chatIntake.inc({ outcome: 'failed' });
      const code = isNerveError(error) ? error.code : ErrorCode.Internal;
      log.warn({ err: error, room: request.room, id: request.draft.id, code }, 'chat intake: append failed; dead-lettered');
      await answer(failedReply(code, isNerveError(error) ? error.message : 'chat-store worker fault'));
      return ConsumerStatus.DROP;
    } finally {
      options.metrics.handlerSeconds.observe({ worker: options.metrics.worker }, (performance.now() - started) / 1000);
    }
  };

  const consumer: Consumer = connection.createConsumer(
    {
      queue: names.queue,
      queueOptions: intakeQueueDeclaration(names),
      exchanges: topology.exchanges,
      queueBindings: topology.queueBindings,
      qos: { prefetchCount: options.prefetch },
      concurrency: options.prefetch,
      // A handler that throws (it should not) dead-letters too: a poison request never loops.
      requeue: false,
    },
    (message, reply) => handle(message, reply as (body: ChatIntakeReply) => Promise<void>),
  );
  consumer.on('error', (err) => log.warn({ err }, 'chat intake consumer error'));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('chat intake consumer did not start within 10 s')), 10_000);
    consumer.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  }).catch(async (error: unknown) => {
    await Promise.allSettled([consumer.close(), connection.close(), history.close(), bus.close()]);
    throw error;
  });
  log.info({ queue: names.queue, deadLetterQueue: names.deadLetterQueue }, 'chat intake consuming');

  let closing: Promise<void> | undefined;
  return {
    queue: names.queue,
    health() {
      if (!connection.ready) return { ok: false, detail: 'chat intake: broker connection down' };
      const busHealth = bus.health();
      return busHealth.ok ? { ok: true } : { ok: false, detail: busHealth.detail ?? 'chat intake: bus down' };
    },
    close() {
      closing ??= (async () => {
        await closeWithin(() => consumer.close(), 10_000);
        await history.close();
        await bus.close();
        await closeWithin(
          () => connection.close(),
          2000,
          () => connection.unsafeDestroy(),
        );
      })();
      return closing;
    },
  };
}
