/**
 * Worker metrics (issue 8): a webhooks worker on the real lane with
 * --metrics-port (runWorker's `metricsPort`). A receiver holding the first
 * event makes the rest wait in the queue (queue depth), one event fails once
 * (retry), a poison one is refused with 410 (dead_letter); /metrics counts
 * every outcome with the right labels, the handler time and the event age;
 * /healthz answers; the port closes with the worker. Plus the memory lane
 * (no services) and the flag's validation (one line, exit 2).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Connection } from 'rabbitmq-client';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { runWorker } from '../../src/workers/runner.js';
import { webhookQueue } from '../../src/workers/webhooks.js';
import { sampleEvent } from '../conformance/event-log.js';
import { freePort } from '../helpers/free-port.js';
import { documentedMetrics } from '../helpers/metrics-docs.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const skip = await serviceSkip('RabbitMQ', 5672);
const SECRET = 'whsec_0123456789abcdef';

/** Sum of the samples of `name` whose labels include every one of `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`))) continue;
    sum = (sum ?? 0) + Number(match[3]);
  }
  return sum;
}

interface Receiver {
  server: Server;
  url: string;
  /** Answer for an event id, per delivery number (1-based); default 204. */
  answer: (id: string, delivery: number) => number | Promise<number>;
  deliveries: Map<string, number>;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { server: undefined as unknown as Server, url: '', answer: () => 204, deliveries: new Map() };
  receiver.server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const event = JSON.parse(body) as LifecycleEvent;
      const n = (receiver.deliveries.get(event.id) ?? 0) + 1;
      receiver.deliveries.set(event.id, n);
      void Promise.resolve(receiver.answer(event.id, n)).then((status) => {
        res.statusCode = status;
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  const address = receiver.server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  receiver.url = `http://127.0.0.1:${address.port}/hook`;
  return receiver;
}

const closeReceiver = (r: Receiver | undefined): Promise<void> =>
  r
    ? new Promise<void>((resolve) => {
        r.server.close(() => resolve());
        r.server.closeAllConnections();
      })
    : Promise.resolve();

describe('worker metrics on RabbitMQ', { skip }, () => {
  const ns = testNamespace('wmet');
  let admin: Connection;
  let receiver: Receiver;

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    receiver = await startReceiver();
  });
  after(async () => {
    const queue = `${ns}.nerve.${webhookQueue(receiver.url)}`;
    for (const name of [queue, `${queue}.dlq`, `${queue}.retry.20`, `${queue}.retry.40`, `${queue}.retry.80`]) {
      await admin.queueDelete({ queue: name }).catch(() => undefined);
    }
    await admin.exchangeDelete({ exchange: `${ns}.nerve.events` }).catch(() => undefined);
    await admin.close();
    await closeReceiver(receiver);
  });

  it('counts ack / retry / dead_letter by queue, times handlers, reports age and queue depth', { timeout: 40_000 }, async () => {
    const blocker = sampleEvent('room.ended', 'blocker');
    const flaky = sampleEvent('room.ended', 'flaky');
    const poison = sampleEvent('room.ended', 'poison');
    const others = Array.from({ length: 3 }, (_, i) => sampleEvent('participant.joined', `other${i}`));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    receiver.answer = async (id, n) => {
      if (id === blocker.id) {
        await released;
        return 204;
      }
      if (id === flaky.id) return n === 1 ? 500 : 204;
      if (id === poison.id) return 410; // dead-lettered at once by the handler
      return 204;
    };

    const port = await freePort();
    const worker = await runWorker('webhooks', {
      amqpUrl: AMQP_URL,
      env: ns,
      webhookUrls: [receiver.url],
      webhookSecret: SECRET,
      prefetch: 1,
      maxAttempts: 3,
      retryDelayMs: 20,
      metricsPort: port,
      metricsHost: '127.0.0.1',
      metricsPollMs: 100,
      processId: 'test-proc',
      logger: pino({ level: 'silent' }),
    });
    const log = new RabbitEventLog({ url: AMQP_URL, env: ns });
    const base = `http://127.0.0.1:${port}`;
    const scrape = async (): Promise<string> => {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      return res.text();
    };
    const queue = webhookQueue(receiver.url);
    let closed = false;
    try {
      assert.equal(worker.metricsPort, port);
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { ok: true, worker: 'webhooks' });
      assert.equal((await fetch(`${base}/nope`)).status, 404);

      await log.start();
      await log.publish(blocker);
      for (const event of [flaky, poison, ...others]) await log.publish(event);

      // prefetch 1 and the blocker held: the other five wait in the queue.
      await waitFor(async () => (sample(await scrape(), 'nerve_worker_queue_depth', { queue }) ?? 0) >= 3, { timeoutMs: 10_000, what: 'queue depth >= 3' });
      release();

      const ack = { worker: 'webhooks', queue, outcome: 'ack', process: 'test-proc' };
      const text = await waitFor(
        async () => {
          const t = await scrape();
          return (sample(t, 'nerve_worker_events_total', ack) ?? 0) >= 5 ? t : undefined;
        },
        { timeoutMs: 15_000, what: '5 events acked' },
      );
      assert.equal(sample(text, 'nerve_worker_events_total', ack), 5, 'blocker, flaky (2nd attempt) and 3 others');
      assert.equal(sample(text, 'nerve_worker_events_total', { ...ack, outcome: 'retry' }), 1, 'flaky, 1st attempt');
      assert.equal(sample(text, 'nerve_worker_events_total', { ...ack, outcome: 'dead_letter' }), 1, 'poison (410)');
      assert.equal(sample(text, 'nerve_worker_handler_seconds_count', { worker: 'webhooks', process: 'test-proc' }), 7);
      assert.ok((sample(text, 'nerve_worker_handler_seconds_sum', { worker: 'webhooks' }) ?? 0) > 0);
      assert.equal(sample(text, 'nerve_worker_event_age_seconds_count', { worker: 'webhooks' }), 7);
      assert.ok((sample(text, 'nerve_worker_event_age_seconds_sum', { worker: 'webhooks' }) ?? 0) > 0, 'events waited behind the blocker');
      // Every worker metric of docs/operations.md (### Worker metrics) exists with its documented type.
      const documented = documentedMetrics('worker');
      assert.equal(documented.length, 5, 'worker rows parsed from docs/operations.md');
      for (const { name, type } of documented) assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is exported as a ${type}`);
      assert.ok(sample(text, 'nerve_process_process_resident_memory_bytes', { worker: 'webhooks', process: 'test-proc' }) !== undefined, 'process metrics');
      await waitFor(async () => sample(await scrape(), 'nerve_worker_queue_depth', { queue }) === 0, { timeoutMs: 5000, what: 'queue drained' });
      const dead = await waitFor(() => admin.basicGet({ queue: `${ns}.nerve.${queue}.dlq`, noAck: true }), { timeoutMs: 5000, what: 'poison in the DLQ' });
      assert.equal((dead.body as LifecycleEvent).id, poison.id);

      await worker.close();
      closed = true;
      await assert.rejects(fetch(`${base}/metrics`), 'the metrics port is closed with the worker');
    } finally {
      release();
      await log.close();
      if (!closed) await worker.close();
    }
  });
});

describe('worker metrics on the memory lane', () => {
  let receiver: Receiver | undefined;
  after(() => closeReceiver(receiver));

  it('serves the outcome counter and the queue depth from the memory lane', { timeout: 15_000 }, async () => {
    receiver = await startReceiver();
    const lane = new MemoryEventLog();
    await lane.start();
    const port = await freePort();
    const worker = await runWorker('webhooks', {
      eventLog: lane,
      webhookUrls: [receiver.url],
      webhookSecret: SECRET,
      metricsPort: port,
      metricsHost: '127.0.0.1',
      metricsPollMs: 50,
      logger: pino({ level: 'silent' }),
    });
    try {
      const queue = webhookQueue(receiver.url);
      await lane.publish(sampleEvent('room.created', 'mem'));
      const text = await waitFor(
        async () => {
          const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return sample(t, 'nerve_worker_events_total', { queue, outcome: 'ack' }) === 1 && sample(t, 'nerve_worker_queue_depth', { queue }) === 0
            ? t
            : undefined;
        },
        { timeoutMs: 5000, what: 'ack counted, depth polled' },
      );
      assert.ok(sample(text, 'nerve_worker_events_total', { worker: 'webhooks', queue, outcome: 'ack' }) === 1);
    } finally {
      await worker.close();
      await lane.close();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });
});

describe('--metrics-port validation', () => {
  for (const [args, env, expected] of [
    [['--metrics-port', 'abc'], {}, /^nerve worker: invalid setting --metrics-port \/ NERVE_METRICS_PORT: expected a non-negative integer, got "abc"\n$/],
    [
      [],
      { NERVE_METRICS_PORT: '70000' },
      /^nerve worker: invalid setting --metrics-port \/ NERVE_METRICS_PORT: expected an integer from 0 to 65535, got 70000\n$/,
    ],
  ] as const) {
    it(`exits 2 with one line: ${JSON.stringify(args)} ${JSON.stringify(env)}`, { timeout: 20_000 }, async () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/workers/main.ts', 'cleanup', '--amqp-url', 'amqp://127.0.0.1:1', '--cleanup-hook-url', 'http://127.0.0.1:1/x', ...args],
        { cwd: ROOT, env: { ...process.env, NERVE_METRICS_PORT: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.stdout.resume();
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      assert.equal(code, 2);
      assert.match(stderr, expected);
    });
  }
});
