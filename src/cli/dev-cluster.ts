/**
 * `nerve dev-cluster` (`npm run cluster`): 3 nodes on ports 8081-8083 and the
 * chat-store, billing and analytics workers on the local Redis, RabbitMQ and
 * PostgreSQL, for development and demos. Ctrl-C drains them all; a second
 * one kills them. The children run in their own process group so the
 * terminal's Ctrl-C reaches them once, through this supervisor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { defaultLogFormat, LOG_FORMATS } from '../config/options.js';
import { errorText } from '../errors.js';

const DEV_CLUSTER_HELP = `Usage: nerve dev-cluster [flags]

  --nodes N            nodes to start (default 3)
  --base-port P        first node's port; the others follow (default 8081)
  --redis-url URL      default redis://127.0.0.1:6379
  --amqp-url URL       default amqp://guest:guest@127.0.0.1:5672 ("" = in-memory cold lane, no workers)
  --postgres-url URL   default postgres://postgres@127.0.0.1:5432/postgres
  --env NAME           namespace of keys, channels and queues (default dev)
  --workers LIST       comma-separated workers (default chat-store,billing,analytics; "" = none)
  --api-key KEY        API / admin key (default: a random one, printed)
  --log-level LEVEL    log level of every process (default warn)
  --log-format FORMAT  every process's log lines: pretty | json (default pretty on a terminal, else json)`;

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export async function devClusterMain(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string', default: '3' },
        'base-port': { type: 'string', default: '8081' },
        'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
        'amqp-url': { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672' },
        'postgres-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
        env: { type: 'string', default: 'dev' },
        workers: { type: 'string', default: 'chat-store,billing,analytics' },
        'api-key': { type: 'string' },
        'log-level': { type: 'string', default: 'warn' },
        'log-format': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`nerve dev-cluster: ${errorText(error)}\n${DEV_CLUSTER_HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${DEV_CLUSTER_HELP}\n`);
    return 0;
  }
  const nodes = Number(values.nodes);
  const basePort = Number(values['base-port']);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16 || !Number.isInteger(basePort) || basePort < 1 || basePort + nodes > 65_536) {
    process.stderr.write('nerve dev-cluster: --nodes is 1-16 and --base-port a port that leaves room for them\n');
    return 2;
  }
  const logFormat = values['log-format'] ?? defaultLogFormat();
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    process.stderr.write('nerve dev-cluster: --log-format is pretty or json\n');
    return 2;
  }
  const apiKey = values['api-key'] ?? `dev-${randomBytes(16).toString('hex')}`;
  const amqpUrl = values['amqp-url'];
  const workers = amqpUrl
    ? values.workers
        .split(',')
        .map((w) => w.trim())
        .filter(Boolean)
    : [];
  const shared = ['--env', values.env, '--log-level', values['log-level']];

  // Re-run this same CLI (dist or tsx) with the same Node flags.
  const entry = process.argv[1] ?? '';
  const procs: Proc[] = [];
  const run = (name: string, args: string[]): Proc => {
    const child = spawn(process.execPath, [...process.execArgv, entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[${name}] ${line}\n`));
    }
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const proc = { name, child, exited };
    procs.push(proc);
    void exited.then((code) => {
      if (!stopping) process.stdout.write(`nerve dev-cluster: ${name} exited with ${code}\n`);
    });
    return proc;
  };

  let stopping = false;
  let signals = 0;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill('SIGTERM');
    await Promise.all(procs.map((proc) => proc.exited));
  };
  const killAll = () => {
    for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  };
  process.on('exit', killAll);

  const say = (line: string) => process.stdout.write(`nerve dev-cluster: ${line}\n`);
  say(
    `starting ${nodes} node(s)${workers.length ? ` and ${workers.length} worker(s)` : ''} on Redis ${hostOf(values['redis-url'])}${amqpUrl ? ` and RabbitMQ ${hostOf(amqpUrl)}` : ''} (env ${values.env})`,
  );
  const urls: string[] = [];
  const nodeProcs: Proc[] = [];
  for (let i = 0; i < nodes; i++) {
    const port = basePort + i;
    urls.push(`http://localhost:${port}`);
    say(`starting n${i + 1} on ${urls[i]}/`);
    // Flag and value on one line each.
    // prettier-ignore
    const node = run(`n${i + 1}`, [
      'serve',
      '--port', String(port),
      '--node-id', `${values.env}-n${i + 1}`,
      '--redis-url', values['redis-url'],
      ...(amqpUrl ? ['--amqp-url', amqpUrl] : []),
      '--postgres-url', values['postgres-url'],
      '--api-key', apiKey,
      '--advertise-url', `http://localhost:${port}`,
      '--drain-window-ms', '2000',
      '--log-format', logFormat,
      ...shared,
    ]);
    nodeProcs.push(node);
  }
  for (const worker of workers) {
    say(`starting the ${worker} worker`);
    run(worker, [
      'worker',
      worker,
      '--amqp-url',
      amqpUrl,
      '--postgres-url',
      values['postgres-url'],
      '--env',
      values.env,
      '--log-level',
      values['log-level'],
      '--log-format',
      logFormat,
    ]);
  }

  // Ctrl-C works from here on, during the wait for readiness too.
  const done = new Promise<number>((resolve) => {
    const onSignal = () => {
      signals += 1;
      if (signals > 1) {
        killAll();
        resolve(1);
        return;
      }
      process.stdout.write('nerve dev-cluster: stopping (Ctrl-C again to kill)\n');
      void stopAll().then(() => resolve(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  // Each node is announced as it answers /readyz; the summary follows once all do (or once the wait gives up).
  const ready = await Promise.all(
    urls.map(async (url, i) => {
      const proc = nodeProcs[i];
      const up = await waitReady(url, READY_WAIT_MS, () => stopping || proc?.child.exitCode !== null);
      if (!stopping && proc?.child.exitCode === null)
        say(up ? `n${i + 1} ready on ${url}/` : `n${i + 1} not ready after ${READY_WAIT_MS / 1000} s (see its log lines above)`);
      return up;
    }),
  );
  if (stopping) return done;
  if (ready.some((up) => !up)) say('not every node is ready: see the log lines above');
  process.stdout.write(
    [
      '',
      `nerve dev-cluster: ${nodes} node(s)${workers.length ? ` and ${workers.join(', ')}` : ''} (env ${values.env})`,
      ...urls.map((url, i) => `  n${i + 1}  ${url}/   ws ${url.replace('http', 'ws')}/ws   ready ${url}/readyz   metrics ${url}/metrics`),
      `  admin   ${urls[0]}/admin   (API key: ${apiKey})`,
      `  status  nerve status --redis-url ${values['redis-url']} --env ${values.env}`,
      '  Ctrl-C drains and stops everything.',
      '',
    ].join('\n'),
  );
  return done;
}

/** How long start-up waits for each node's /readyz before printing the summary anyway, ms. */
const READY_WAIT_MS = 30_000;

/** Poll `url`/readyz until it answers 200, `timeoutMs` passes, or `cancelled()`. */
async function waitReady(url: string, timeoutMs: number, cancelled: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cancelled()) {
    const status = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (response) => {
        void response.body?.cancel();
        return response.status;
      },
      () => 0,
    );
    if (status === 200) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

/** A service URL's host:port, for a line on screen: never its credentials. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid URL)';
  }
}
