/**
 * The reconnect storm of `npm run bench:scale -- --storm` (project issue 18):
 * 3 nerve nodes, `perNode` clients on each in rooms of `roomSize` with
 * chat, and bystanders on nodes 2 and 3 pinging at a steady rate. Node 1 is
 * SIGKILLed; its clients reconnect to the survivors as the SDK does
 * (bench/lib/storm-client.ts) and rejoin their room with `since`. Measures
 * the time until every one of them has resumed, how many resumed and
 * recovered, the survivors' CPU per resumed client (net of the background
 * rate before the kill), and the bystanders' ping p50/p99 before and during
 * the storm. bench/README.md ("Reconnect storm") has the method.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, startCluster, startWorkers, stopWorkers, type Cluster, type Worker } from './cluster.js';
import { cpuSeconds, describeMachine, machineInfo, median, nowMs, percentileSorted, sum } from './stats.js';
import type { StormSpec } from './storm-client.js';
import type { StormOpenResult, StormUnloadResult, StormWaitResult } from './storm-load.js';

export interface StormOptions {
  /** Clients per node (the killed node holds this many). */
  perNode: number;
  roomSize: number;
  bystanders: number;
  /** One chat message per room every this many ms, from a member on a survivor. */
  chatEveryMs: number;
  /** Each bystander pings every this many ms. */
  pingEveryMs: number;
  /** Background window before the kill: the survivors' CPU rate and the bystanders' "before" pings. */
  baselineMs: number;
  /** How long to wait for every client to resume. */
  timeoutMs: number;
  runs: number;
}

/** The sockets one load process holds: well inside 20,000 open files, like bench:scale's 5,000. */
const PER_WORKER = 5000;

/** One storm: the load processes' counts summed (StormWaitResult, less its raw times), and what they add up to. */
export interface StormRun extends Omit<StormWaitResult, 'resumedAt' | 'firstDropAt'> {
  loadBefore: number[];
  loadAfter: number[];
  opened: number;
  openFailed: number;
  joinFailed: number;
  /** Kill → last rejoin answered; and the 50th / 99th percentile client. */
  allResumedSeconds: number;
  p50ResumedSeconds: number;
  p99ResumedSeconds: number;
  survivorCpuSeconds: number;
  survivorBackgroundCpuSeconds: number;
  survivorCpuPerResumedMicros: number;
  loadProcessCpuSeconds: number;
  pingBefore: { count: number; p50: number; p99: number; max: number };
  pingDuring: { count: number; p50: number; p99: number; max: number };
  chatsSent: number;
  chatsReceived: number;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function pingStats(samples: number[]): StormRun['pingBefore'] {
  const sorted = Float64Array.from(samples).sort();
  return { count: sorted.length, p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** Client i: node i % 3, room ⌊i / roomSize⌋; its node list starts with its node and names the other two in an order alternating per client, so the killed node's clients split over both survivors. */
function roomSpecs(urls: string[], options: StormOptions): StormSpec[] {
  const specs: StormSpec[] = [];
  const total = options.perNode * 3;
  for (let i = 0; i < total; i++) {
    const node = i % 3;
    const others = [(node + 1) % 3, (node + 2) % 3];
    if (Math.floor(i / 3) % 2 === 1) others.reverse();
    const room = Math.floor(i / options.roomSize);
    specs.push({
      urls: [node, ...others].map((n) => urls[n] as string),
      user: `st${i}`,
      room: `storm${room}`,
      // The chatter of a room: its first member on node 2 (a survivor).
      ...(node === 1 && isFirstOnNode(i, room, options.roomSize) ? { role: 'chat' as const } : {}),
    });
  }
  return specs;
}

/** Whether client i is the first of its room on node 2 (index 1 mod 3). */
function isFirstOnNode(i: number, room: number, roomSize: number): boolean {
  let first = room * roomSize;
  while (first % 3 !== 1) first += 1;
  return i === first;
}

async function runOnce(options: StormOptions, log: (line: string) => void): Promise<StormRun> {
  const loadBefore = loadavg();
  const cluster: Cluster = await startCluster('nerve', { nerveArgs: ['--handshake-timeout-ms', '60000'] });
  const specs = roomSpecs(
    cluster.servers.map((server) => server.url),
    options,
  );
  const workers = startWorkers(Math.max(2, Math.ceil(specs.length / PER_WORKER)));
  const bystanderWorker = startWorkers(1)[0] as Worker;
  const all = [...workers, bystanderWorker];
  try {
    const [dead, ...survivors] = cluster.servers;
    if (!dead) throw new Error('no nodes');
    const survivorCpu = () => sum(survivors.map((server) => cpuSeconds(server.pid)));
    await pause(1000);
    log(`opening ${specs.length} clients (${options.perNode} per node) over ${workers.length} load processes`);
    const opened = await Promise.all(
      workers.map((worker, w) =>
        worker.run<StormOpenResult>({ cmd: 'storm-open', conns: specs.filter((_, i) => i % workers.length === w), concurrency: 50 }, 900_000),
      ),
    );
    log(`${sum(opened.map((r) => r.opened))} open, ${sum(opened.map((r) => r.failed))} failed; joining rooms of ${options.roomSize}`);
    const joins = await Promise.all(
      workers.map((worker) => worker.run<{ failed: number; firstError?: string }>({ cmd: 'storm-join', concurrency: 20 }, 900_000)),
    );
    const joinFailed = sum(joins.map((r) => r.failed));
    if (joinFailed > 0) log(`${joinFailed} joins refused; first: ${joins.find((r) => r.firstError)?.firstError}`);
    const bystanders: StormSpec[] = Array.from({ length: options.bystanders }, (_, j) => {
      const url = cluster.servers[1 + (j % 2)]?.url as string;
      return { urls: [url], user: `by${j}`, room: `bystander${j}`, role: 'ping' };
    });
    // Bystanders in a process of their own: the resuming clients' work must not delay their pings on the client side.
    await bystanderWorker.run({ cmd: 'storm-open', conns: bystanders, concurrency: 20 }, 120_000);
    await bystanderWorker.run({ cmd: 'storm-join', concurrency: 20 }, 120_000);
    await Promise.all(all.map((worker) => worker.run({ cmd: 'storm-load', chatEveryMs: options.chatEveryMs, pingEveryMs: options.pingEveryMs })));
    log(
      `load running (chat every ${options.chatEveryMs} ms per room, ${options.bystanders} bystanders ping every ${options.pingEveryMs} ms); baseline ${options.baselineMs} ms`,
    );
    await pause(2000);
    const baseStart = nowMs();
    const baseCpu = survivorCpu();
    await pause(options.baselineMs);
    const backgroundRate = (survivorCpu() - baseCpu) / ((nowMs() - baseStart) / 1000);

    const loadCpu0 = sum(all.map((worker) => cpuSeconds(worker.child.pid as number)));
    const cpu0 = survivorCpu();
    const killedAt = nowMs();
    dead.child.kill('SIGKILL');
    log(`SIGKILLed node 1 (pid ${dead.pid}); waiting for its ${options.perNode} clients to resume`);
    // Survivor CPU sampled every 50 ms, read at the last resume.
    const cpuSamples: Array<[number, number]> = [[killedAt, cpu0]];
    const sampler = setInterval(() => cpuSamples.push([nowMs(), survivorCpu()]), 50);
    let waited: StormWaitResult[] = [];
    try {
      // Polled, not awaited in the workers: progress shows while it runs. A load process starved of CPU
      // (its own share of the resumes, on a busy machine) may answer late: it is waited for, up to the timeout and a minute.
      const deadline = killedAt + options.timeoutMs;
      let lastLog = killedAt;
      for (;;) {
        waited = await Promise.all(
          workers.map((worker) => worker.run<StormWaitResult>({ cmd: 'storm-wait', deadUrl: dead.url, timeoutMs: 0 }, options.timeoutMs + 60_000)),
        );
        const now = nowMs();
        if (waited.every((r) => r.complete) || now > deadline) break;
        if (now - lastLog > 2000) {
          lastLog = now;
          log(
            `… ${sum(waited.map((r) => r.resumed))} resumed, ${sum(waited.map((r) => r.dropped))} dropped, ${sum(waited.map((r) => r.failedAttempts))} failed attempts`,
          );
        }
        await pause(100);
      }
    } finally {
      clearInterval(sampler);
    }
    const loadCpu = sum(all.map((worker) => cpuSeconds(worker.child.pid as number))) - loadCpu0;
    const unloaded = await Promise.all(all.map((worker) => worker.run<StormUnloadResult>({ cmd: 'storm-unload' })));
    const resumedAt = Float64Array.from(waited.flatMap((r) => [...r.resumedAt]).map((at) => at - killedAt)).sort();
    const lastAt = killedAt + (resumedAt[resumedAt.length - 1] ?? 0);
    const atLast = cpuSamples.find(([t]) => t >= lastAt) ?? cpuSamples[cpuSamples.length - 1] ?? [killedAt, cpu0];
    const stormSeconds = (atLast[0] - killedAt) / 1000;
    const survivorCpuSeconds = atLast[1] - cpu0;
    const background = backgroundRate * stormSeconds;
    const resumed = sum(waited.map((r) => r.resumed));
    const before: number[] = [];
    const during: number[] = [];
    const pings = unloaded[unloaded.length - 1]?.pings ?? new Float64Array();
    for (let k = 0; k + 1 < pings.length; k += 2) {
      const sentAt = pings[k] as number;
      if (sentAt >= baseStart && sentAt < killedAt) before.push(pings[k + 1] as number);
      else if (sentAt >= killedAt && sentAt <= lastAt) during.push(pings[k + 1] as number);
    }
    const run: StormRun = {
      loadBefore,
      loadAfter: loadavg(),
      opened: sum(opened.map((r) => r.opened)),
      openFailed: sum(opened.map((r) => r.failed)),
      joinFailed,
      affected: sum(waited.map((r) => r.affected)),
      dropped: sum(waited.map((r) => r.dropped)),
      resumed,
      recovered: sum(waited.map((r) => r.recovered)),
      notRecovered: sum(waited.map((r) => r.notRecovered)),
      failedAttempts: sum(waited.map((r) => r.failedAttempts)),
      complete: waited.every((r) => r.complete),
      allResumedSeconds: (resumedAt[resumedAt.length - 1] ?? Number.NaN) / 1000,
      p50ResumedSeconds: percentileSorted(resumedAt, 50) / 1000,
      p99ResumedSeconds: percentileSorted(resumedAt, 99) / 1000,
      survivorCpuSeconds,
      survivorBackgroundCpuSeconds: background,
      survivorCpuPerResumedMicros: ((survivorCpuSeconds - background) / Math.max(1, resumed)) * 1e6,
      loadProcessCpuSeconds: loadCpu,
      pingBefore: pingStats(before),
      pingDuring: pingStats(during),
      chatsSent: sum(unloaded.map((r) => r.chatsSent)),
      chatsReceived: sum(unloaded.map((r) => r.chatsReceived)),
    };
    const lastError = waited.find((r) => r.lastError !== undefined)?.lastError;
    if (lastError !== undefined) run.lastError = lastError;
    log(
      `resumed ${run.resumed}/${run.affected} (recovered ${run.recovered}) in ${run.allResumedSeconds.toFixed(2)} s; ` +
        `survivor CPU ${run.survivorCpuPerResumedMicros.toFixed(0)} µs per resume; bystander p99 ${run.pingBefore.p99.toFixed(1)} → ${run.pingDuring.p99.toFixed(1)} ms`,
    );
    return run;
  } finally {
    await Promise.allSettled(all.map((worker) => worker.run({ cmd: 'close' }, 60_000)));
    await stopWorkers(all);
    await cluster.stop();
  }
}

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

/** One row per figure: the median of the runs and every run's value. */
function table(runs: StormRun[], options: StormOptions): string {
  const row = (label: string, pick: (run: StormRun) => number, digits = 1) =>
    `| ${label} | ${fmt(median(runs.map(pick)), digits)} | ${runs.map((run) => fmt(pick(run), digits)).join(' / ')} |`;
  return [
    '',
    `reconnect storm: ${options.perNode.toLocaleString('en-US')} clients per node, rooms of ${options.roomSize}, chat every ${options.chatEveryMs} ms per room, ${options.bystanders} bystanders pinging every ${options.pingEveryMs} ms`,
    '',
    '| figure | median | runs |',
    '|---|---:|---|',
    row('clients that failed to open / to join before the kill', (run) => run.openFailed + run.joinFailed, 0),
    row('clients on the killed node', (run) => run.affected, 0),
    row('resumed on the survivors', (run) => run.resumed, 0),
    row('resumes answered recovered: true', (run) => run.recovered, 0),
    row('failed attempts (connect or rejoin)', (run) => run.failedAttempts, 0),
    row('kill → every client resumed, s', (run) => run.allResumedSeconds, 2),
    row('kill → 50 % resumed, s', (run) => run.p50ResumedSeconds, 2),
    row('kill → 99 % resumed, s', (run) => run.p99ResumedSeconds, 2),
    row('survivor CPU per resumed client (net of background), µs', (run) => run.survivorCpuPerResumedMicros, 0),
    row('survivor CPU during the storm, s', (run) => run.survivorCpuSeconds, 2),
    row('load processes CPU during the storm, s', (run) => run.loadProcessCpuSeconds, 2),
    row('bystander ping p50 before, ms', (run) => run.pingBefore.p50, 2),
    row('bystander ping p50 during, ms', (run) => run.pingDuring.p50, 2),
    row('bystander ping p99 before, ms', (run) => run.pingBefore.p99, 1),
    row('bystander ping p99 during, ms', (run) => run.pingDuring.p99, 1),
    row('bystander pings during the storm', (run) => run.pingDuring.count, 0),
    row('load average (1 min) before the run', (run) => run.loadBefore[0] ?? Number.NaN, 2),
    '',
  ].join('\n');
}

export async function runStorm(options: StormOptions, log: (line: string) => void): Promise<void> {
  const machine = machineInfo();
  process.stdout.write(`nerve scale --storm: ${options.runs} run(s)\nmachine: ${describeMachine(machine)}\n`);
  const runs: StormRun[] = [];
  for (let r = 0; r < options.runs; r++) {
    log(`run ${r + 1} of ${options.runs}`);
    runs.push(await runOnce(options, log));
  }
  process.stdout.write(table(runs, options));
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `scale-storm-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine, options, runs }, null, 2)}\n`);
  log(`wrote ${file.slice(ROOT.length)}`);
}
