/**
 * webhooks on the real lane: a receiver failing the first two attempts gets
 * the event on the third, signed; a poison event (always refused) reaches
 * the dead-letter queue after the configured attempts while others flow.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Connection } from 'rabbitmq-client';
import { Webhook } from 'standardwebhooks';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { REASON_HEADER, ATTEMPT_HEADER } from '../../src/events/rabbitmq-consumer.js';
import { runWorker } from '../../src/workers/runner.js';
import { webhookQueue } from '../../src/workers/webhooks.js';
import { sampleEvent } from '../conformance/event-log.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = await serviceSkip('RabbitMQ', 5672);
const SECRET = 'whsec_0123456789abcdef';

/** What a receiver does: the Standard Webhooks library checks the signature, id and timestamp headers. */
function verifies(body: string, headers: Record<string, string | string[] | undefined>): boolean {
  try {
    new Webhook(SECRET).verify(body, Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => typeof entry[1] === 'string')));
    return true;
  } catch {
    return false;
  }
}

interface Received {
  id: string;
  attempt: string | undefined;
  valid: boolean;
}

describe('webhooks worker', { skip }, () => {
  const ns = testNamespace('hook');
  let admin: Connection;
  let server: Server;
  let url: string;
  const received: Received[] = [];
  /** Event ids answered 500 on their first N attempts. */
  const failFirst = new Map<string, number>();

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const event = JSON.parse(body) as LifecycleEvent;
        const attempt = req.headers['nerve-attempt'];
        received.push({ id: event.id, attempt: typeof attempt === 'string' ? attempt : undefined, valid: verifies(body, req.headers) });
        const seen = received.filter((r) => r.id === event.id).length;
        res.statusCode = seen <= (failFirst.get(event.id) ?? 0) ? 500 : 204;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    url = `http://127.0.0.1:${address.port}/hook`;
  });
  after(async () => {
    const queue = `${ns}.nerve.${webhookQueue(url)}`;
    for (const name of [queue, `${queue}.dlq`, `${queue}.retry.20`, `${queue}.retry.40`, `${queue}.retry.80`, `${queue}.retry.160`]) {
      await admin.queueDelete({ queue: name }).catch(() => undefined);
    }
    await admin.exchangeDelete({ exchange: `${ns}.nerve.events` }).catch(() => undefined);
    await admin.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('retries with backoff, delivers signed on the 3rd attempt, dead-letters a poison event while others flow', { timeout: 30_000 }, async () => {
    const worker = await runWorker('webhooks', {
      amqpUrl: AMQP_URL,
      env: ns,
      webhookUrls: [url],
      webhookSecret: SECRET,
      maxAttempts: 3,
      retryDelayMs: 20,
      logger: pino({ level: 'silent' }),
    });
    const log = new RabbitEventLog({ url: AMQP_URL, env: ns });
    try {
      await log.start();
      const flaky = sampleEvent('room.ended', 'flaky');
      const poison = sampleEvent('room.ended', 'poison');
      failFirst.set(flaky.id, 2);
      failFirst.set(poison.id, 1000);
      const others = Array.from({ length: 10 }, (_, i) => sampleEvent('participant.joined', `other${i}`));
      await log.publish(flaky);
      await log.publish(poison);
      for (const event of others) await log.publish(event);

      const flakyDeliveries = () => received.filter((r) => r.id === flaky.id);
      await waitFor(() => flakyDeliveries().length === 3, { timeoutMs: 10_000, what: 'third attempt' });
      assert.deepEqual(
        flakyDeliveries().map((r) => r.attempt),
        ['1', '2', '3'],
      );
      assert.ok(
        flakyDeliveries().every((r) => r.valid),
        'every attempt carries a valid signature',
      );
      await waitFor(() => others.every((e) => received.some((r) => r.id === e.id)), { timeoutMs: 10_000, what: 'others delivered' });

      const dlq = `${ns}.nerve.${webhookQueue(url)}.dlq`;
      const dead = await waitFor(() => admin.basicGet({ queue: dlq, noAck: true }), { timeoutMs: 10_000, what: 'poison in the DLQ' });
      assert.equal((dead.body as LifecycleEvent).id, poison.id);
      assert.equal(dead.headers?.[REASON_HEADER], 'max_attempts');
      assert.equal(dead.headers?.[ATTEMPT_HEADER], 3);
      assert.equal(received.filter((r) => r.id === poison.id).length, 3);
    } finally {
      await log.close();
      await worker.close();
    }
  });
});
