/**
 * RabbitEventLog against the local broker: the conformance suite, plus the
 * outbox while the broker is unreachable (cut through a TCP proxy; the shared
 * broker itself is never touched).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import type { ConsumerSpec, LifecycleEvent } from '../../src/events/event-log.js';
import { RabbitEventLog, type RabbitEventLogOptions } from '../../src/events/rabbitmq.js';
import { normalizeConsumerSpec, retryDelays } from '../../src/events/retry.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { eventLogConformance, sampleEvent, type EventLogFixture } from '../conformance/event-log.js';
import { AMQP_URL, serviceSkip, startTcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = await serviceSkip('RabbitMQ', 5672);

/** A RabbitEventLog in its own namespace; cleanup deletes every queue its consumers declared and the exchange. */
export async function rabbitFixture(admin: Connection, options: Partial<RabbitEventLogOptions> = {}): Promise<EventLogFixture & { log: RabbitEventLog }> {
  const log = new RabbitEventLog({ url: AMQP_URL, env: testNamespace('ev'), service: 'nerve', reconnectLowMs: 50, reconnectHighMs: 500, ...options });
  const specs: ConsumerSpec[] = [];
  const consume = log.consume.bind(log);
  log.consume = (spec, handler) => {
    specs.push(spec);
    return consume(spec, handler);
  };
  const dead = new Map<string, string[]>();
  return {
    log,
    async deadLetterIds(queue) {
      const ids = dead.get(queue) ?? [];
      dead.set(queue, ids);
      for (let i = 0; i < 1000; i++) {
        const msg = await admin.basicGet({ queue: log.deadLetterQueueName(queue), noAck: true });
        if (!msg) break;
        const body = Buffer.isBuffer(msg.body) ? (JSON.parse(msg.body.toString()) as LifecycleEvent) : (msg.body as LifecycleEvent);
        ids.push(body.id);
      }
      return [...ids];
    },
    async cleanup() {
      for (const spec of specs) {
        const queues = [log.queueName(spec.queue), log.deadLetterQueueName(spec.queue)];
        for (const delay of retryDelays(normalizeConsumerSpec(spec))) queues.push(log.retryQueueName(spec.queue, delay));
        for (const queue of queues) await admin.queueDelete({ queue }).catch(() => undefined);
      }
      await admin.exchangeDelete({ exchange: log.exchange }).catch(() => undefined);
    },
  };
}

describe('RabbitEventLog', { skip }, () => {
  let admin: Connection;
  before(() => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
  });
  after(async () => {
    await admin.close();
  });

  eventLogConformance('rabbitmq', () => rabbitFixture(admin));

  it('declares a durable topic exchange named {env}.{service}.events and persists messages', async () => {
    const fixture = await rabbitFixture(admin);
    try {
      await fixture.log.start();
      assert.match(fixture.log.exchange, /^ev[a-z0-9]+\.nerve\.events$/);
      // Passive declare succeeds only if the exchange exists.
      await admin.exchangeDeclare({ exchange: fixture.log.exchange, passive: true });
      const probe = `${fixture.log.queueName('probe')}`;
      await admin.queueDeclare({ queue: probe, exclusive: true });
      await admin.queueBind({ queue: probe, exchange: fixture.log.exchange, routingKey: '#' });
      await fixture.log.publish(sampleEvent('room.created'));
      const msg = await waitFor(() => admin.basicGet({ queue: probe, noAck: true }), { what: 'probe message' });
      assert.equal(msg.durable, true, 'deliveryMode 2 (persistent)');
      assert.equal(msg.routingKey, 'room.created');
      await admin.queueDelete({ queue: probe });
    } finally {
      await fixture.log.close();
      await fixture.cleanup();
    }
  });

  it('keeps events in a bounded outbox while the broker is unreachable and sends them in order when it is back', async () => {
    const proxy = await startTcpProxy(5672);
    proxy.setRefusing(true);
    const fixture = await rabbitFixture(admin, { url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, outboxLimit: 5, startTimeoutMs: 0 });
    const { log } = fixture;
    try {
      await log.start();
      const events = Array.from({ length: 5 }, (_, i) => sampleEvent('participant.joined', `order${i}`));
      const confirmed = events.map((event) => log.publish(event));
      assert.equal(log.outboxDepth(), 5);
      assert.equal(log.health().ok, false);
      await assert.rejects(log.publish(sampleEvent('room.created')), (e: unknown) => isNerveError(e) && e.code === 'unavailable');
      assert.match(log.health().detail ?? '', /outbox full/);
      // A queue bound directly, through the admin connection, to see what the broker gets.
      const probe = log.queueName('order-probe');
      await admin.exchangeDeclare(log.exchangeDeclaration());
      await admin.queueDeclare({ queue: probe, durable: false });
      await admin.queueBind({ queue: probe, exchange: log.exchange, routingKey: '#' });
      proxy.setRefusing(false);
      await Promise.all(confirmed);
      assert.equal(log.outboxDepth(), 0);
      await waitFor(() => log.health().ok, { what: 'healthy again' });
      const rooms: string[] = [];
      for (let i = 0; i < 5; i++) {
        const msg = await waitFor(() => admin.basicGet({ queue: probe, noAck: true }), { what: `message ${i}` });
        rooms.push((msg.body as LifecycleEvent).room ?? '');
      }
      assert.deepEqual(
        rooms,
        events.map((e) => e.room),
      );
      await admin.queueDelete({ queue: probe });
    } finally {
      await log.close();
      await fixture.cleanup();
      await proxy.close();
    }
  });

  it('close() rejects what the outbox could not send within closeTimeoutMs, never dropping it silently', async () => {
    const proxy = await startTcpProxy(5672);
    proxy.setRefusing(true);
    const fixture = await rabbitFixture(admin, { url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, startTimeoutMs: 0, closeTimeoutMs: 50 });
    try {
      await fixture.log.start();
      const pending = fixture.log.publish(sampleEvent('room.created'));
      await fixture.log.close();
      await assert.rejects(pending, (e: unknown) => isNerveError(e) && e.code === 'unavailable');
    } finally {
      await fixture.cleanup();
      await proxy.close();
    }
  });

  it('fails start() with `unavailable` when the broker cannot be reached in time', async () => {
    const proxy = await startTcpProxy(5672);
    proxy.setRefusing(true);
    const log = new RabbitEventLog({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, env: testNamespace('ev'), startTimeoutMs: 200, reconnectLowMs: 50 });
    try {
      await assert.rejects(log.start(), (e: unknown) => isNerveError(e) && e.code === 'unavailable');
    } finally {
      await log.close();
      await proxy.close();
    }
  });

  it('rejects bad options at construction with a ConfigError naming the setting', () => {
    assert.throws(() => new RabbitEventLog({ url: 'http://x' }), { name: 'ConfigError', setting: 'amqpUrl' });
    assert.throws(() => new RabbitEventLog({ url: AMQP_URL, env: 'a b' }), { name: 'ConfigError', setting: 'env' });
    assert.throws(() => new RabbitEventLog({ url: AMQP_URL, outboxLimit: -1 }), { name: 'ConfigError', setting: 'outboxLimit' });
  });
});
