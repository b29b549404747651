/**
 * The broker's limit beside scenario 6 (bench/README.md): a bare
 * `rabbitmq-client` publisher with publisher confirms and one consumer,
 * persistent events of the same shape and size as
 * bench/lib/cold-lane-child.ts, durable topic exchange and queue. Nothing
 * else: no outbox, no envelope checks, no retry queues. By default it gets
 * the same handling as nerve's lane (one socket write per event-loop turn,
 * TCP_NODELAY, 128 KiB frames, src/events/amqp-cork.ts; one `multiple` ack
 * per millisecond or half the prefetch on a raw channel) and the in-flight
 * count that was fastest here (256; 1,024 cost the broker more CPU per
 * event, issue 18), so the comparison is with the best this client and
 * broker do, not with an untuned client.
 *
 * Usage: node --import tsx bench/lib/cold-limit-child.ts --events 20000 --size 256
 *   [--in-flight 256] [--prefetch 256] [--warmup N] [--plain] [--per-ack] [--no-confirm] [--no-consumer] [--no-ack] [--amqp-url …]
 * `--plain`: rabbitmq-client's defaults (a write per message, Nagle on, its
 * Consumer acking each event), the reference before issue 18. `--per-ack`:
 * tuned sockets but rabbitmq-client's Consumer, one ack per event. `--consumer`:
 * rabbitmq-client's Consumer with nerve's AckBatcher (src/events/ack-batcher.ts).
 * `--warmup N`: N events first, published and consumed the same way, not measured.
 * `--no-confirm` / `--no-consumer` / `--no-ack` (consumer in auto-ack mode): to find
 * the broker's ceiling and what each part costs it, not for the table.
 * Prints one JSON line (ColdLaneResult). Its exchange and queue have random
 * names and are deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Connection, type ConnectionOptions } from 'rabbitmq-client';
import { batchingAcks } from '../../src/events/ack-batcher.js';
import { LANE_SOCKET_OPTIONS, TurnCork } from '../../src/events/amqp-cork.js';
import { benchEvent, COLD_PHASE, coldLaneResult, ConsumeCounter, markPhase } from './cold-events.js';
import { nowMs } from './stats.js';
import { flag, hasFlag } from './flags.js';

async function main(): Promise<void> {
  const url = flag('amqp-url', process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  const events = Math.min(1_000_000, Math.max(1, Number(flag('events', '20000'))));
  const size = Number(flag('size', '256'));
  const name = `bench-limit-${randomBytes(4).toString('hex')}`;
  const exchange = `${name}.events`;
  const queue = `${name}.q`;
  const inFlight = Math.max(1, Number(flag('in-flight', '256')));
  const prefetch = Math.max(1, Number(flag('prefetch', '256')));
  const warmup = Math.max(0, Number(flag('warmup', '0')));
  const plain = hasFlag('plain');
  const confirm = !hasFlag('no-confirm');
  const consume = !hasFlag('no-consumer');
  const tuned: Partial<ConnectionOptions> = plain
    ? {}
    : { noDelay: true, frameMax: 131_072, socket: LANE_SOCKET_OPTIONS as unknown as ConnectionOptions['socket'] };
  // Publisher and consumer on connections of their own, as nerve's event log has them.
  const publishing = new Connection({ url, ...tuned });
  const consuming = new Connection({ url, ...tuned });
  const publishCork = plain ? undefined : new TurnCork(publishing);
  const ackCork = plain ? undefined : new TurnCork(consuming);
  publishing.on('error', () => {});
  consuming.on('error', () => {});
  try {
    await publishing.exchangeDeclare({ exchange, type: 'topic', durable: true });
    await publishing.queueDeclare({ queue, durable: true });
    await publishing.queueBind({ queue, exchange, routingKey: '#' });
    let counter = new ConsumeCounter(warmup);
    // A raw channel that acks in `multiple` acks, as nerve's AckBatcher does (without its gap handling: acks come in order here).
    let lastTag = 0;
    let ackedTag = 0;
    let ackTimer: NodeJS.Timeout | undefined;
    const flushAcks = (): void => {
      clearTimeout(ackTimer);
      ackTimer = undefined;
      if (lastTag > ackedTag) rawChannel?.basicAck({ deliveryTag: lastTag, multiple: true });
      ackedTag = lastTag;
    };
    const rawChannel = consume && !plain && !hasFlag('per-ack') && !hasFlag('no-ack') && !hasFlag('consumer') ? await consuming.acquire() : undefined;
    if (rawChannel) {
      await rawChannel.basicQos({ prefetchCount: prefetch });
      await rawChannel.basicConsume({ queue }, (msg) => {
        counter.count();
        lastTag = msg.deliveryTag;
        if (lastTag - ackedTag >= prefetch / 2) flushAcks();
        else if (!ackTimer) ackTimer = setTimeout(flushAcks, 1);
      });
    }
    const consumer =
      consume && !rawChannel
        ? (hasFlag('consumer') ? batchingAcks(consuming, prefetch) : consuming).createConsumer(
            { queue, queueOptions: { durable: true }, qos: { prefetchCount: prefetch }, noAck: hasFlag('no-ack') },
            () => {
              counter.count();
              ackCork?.hold();
            },
          )
        : undefined;
    consumer?.on('error', (error: Error) => process.stderr.write(`cold-limit consumer: ${error.message}\n`));
    const publisher = publishing.createPublisher({ confirm, maxAttempts: 1 });
    const body = 'x'.repeat(size);
    const publishAll = async (count: number, first: number): Promise<number> => {
      let next = 0;
      let published = 0;
      const deadline = nowMs() + 120_000;
      const lane = async () => {
        while (next < count && nowMs() < deadline) {
          const event = JSON.stringify(benchEvent(first + next++, body));
          publishCork?.hold();
          await publisher.send({ exchange, routingKey: 'message.created', durable: true, contentType: 'application/json' }, event).then(
            () => (published += 1),
            () => undefined,
          );
        }
      };
      await Promise.all(Array.from({ length: inFlight }, lane));
      return published;
    };
    // Warm-up, not measured (as nerve's lane gets in cold-lane-child.ts).
    if (warmup > 0) {
      await publishAll(warmup, 0);
      if (consume) await counter.waitAll(60_000);
    }
    counter = new ConsumeCounter(events);
    markPhase(COLD_PHASE.start);
    const cpu0 = process.cpuUsage();
    const start = nowMs();
    const published = await publishAll(events, warmup);
    const publishedMs = nowMs();
    if (consume) await counter.waitAll(60_000);
    const cpu = process.cpuUsage(cpu0);
    markPhase(COLD_PHASE.end);
    await publisher.close();
    await consumer?.close();
    await rawChannel?.close();
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
