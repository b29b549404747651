/**
 * The container image without a Docker engine (issue 15). The Dockerfile is
 * parsed and each stage's file system rebuilt in a temporary folder the way
 * its COPY and RUN steps build it (the .dockerignore'd context, a production
 * `npm ci` from the local npm cache, the real `npm run build`); then the node
 * (`serve`) and every worker start from the final stage with its ENTRYPOINT,
 * ENV and USER against the local services, and /readyz, the workers' /healthz
 * and the image's own HEALTHCHECK command must pass. A RUN step the test does
 * not know how to reproduce fails it: teach it rather than skip the step.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import pg from 'pg';
import { WORKER_NAMES } from '../../src/workers/worker.js';
import { freePort } from '../helpers/free-port.js';
import { POSTGRES_URL } from '../helpers/postgres.js';
import { listExchanges, listQueues } from '../helpers/rabbitmq.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REDIS_URL = 'redis://127.0.0.1:6379';
const skip = (await serviceSkip('Redis', 6379)) ?? (await serviceSkip('RabbitMQ', 5672)) ?? (await serviceSkip('PostgreSQL', 5432));

// ---------------------------------------------------------------- Dockerfile

interface CopyStep {
  op: 'COPY';
  from: string | undefined;
  sources: string[];
  dest: string;
}
type Step = CopyStep | { op: 'RUN'; command: string };

interface Stage {
  name: string;
  base: string;
  workdir: string;
  steps: Step[];
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
  healthcheck: string[] | undefined;
}

/** JSON (exec) form only: the shell form would need a shell the image may not have. */
function execForm(text: string, what: string): string[] {
  const parsed = JSON.parse(text) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((x) => typeof x === 'string'), `${what} must use the exec form ["..."], got ${text}`);
  return parsed;
}

/** ENV a=b c="d e" (the `ENV a b` legacy form is refused). */
function envPairs(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|(\S*))/g)) env[match[1]!] = match[3] ?? match[4] ?? '';
  assert.ok(Object.keys(env).length > 0, `ENV ${text}: expected key=value pairs`);
  return env;
}

function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, instruction = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const op = instruction.toUpperCase();
    if (op === 'FROM') {
      const [, base = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      stages.push({
        name: name ?? String(stages.length),
        base,
        workdir: '/',
        steps: [],
        env: {},
        user: undefined,
        entrypoint: undefined,
        cmd: undefined,
        healthcheck: undefined,
      });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage, `${op} before FROM`);
    switch (op) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, rest);
        break;
      case 'COPY': {
        const words = rest.split(/\s+/);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else assert.ok(flag.startsWith('--chown=') || flag.startsWith('--chmod='), `COPY flag ${flag} is not reproduced by this test`);
        }
        const dest = words.pop();
        assert.ok(dest !== undefined && words.length > 0, `COPY ${rest}: expected sources and a destination`);
        assert.ok(
          words.every((source) => !/[*?[]/.test(source)),
          `COPY ${rest}: wildcards are not reproduced by this test`,
        );
        stage.steps.push({ op: 'COPY', from, sources: words, dest });
        break;
      }
      case 'RUN':
        stage.steps.push({ op: 'RUN', command: rest });
        break;
      case 'ENV':
        Object.assign(stage.env, envPairs(rest));
        break;
      case 'USER':
        stage.user = rest;
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = execForm(rest, 'ENTRYPOINT');
        break;
      case 'CMD':
        stage.cmd = execForm(rest, 'CMD');
        break;
      case 'HEALTHCHECK': {
        const [, command = ''] = /\bCMD\s+(.*)$/.exec(rest) ?? [];
        stage.healthcheck = execForm(command, 'HEALTHCHECK CMD');
        break;
      }
      case 'EXPOSE':
      case 'STOPSIGNAL':
      case 'LABEL':
      case 'ARG':
        break;
      default:
        assert.fail(`Dockerfile instruction ${op} is not reproduced by this test`);
    }
  }
  return stages;
}

// ---------------------------------------------------------------- the layout

/** .dockerignore: plain paths (and what is under them) and `**\/name` (a name at any depth). */
function dockerIgnore(): (path: string) => boolean {
  const file = join(ROOT, '.dockerignore');
  const patterns = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'))
    : [];
  for (const pattern of patterns) assert.match(pattern, /^(\*\*\/)?[\w.-]+(\/[\w.-]+)*$/, `.dockerignore pattern ${pattern} is not understood by this test`);
  return (path) =>
    patterns.some((pattern) => {
      if (pattern.startsWith('**/')) return path.split('/').includes(pattern.slice(3));
      return path === pattern || path.startsWith(`${pattern}/`);
    });
}

/** Docker's COPY: a directory's contents go into the destination; a file goes into it when it is a folder. */
async function copyInto(sourceRoot: string, sources: string[], dest: string, ignored: (path: string) => boolean): Promise<void> {
  const intoFolder = dest.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    const from = join(sourceRoot, source);
    assert.ok(existsSync(from), `COPY ${source}: not found in ${sourceRoot}`);
    const isDirectory = statSync(from).isDirectory();
    const target = isDirectory || !intoFolder ? dest : join(dest, basename(source));
    await mkdir(isDirectory ? target : dirname(target), { recursive: true });
    await cp(from, target, {
      recursive: true,
      filter: (path) => {
        const rel = relative(sourceRoot, path).split('\\').join('/');
        return rel === '' || !ignored(rel);
      },
    });
  }
}

function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${output}`))));
  });
}

/**
 * One RUN step, command by command (`a && b`). The dev install of the build
 * stage is the only stand-in: the repository's node_modules, installed from
 * the same package-lock.json, linked instead of a second full install (233
 * packages, 130 MB: 21 s from the local cache, measured on a loaded machine).
 * Everything the final stage runs is run as written.
 */
async function runStep(command: string, stageDir: string): Promise<void> {
  for (const part of command.split('&&').map((x) => x.trim())) {
    const words = part.split(/\s+/);
    if (words[0] === 'npm' && words[1] === 'ci') {
      assert.ok(words.includes('--ignore-scripts'), `${part}: the image installs without install scripts`);
      if (words.includes('--omit=dev')) {
        await run('npm', [...words.slice(1), '--prefer-offline'], stageDir);
      } else {
        assert.equal(readFileSync(join(stageDir, 'package-lock.json'), 'utf8'), readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
        await symlink(join(ROOT, 'node_modules'), join(stageDir, 'node_modules'), 'dir');
      }
    } else if (/^npm run [\w:-]+$/.test(part) || words[0] === 'npx' || (words[0] === 'node' && words.length === 2)) {
      // A build step: run as written, in the stage's folder.
      await run(words[0] === 'node' ? process.execPath : words[0]!, words.slice(1), stageDir);
    } else if (part === 'npm cache clean --force') {
      // Empties the image's npm cache; here it would empty the machine's, and changes no file of the layout.
    } else {
      assert.fail(`RUN ${part}: not reproduced by this test`);
    }
  }
}

interface Layout {
  root: string;
  stage: Stage;
  /** The final stage's WORKDIR, on this machine. */
  app: string;
}

/**
 * Every stage at once, as BuildKit builds them: a stage waits for another only
 * at its COPY --from (here: the production install runs beside the build).
 */
async function buildLayout(stages: Stage[]): Promise<Layout> {
  const root = await mkdtemp(join(tmpdir(), 'nerve-image-'));
  await chmod(root, 0o755); // the image's user must be able to walk into it
  const ignored = dockerIgnore();
  const built = new Map<string, Promise<string>>();
  const buildStage = async (stage: Stage, index: number): Promise<string> => {
    const stageRoot = join(root, `stage${index}`);
    const at = (path: string): string => join(stageRoot, posix.resolve(stage.workdir, path)) + (path.endsWith('/') ? '/' : '');
    await mkdir(at('.'), { recursive: true });
    for (const step of stage.steps) {
      if (step.op === 'RUN') {
        await runStep(step.command, at('.'));
      } else if (step.from === undefined) {
        await copyInto(ROOT, step.sources, at(step.dest), ignored);
      } else {
        const from = built.get(step.from);
        assert.ok(from, `COPY --from=${step.from}: no such earlier stage`);
        await copyInto(
          await from,
          step.sources.map((source) => source.replace(/^\//, '')),
          at(step.dest),
          () => false,
        );
      }
    }
    return stageRoot;
  };
  for (const [index, stage] of stages.entries()) {
    const done = buildStage(stage, index);
    done.catch(() => undefined); // awaited below; a stage nobody copies from must not be an unhandled rejection
    built.set(stage.name, done);
    built.set(String(index), done);
  }
  const results = await Promise.allSettled(stages.map((stage) => built.get(stage.name)!));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const stage = stages.at(-1)!;
  return { root, stage, app: join(await built.get(stage.name)!, stage.workdir) };
}

// ---------------------------------------------------------------- processes

/** The official node images' "node" user; a numeric USER as written. */
function userIds(user: string): { uid: number; gid: number } {
  if (user === 'node') return { uid: 1000, gid: 1000 };
  const [uid = '', gid] = user.split(':');
  assert.match(uid, /^\d+$/, `USER ${user}: this test knows "node" and numeric ids`);
  return { uid: Number(uid), gid: Number(gid ?? uid) };
}

interface Started {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Start `argv` (ENTRYPOINT + arguments) in the image's WORKDIR with only the image's ENV, PATH and `env`. */
function startInImage(layout: Layout, name: string, argv: string[], env: Record<string, string>): Started {
  const [command = '', ...args] = argv;
  const asUser = layout.stage.user !== undefined && process.getuid?.() === 0 ? userIds(layout.stage.user) : {};
  const child = spawn(command === 'node' ? process.execPath : command, args, {
    cwd: layout.app,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...layout.stage.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...asUser,
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-6000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { name, child, output: () => output, exited };
}

async function status(url: string): Promise<number | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return undefined;
  }
}

async function stop(proc: Started, timeoutMs = 15_000): Promise<number | null> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.child.exitCode;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}

// ---------------------------------------------------------------- the test

describe('container image layout (Dockerfile reproduced without Docker)', { skip }, () => {
  const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const ns = testNamespace('img');
  const started: Started[] = [];
  let layout: Layout | undefined;
  let hook: ReturnType<typeof createServer> | undefined;

  before(async () => {
    layout = await buildLayout(stages);
  });

  after(async () => {
    await Promise.all(started.map((proc) => stop(proc, 5000)));
    await new Promise<void>((resolve) => (hook ? hook.close(() => resolve()) : resolve()));
    if (layout) await rm(layout.root, { recursive: true, force: true });
    await deleteNamespace(REDIS_URL, ns).catch(() => undefined);
    const admin = new Connection(AMQP_URL);
    admin.on('error', () => undefined);
    try {
      for (const queue of (await listQueues(`${ns}.`)) ?? []) await admin.queueDelete({ queue }).catch(() => undefined);
      for (const exchange of (await listExchanges(`${ns}.`)) ?? []) await admin.exchangeDelete({ exchange }).catch(() => undefined);
    } finally {
      await admin.close();
    }
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${ns}" CASCADE`).finally(() => pool.end());
  });

  it('is a non-root image with a HEALTHCHECK, the worker migrations and a production install only', () => {
    assert.ok(layout);
    const { stage, app } = layout;
    assert.ok(stage.user !== undefined && !['root', '0', '0:0'].includes(stage.user), `USER must be a non-root user, got ${stage.user}`);
    assert.ok(stage.healthcheck, 'HEALTHCHECK CMD [...] is missing');
    assert.ok(stage.entrypoint, 'ENTRYPOINT [...] is missing');
    assert.deepEqual(stage.cmd, ['serve']);
    for (const file of readdirSync(join(ROOT, 'migrations'))) assert.ok(existsSync(join(app, 'migrations', file)), `migrations/${file} missing from the image`);
    assert.ok(existsSync(join(app, 'dist', 'web', 'nerve-client.js')), 'the browser SDK bundle is missing');
    assert.ok(existsSync(join(app, 'web', 'index.html')), 'the demo page is missing');
    assert.ok(existsSync(join(app, 'node_modules', 'ioredis')), 'a runtime dependency is missing');
    assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'dev dependencies are in the image');
    assert.ok(!existsSync(join(app, 'src')) && !existsSync(join(app, 'test')), 'sources or tests are in the image');
  });

  it('starts the node and every worker from the image layout, healthy, and stops them with exit 0', { timeout: 60_000 }, async () => {
    assert.ok(layout);
    const entrypoint = layout.stage.entrypoint!;
    hook = createServer((req, res) => {
      req.resume();
      res.statusCode = 204;
      res.end();
    });
    await new Promise<void>((resolve) => hook!.listen(0, '127.0.0.1', resolve));
    const hookAddress = hook.address();
    assert.ok(hookAddress !== null && typeof hookAddress !== 'string');
    const hookUrl = `http://127.0.0.1:${hookAddress.port}/hook`;

    const shared = { NERVE_ENV: ns, NERVE_AMQP_URL: AMQP_URL, NERVE_POSTGRES_URL: POSTGRES_URL, NERVE_POSTGRES_SCHEMA: ns, NERVE_LOG_LEVEL: 'info' };
    const nodePort = await freePort();
    const node = startInImage(layout, 'node', [...entrypoint, ...layout.stage.cmd!], {
      ...shared,
      NERVE_PORT: String(nodePort),
      NERVE_HOST: '127.0.0.1',
      NERVE_NODE_ID: `${ns}-n1`,
      NERVE_REDIS_URL: REDIS_URL,
    });
    started.push(node);
    const workerPorts = new Map<string, number>();
    for (const name of WORKER_NAMES) {
      const port = await freePort();
      workerPorts.set(name, port);
      started.push(
        startInImage(layout, name, [...entrypoint, 'worker', name], {
          ...shared,
          NERVE_METRICS_PORT: String(port),
          NERVE_CLEANUP_HOOK_URL: hookUrl,
          NERVE_WEBHOOK_URLS: hookUrl,
          NERVE_WEBHOOK_SECRET: 'whsec_container_layout_test',
        }),
      );
    }

    const describeFailure = (proc: Started): string => `${proc.name} (exit ${proc.child.exitCode}): ${proc.output()}`;
    const alive = (): void => {
      for (const proc of started) assert.equal(proc.child.exitCode, null, `exited early: ${describeFailure(proc)}`);
    };
    await waitFor(async () => (alive(), (await status(`http://127.0.0.1:${nodePort}/readyz`)) === 200), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: `node /readyz: ${node.output()}`,
    });
    for (const [name, port] of workerPorts) {
      await waitFor(async () => (alive(), (await status(`http://127.0.0.1:${port}/healthz`)) === 200), {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `worker ${name} /healthz`,
      });
    }

    // The workers with a database applied every migration shipped in the image.
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    try {
      const { rows } = await pool.query<{ name: string }>(`SELECT name FROM "${ns}".nerve_migrations ORDER BY name`);
      assert.deepEqual(
        rows.map((row) => row.name),
        readdirSync(join(ROOT, 'migrations'))
          .filter((file) => file.endsWith('.sql'))
          .sort(),
      );
    } finally {
      await pool.end();
    }

    // The image's HEALTHCHECK command, as Docker runs it inside each container.
    const healthcheck = async (env: Record<string, string>): Promise<number | null> => {
      const probe = startInImage(layout!, 'healthcheck', layout!.stage.healthcheck!, env);
      return probe.exited;
    };
    const unused = await freePort();
    assert.equal(await healthcheck({ NERVE_PORT: String(nodePort), NERVE_METRICS_PORT: String(unused) }), 0, 'HEALTHCHECK in the node container');
    assert.equal(
      await healthcheck({ NERVE_PORT: String(unused), NERVE_METRICS_PORT: String(workerPorts.get('chat-store')) }),
      0,
      'HEALTHCHECK in a worker container',
    );
    assert.equal(await healthcheck({ NERVE_PORT: String(unused), NERVE_METRICS_PORT: String(unused) }), 1, 'HEALTHCHECK with nothing listening');

    // SIGTERM, as `docker stop` sends it (STOPSIGNAL): each drains or settles and exits 0.
    const codes = await Promise.all(started.map(async (proc) => [proc.name, await stop(proc)] as const));
    for (const [name, code] of codes) assert.equal(code, 0, `${name} exit code`);
  });
});
