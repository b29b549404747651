/**
 * `npm run bench:scale -- --presence`: what a join storm into one room costs
 * in member frames (member_joined, member_left, member_updated and
 * member_count: the nodes' `nerve_frames_out_total{op="member"}`), per join.
 * Every member is told of every later join while the room is at or below
 * `--presence-list-max` (n(n−1)/2 frames for n joins: O(n²)); above it
 * members get at most one `member_count` per interval (O(n) per interval).
 * `--presence-list-max 0` turns the threshold off: the behaviour before it.
 *
 *   npm run bench:scale -- --presence [--members 20000] [--list-max 1000] [--runs-of 1000,2000]
 *
 * One cluster per size, loopback only, each run bounded by `--timeout-ms`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startCluster, startWorkers, stopWorkers, type Cluster } from './cluster.js';
import { describeMachine, machineInfo, nowMs, sum } from './stats.js';
import type { OpenResult } from '../worker.js';

export interface PresenceStormOptions {
  /** Room sizes to measure, one cluster each. */
  sizes: number[];
  /** `--presence-list-max` of the nodes (0 = off, every member told of every join). */
  listMax: number;
  /** `--presence-count-interval-ms` of the nodes. */
  intervalMs: number;
  /** Longest a size's run may take (open, join, settle), ms. */
  timeoutMs: number;
}

interface SizeResult {
  members: number;
  listMax: number;
  joined: number;
  joinSeconds: number;
  memberFrames: number;
  framesPerJoin: number;
  /** n(n−1)/2: what telling every member of every later join costs. */
  quadraticFrames: number;
}

/** `nerve_frames_out_total{op="member"}` summed over the cluster's nodes. */
async function memberFrames(cluster: Cluster): Promise<number> {
  const pages = await Promise.all(
    cluster.servers.map(async (server) => {
      const response = await fetch(`http://127.0.0.1:${server.port}/metrics`, { signal: AbortSignal.timeout(10_000) });
      return response.text();
    }),
  );
  let total = 0;
  for (const page of pages) {
    // The registry adds a `node` label: match the op label wherever it stands.
    for (const line of page.split('\n')) {
      if (line.startsWith('nerve_frames_out_total{') && line.includes('op="member"')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

async function measure(size: number, options: PresenceStormOptions, log: (line: string) => void): Promise<SizeResult> {
  const deadline = nowMs() + options.timeoutMs;
  const left = () => Math.max(1000, deadline - nowMs());
  const cluster = await startCluster('nerve', {
    nerveArgs: ['--handshake-timeout-ms', '60000', '--presence-list-max', String(options.listMax), '--presence-count-interval-ms', String(options.intervalMs)],
  });
  const workers = startWorkers(Math.max(1, Math.ceil(size / 5000)));
  try {
    const urls = cluster.servers.map((server) => server.url);
    const opened = await Promise.all(
      workers.map((worker, w) => {
        const conns: Array<{ url: string; user: string }> = [];
        for (let i = w; i < size; i += workers.length) conns.push({ url: urls[i % urls.length] as string, user: `p${i}` });
        return worker.run<OpenResult>({ cmd: 'open', system: 'nerve', conns, concurrency: 50, timeoutMs: 60_000 }, left());
      }),
    );
    const open = sum(opened.map((r) => r.opened));
    log(`${open} / ${size} open; join storm into one room (presence-list-max ${options.listMax})`);
    const before = await memberFrames(cluster);
    const started = nowMs();
    await Promise.all(workers.map((worker) => worker.run({ cmd: 'join', room: 'storm', concurrency: 50 }, left())));
    const joinSeconds = (nowMs() - started) / 1000;
    // Settled: the member frame counter stands still for two intervals (queued fan-out and the last counts are out).
    let last = -1;
    let now = await memberFrames(cluster);
    while (now !== last && nowMs() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(500, 2 * options.intervalMs)));
      last = now;
      now = await memberFrames(cluster);
    }
    const frames = now - before;
    log(`joined in ${joinSeconds.toFixed(1)} s; ${frames} member frames, ${(frames / open).toFixed(2)} per join`);
    return {
      members: size,
      listMax: options.listMax,
      joined: open,
      joinSeconds,
      memberFrames: frames,
      framesPerJoin: frames / open,
      quadraticFrames: (open * (open - 1)) / 2,
    };
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.run({ cmd: 'close' }, 60_000)));
    await stopWorkers(workers);
    await cluster.stop();
  }
}

export async function runPresenceStorm(options: PresenceStormOptions, log: (line: string) => void): Promise<void> {
  const machine = machineInfo();
  process.stdout.write(
    `nerve presence storm: rooms of ${options.sizes.join(', ')} on 3 nodes, presence-list-max ${options.listMax}\nmachine: ${describeMachine(machine)}\n`,
  );
  const results: SizeResult[] = [];
  for (const size of options.sizes) results.push(await measure(size, options, log));
  process.stdout.write(
    [
      '',
      '| members | presence-list-max | join storm | member frames | frames per join | n(n−1)/2 per join |',
      '|---:|---:|---:|---:|---:|---:|',
      ...results.map(
        (r) =>
          `| ${r.members.toLocaleString('en-US')} | ${r.listMax} | ${r.joinSeconds.toFixed(1)} s | ${r.memberFrames.toLocaleString('en-US')} | ${r.framesPerJoin.toFixed(2)} | ${(r.quadraticFrames / Math.max(1, r.joined)).toFixed(1)} |`,
      ),
      '',
    ].join('\n'),
  );
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `presence-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine, options, results }, null, 2)}\n`);
  log(`wrote ${file.slice(ROOT.length)}`);
}
