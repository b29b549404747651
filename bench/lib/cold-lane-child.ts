/**
 * Scenario 6 of `npm run bench`, the cold lane, run as a child process:
 * lifecycle events per second through nerve's RabbitEventLog
 * (src/events/rabbitmq.ts) with publisher confirms, and consumed (acked)
 * per second by one consumer bound before publishing. No Socket.IO
 * counterpart: Socket.IO has no durable lane. (bench/cold-lane.ts is the
 * cold-lane author's own stand-alone script; this one feeds the table.)
 *
 * Usage: node --import tsx bench/lib/cold-lane-child.ts --events 20000 --size 256 [--amqp-url amqp://guest:guest@127.0.0.1:5672]
 * Prints one JSON line (ColdLaneResult). Declares everything under a random
 * `env` and deletes its queues and exchange afterwards.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { normalizeConsumerSpec, retryDelays } from '../../src/events/retry.js';
import { nowMs } from './stats.js';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] ?? fallback);
}

export interface ColdLaneResult {
  events: number;
  published: number;
  consumed: number;
  publishPerSecond: number;
  consumePerSecond: number;
  clientCpuMicrosPerEvent: number;
}

async function main(): Promise<void> {
  const url = flag('amqp-url', process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  const events = Math.min(1_000_000, Math.max(1, Number(flag('events', '20000'))));
  const size = Number(flag('size', '256'));
  const env = `bench-${randomBytes(4).toString('hex')}`;
  const log = new RabbitEventLog({ url, env, outboxLimit: Math.max(10_000, events), startTimeoutMs: 10_000 });
  const admin = new Connection(url);
  admin.on('error', () => {});
  const spec = { queue: 'bench', bindings: ['#'], prefetch: 256 };
  try {
    await log.start();
    let consumed = 0;
    let lastConsumedMs = 0;
    let allConsumed = () => {};
    const consumedAll = new Promise<void>((resolve) => (allConsumed = resolve));
    const consumer = await log.consume(spec, async () => {
      consumed += 1;
      lastConsumedMs = nowMs();
      if (consumed === events) allConsumed();
      return 'ack';
    });
    const body = 'x'.repeat(size);
    const make = (i: number): LifecycleEvent => ({
      v: 1,
      id: randomUUID(),
      type: 'message.created',
      ts: Date.now(),
      tenant: 'default',
      room: 'bench',
      session: 's1',
      node: 'bench',
      data: { messageId: randomUUID(), from: 'bench', offset: i + 1, epoch: 'e1', sentAt: Date.now(), body },
    });
    const cpu0 = process.cpuUsage();
    const start = nowMs();
    // Every publish resolves on its broker confirm; the log keeps `maxInFlight` (256) unconfirmed at once.
    const results = await Promise.allSettled(Array.from({ length: events }, (_, i) => log.publish(make(i))));
    const publishedMs = nowMs();
    const published = results.filter((result) => result.status === 'fulfilled').length;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([consumedAll, new Promise((resolve) => (timer = setTimeout(resolve, 60_000)))]);
    clearTimeout(timer);
    const cpu = process.cpuUsage(cpu0);
    await consumer.close();
    const result: ColdLaneResult = {
      events,
      published,
      consumed,
      publishPerSecond: published / ((publishedMs - start) / 1000),
      consumePerSecond: consumed / (((lastConsumedMs || publishedMs) - start) / 1000),
      clientCpuMicrosPerEvent: (cpu.user + cpu.system) / Math.max(1, published),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await log.close().catch(() => undefined);
    const queues = [log.queueName(spec.queue), log.deadLetterQueueName(spec.queue)];
    for (const delay of retryDelays(normalizeConsumerSpec(spec))) queues.push(log.retryQueueName(spec.queue, delay));
    for (const queue of queues) await admin.queueDelete({ queue }).catch(() => undefined);
    await admin.exchangeDelete({ exchange: log.exchange }).catch(() => undefined);
    await admin.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`cold-lane: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
