/**
 * The shipped load balancer samples (deploy/nginx.conf, deploy/haproxy.cfg),
 * run as real nginx / HAProxy processes in front of test nodes.
 *
 * The sample file is used as shipped, with only its addresses replaced (the
 * substitution each sample's header documents): the listen port and the
 * three `nN:8080` node addresses, plus HAProxy's stats port. Each replaced
 * pattern must occur exactly once, so a sample that changes shape fails here
 * instead of being tested half-substituted.
 *
 * Every balancer started here is stopped when the test process exits, even
 * on failure (SIGTERM: nginx's master then stops its workers); one left by a
 * test process that was killed is stopped by the next startBalancer (its
 * folder names the owner).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type BalancerKind = 'nginx' | 'haproxy';

/** The shipped sample of each balancer, relative to the repository root. */
export const SAMPLE_FILE: Record<BalancerKind, string> = { nginx: 'deploy/nginx.conf', haproxy: 'deploy/haproxy.cfg' };

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGTERM');
});

export interface Balancer {
  kind: BalancerKind;
  port: number;
  /** ws://127.0.0.1:port/ws */
  wsUrl: string;
  /** http://127.0.0.1:port */
  url: string;
  /** The configuration file as run (the sample with its addresses replaced). */
  config: string;
  /**
   * HAProxy only: each server's state from the stats page, by name (`n1`…,
   * in the order of the nodes given to startBalancer): `status` (`UP`,
   * `DOWN`, `UP 1/2`…) and the last check's outcome (`L7OK/200`,
   * `L7STS/503` for a /readyz that answered 503, `L4CON` for a refused connect).
   */
  serverStatus(): Promise<Map<string, { status: string; check: string }>>;
  /** Stop the process and remove its directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Decide whether a balancer suite runs: undefined when the binary is
 * installed, otherwise a skip reason. In CI a missing balancer is a failure.
 */
export async function balancerSkipReason(kind: BalancerKind): Promise<string | undefined> {
  try {
    await execFileAsync(kind, ['-v']);
    return undefined;
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`${kind} is required in CI (.ci/run installs it from Debian): ${String(error)}`, { cause: error });
    return `${kind} not installed (apt-get install ${kind})`;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stop the balancers of test processes that are gone (killed before their exit hook ran), and remove their folders. */
async function sweepStale(): Promise<void> {
  const names = (await readdir(tmpdir())).filter((name) => /^nerve-(nginx|haproxy)-/.test(name));
  for (const name of names) {
    const dir = join(tmpdir(), name);
    const owner = await readFile(join(dir, 'owner'), 'utf8').catch(() => undefined);
    const [ownerPid, balancerPid, kind] = (owner ?? '').split(' ');
    if (!ownerPid || alive(Number(ownerPid))) continue;
    // Only a process that is still that balancer (a pid may have been reused since).
    const command = await readFile(`/proc/${balancerPid}/comm`, 'utf8').catch(() => '');
    if (kind && command.trim() === kind) process.kill(Number(balancerPid), 'SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Replace `from` by `to` on the directive lines of `text` (comments are left
 * alone), requiring exactly one occurrence.
 */
function replaceOnce(text: string, from: string, to: string, file: string): string {
  let found = 0;
  const lines = text.split('\n').map((line) => {
    if (line.trimStart().startsWith('#') || !line.includes(from)) return line;
    found += line.split(from).length - 1;
    return line.split(from).join(to);
  });
  if (found !== 1) throw new Error(`${file}: expected "${from}" exactly once outside comments, found ${found}`);
  return lines.join('\n');
}

/** The sample with its addresses replaced: listen on 127.0.0.1:`port`, nodes nN → `nodes[N-1]`. */
export async function renderSample(kind: BalancerKind, port: number, nodes: Array<{ host: string; port: number }>, statsPort = 0): Promise<string> {
  if (nodes.length !== 3) throw new RangeError(`the samples name 3 nodes, got ${nodes.length}`);
  const file = SAMPLE_FILE[kind];
  let text = await readFile(join(ROOT, file), 'utf8');
  nodes.forEach((node, i) => {
    text = replaceOnce(text, `n${i + 1}:8080`, `${node.host}:${node.port}`, file);
  });
  if (kind === 'nginx') {
    text = replaceOnce(text, 'listen 8080;', `listen 127.0.0.1:${port};`, file);
  } else {
    text = replaceOnce(text, 'bind :8080', `bind 127.0.0.1:${port}`, file);
    text = replaceOnce(text, 'bind :8404', `bind 127.0.0.1:${statsPort}`, file);
  }
  return text;
}

/** Start `kind` with its shipped sample in front of `nodes`, on free loopback ports; resolve once it proxies. */
export async function startBalancer(kind: BalancerKind, nodes: Array<{ host?: string; port: number }>): Promise<Balancer> {
  await sweepStale();
  const port = await freePort();
  const statsPort = kind === 'haproxy' ? await freePort() : 0;
  const config = await renderSample(
    kind,
    port,
    nodes.map((node) => ({ host: node.host ?? '127.0.0.1', port: node.port })),
    statsPort,
  );
  const dir = await mkdtemp(join(tmpdir(), `nerve-${kind}-`));
  // nginx's workers run as `nobody` and create their temp folders in here.
  await chmod(dir, 0o755);
  const configPath = join(dir, kind === 'nginx' ? 'nginx.conf' : 'haproxy.cfg');
  await writeFile(configPath, config);
  let child: ChildProcess;
  if (kind === 'nginx') {
    await mkdir(join(dir, 'logs'));
    // -p: access log and temp folders under `dir`; -e: the error log before the config is read;
    // -g: run in the foreground with the pid file in `dir` (run mode, not proxy settings).
    child = spawn('nginx', ['-p', dir, '-c', configPath, '-e', join(dir, 'logs', 'error.log'), '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } else {
    // -db: foreground, no daemon; its alerts go to stderr.
    child = spawn('haproxy', ['-db', '-f', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  live.add(child);
  await writeFile(join(dir, 'owner'), `${process.pid} ${child.pid} ${kind}`);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 20_000) output = output.slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const serverStatus = async (): Promise<Map<string, { status: string; check: string }>> => {
    if (kind !== 'haproxy') throw new Error('nginx (open source) has no status of its upstream servers');
    const csv = await (await fetch(`http://127.0.0.1:${statsPort}/;csv`)).text();
    const lines = csv.split('\n');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    const [px, sv, status, checkStatus, checkCode] = ['pxname', 'svname', 'status', 'check_status', 'check_code'].map((name) => header.indexOf(name));
    const result = new Map<string, { status: string; check: string }>();
    for (const line of lines.slice(1)) {
      const fields = line.split(',');
      if (fields[px!] !== 'nerve_nodes' || !/^n\d$/.test(fields[sv!] ?? '')) continue;
      const code = fields[checkCode!] ?? '';
      result.set(fields[sv!]!, { status: fields[status!] ?? '', check: `${fields[checkStatus!] ?? ''}${code ? `/${code}` : ''}` });
    }
    return result;
  };

  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`${kind} exited with ${child.exitCode}: ${output.slice(-2000)}`);
        const response = await fetch(`${url}/healthz`);
        await response.body?.cancel();
        if (response.status !== 200) return false;
        // HAProxy: wait for the first check of every node, so rotation is what the test expects.
        if (kind === 'haproxy') return [...(await serverStatus()).values()].every((server) => server.status === 'UP');
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `${kind} proxying to the nodes` },
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; ${kind} output: ${output.slice(-2000)}`);
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { kind, port, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, config, serverStatus, stop };
}
