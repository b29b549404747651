/**
 * `npm run bench:scale`: can 3 nerve nodes hold 50,000 concurrent
 * authenticated WebSocket connections, and does a final broadcast reach
 * every one of them? Reports memory per connection (RSS of the 3 nodes
 * before/after), the connect rate, and the broadcast's delivery.
 *
 *   npm run bench:scale -- [--connections 50000] [--workers 10] [--room-size 100]
 *
 * Connections are spread round-robin over the 3 node ports and over
 * `--workers` load processes (≤ 5,000 each: 20,000 open files per process,
 * ~28,000 ephemeral ports per destination port). Every connection joins a
 * room of `--room-size` users (one giant room would cost O(n²) member_joined
 * frames), and one publisher in every room sends the final chat message.
 * Writes bench/results/scale-<stamp>.json.
 *
 *   npm run bench:scale -- --storm [--quick] [--per-node 10000] [--bystanders 100] [--runs 1]
 *
 * runs the reconnect storm instead (bench/lib/scale-storm.ts): one of 3
 * nodes SIGKILLed, its clients resuming on the survivors; and
 *
 *   npm run bench:scale -- --connects [--connections 5000] [--warmup 60] [--runs 3] [--systems nerve,limit3,limit1]
 *
 * the cost of a connect against the limit references (bench/lib/scale-connects.ts); and
 *
 *   npm run bench:scale -- --presence [--sizes 20000] [--list-max 1000] [--interval-ms 1000] [--timeout-ms 300000]
 *
 * the member frames per join of a join storm into one room (bench/lib/scale-presence.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, ROOT, startCluster, startWorkers, stopWorkers, type Worker } from './lib/cluster.js';
import type { System } from './lib/clients.js';
import { runConnects } from './lib/scale-connects.js';
import { runPresenceStorm } from './lib/scale-presence.js';
import { runStorm } from './lib/scale-storm.js';
import { describeMachine, machineInfo, nowMs, sum } from './lib/stats.js';
import type { CollectResult, OpenResult } from './worker.js';

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index === -1 ? fallback : Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`);
  return value;
}

const storm = process.argv.includes('--storm');
const connects = process.argv.includes('--connects');
const presence = process.argv.includes('--presence');
const quick = process.argv.includes('--quick');
const connections = option('connections', connects ? 5000 : 50_000);
const workerCount = option('workers', Math.max(2, Math.ceil(connections / 5000)));
const roomSize = option('room-size', 100);
const started = nowMs();
const log = (line: string) => process.stderr.write(`${((nowMs() - started) / 1000).toFixed(1).padStart(7)}s ${line}\n`);
const rooms = Math.ceil(connections / roomSize);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

/** Redis' own counters (INFO): CPU seconds and network bytes. On a Redis shared with other work they include it; BENCH_REDIS_URL picks a Redis of the bench's own. */
interface RedisCounters {
  cpuSeconds: number;
  netInBytes: number;
  netOutBytes: number;
  commands: number;
}
async function redisCounters(redis: Redis): Promise<RedisCounters> {
  const info = await redis.info();
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return {
    cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'),
    netInBytes: field('total_net_input_bytes'),
    netOutBytes: field('total_net_output_bytes'),
    commands: field('total_commands_processed'),
  };
}
/** What a phase cost: server CPU (the 3 nodes) and Redis, per unit of work. */
interface PhaseCost {
  serverCpuSeconds: number;
  redisCpuSeconds: number;
  redisInBytes: number;
  redisOutBytes: number;
  redisCommands: number;
}
function phaseCost(cpu0: number, cpu1: number, r0: RedisCounters, r1: RedisCounters): PhaseCost {
  return {
    serverCpuSeconds: cpu1 - cpu0,
    redisCpuSeconds: r1.cpuSeconds - r0.cpuSeconds,
    redisInBytes: r1.netInBytes - r0.netInBytes,
    redisOutBytes: r1.netOutBytes - r0.netOutBytes,
    redisCommands: r1.commands - r0.commands,
  };
}
const perUnit = (cost: PhaseCost, units: number, label: string): string[] => [
  `| ${label}: server CPU (3 nodes) | ${((cost.serverCpuSeconds / units) * 1e6).toFixed(0)} µs |`,
  `| ${label}: Redis CPU | ${((cost.redisCpuSeconds / units) * 1e6).toFixed(1)} µs |`,
  `| ${label}: Redis bytes in / out | ${(cost.redisInBytes / units).toFixed(0)} / ${(cost.redisOutBytes / units).toFixed(0)} B |`,
  `| ${label}: Redis commands | ${(cost.redisCommands / units).toFixed(2)} |`,
];

async function main(): Promise<void> {
  const machine = machineInfo();
  process.stdout.write(
    `nerve scale: ${connections.toLocaleString('en-US')} connections on 3 nodes, ${workerCount} load processes, rooms of ${roomSize}\nmachine: ${describeMachine(machine)}\n`,
  );
  log('starting 3 nerve nodes');
  const cluster = await startCluster('nerve', { nerveArgs: ['--handshake-timeout-ms', '60000'] });
  const workers = startWorkers(workerCount);
  const publisher = startWorkers(1)[0] as Worker;
  const result: Record<string, unknown> = { date: new Date().toISOString(), machine, connections, workers: workerCount, roomSize };
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 2 });
  redis.on('error', () => {});
  try {
    const urls = cluster.servers.map((server) => server.url);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rss0 = cluster.rssBytes();
    log(`servers up, RSS ${mib(rss0)} MiB total; opening connections`);
    // Connection i: node i % 3, worker i % workers, room ⌊i / roomSize⌋.
    const perWorker = workers.map((_, w) => {
      const specs: Array<{ url: string; user: string; room: number }> = [];
      for (let i = w; i < connections; i += workerCount) specs.push({ url: urls[i % urls.length] as string, user: `s${i}`, room: Math.floor(i / roomSize) });
      return specs;
    });
    const progress = setInterval(() => log(`… RSS ${mib(cluster.rssBytes())} MiB, server CPU ${cluster.cpuSeconds().toFixed(0)} s`), 10_000);
    const openCpu0 = cluster.cpuSeconds();
    const openRedis0 = await redisCounters(redis);
    let opened: OpenResult[];
    try {
      opened = await Promise.all(
        workers.map((worker, w) =>
          worker.run<OpenResult>(
            { cmd: 'open', system: 'nerve', conns: (perWorker[w] ?? []).map(({ url, user }) => ({ url, user })), concurrency: 50, timeoutMs: 120_000 },
            900_000,
          ),
        ),
      );
    } finally {
      clearInterval(progress);
    }
    const open = sum(opened.map((r) => r.opened));
    const failed = sum(opened.map((r) => r.failed));
    const openSeconds = (Math.max(...opened.map((r) => r.endMs)) - Math.min(...opened.map((r) => r.startMs))) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const rss1 = cluster.rssBytes();
    const openCost = phaseCost(openCpu0, cluster.cpuSeconds(), openRedis0, await redisCounters(redis));
    result.openCost = openCost;
    Object.assign(result, {
      opened: open,
      failed,
      firstError: opened.find((r) => r.firstError)?.firstError,
      openSeconds,
      connectsPerSecond: open / openSeconds,
      rssBeforeBytes: rss0,
      rssIdleBytes: rss1,
      idleBytesPerConnection: (rss1 - rss0) / Math.max(1, open),
    });
    log(
      `${open} open, ${failed} failed in ${openSeconds.toFixed(1)} s; RSS ${mib(rss1)} MiB → ${((rss1 - rss0) / Math.max(1, open) / 1024).toFixed(1)} KiB per idle connection`,
    );
    if (failed > 0) log(`first failure: ${opened.find((r) => r.firstError)?.firstError}`);

    log(`joining ${rooms} rooms of ${roomSize}`);
    const joinStart = nowMs();
    const joinCpu0 = cluster.cpuSeconds();
    const joinRedis0 = await redisCounters(redis);
    // Each worker's connections of one room are contiguous in its list, but rooms interleave across workers; join room by room index ranges.
    await Promise.all(
      workers.map(async (worker, w) => {
        const specs = perWorker[w] ?? [];
        let from = 0;
        while (from < specs.length) {
          const room = specs[from]?.room ?? 0;
          let to = from;
          while (to < specs.length && specs[to]?.room === room) to += 1;
          await worker.run({ cmd: 'join', room: `r${room}`, concurrency: 20, from, to }, 300_000);
          from = to;
        }
      }),
    );
    const retried = sum(await Promise.all(workers.map(async (worker) => (await worker.run<{ joinRetries: number }>({ cmd: 'errors' })).joinRetries)));
    log(`joined in ${((nowMs() - joinStart) / 1000).toFixed(1)} s (${retried} joins retried after a retryable refusal)`);
    Object.assign(result, { joinSeconds: (nowMs() - joinStart) / 1000, joinRetries: retried });
    const joinCost = phaseCost(joinCpu0, cluster.cpuSeconds(), joinRedis0, await redisCounters(redis));
    result.joinCost = joinCost;
    const rss2 = cluster.rssBytes();

    // What members cost while nothing happens: WebSocket pings, presence and registry heartbeats, probes.
    const IDLE_MS = 15_000;
    log(`idle in rooms for ${IDLE_MS / 1000} s`);
    const idleCpu0 = cluster.cpuSeconds();
    const idleRedis0 = await redisCounters(redis);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const idleCost = phaseCost(idleCpu0, cluster.cpuSeconds(), idleRedis0, await redisCounters(redis));
    result.idleCost = { ...idleCost, seconds: IDLE_MS / 1000 };

    log('final broadcast: one chat message into every room');
    await publisher.run({ cmd: 'open', system: 'nerve', conns: [{ url: urls[0] as string, user: 'broadcaster' }], concurrency: 1, timeoutMs: 30_000 });
    for (let room = 0; room < rooms; room++) await publisher.run({ cmd: 'join', room: `r${room}`, concurrency: 1 });
    await Promise.all(workers.map((worker) => worker.run({ cmd: 'arm', mode: 'latency', tag: 'final', expected: 1 })));
    const broadcastStart = nowMs();
    const broadcastCpu0 = cluster.cpuSeconds();
    const broadcastRedis0 = await redisCounters(redis);
    const collecting = Promise.all(workers.map((worker) => worker.run<CollectResult>({ cmd: 'collect', timeoutMs: 120_000 }, 180_000)));
    for (let room = 0; room < rooms; room++) {
      await publisher.run({
        cmd: 'publish',
        index: 0,
        room: `r${room}`,
        cls: 'chat',
        tag: 'final',
        count: 1,
        ratePerSecond: 0,
        window: 1,
        size: 64,
        timeoutMs: 30_000,
      });
    }
    const collected = await collecting;
    const delivered = sum(collected.map((r) => r.received));
    const broadcastCost = phaseCost(broadcastCpu0, cluster.cpuSeconds(), broadcastRedis0, await redisCounters(redis));
    const broadcastPhaseSeconds = (nowMs() - broadcastStart) / 1000;
    // The members' background (the idle phase's rate) runs during the broadcast too: taken out, what is left is the messages'.
    const idleRate = (value: number) => (value / (IDLE_MS / 1000)) * broadcastPhaseSeconds;
    const broadcastNet: PhaseCost = {
      serverCpuSeconds: broadcastCost.serverCpuSeconds - idleRate(idleCost.serverCpuSeconds),
      redisCpuSeconds: broadcastCost.redisCpuSeconds - idleRate(idleCost.redisCpuSeconds),
      redisInBytes: broadcastCost.redisInBytes - idleRate(idleCost.redisInBytes),
      redisOutBytes: broadcastCost.redisOutBytes - idleRate(idleCost.redisOutBytes),
      redisCommands: broadcastCost.redisCommands - idleRate(idleCost.redisCommands),
    };
    result.broadcastCost = { ...broadcastCost, seconds: broadcastPhaseSeconds, net: broadcastNet };
    const lastMs = Math.max(...collected.map((r) => r.lastMs));
    Object.assign(result, {
      rssJoinedBytes: rss2,
      joinedBytesPerConnection: (rss2 - rss0) / Math.max(1, open),
      broadcastDelivered: delivered,
      broadcastSeconds: (lastMs - broadcastStart) / 1000,
    });
    log(`broadcast reached ${delivered} / ${open} connections in ${((lastMs - broadcastStart) / 1000).toFixed(2)} s`);

    process.stdout.write(
      [
        '',
        '| figure | value |',
        '|---|---:|',
        `| connections open (asked) | ${open.toLocaleString('en-US')} (${connections.toLocaleString('en-US')}) |`,
        `| failed to open | ${failed} |`,
        `| connect + welcome rate | ${(open / openSeconds).toFixed(0)} conn/s |`,
        `| RSS of 3 nodes before → idle → joined | ${mib(rss0)} → ${mib(rss1)} → ${mib(rss2)} MiB |`,
        `| RSS per idle authenticated connection | ${((rss1 - rss0) / Math.max(1, open) / 1024).toFixed(1)} KiB |`,
        `| RSS per connection, in a room of ${roomSize} | ${((rss2 - rss0) / Math.max(1, open) / 1024).toFixed(1)} KiB |`,
        `| joins retried (retryable refusal) | ${retried} |`,
        `| final broadcast delivered | ${delivered.toLocaleString('en-US')} / ${open.toLocaleString('en-US')} in ${((lastMs - broadcastStart) / 1000).toFixed(2)} s |`,
        ...perUnit(openCost, Math.max(1, open), 'per connect'),
        ...perUnit(joinCost, Math.max(1, open), 'per join'),
        ...perUnit(idleCost, Math.max(1, open) * (IDLE_MS / 1000), 'idle in a room, per connection and second'),
        `| broadcast phase | ${broadcastPhaseSeconds.toFixed(2)} s (figures below: net of the idle background over it) |`,
        ...perUnit(broadcastNet, Math.max(1, delivered), 'broadcast, per delivery'),
        `| broadcast, per chat message (${rooms} messages): Redis CPU / bytes in / out / commands | ${((broadcastNet.redisCpuSeconds / rooms) * 1e6).toFixed(0)} µs / ${(broadcastNet.redisInBytes / rooms).toFixed(0)} / ${(broadcastNet.redisOutBytes / rooms).toFixed(0)} B / ${(broadcastNet.redisCommands / rooms).toFixed(1)} |`,
        '',
      ].join('\n'),
    );
  } finally {
    log('closing');
    redis.disconnect();
    await Promise.allSettled([...workers, publisher].map((worker) => worker.run({ cmd: 'close' }, 60_000)));
    await stopWorkers([...workers, publisher]);
    await cluster.stop();
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${file.slice(ROOT.length)}`);
  }
}

function systems(): System[] {
  const index = process.argv.indexOf('--systems');
  const names = index === -1 ? ['nerve', 'limit3', 'limit1'] : (process.argv[index + 1] ?? '').split(',');
  for (const name of names) if (!['nerve', 'limit1', 'limit3'].includes(name)) throw new Error(`--systems takes nerve, limit1, limit3; not ${name}`);
  return names as System[];
}

/** `--sizes 1000,2000`: positive integers. */
function sizes(fallback: number[]): number[] {
  const index = process.argv.indexOf('--sizes');
  if (index === -1) return fallback;
  const values = (process.argv[index + 1] ?? '').split(',').map(Number);
  if (values.length === 0 || !values.every((value) => Number.isInteger(value) && value > 0))
    throw new Error('--sizes takes positive integers, comma-separated');
  return values;
}

/** A non-negative integer flag (`--list-max 0` turns the large-room threshold off). */
function count(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index === -1 ? fallback : Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} takes a non-negative integer`);
  return value;
}

const run = presence
  ? () =>
      runPresenceStorm(
        { sizes: sizes([20_000]), listMax: count('list-max', 1000), intervalMs: option('interval-ms', 1000), timeoutMs: option('timeout-ms', 300_000) },
        log,
      )
  : connects
    ? () => runConnects({ connections, warmup: option('warmup', 60), runs: option('runs', 3), systems: systems() }, log)
    : storm
      ? () =>
          runStorm(
            {
              // --quick: a minute's check of the scenario; the full size is the (10,000 clients on the killed node).
              perNode: option('per-node', quick ? 1000 : 10_000),
              roomSize,
              bystanders: option('bystanders', quick ? 40 : 100),
              chatEveryMs: option('chat-every-ms', quick ? 2000 : 5000),
              pingEveryMs: option('ping-every-ms', 200),
              baselineMs: option('baseline-ms', quick ? 3000 : 5000),
              timeoutMs: option('timeout-ms', 120_000),
              runs: option('runs', 1),
            },
            log,
          )
      : main;

run().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:scale: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
