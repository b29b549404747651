/**
 * Private Redis servers for tests that break things (kill, restart, client
 * kill) or need Redis Cluster. Never touch the shared Redis on 6379 for that.
 *
 * Ports: redis-server needs a concrete port, so we pick one that a probe
 * could bind just now and retry when the server still loses the race.
 * Cluster nodes also need port+10000 (the cluster bus), so their ports are
 * drawn from 20000-50000 with both ports probed.
 *
 * Every server started here is killed when the test process exits, even on
 * failure.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

const execFileAsync = promisify(execFile);
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** URL of the shared Redis (overridable for CI). */
export const SHARED_REDIS_URL = process.env.NERVE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Decide whether a Redis-backed suite runs: undefined when the service
 * answers, otherwise a one-line skip reason. In CI a missing service is a
 * failure, not a skip.
 */
export async function redisSkipReason(url = SHARED_REDIS_URL): Promise<string | undefined> {
  const { hostname, port } = new URL(url);
  const reply = await rawCommand(Number(port || 6379), 'PING', hostname).catch((error: unknown) => String(error));
  if (reply.startsWith('+PONG')) return undefined;
  if (process.env.CI === 'true') throw new Error(`Redis is required in CI but ${url} answered: ${reply}`);
  return `no Redis at ${url} (${reply.trim()})`;
}

/** Whether redis-server can be started here; same CI rule as redisSkipReason. */
export async function redisServerSkipReason(): Promise<string | undefined> {
  try {
    await execFileAsync('redis-server', ['--version']);
    await execFileAsync('redis-cli', ['--version']);
    return undefined;
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`redis-server is required in CI: ${String(error)}`, { cause: error });
    return 'redis-server / redis-cli not installed';
  }
}

/** Send one inline command and resolve with the first reply chunk. */
export function rawCommand(port: number, command: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply from ${host}:${port}`));
    }, 2000);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.connect(port, host, () => socket.write(`${command}\r\n`));
    socket.once('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data.toString());
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:port */
  url: string;
  /** SIGKILL (a crash) and wait for exit. Safe to call twice. */
  kill(): Promise<void>;
  /** Start again on the same port (after kill). */
  restart(): Promise<void>;
  /** Kill and remove the data directory. Idempotent. */
  stop(): Promise<void>;
  /** Run redis-cli against this server; resolves with stdout. */
  cli(...args: string[]): Promise<string>;
}

/** Spawn redis-server on `port`; resolve when it accepts connections, reject if it exits first. */
async function spawnRedis(port: number, dir: string, extra: string[]): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => {
      live.delete(child);
      reject(new Error(`redis-server on ${port} exited with ${code}: ${output.slice(-500)}`));
    };
    child.once('exit', onExit);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        child.off('exit', onExit);
        child.once('exit', () => live.delete(child));
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume();
        resolve(child);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  });
}

async function killChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function startOn(port: number | (() => Promise<number>), dir: string, extra: string[]): Promise<{ port: number; child: ChildProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const chosen = typeof port === 'number' ? port : await port();
    try {
      return { port: chosen, child: await spawnRedis(chosen, dir, extra) };
    } catch (error) {
      lastError = error;
      if (typeof port === 'number') await new Promise((resolve) => setTimeout(resolve, 100)); // same port: let the old socket go
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Start a private, non-persistent redis-server on a free loopback port. */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'nerve-redis-'));
  const started = await startOn(freePort, dir, extra);
  let child: ChildProcess | undefined = started.child;
  const port = started.port;
  let stopped: Promise<void> | undefined;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: async () => {
      await killChild(child);
    },
    restart: async () => {
      await killChild(child);
      child = (await startOn(port, dir, extra)).child;
    },
    stop: () => {
      stopped ??= killChild(child).then(() => rm(dir, { recursive: true, force: true }));
      return stopped;
    },
    cli: async (...args: string[]) => (await execFileAsync('redis-cli', ['-p', String(port), ...args])).stdout,
  };
}

export interface RedisCluster {
  /** One entry per master. */
  nodes: Array<{ host: string; port: number }>;
  /** Run redis-cli against one node (`-c` is not added). */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Kill every node and remove the directory. Idempotent. */
  stop(): Promise<void>;
}

/** Start a 3-master Redis Cluster (no replicas) on free loopback ports and wait for cluster_state:ok. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'nerve-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= Promise.all(children.map(killChild)).then(() => rm(dir, { recursive: true, force: true }));
    return stopped;
  };
  const cli = async (port: number, ...args: string[]): Promise<string> => (await execFileAsync('redis-cli', ['-p', String(port), ...args])).stdout;
  try {
    for (let i = 0; i < masters; i += 1) {
      const started = await startOn(freeClusterPort, dir, [
        '--cluster-enabled',
        'yes',
        '--cluster-node-timeout',
        '2000',
        '--cluster-config-file',
        join(dir, `nodes-${i}.conf`),
      ]);
      children.push(started.child);
      ports.push(started.port);
    }
    await execFileAsync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitFor(
      async () => {
        const infos = await Promise.all(ports.map((p) => cli(p, 'cluster', 'info')));
        return infos.every((info) => info.includes('cluster_state:ok'));
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'cluster_state:ok on every node' },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), cli, stop };
}

export interface TcpProxy {
  port: number;
  /**
   * Make every current connection that has sent a SUBSCRIBE deaf: bytes from
   * the server are dropped, the TCP session stays up. This is a half-open
   * connection as a NAT or load balancer leaves it; new connections are not
   * affected.
   */
  deafenSubscribers(): number;
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of `targetPort`, for fault injection. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; subscriber: boolean; deaf: boolean }>();
  const server = createServer((client) => {
    const upstream = new Socket();
    const pair = { client, upstream, subscriber: false, deaf: false };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.connect(targetPort, '127.0.0.1');
    client.on('data', (data: Buffer) => {
      if (/subscribe/i.test(data.toString('latin1'))) pair.subscriber = true;
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (!pair.deaf) client.write(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    deafenSubscribers: () => {
      let count = 0;
      for (const pair of pairs) {
        if (pair.subscriber) {
          pair.deaf = true;
          count += 1;
        }
      }
      return count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
