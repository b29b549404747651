/**
 * Scenario 6 of `npm run bench`, the cold lane, run as a child process:
 * lifecycle events per second through nerve's RabbitEventLog
 * (src/events/rabbitmq.ts) with publisher confirms, and consumed (acked)
 * per second by one consumer bound before publishing. No Socket.IO
 * counterpart: Socket.IO has no durable lane. (bench/cold-lane.ts is the
 * cold-lane author's own stand-alone script; this one feeds the table.)
 *
 * Usage: node --import tsx bench/lib/cold-lane-child.ts --events 20000 --size 256
 *   [--in-flight N (default: the lane's maxInFlight)] [--prefetch 256] [--producers N] [--warmup N] [--amqp-url amqp://guest:guest@127.0.0.1:5672]
 * `--producers N`: N loops each publishing the next event when the last is
 * confirmed, like the bare publisher's loops; default 0, all events at once.
 * `--warmup N`: N events first, published and consumed the same way, not measured.
 * Prints one JSON line (ColdLaneResult). Declares everything under a random
 * `env` and deletes its queues and exchange afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { normalizeConsumerSpec, retryDelays } from '../../src/events/retry.js';
import { benchEvent, COLD_PHASE, coldLaneResult, ConsumeCounter, markPhase } from './cold-events.js';
import { nowMs } from './stats.js';
import { flag } from './flags.js';

export type { ColdLaneResult } from './cold-events.js';

async function main(): Promise<void> {
  const url = flag('amqp-url', process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  const events = Math.min(1_000_000, Math.max(1, Number(flag('events', '20000'))));
  const size = Number(flag('size', '256'));
  const env = `bench-${randomBytes(4).toString('hex')}`;
  const inFlight = flag('in-flight', '');
  const producers = Math.max(0, Number(flag('producers', '0')));
  const warmup = Math.max(0, Number(flag('warmup', '0')));
  const log = new RabbitEventLog({
    url,
    env,
    outboxLimit: Math.max(10_000, events),
    startTimeoutMs: 10_000,
    ...(inFlight === '' ? {} : { maxInFlight: Number(inFlight) }),
  });
  const admin = new Connection(url);
  admin.on('error', () => {});
  const spec = { queue: 'bench', bindings: ['#'], prefetch: Number(flag('prefetch', '256')) };
  try {
    await log.start();
    let counter = new ConsumeCounter(warmup);
    const consumer = await log.consume(spec, async () => {
      counter.count();
      return 'ack';
    });
    const body = 'x'.repeat(size);
    // Every publish resolves on its broker confirm; the log keeps `maxInFlight` unconfirmed at once.
    const publishAll = async (count: number, first: number): Promise<number> => {
      let published = 0;
      if (producers === 0) {
        // The whole burst at once: the outbox holds what is not in flight.
        const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => log.publish(benchEvent(first + i, body))));
        return results.filter((result) => result.status === 'fulfilled').length;
      }
      // `producers` loops, each publishing its next event once the last one is confirmed (as the bare publisher does).
      let next = 0;
      const producer = async (): Promise<void> => {
        while (next < count) {
          await log.publish(benchEvent(first + next++, body)).then(
            () => (published += 1),
            () => undefined,
          );
        }
      };
      await Promise.all(Array.from({ length: producers }, producer));
      return published;
    };
    // Warm-up, not measured (as the bare publisher's): the same events, so the JIT has compiled the path.
    if (warmup > 0) {
      await publishAll(warmup, 0);
      await counter.waitAll(60_000);
    }
    counter = new ConsumeCounter(events);
    markPhase(COLD_PHASE.start);
    const cpu0 = process.cpuUsage();
    const start = nowMs();
    const published = await publishAll(events, warmup);
    const publishedMs = nowMs();
    await counter.waitAll(60_000);
    const cpu = process.cpuUsage(cpu0);
    markPhase(COLD_PHASE.end);
    await consumer.close();
    const result = coldLaneResult({ events, published, counter, start, publishedMs, cpu });
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
