/**
 * A private Redis Sentinel deployment for failover tests: one master, its
 * replicas and three sentinels, every process on a free loopback port of its
 * own (never the shared Redis). Data nodes run with `min-replicas-to-write 1`
 * as docs/operations.md recommends. Every process is killed when the test
 * process exits, even on failure.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { startRedis, type RedisServer } from './redis-server.js';
import { waitFor } from './wait.js';

const execFileAsync = promisify(execFile);
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface SentinelDeployment {
  /** Master group name the sentinels monitor. */
  name: string;
  /** The three sentinels, as `127.0.0.1:port`. */
  sentinels: string[];
  /** The data nodes (the first one starts as master). */
  servers: RedisServer[];
  /** The port of the current master, as the sentinels see it. */
  masterPort(): Promise<number>;
  /** `SENTINEL FAILOVER` on the first sentinel; resolves with the new master's port once every sentinel names it. */
  failover(): Promise<number>;
  /** SIGKILL the current master; resolves with the new master's port once every sentinel names it. */
  crashMaster(): Promise<number>;
  /** Run redis-cli against a sentinel or a data node port (with the password, if any). */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Kill everything and remove the directory. Idempotent. */
  stop(): Promise<void>;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** Start `redis-server <conf> --sentinel`; resolve once it monitors the master. */
async function spawnSentinel(
  dir: string,
  index: number,
  name: string,
  masterPort: number,
  password: string | undefined,
): Promise<{ port: number; child: ChildProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = await freePort();
    const conf = join(dir, `sentinel-${index}.conf`);
    // Fast detection for a test; `SENTINEL FAILOVER` does not wait for it anyway.
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'protected-mode no',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        // With a password: the sentinels require it, and use it towards the data nodes and each other.
        ...(password === undefined ? [] : [`requirepass ${password}`, `sentinel auth-pass ${name} ${password}`, `sentinel sentinel-pass ${password}`]),
        `sentinel down-after-milliseconds ${name} 1000`,
        // A master is not failed over again within 2 × failover-timeout of the last failover: short, for two in a row.
        `sentinel failover-timeout ${name} 2000`,
        `sentinel parallel-syncs ${name} 2`,
        '',
      ].join('\n'),
    );
    const child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    try {
      await new Promise<void>((resolve, reject) => {
        let output = '';
        const onExit = (code: number | null): void => reject(new Error(`sentinel on ${port} exited with ${code}: ${output.slice(-500)}`));
        child.once('exit', onExit);
        child.stdout?.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes('+monitor master')) {
            child.off('exit', onExit);
            child.stdout?.removeAllListeners('data');
            child.stdout?.resume();
            resolve();
          }
        });
        child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      });
      return { port, child };
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Start a master, `replicas` replicas and three sentinels; resolve once every sentinel sees every replica and the others. */
export async function startSentinelDeployment(options: { replicas?: number; name?: string; password?: string } = {}): Promise<SentinelDeployment> {
  const name = options.name ?? 'nerve-test';
  const password = options.password;
  const auth = password === undefined ? [] : ['-a', password, '--no-auth-warning'];
  const dir = await mkdtemp(join(tmpdir(), 'nerve-sentinel-'));
  const servers: RedisServer[] = [];
  const sentinels: Array<{ port: number; child: ChildProcess }> = [];
  const cli = async (port: number, ...args: string[]): Promise<string> => (await execFileAsync('redis-cli', ['-p', String(port), ...auth, ...args])).stdout;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(sentinels.map(({ child }) => killChild(child)));
      await Promise.all(servers.map((server) => server.stop()));
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  // What docs/operations.md recommends: a master refuses writes with no replica in sync.
  const dataFlags = [
    ...['--min-replicas-to-write', '1', '--min-replicas-max-lag', '10', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'],
    ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
  ];
  try {
    const master = await startRedis(dataFlags);
    servers.push(master);
    for (let i = 0; i < (options.replicas ?? 2); i += 1) {
      servers.push(await startRedis([...dataFlags, '--replicaof', '127.0.0.1', String(master.port)]));
    }
    await waitFor(
      async () => {
        const infos = await Promise.all(servers.slice(1).map((server) => cli(server.port, 'info', 'replication')));
        return infos.every((info) => info.includes('master_link_status:up'));
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'every replica in sync with the master' },
    );
    for (let i = 0; i < 3; i += 1) sentinels.push(await spawnSentinel(dir, i, name, master.port, password));
    await waitFor(
      async () => {
        for (const { port } of sentinels) {
          const replicas = await cli(port, 'sentinel', 'replicas', name);
          const known = servers.slice(1).every((server) => replicas.includes(String(server.port)));
          const peers = (await cli(port, 'sentinel', 'sentinels', name)).split('\n').filter((line) => line === 'runid').length;
          if (!known || peers < 2) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'every sentinel sees the replicas and the other sentinels' },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const masterPort = async (port = sentinels[0]!.port): Promise<number> => {
    const reply = (await cli(port, 'sentinel', 'get-master-addr-by-name', name)).trim().split('\n');
    return Number(reply[1]);
  };
  /** Resolve with the new master's port once every sentinel names one other than `before`. */
  const switchedFrom = async (before: number): Promise<number> => {
    let after = before;
    await waitFor(
      async () => {
        const ports = await Promise.all(sentinels.map(({ port }) => masterPort(port)));
        after = ports[0] ?? before;
        return ports.every((port) => port === after && port !== before);
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'every sentinel names the new master' },
    );
    return after;
  };
  return {
    name,
    sentinels: sentinels.map(({ port }) => `127.0.0.1:${port}`),
    servers,
    masterPort: () => masterPort(),
    failover: async () => {
      const before = await masterPort();
      const reply = await cli(sentinels[0]!.port, 'sentinel', 'failover', name);
      if (!reply.startsWith('OK')) throw new Error(`SENTINEL FAILOVER answered ${reply.trim()}`);
      return switchedFrom(before);
    },
    crashMaster: async () => {
      const before = await masterPort();
      const server = servers.find((candidate) => candidate.port === before);
      if (!server) throw new Error(`no data node on the master's port ${before}`);
      await server.kill();
      return switchedFrom(before);
    },
    cli,
    stop,
  };
}
