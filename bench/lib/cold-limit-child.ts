/**
 * The broker's limit beside scenario 6 (bench/README.md): a bare
 * `rabbitmq-client` publisher with publisher confirms (256 in flight, like
 * RabbitEventLog) and one consumer (prefetch 256), persistent events of the
 * same shape and size as bench/lib/cold-lane-child.ts, durable topic exchange
 * and queue. Nothing else: no outbox, no envelope checks, no retry queues.
 *
 * Usage: node --import tsx bench/lib/cold-limit-child.ts --events 20000 --size 256 [--amqp-url …]
 * Prints one JSON line (ColdLaneResult). Its exchange and queue have random
 * names and are deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import { benchEvent, coldLaneResult, ConsumeCounter } from './cold-events.js';
import { nowMs } from './stats.js';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] ?? fallback);
}

const IN_FLIGHT = 256;

async function main(): Promise<void> {
  const url = flag('amqp-url', process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  const events = Math.min(1_000_000, Math.max(1, Number(flag('events', '20000'))));
  const size = Number(flag('size', '256'));
  const name = `bench-limit-${randomBytes(4).toString('hex')}`;
  const exchange = `${name}.events`;
  const queue = `${name}.q`;
  // Publisher and consumer on connections of their own, as nerve's event log has them.
  const publishing = new Connection(url);
  const consuming = new Connection(url);
  publishing.on('error', () => {});
  consuming.on('error', () => {});
  try {
    await publishing.exchangeDeclare({ exchange, type: 'topic', durable: true });
    await publishing.queueDeclare({ queue, durable: true });
    await publishing.queueBind({ queue, exchange, routingKey: '#' });
    const counter = new ConsumeCounter(events);
    const consumer = consuming.createConsumer({ queue, queueOptions: { durable: true }, qos: { prefetchCount: IN_FLIGHT } }, () => counter.count());
    consumer.on('error', (error: Error) => process.stderr.write(`cold-limit consumer: ${error.message}\n`));
    const publisher = publishing.createPublisher({ confirm: true, maxAttempts: 1 });
    const body = 'x'.repeat(size);
    const cpu0 = process.cpuUsage();
    const start = nowMs();
    let next = 0;
    let published = 0;
    const deadline = start + 120_000;
    const lane = async () => {
      while (next < events && nowMs() < deadline) {
        const event = JSON.stringify(benchEvent(next++, body));
        await publisher.send({ exchange, routingKey: 'message.created', durable: true, contentType: 'application/json' }, event).then(
          () => (published += 1),
          () => undefined,
        );
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    const publishedMs = nowMs();
    await counter.waitAll(60_000);
    const cpu = process.cpuUsage(cpu0);
    await publisher.close();
    await consumer.close();
    const result = coldLaneResult({ events, published, counter, start, publishedMs, cpu });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await publishing.queueDelete({ queue }).catch(() => undefined);
    await publishing.exchangeDelete({ exchange }).catch(() => undefined);
    await consuming.close();
    await publishing.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`cold-limit: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
