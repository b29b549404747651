/**
 * Redis bus vs RabbitMQ bus on the same cross-node scenario (project issue 6).
 *
 *   npm run bench:bus                 # both drivers, about a minute
 *   npm run bench:bus -- --only rabbitmq,rabbitmq-worker
 *
 * For each driver: a fresh 3-node cluster (`nerve serve` processes) on the
 * shared local Redis / RabbitMQ / PostgreSQL, under a random `--env`, then
 *
 *   A. throughput: one publisher on node 0 sends `messages` ephemeral
 *      messages (256 B) into a room with `receivers` members on nodes 1 and 2;
 *      flow control: a `ping`/`pong` round trip every 100 publishes.
 *      Deliveries/s = deliveries ÷ (last delivery − first publish); latency
 *      percentiles over every delivery (send time stamped in the payload).
 *   B. fixed rate: `rate` msg/s for `seconds` into the same room; latency
 *      p50/p99 (the first 0.5 s not sampled).
 *   C. signal round trip: `pairs` callers on node 0 each send an offer to a
 *      callee on node 1 (another node: cross-node user routing), which
 *      answers; `rounds` sequential rounds per pair.
 *   D. chat: one publisher per node sends `chat` messages into one room,
 *      `chatWindow` unacknowledged at a time each; acked messages/s and ack
 *      latency (Redis: Streams script; RabbitMQ: PostgreSQL + confirm under
 *      the room lock, src/history/postgres.ts, stored by the node or, for
 *      `rabbitmq-worker`, by one `nerve worker chat-store --chat-intake`
 *      process).
 *
 * Loopback only; every loop is bounded in count and time; everything
 * created (Redis keys, exchanges, the PostgreSQL schema) is deleted.
 * Latency is measured in this one process (performance.now on both ends),
 * so clients and servers share the machine: read the numbers as a
 * comparison of the two drivers on one box, not as absolute capacity.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Connection } from 'rabbitmq-client';
import WebSocket from 'ws';
import { deleteNamespaceKeys } from '../test/helpers/cluster.js';
import { chatIntakeNames } from '../src/history/chat-intake.js';
import { startNode, type NodeProcess } from '../test/helpers/node-process.js';
import { killWorker, spawnWorker, type WorkerProcess } from '../test/helpers/worker-process.js';

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** `rabbitmq-worker`: the RabbitMQ bus with chat stored by a chat-store worker process (`--chat-path worker`). */
type Driver = 'redis' | 'rabbitmq' | 'rabbitmq-worker';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    receivers: { type: 'string', default: '60' },
    messages: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '4' },
    pairs: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '50' },
    chat: { type: 'string', default: '300' },
    'chat-window': { type: 'string', default: '16' },
  },
});
const sizes = {
  receivers: Math.min(Number(values.receivers), 500),
  messages: Math.min(Number(values.messages), 20_000),
  rate: Math.min(Number(values.rate), 5000),
  seconds: Math.min(Number(values.seconds), 20),
  pairs: Math.min(Number(values.pairs), 200),
  rounds: Math.min(Number(values.rounds), 500),
  chat: Math.min(Number(values.chat), 5000),
  chatWindow: Math.min(Number(values['chat-window']), 64),
};
/** Any phase gives up after this long, whatever arrived. */
const PHASE_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------ clients

type Frame = Record<string, unknown> & { op: string };

class Client {
  private rid = 0;
  private readonly waiting = new Map<number, (frame: Frame) => void>();
  onFrame: (frame: Frame, at: number) => void = () => {};

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const at = performance.now();
      const frame = JSON.parse(data.toString()) as Frame;
      const rid = frame.rid;
      if (typeof rid === 'number' && this.waiting.has(rid)) {
        const resolve = this.waiting.get(rid)!;
        this.waiting.delete(rid);
        resolve(frame);
        return;
      }
      this.onFrame(frame, at);
    });
  }

  static async open(url: string, user: string): Promise<Client> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const client = new Client(ws);
    const welcome = await client.request({ op: 'connect', v: 1, user });
    if (welcome.op !== 'welcome') throw new Error(`connect failed: ${JSON.stringify(welcome)}`);
    return client;
  }

  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Frame> {
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new Error(`no answer to ${String(frame.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(rid, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.ws.send(JSON.stringify({ ...frame, rid }));
    });
  }

  /** Fire and forget (an ephemeral publish is not answered). */
  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ ...frame, rid: ++this.rid }));
  }

  close(): void {
    this.ws.close();
  }
}

// ------------------------------------------------------------------ helpers

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

interface Result {
  driver: Driver;
  throughput: { deliveries: number; expected: number; perSecond: number; p50: number; p99: number };
  fixedRate: { rate: number; deliveries: number; expected: number; p50: number; p99: number };
  signal: { roundTrips: number; expected: number; p50: number; p99: number };
  chat: { acked: number; expected: number; perSecond: number; p50: number; p99: number };
}

// ------------------------------------------------------------------ one driver

async function runDriver(driver: Driver): Promise<Result> {
  const env = `benchbus${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const common = [
    '--env',
    env,
    '--no-demo',
    '--rate-per-second',
    '1000000',
    '--rate-burst',
    '1000000',
    '--mailbox-ttl-ms',
    '0',
    '--max-rooms',
    '10000',
    '--room-rate-per-second',
    '1000000',
    '--room-rate-burst',
    '1000000',
  ];
  const rabbit = ['--bus', 'rabbitmq', '--amqp-url', AMQP_URL, '--postgres-url', POSTGRES_URL, '--postgres-schema', env, ...common];
  const args = driver === 'redis' ? ['--redis-url', REDIS_URL, ...common] : driver === 'rabbitmq' ? rabbit : [...rabbit, '--chat-path', 'worker'];
  const nodes: NodeProcess[] = [];
  const clients: Client[] = [];
  let worker: WorkerProcess | undefined;
  try {
    if (driver === 'rabbitmq-worker') {
      worker = spawnWorker([
        'chat-store',
        '--chat-intake',
        '--amqp-url',
        AMQP_URL,
        '--postgres-url',
        POSTGRES_URL,
        '--postgres-schema',
        env,
        '--env',
        env,
        '--prefetch',
        '64',
      ]);
      if (!(await until(() => worker!.logs.some((entry) => entry.msg === 'chat intake consuming'), PHASE_TIMEOUT_MS)))
        throw new Error('the chat-store worker did not start');
    }
    nodes.push(...(await Promise.all([0, 1, 2].map((i) => startNode({ nodeId: `${env}-n${i}`, args })))));
    const open = async (node: number, user: string) => {
      const client = await Client.open(nodes[node]!.wsUrl, user);
      clients.push(client);
      return client;
    };

    // A + B: one room, receivers on nodes 1 and 2, publisher on node 0.
    const room = `room-${env}`;
    const publisher = await open(0, 'publisher');
    await publisher.request({ op: 'join', room, history: 0 });
    const latencies: number[] = [];
    let delivered = 0;
    let lastAt = 0;
    let sampling = true;
    const receivers = await Promise.all(Array.from({ length: sizes.receivers }, (_, i) => open(1 + (i % 2), `r${i}`)));
    for (const receiver of receivers) {
      receiver.onFrame = (frame, at) => {
        if (frame.op !== 'message') return;
        delivered += 1;
        lastAt = at;
        const sent = (frame.data as { t?: number }).t;
        if (sampling && typeof sent === 'number') latencies.push(at - sent);
      };
      await receiver.request({ op: 'join', room, history: 0 });
    }
    const pad = 'x'.repeat(200);

    // A. throughput
    const firstAt = performance.now();
    for (let n = 0; n < sizes.messages; n += 1) {
      publisher.send({ op: 'publish', room, class: 'ephemeral', data: { n, t: performance.now(), pad } });
      if (n % 100 === 99) await publisher.request({ op: 'ping' });
    }
    const expectedA = sizes.messages * sizes.receivers;
    await until(() => delivered >= expectedA, PHASE_TIMEOUT_MS);
    const sortedA = [...latencies].sort((a, b) => a - b);
    const throughput = {
      deliveries: delivered,
      expected: expectedA,
      perSecond: Math.round(delivered / ((lastAt - firstAt) / 1000)),
      p50: percentile(sortedA, 50),
      p99: percentile(sortedA, 99),
    };

    // B. fixed rate
    delivered = 0;
    latencies.length = 0;
    sampling = false;
    const total = sizes.rate * sizes.seconds;
    const start = performance.now();
    for (let n = 0; n < total; n += 1) {
      const due = start + (n * 1000) / sizes.rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (!sampling && performance.now() - start >= 500) sampling = true;
      publisher.send({ op: 'publish', room, class: 'ephemeral', data: { n, t: performance.now(), pad } });
    }
    await until(() => delivered >= total * sizes.receivers, PHASE_TIMEOUT_MS);
    const sortedB = [...latencies].sort((a, b) => a - b);
    const fixedRate = {
      rate: sizes.rate,
      deliveries: delivered,
      expected: total * sizes.receivers,
      p50: percentile(sortedB, 50),
      p99: percentile(sortedB, 99),
    };

    // C. signal round trips node 0 → node 1 → node 0.
    const rtts: number[] = [];
    await Promise.all(
      Array.from({ length: sizes.pairs }, async (_, p) => {
        const caller = await open(0, `caller${p}`);
        const callee = await open(1, `callee${p}`);
        callee.onFrame = (frame) => {
          if (frame.op === 'signal' && frame.kind === 'offer') callee.send({ op: 'signal', to: `caller${p}`, kind: 'answer', data: frame.data });
        };
        for (let round = 0; round < sizes.rounds; round += 1) {
          const answered = new Promise<number>((resolve) => {
            const timer = setTimeout(() => resolve(NaN), 5000);
            caller.onFrame = (frame, at) => {
              if (frame.op === 'signal' && frame.kind === 'answer') {
                clearTimeout(timer);
                resolve(at);
              }
            };
          });
          const sentAt = performance.now();
          caller.send({ op: 'signal', to: `callee${p}`, kind: 'offer', data: { sdp: 'v=0 '.padEnd(1500, 'a'), round } });
          const at = await answered;
          if (!Number.isNaN(at)) rtts.push(at - sentAt);
        }
      }),
    );
    const sortedC = [...rtts].sort((a, b) => a - b);
    const signal = { roundTrips: rtts.length, expected: sizes.pairs * sizes.rounds, p50: percentile(sortedC, 50), p99: percentile(sortedC, 99) };

    // D. chat acks, one publisher per node, one room.
    const chatRoom = `chat-${env}`;
    const chatters = await Promise.all([0, 1, 2].map((i) => open(i, `chatter${i}`)));
    for (const chatter of chatters) await chatter.request({ op: 'join', room: chatRoom, history: 0 });
    const ackLatencies: number[] = [];
    const chatStart = performance.now();
    await Promise.all(
      chatters.map(async (chatter, c) => {
        let next = 0;
        const lane = async () => {
          while (next < sizes.chat) {
            const n = next++;
            const sentAt = performance.now();
            const ack = await chatter
              .request({ op: 'publish', room: chatRoom, class: 'chat', data: { c, n, pad }, cmid: `c${c}-${n}` }, 10_000)
              .catch(() => undefined);
            if (ack?.op === 'ack') ackLatencies.push(performance.now() - sentAt);
          }
        };
        await Promise.all(Array.from({ length: sizes.chatWindow }, lane));
      }),
    );
    const chatSeconds = (performance.now() - chatStart) / 1000;
    const sortedD = [...ackLatencies].sort((a, b) => a - b);
    const chat = {
      acked: ackLatencies.length,
      expected: 3 * sizes.chat,
      perSecond: Math.round(ackLatencies.length / chatSeconds),
      p50: percentile(sortedD, 50),
      p99: percentile(sortedD, 99),
    };
    return { driver, throughput, fixedRate, signal, chat };
  } finally {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    if (worker) {
      worker.child.kill('SIGTERM');
      await Promise.race([worker.exited, sleep(10_000)]);
      killWorker(worker);
    }
    await deleteNamespaceKeys(REDIS_URL, env);
    if (driver !== 'redis') {
      const admin = new Connection({ url: AMQP_URL, retryLow: 50 });
      admin.on('error', () => undefined);
      const names = chatIntakeNames(env, 'nerve');
      for (const queue of [names.queue, names.deadLetterQueue, `${env}.nerve.chat-store`, `${env}.nerve.chat-store.dlq`])
        await admin.queueDelete({ queue }).catch(() => undefined);
      for (let delay = 1000; delay <= 4_096_000; delay *= 2)
        await admin.queueDelete({ queue: `${env}.nerve.chat-store.retry.${delay}` }).catch(() => undefined);
      for (const exchange of [`${env}.nerve.hot`, `${env}.nerve.events`, names.exchange, names.deadLetterExchange])
        await admin.exchangeDelete({ exchange }).catch(() => undefined);
      await admin.close();
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      await pool.query(`DROP SCHEMA IF EXISTS "${env}" CASCADE`).catch(() => undefined);
      await pool.end();
    }
  }
}

// ------------------------------------------------------------------ main

const drivers: Driver[] = values.only ? (values.only.split(',') as Driver[]) : ['redis', 'rabbitmq'];
const results: Result[] = [];
const began = Date.now();
for (const driver of drivers) {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0)} s] ${driver}...\n`);
  results.push(await runDriver(driver));
}
const ms = (value: number) => (Number.isNaN(value) ? 'n/a' : value.toFixed(2));
const lines = [
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; sizes ${JSON.stringify(sizes)}`,
  '',
  '| driver | A deliveries/s | A delivered | A p50 ms | A p99 ms | B p50 ms | B p99 ms | B delivered | C signal RTT p50 ms | C p99 ms | C round trips | D chat acks/s | D ack p50 ms | D ack p99 ms | D acked |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.driver} | ${r.throughput.perSecond} | ${r.throughput.deliveries}/${r.throughput.expected} | ${ms(r.throughput.p50)} | ${ms(r.throughput.p99)} | ${ms(r.fixedRate.p50)} | ${ms(r.fixedRate.p99)} | ${r.fixedRate.deliveries}/${r.fixedRate.expected} | ${ms(r.signal.p50)} | ${ms(r.signal.p99)} | ${r.signal.roundTrips}/${r.signal.expected} | ${r.chat.perSecond} | ${ms(r.chat.p50)} | ${ms(r.chat.p99)} | ${r.chat.acked}/${r.chat.expected} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
await writeFile(
  new URL(`./results/bus-compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url),
  JSON.stringify({ sizes, results }, null, 2),
);
