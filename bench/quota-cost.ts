/**
 * What tenant quotas cost per publish (issue 20): one node on the shared
 * Redis (a namespace of its own), one sender and one receiver in a room,
 * ephemeral publishes pipelined in bursts; the process's CPU time per
 * delivered message, quotas off against on. Modes:
 *   off      the tenant has no quota (one map lookup per publish)
 *   leased   publishesPerSecond 1,000,000 (never refused): tokens leased from
 *            Redis 1000 at a time, the default
 *   unleased the same quota with one Redis lease per publish (maxLease 1),
 *            what the lease batching saves
 *
 *   node --import tsx bench/quota-cost.ts                 # 3 runs per mode, 10,000 messages each
 *   node --import tsx bench/quota-cost.ts --runs 5 --messages 20000
 *
 * Client and node share the process, so the figures are the whole process
 * (client included, the same in every mode); compare the differences. Modes
 * alternate so drift hits all of them; the median run is reported.
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { NerveNode } from '../src/node.js';
import { deleteNamespaceKeys } from '../test/helpers/cluster.js';
import { SHARED_REDIS_URL } from '../test/helpers/redis-server.js';
import { testNamespace, waitFor } from '../test/helpers/wait.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, messages: { type: 'string', default: '10000' } } });
const RUNS = Math.min(Math.max(Number(values.runs), 1), 9);
const MESSAGES = Math.min(Math.max(Number(values.messages), 1000), 50_000);
const BURST = 200;

type Mode = 'off' | 'leased' | 'unleased';

interface Figures {
  cpuUsPerMessage: number;
  messagesPerSecond: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function open(url: string, user: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const answers = (socket as WebSocket & { answers?: Map<number, () => void> }).answers ?? new Map<number, () => void>();
  socket.on('message', (data: WebSocket.RawData) => {
    const frame = JSON.parse(data.toString()) as { rid?: number };
    if (typeof frame.rid === 'number') answers.get(frame.rid)?.();
  });
  const request = (frame: Record<string, unknown>, rid: number) =>
    new Promise<void>((resolve) => {
      answers.set(rid, resolve);
      socket.send(JSON.stringify({ ...frame, rid }));
    });
  await request({ op: 'connect', v: 1, user }, 1);
  await request({ op: 'join', room: 'bench' }, 2);
  return socket;
}

async function run(mode: Mode): Promise<Figures> {
  const env = testNamespace('qbench');
  const node = new NerveNode({
    port: 0,
    host: '127.0.0.1',
    env,
    redisUrl: SHARED_REDIS_URL,
    logLevel: 'silent',
    demo: false,
    defaultTenant: 'bench',
    ...(mode === 'off' ? {} : { tenantQuotas: new Map([['bench', { publishesPerSecond: 1_000_000 }]]) }),
    limits: { ratePerSecond: 1_000_000, rateBurst: 1_000_000, roomRatePerSecond: 1_000_000, roomRateBurst: 1_000_000 },
  });
  // The bench knob: one lease per publish.
  if (mode === 'unleased') node.tenancy.enforcer.maxLease = 1;
  const { port } = await node.start();
  const url = `ws://127.0.0.1:${port}/ws`;
  const sender = await open(url, 'sender');
  const receiver = await open(url, 'receiver');
  let received = 0;
  receiver.on('message', () => {
    received += 1;
  });
  // A refusal would never be delivered: stop at once instead of waiting for it.
  sender.on('message', (data: WebSocket.RawData) => {
    if (data.toString().startsWith('{"op":"error"')) throw new Error(`refused: ${data.toString().slice(0, 200)}`);
  });
  try {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let sent = 0; sent < MESSAGES; sent += BURST) {
      for (let i = sent; i < Math.min(MESSAGES, sent + BURST); i += 1)
        sender.send(`{"op":"publish","rid":${i + 10},"room":"bench","class":"ephemeral","data":{"n":${i}}}`);
      // Bounded in flight: the next burst once this one arrived.
      const target = Math.min(MESSAGES, sent + BURST);
      await waitFor(() => received >= target, { timeoutMs: 30_000, intervalMs: 1, what: `${target} deliveries` });
    }
    const elapsed = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return { cpuUsPerMessage: (used.user + used.system) / MESSAGES, messagesPerSecond: (MESSAGES / elapsed) * 1000 };
  } finally {
    sender.close();
    receiver.close();
    await node.stop();
    await deleteNamespaceKeys(SHARED_REDIS_URL, env);
  }
}

const modes: Mode[] = ['off', 'leased', 'unleased'];
const results = new Map<Mode, Figures[]>(modes.map((mode) => [mode, []]));
await run('off'); // warm-up, not counted
for (let r = 0; r < RUNS; r += 1) {
  for (const mode of modes) results.get(mode)!.push(await run(mode));
}
console.log(`| mode | CPU µs per message (process) | messages/s |`);
console.log(`|---|---|---|`);
for (const mode of modes) {
  const figures = results.get(mode)!;
  console.log(`| ${mode} | ${median(figures.map((f) => f.cpuUsPerMessage)).toFixed(1)} | ${Math.round(median(figures.map((f) => f.messagesPerSecond)))} |`);
}
