/**
 * `npm run bench`: nerve vs Socket.IO 4 + @socket.io/redis-adapter, each as a
 * 3-server cluster on the same Redis, beside two limits (bench/limit-server.ts:
 * one bare corked process, and 3 relaying through one Redis channel), scenario
 * by scenario (bench/README.md).
 *
 *   npm run bench -- [--quick] [--no-warmup] [--runs N] [--only fanout,latency,memory,signal,cold,pusher (or fanout-ephemeral, latency-chat, …)] [--systems nerve,sio,limit1,limit3]
 *
 * Every figure is the median of N runs (default 3); each run starts a fresh
 * cluster, and the systems alternate run by run so drifting background
 * load hits all. Prints a table and writes bench/results/<stamp>.{json,svg}
 * (and latest.{json,svg}).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { System } from './lib/clients.js';
import { ROOT, stopClustersOnSignal } from './lib/cluster.js';
import { LABEL, svg, table, type Row } from './lib/report.js';
import { pusherEndpoint } from './lib/pusher-scenario.js';
import { FULL, QUICK, setRedisPid, type Figures, type Progress, type Sizes } from './lib/scenario-kit.js';
import { connections, fanout, latency, signaling } from './lib/scenarios.js';
import { cpuSeconds, describeMachine, machineInfo, median, nowMs } from './lib/stats.js';
import type { ColdLaneResult } from './lib/cold-lane-child.js';
import { COLD_PHASE } from './lib/cold-events.js';

interface Args {
  latencyRates: number[] | undefined;
  latencySeconds: number | undefined;
  systems: Set<System>;
  quick: boolean;
  warmup: boolean;
  runs: number;
  only: Set<string> | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    quick: false,
    warmup: true,
    runs: 3,
    only: undefined,
    latencyRates: undefined,
    latencySeconds: undefined,
    systems: new Set(ALL_SYSTEMS),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') args.quick = true;
    else if (arg === '--no-warmup') args.warmup = false;
    else if (arg === '--runs') args.runs = Number(argv[++i]);
    else if (arg === '--latency-rate') args.latencyRates = (argv[++i] ?? '').split(',').map(Number);
    else if (arg === '--latency-seconds') args.latencySeconds = Number(argv[++i]);
    else if (arg === '--systems') args.systems = new Set((argv[++i] ?? '').split(',').map(systemOf));
    else if (arg === '--only') args.only = new Set((argv[++i] ?? '').split(','));
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'Usage: npm run bench -- [--quick] [--no-warmup] [--runs N] [--latency-rate msg/s[,msg/s…]] [--latency-seconds N] [--only fanout,latency,memory,signal,cold,pusher (or fanout-ephemeral, latency-chat, …)] [--systems nerve,sio,limit1,limit3]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(args.runs) || args.runs < 1 || args.runs > 20) throw new Error('--runs takes an integer from 1 to 20');
  if (args.latencyRates?.some((rate) => !Number.isInteger(rate) || rate < 1 || rate > 100_000))
    throw new Error('--latency-rate takes integers from 1 to 100000');
  if (args.latencySeconds !== undefined && (!Number.isInteger(args.latencySeconds) || args.latencySeconds < 1 || args.latencySeconds > 600))
    throw new Error('--latency-seconds takes an integer from 1 to 600');
  return args;
}

const ALL_SYSTEMS: System[] = ['nerve', 'socketio', 'limit3', 'limit1'];
function systemOf(name: string): System {
  const names: Record<string, System> = { nerve: 'nerve', sio: 'socketio', socketio: 'socketio', limit1: 'limit1', limit3: 'limit3' };
  const system = names[name];
  if (!system) throw new Error(`--systems takes nerve, sio, limit1, limit3; not ${name}`);
  return system;
}

/** The PID of a process by its command name (Redis, RabbitMQ), to read its CPU time; undefined if not visible. */
function pidOf(comm: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

type Scenario = (system: System, sizes: Sizes, progress: Progress) => Promise<Figures>;
interface Plan {
  key: string;
  /** A narrower `--only` name: `<key>-<class>` for the scenarios run once per class (fanout-chat, latency-ephemeral, …). */
  sub?: string;
  name: string;
  run: Scenario;
  systems: System[];
}

/** Scenario 6; as `limit1`, the broker's limit: a bare `rabbitmq-client` publisher with confirms (bench/lib/cold-limit-child.ts). */
function coldLane(sizes: Sizes): Scenario {
  return async (system, _sizes, progress) => {
    const rabbit = pidOf('beam.smp');
    progress(`publishing ${sizes.coldEvents} events with confirms`);
    const script = system === 'limit1' ? 'bench/lib/cold-limit-child.ts' : 'bench/lib/cold-lane-child.ts';
    // The same producer for both: 256 loops, each publishing its next event once the last is confirmed
    // (the bare publisher's own shape, and its 256 in flight); `cold-lane-child.ts` without it publishes one burst.
    const producer = system === 'limit1' ? ['--in-flight', '256'] : ['--producers', '256'];
    const args = [
      '--import',
      'tsx',
      script,
      '--events',
      String(sizes.coldEvents),
      '--size',
      String(sizes.payloadBytes),
      '--warmup',
      String(sizes.coldWarmup),
      ...producer,
    ];
    const rabbitCpu = (): number => (rabbit === undefined ? Number.NaN : cpuSeconds(rabbit));
    let brokerCpu0: number | undefined;
    let brokerCpu1: number | undefined;
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, args, {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        // The child marks its measured phase (after the warm-up, before its teardown): the broker's CPU is read there.
        if (brokerCpu0 === undefined && out.includes(`${COLD_PHASE.start}\n`)) brokerCpu0 = rabbitCpu();
        if (brokerCpu1 === undefined && out.includes(`${COLD_PHASE.end}\n`)) brokerCpu1 = rabbitCpu();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`cold-lane exited with ${code}`));
      });
    });
    const brokerCpu = (brokerCpu1 ?? Number.NaN) - (brokerCpu0 ?? Number.NaN);
    const result = JSON.parse(output.trim().split('\n').pop() ?? '{}') as ColdLaneResult;
    return {
      'confirmed events/s': { value: result.publishPerSecond, unit: 'ev/s', better: 'higher' },
      'consumed events/s': { value: result.consumePerSecond, unit: 'ev/s', better: 'higher' },
      'client CPU / event': { value: result.clientCpuMicrosPerEvent, unit: 'µs', better: 'lower' },
      'broker CPU / event': { value: (brokerCpu / Math.max(1, result.published)) * 1e6, unit: 'µs', better: 'lower' },
    };
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const sizes: Sizes = {
    ...(args.quick ? QUICK : FULL),
    ...(args.latencyRates ? { latencyRates: args.latencyRates } : {}),
    ...(args.latencySeconds ? { latencySeconds: args.latencySeconds } : {}),
    ...(args.warmup ? {} : { fanoutWarmup: 0, signalWarmupRounds: 0, latencyWarmupSeconds: 0, coldWarmup: 0 }),
  };
  stopClustersOnSignal();
  const machine = machineInfo();
  const redisPid = pidOf('redis-server');
  setRedisPid(redisPid);
  const chosen = (systems: System[]) => systems.filter((system) => args.systems.has(system));
  const all4 = chosen(ALL_SYSTEMS);
  const rate = (n: number) => `${n.toLocaleString('en-US')} msg/s`;
  const plans: Plan[] = [
    { key: 'fanout', sub: 'fanout-ephemeral', name: '1. fan-out (ephemeral)', run: fanout('ephemeral'), systems: all4 },
    { key: 'fanout', sub: 'fanout-chat', name: '1b. fan-out (chat)', run: fanout('chat'), systems: all4 },
    ...sizes.latencyRates.map(
      (n) =>
        ({ key: 'latency', sub: 'latency-ephemeral', name: `2. latency (ephemeral) @${rate(n)}`, run: latency('ephemeral', n), systems: all4 }) satisfies Plan,
    ),
    ...sizes.latencyRates.map(
      (n) => ({ key: 'latency', sub: 'latency-chat', name: `2b. latency (chat) @${rate(n)}`, run: latency('chat', n), systems: all4 }) satisfies Plan,
    ),
    ...sizes.memoryConnections.map(
      (n) => ({ key: 'memory', name: `3+4. idle connections ×${n.toLocaleString('en-US')}`, run: connections(n), systems: all4 }) satisfies Plan,
    ),
    { key: 'signal', name: '5. signaling offer→answer', run: signaling, systems: all4 },
    // The broker's limit runs as `limit1`: a bare rabbitmq-client publisher with confirms and one consumer.
    { key: 'cold', name: '6. cold lane (RabbitMQ)', run: coldLane(sizes), systems: chosen(['nerve', 'limit1']) },
    // nerve alone: pusher-js through the Pusher endpoint against native clients, on one cluster per run.
    { key: 'pusher', name: '7. Pusher endpoint vs native', run: pusherEndpoint, systems: chosen(['nerve']) },
  ].filter((plan: Plan) => (!args.only || args.only.has(plan.key) || (plan.sub !== undefined && args.only.has(plan.sub))) && plan.systems.length > 0);

  const header = `${[...args.systems].map((system) => LABEL[system]).join(' vs ')} — ${args.quick ? 'quick' : 'full'} size, ${args.warmup ? 'warmed up' : 'from cold (--no-warmup)'}, median of ${args.runs} run(s)\nmachine: ${describeMachine(machine)}`;
  process.stdout.write(`${header}\n`);
  const total = plans.reduce((n, plan) => n + plan.systems.length * args.runs, 0);
  let step = 0;
  const started = nowMs();
  const tty = process.stderr.isTTY;
  const rows = new Map<string, Row>();
  const raw: Array<{ scenario: string; system: System; run: number; figures: Figures; error?: string }> = [];

  for (const plan of plans) {
    for (let run = 1; run <= args.runs; run++) {
      for (const system of plan.systems) {
        step += 1;
        const label = `[${step}/${total}] ${plan.name} · ${LABEL[system]} · run ${run}/${args.runs}`;
        const progress: Progress = (phase) => {
          const line = `${((nowMs() - started) / 1000).toFixed(1).padStart(6)}s ${label}: ${phase}`;
          process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
        };
        let figures: Figures = {};
        try {
          figures = await plan.run(system, sizes, progress);
          raw.push({ scenario: plan.name, system, run, figures });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          progress(`FAILED: ${message}`);
          if (tty) process.stderr.write('\n');
          raw.push({ scenario: plan.name, system, run, figures, error: message });
        }
        for (const [metric, figure] of Object.entries(figures)) {
          const key = `${plan.name}|${metric}`;
          const row = rows.get(key) ?? {
            scenario: plan.name,
            metric,
            unit: figure.unit,
            better: figure.better,
            nerve: [],
            socketio: [],
            limit1: [],
            limit3: [],
          };
          row[system].push(figure.value);
          rows.set(key, row);
        }
      }
    }
  }
  if (tty) process.stderr.write('\r\x1b[K');

  const all = [...rows.values()];
  const text = table(all);
  process.stdout.write(
    `\n${text}\n\n(↑ higher is better, ↓ lower is better; nerve/SIO, nerve/L3, nerve/L1: ratios of the medians to Socket.IO, limit-3, limit-1; in scenario 6, limit-1 is the bare rabbitmq-client publisher)\n`,
  );
  const pusherRows = all.filter((row) => row.scenario.startsWith('7.'));
  if (pusherRows.length > 0) {
    // Both sides of scenario 7 are nerve: its spread, and pusher-js ÷ native, are printed here rather than in the SIO columns.
    const fmt = (value: number) => (Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2));
    const lines = pusherRows.map(
      (row) =>
        `  ${row.metric}: median ${fmt(median(row.nerve))} ${row.unit} (runs: ${row.nerve.map(fmt).join(', ')}; spread ${fmt(Math.min(...row.nerve))}–${fmt(Math.max(...row.nerve))})`,
    );
    const ratioOf = (metric: string) => {
      const native = pusherRows.find((row) => row.metric === `${metric.split(':')[0]} native:${metric.split(':')[1]}`);
      const pusher = pusherRows.find((row) => row.metric === `${metric.split(':')[0]} pusher-js:${metric.split(':')[1]}`);
      return native && pusher ? `  pusher-js ÷ native, ${metric.replace(':', '')}: ${(median(pusher.nerve) / median(native.nerve)).toFixed(2)}×` : undefined;
    };
    const ratios = ['fan-out: deliveries/s', 'fan-out: server CPU / delivery', 'connects: connects/s', 'connects: server CPU / connect']
      .map(ratioOf)
      .filter((line) => line !== undefined);
    const apiRow = pusherRows.find((row) => row.metric === 'fan-out pusher-js via HTTP API: server CPU / delivery');
    const nativeRow = pusherRows.find((row) => row.metric === 'fan-out native: server CPU / delivery');
    if (apiRow && nativeRow)
      ratios.push(`  pusher-js via HTTP API ÷ native, fan-out server CPU / delivery: ${(median(apiRow.nerve) / median(nativeRow.nerve)).toFixed(2)}×`);
    process.stdout.write(`\n7. Pusher endpoint vs native (one cluster per run, median of ${args.runs}):\n${lines.join('\n')}\n${ratios.join('\n')}\n`);
  }

  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify(
    { date: new Date().toISOString(), machine, quick: args.quick, warmup: args.warmup, runs: args.runs, sizes, rows: all, raw },
    null,
    2,
  );
  const chart = svg(
    all,
    `nerve vs Socket.IO 4 + redis-adapter and the limits (3 nodes each but limit-1, one Redis) — median of ${args.runs}`,
    `${args.quick ? 'quick' : 'full'} size · ${args.warmup ? 'warmed up' : 'from cold'} · ${describeMachine(machine)} · ${new Date().toISOString()}`,
  );
  for (const name of [stamp, 'latest']) {
    writeFileSync(join(dir, `${name}.json`), `${json}\n`);
    writeFileSync(join(dir, `${name}.svg`), `${chart}\n`);
  }
  process.stdout.write(`wrote bench/results/${stamp}.json and .svg (also latest.json, latest.svg) in ${((nowMs() - started) / 1000).toFixed(0)} s\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
