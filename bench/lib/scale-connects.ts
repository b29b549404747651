/**
 * `npm run bench:scale -- --connects`: what a connect costs (project issue
 * 18). For each system (nerve, and the limit references of
 * bench/limit-server.ts), run by run in alternation: a fresh cluster,
 * `warmup` connects (opened and closed: JIT and lazily built structures),
 * then `n` connects spread over the nodes (64 handshakes
 * in flight per load process, as scenario 3+4 of `npm run bench`); server
 * CPU per connect (the cluster's, between the first connect and the last
 * `welcome`) and connects/s. BENCH_CPU_PROF=<dir> profiles the servers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { System } from './clients.js';
import { ROOT, startCluster, startWorkers, stopWorkers, type Worker } from './cluster.js';
import { describeMachine, machineInfo, median, sum } from './stats.js';
import type { OpenResult } from '../worker.js';

export interface ConnectsOptions {
  connections: number;
  warmup: number;
  runs: number;
  systems: System[];
}

interface ConnectsRun {
  system: System;
  run: number;
  load1: number;
  cpuPerConnectMicros: number;
  connectsPerSecond: number;
  failed: number;
}

async function openAll(workers: readonly Worker[], specs: Array<{ url: string; user: string }>, system: System): Promise<OpenResult[]> {
  return Promise.all(
    workers.map((worker, w) =>
      worker.run<OpenResult>({ cmd: 'open', system, conns: specs.filter((_, i) => i % workers.length === w), concurrency: 64, timeoutMs: 60_000 }, 300_000),
    ),
  );
}

async function once(system: System, n: number, warmup: number, run: number): Promise<ConnectsRun> {
  const load1 = loadavg()[0] ?? Number.NaN;
  const cluster = await startCluster(system);
  const workers = startWorkers(Math.max(2, Math.ceil(n / 5000)));
  try {
    const urls = cluster.servers.map((server) => server.url);
    const spec = (prefix: string) => (_: unknown, i: number) => ({ url: urls[i % urls.length] as string, user: `${prefix}${i}` });
    await openAll(workers, Array.from({ length: warmup }, spec('w')), system);
    await Promise.all(workers.map((worker) => worker.run({ cmd: 'close' })));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const cpu0 = cluster.cpuSeconds();
    const opened = await openAll(workers, Array.from({ length: n }, spec('c')), system);
    const cpu = cluster.cpuSeconds() - cpu0;
    const seconds = (Math.max(...opened.map((r) => r.endMs)) - Math.min(...opened.map((r) => r.startMs))) / 1000;
    const ok = sum(opened.map((r) => r.opened));
    return {
      system,
      run,
      load1,
      cpuPerConnectMicros: (cpu / Math.max(1, ok)) * 1e6,
      connectsPerSecond: ok / seconds,
      failed: sum(opened.map((r) => r.failed)),
    };
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.run({ cmd: 'close' }, 30_000)));
    await stopWorkers(workers);
    await cluster.stop();
  }
}

export async function runConnects(options: ConnectsOptions, log: (line: string) => void): Promise<void> {
  const machine = machineInfo();
  process.stdout.write(
    `nerve scale --connects: ${options.connections} connects after ${options.warmup} warm-up ones × ${options.runs} runs of ${options.systems.join(', ')}\nmachine: ${describeMachine(machine)}\n`,
  );
  const runs: ConnectsRun[] = [];
  for (let r = 0; r < options.runs; r++) {
    // Systems alternate run by run, so drifting background load falls on each alike.
    for (const system of r % 2 === 0 ? options.systems : [...options.systems].reverse()) {
      const result = await once(system, options.connections, options.warmup, r + 1);
      log(
        `${system} run ${r + 1}: ${result.cpuPerConnectMicros.toFixed(0)} µs server CPU per connect, ${result.connectsPerSecond.toFixed(0)} conn/s, ${result.failed} failed, load ${result.load1.toFixed(2)}`,
      );
      runs.push(result);
    }
  }
  const lines = ['', '| system | server CPU / connect, µs (median; runs) | connects/s (median; runs) | load avg (1 min) |', '|---|---|---|---|'];
  for (const system of options.systems) {
    const mine = runs.filter((run) => run.system === system);
    const list = (pick: (run: ConnectsRun) => number) => `${median(mine.map(pick)).toFixed(0)}; ${mine.map((run) => pick(run).toFixed(0)).join(' / ')}`;
    lines.push(
      `| ${system} | ${list((run) => run.cpuPerConnectMicros)} | ${list((run) => run.connectsPerSecond)} | ${mine.map((run) => run.load1.toFixed(2)).join(' / ')} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `scale-connects-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine, options, runs }, null, 2)}\n`);
  log(`wrote ${file.slice(ROOT.length)}`);
}
