/**
 * Cold-lane throughput: events per second through RabbitEventLog with
 * publisher confirms (persistent messages, durable queue), then consumed and
 * acked. Not a test: numbers depend on the machine and the broker's disk.
 *
 *   node --import tsx bench/cold-lane.ts [--count 20000] [--in-flight 256] [--prefetch 64] [--amqp-url amqp://...]
 *
 * Uses a fresh `bench…` namespace and deletes its queues and exchange at the end.
 */
import { parseArgs } from 'node:util';
import { Connection } from 'rabbitmq-client';
import { roomEnded } from '../src/events/events.js';
import { RabbitEventLog } from '../src/events/rabbitmq.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    'in-flight': { type: 'string', default: '256' },
    prefetch: { type: 'string', default: '64' },
    'amqp-url': { type: 'string', default: process.env.NERVE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
  },
});
const count = Math.min(Math.max(Number(values.count), 1), 1_000_000);
const maxInFlight = Number(values['in-flight']);
const prefetch = Number(values.prefetch);
const url = values['amqp-url'];
const env = `bench${Date.now().toString(36)}`;

const log = new RabbitEventLog({ url, env, maxInFlight, outboxLimit: Math.max(count, 10_000) });
const admin = new Connection(url);
admin.on('error', () => undefined);

function row(label: string, n: number, ms: number): string {
  return `| ${label.padEnd(28)} | ${String(n).padStart(8)} | ${ms.toFixed(0).padStart(8)} | ${((n / ms) * 1000).toFixed(0).padStart(10)} |`;
}

try {
  await log.start();
  let consumed = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  // Declare the queue first so every published event is routed to it, then consume after publishing.
  const handle = await log.consume({ queue: 'bench', bindings: ['room.ended'], prefetch }, async () => {
    if (++consumed === count) resolveDone();
    return 'ack';
  });
  await handle.close();

  const events = Array.from({ length: count }, (_, i) =>
    roomEnded({ tenant: 'bench', room: `r${i}`, session: `s${i}`, node: 'bench' }, { startedAt: 0, durationMs: 1000, participants: [{ user: 'u', ms: 1000 }] }),
  );
  const t0 = performance.now();
  await Promise.all(events.map((event) => log.publish(event)));
  const publishMs = performance.now() - t0;

  const t1 = performance.now();
  await log.consume({ queue: 'bench', bindings: ['room.ended'], prefetch }, async () => {
    if (++consumed === count) resolveDone();
    return 'ack';
  });
  await done;
  const consumeMs = performance.now() - t1;

  process.stdout.write(`\ncold lane, ${count} events, ${maxInFlight} publishes in flight, prefetch ${prefetch}\n\n`);
  process.stdout.write('| phase                        |   events |       ms |   events/s |\n');
  process.stdout.write('|------------------------------|----------|----------|------------|\n');
  process.stdout.write(`${row('publish (confirmed)', count, publishMs)}\n`);
  process.stdout.write(`${row('consume + ack', count, consumeMs)}\n\n`);
} finally {
  await log.close();
  for (const queue of ['bench', 'bench.dlq', 'bench.retry.1000']) await admin.queueDelete({ queue: `${env}.nerve.${queue}` }).catch(() => undefined);
  await admin.exchangeDelete({ exchange: `${env}.nerve.events` }).catch(() => undefined);
  await admin.close();
}
