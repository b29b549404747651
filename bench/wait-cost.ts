/**
 * What `--redis-wait-replicas` costs per chat message (issue 14): the Redis
 * history's append (store, then publish) with `WAIT 1` against without, on
 * a private master and one replica on loopback.
 *
 *   npm run bench:wait                # 3 runs per mode, under a minute
 *   npm run bench:wait -- --runs 5 --messages 4000
 *
 * Two loads per run, each bounded by `messages`:
 *   - one at a time: one append in flight (the latency a lone sender sees);
 *   - 32 in flight over 8 rooms (a busy node: appends answered in one tick
 *     share one WAIT).
 * Acks/s and ack latency p50/p99 per load; the figure reported is the median
 * of the runs, modes alternating so drift hits both. The shared Redis is not
 * touched.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AppendTarget } from '../src/history/history.js';
import { RedisStreamsHistory } from '../src/history/redis-streams.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { waitFor } from '../test/helpers/wait.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, messages: { type: 'string', default: '3000' } } });
const RUNS = Math.min(Math.max(Number(values.runs), 1), 9);
const MESSAGES = Math.min(Math.max(Number(values.messages), 100), 20_000);

interface Figures {
  acksPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const target = (room: string): AppendTarget => ({
  channel: `bench:wait:${room}`,
  envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'bench', class: 'chat', payload: JSON.stringify(message) }),
});

async function load(history: RedisStreamsHistory, prefix: string, inFlight: number, rooms: number): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      const room = { tenant: 'bench', room: `${prefix}-${worker % rooms}` };
      while (next < MESSAGES) {
        const n = next++;
        const sent = performance.now();
        await history.append(
          room,
          { op: 'message', id: `${prefix}-${n}`, room: room.room, from: 'bench', class: 'chat', data: { n, text: 'x'.repeat(100) }, ts: Date.now() },
          target(room.room),
        );
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { acksPerSecond: (latencies.length / elapsed) * 1000, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

const master = await startRedis();
const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)]);
try {
  await waitFor(async () => (await replica.cli('info', 'replication')).includes('master_link_status:up'), {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: 'replica in sync',
  });
  const results: Record<string, Record<string, Figures[]>> = {
    'WAIT 1': { 'one at a time': [], '32 in flight': [] },
    'no WAIT': { 'one at a time': [], '32 in flight': [] },
  };
  for (let run = 0; run < RUNS; run += 1) {
    for (const mode of run % 2 === 0 ? ['no WAIT', 'WAIT 1'] : ['WAIT 1', 'no WAIT']) {
      const history = new RedisStreamsHistory({ url: master.url, prefix: `bench${run}`, waitReplicas: mode === 'WAIT 1' ? 1 : 0, maxMessages: 1000 });
      await history.start();
      await load(history, `warm-${mode}-${run}`, 8, 8);
      results[mode]!['one at a time']!.push(await load(history, `one-${mode}-${run}`, 1, 1));
      results[mode]!['32 in flight']!.push(await load(history, `many-${mode}-${run}`, 32, 8));
      await history.close();
    }
  }
  console.log(`history append on loopback, master + 1 replica, ${MESSAGES} messages per load, median of ${RUNS} runs`);
  console.log('| mode | load | acks/s | ack p50 ms | ack p99 ms |');
  console.log('|---|---|---|---|---|');
  for (const [mode, loads] of Object.entries(results)) {
    for (const [name, runs] of Object.entries(loads)) {
      const row = [
        median(runs.map((r) => r.acksPerSecond)).toFixed(0),
        median(runs.map((r) => r.p50Ms)).toFixed(3),
        median(runs.map((r) => r.p99Ms)).toFixed(3),
      ];
      console.log(`| ${mode} | ${name} | ${row.join(' | ')} |`);
    }
  }
} finally {
  await replica.stop();
  await master.stop();
}
