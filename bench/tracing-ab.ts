/**
 * What tracing costs on the publish path (bench/README.md, "Tracing"): an A/B
 * of one node (memory lanes, in process) taking chat publishes from one
 * connection and delivering them to another, in three variants, each in a
 * fresh process, interleaved run by run (the order rotating):
 *
 *   base  the code before tracing existed (`--base <dir>`: a tree of that
 *         commit, e.g. `git archive <commit> | tar -x -C <dir>`; optional)
 *   off   this code, tracing off (the default)
 *   on    this code, tracing on, spans batched to an exporter that drops them
 *         (the SDK's own cost, not a collector's)
 *
 * Bounded: `--messages` per run (default 20,000, after 2,000 warm-up), at
 * most 200 unanswered at once, `--runs` runs (default 5), 60 s per run.
 * Loopback only. Prints the median of the runs per variant: node process
 * CPU µs per message (sender, receiver and node share the process, so the
 * figures include both clients) and messages per second.
 *
 *   node --import tsx bench/tracing-ab.ts --runs 5 [--base /tmp/nerve-base] [--head /tmp/nerve-head]
 *
 * `--head`: the tree measured as `off` and `on` (default: this one); give a
 * clean tree of one commit when the working tree holds unrelated edits.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WINDOW = 200;
const WARMUP = 2000;

type Variant = 'base' | 'off' | 'on';
interface RunResult {
  variant: Variant;
  cpuUsPerMessage: number;
  messagesPerSecond: number;
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    tree: { type: 'string' },
    base: { type: 'string' },
    head: { type: 'string' },
    runs: { type: 'string', default: '5' },
    messages: { type: 'string', default: '20000' },
  },
});
const messages = Math.min(Math.max(Number(values.messages), 1000), 200_000);

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A minimal protocol client: connect, join, then count frames by op. */
async function client(url: string, user: string): Promise<{ socket: WebSocket; onFrame: (fn: (frame: { op: string }) => void) => void }> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const listeners: Array<(frame: { op: string }) => void> = [];
  socket.on('message', (data: WebSocket.RawData) => {
    const frame = JSON.parse(data.toString()) as { op: string };
    for (const fn of listeners) fn(frame);
  });
  const request = (frame: object, op: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${op}`)), 5000);
      listeners.push(function once(answer) {
        if (answer.op !== op && answer.op !== 'error') return;
        clearTimeout(timer);
        listeners.splice(listeners.indexOf(once), 1);
        if (answer.op === 'error') reject(new Error(JSON.stringify(answer)));
        else resolve();
      });
      socket.send(JSON.stringify(frame));
    });
  await request({ op: 'connect', rid: 1, v: 1, user }, 'welcome');
  await request({ op: 'join', rid: 2, room: 'ab' }, 'joined');
  return { socket, onFrame: (fn) => listeners.push(fn) };
}

async function child(variant: Variant, tree: string): Promise<RunResult> {
  if (variant === 'on') {
    // The SDK with a batching processor whose exporter drops the spans.
    const { trace } = await import('@opentelemetry/api');
    const { BatchSpanProcessor, TracerProvider } = await import('@opentelemetry/sdk-trace');
    const exporter = { export: (_spans: unknown[], done: (result: { code: number }) => void) => done({ code: 0 }), shutdown: async () => {} };
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter })] }));
  }
  const { NerveNode } = (await import(pathToFileURL(join(tree, 'src/node.ts')).href)) as typeof import('../src/node.js');
  const high = 1_000_000;
  const node = new NerveNode({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    logFormat: 'json',
    demo: false,
    ...(variant === 'on' ? { tracing: true } : {}),
    limits: { ratePerSecond: high, rateBurst: high, roomRatePerSecond: high, roomRateBurst: high, maxErrorsPer10s: high },
  });
  const address = await node.start();
  const url = `ws://127.0.0.1:${address.port}/ws`;
  const sender = await client(url, 'alice');
  const receiver = await client(url, 'bob');
  let delivered = 0;
  let acked = 0;
  receiver.onFrame((frame) => {
    if (frame.op === 'message') delivered += 1;
  });
  let wake: (() => void) | undefined;
  sender.onFrame((frame) => {
    if (frame.op === 'ack') acked += 1;
    wake?.();
  });
  receiver.onFrame(() => wake?.());
  const traceparent = (i: number) => `00-${i.toString(16).padStart(32, '0')}-${'1'.repeat(16)}-01`;
  let rid = 10;
  const send = async (count: number): Promise<void> => {
    const target = acked + count;
    const deliveredTarget = delivered + count;
    let sent = 0;
    const deadline = Date.now() + 60_000;
    while (acked < target || delivered < deliveredTarget) {
      while (sent < count && sent - (acked - (target - count)) < WINDOW) {
        rid += 1;
        sender.socket.send(
          JSON.stringify({ op: 'publish', rid, room: 'ab', class: 'chat', data: { n: rid }, ...(variant === 'on' ? { traceparent: traceparent(rid) } : {}) }),
        );
        sent += 1;
      }
      if (Date.now() > deadline) throw new Error('run took over 60 s');
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  await send(WARMUP);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await send(messages);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  sender.socket.close();
  receiver.socket.close();
  await node.stop();
  return { variant, cpuUsPerMessage: (used.user + used.system) / messages, messagesPerSecond: messages / seconds };
}

function runChild(variant: Variant, tree: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', variant, '--tree', tree, '--messages', String(messages)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`${variant} run exited ${code}: ${out}`));
      else resolve(JSON.parse(line) as RunResult);
    });
  });
}

if (values.child) {
  const result = await child(values.child as Variant, values.tree ?? ROOT);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  const runs = Math.min(Math.max(Number(values.runs), 1), 15);
  const variants: Array<[Variant, string]> = [];
  if (values.base) {
    if (!existsSync(join(values.base, 'src/node.ts'))) throw new Error(`--base ${values.base} has no src/node.ts`);
    variants.push(['base', values.base]);
  }
  const head = values.head ?? ROOT;
  variants.push(['off', head], ['on', head]);
  const results: RunResult[] = [];
  for (let run = 1; run <= runs; run += 1) {
    // The order rotates from run to run, so a load that drifts during a run does not always favour the same variant.
    const order = variants.map((_, i) => variants[(i + run) % variants.length]!);
    for (const [variant, tree] of order) {
      const result = await runChild(variant, tree);
      results.push(result);
      process.stderr.write(`run ${run} ${variant}: ${result.cpuUsPerMessage.toFixed(1)} µs CPU/msg, ${Math.round(result.messagesPerSecond)} msg/s\n`);
    }
  }
  process.stdout.write(
    `\n${messages} chat messages per run, median of ${runs} runs\n\n| variant | CPU µs per message | messages/s | runs (CPU µs) |\n|---|---|---|---|\n`,
  );
  for (const [variant] of variants) {
    const mine = results.filter((r) => r.variant === variant);
    process.stdout.write(
      `| ${variant} | ${median(mine.map((r) => r.cpuUsPerMessage)).toFixed(1)} | ${Math.round(median(mine.map((r) => r.messagesPerSecond)))} | ${mine.map((r) => r.cpuUsPerMessage.toFixed(1)).join(', ')} |\n`,
    );
  }
}
