/**
 * Several "hosts" on one machine: each in its own network namespace, joined
 * through a switch namespace by two networks (needs root and iproute2), with
 * addresses from 198.18.0.0/15 (RFC 2544, set aside for benchmark networks,
 * so no real route is shadowed), two /24s per run (P even):
 *
 * - the WAN, 198.18.P.0/24: host k has `wan0` = 198.18.P.(10+k), one link
 *   to the switch's bridge `brwan` with a one-way delay of its own, so two
 *   hosts are (delay a + delay b) apart each way. Lanes (Redis) use it.
 * - the LAN, 198.18.P+1.0/24: host k has `lan0` = 198.18.P+1.(10+k) with no
 *   delay, bridged with a veth in the test's own namespace (198.18.P+1.1),
 *   so the test's clients reach every node without crossing the WAN (like
 *   each zone's own load balancer).
 * - optionally the test's own namespace as one more host on the WAN (`here`),
 *   so services of this machine can be reached across it (`forward`).
 *
 * Delay: `tc netem` on both ends of a veth pair where the kernel has netem;
 * otherwise (CONFIG_NET_SCH_NETEM off, as on our development VM) a wire of
 * TAP devices run by test/helpers/netns-wire.py, which delays each Ethernet
 * frame in userspace. NERVE_NETNS_LATENCY=netem|wire forces one.
 *
 * Names carry the test process id: a normal exit (even on failure) removes
 * its namespaces and any process left in them; those of a run that was
 * killed are removed, processes included, by the next run.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const WIRE = fileURLToPath(new URL('./netns-wire.py', import.meta.url));
const PREFIX = 'nvt';

export type LatencyMode = 'netem' | 'wire';

export interface HostSpec {
  /** Short name, unique in the network: `redis`, `n1`… */
  name: string;
  /** One-way delay between this host and the switch, ms. */
  delayMs: number;
  /** Whether the test's clients reach it on the LAN (a node: yes; Redis: no). */
  lan?: boolean;
  /**
   * The host is the test's own namespace: it gets a WAN link and address
   * like the others, so the services of this machine (the shared RabbitMQ and
   * PostgreSQL) can be put on the WAN with `forward`. At most one; no `lan`.
   */
  here?: boolean;
}

export interface Host {
  name: string;
  /** Network namespace name (`ip netns exec <ns> …`); undefined for the `here` host. */
  ns: string | undefined;
  wanIp: string;
  /** Undefined when the host is not on the LAN. */
  lanIp: string | undefined;
}

export interface Network {
  mode: LatencyMode;
  host(name: string): Host;
  /** Set `host`'s one-way delay to the switch. */
  setDelay(host: string, delayMs: number): Promise<void>;
  /** Cut `host` off the WAN (its link is down at the switch: its packets vanish) or connect it again. */
  setLinkUp(host: string, up: boolean): Promise<void>;
  /** Run a command in `host`'s namespace; resolves with stdout. */
  exec(host: string, command: string, ...args: string[]): Promise<string>;
  /** Start a child process in `host`'s namespace; it is killed at destroy(). */
  spawn(host: string, command: string, args: string[]): ChildProcess;
  /** Kill the processes started here, the wire, and delete every namespace. Idempotent. */
  destroy(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await execFileAsync('ip', args);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kill every process left in namespace `ns` (a node or redis-server), then delete it. Best effort, synchronous (runs at exit). */
function deleteNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already exited
      }
    }
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // not made yet, or already gone
  }
}

/** Delete the namespaces of runs whose process is gone (a run killed before it could clean up), and what ran in them. */
function sweepStale(): void {
  let names: string[];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '');
  } catch {
    return;
  }
  for (const name of names) {
    const owner = new RegExp(`^${PREFIX}([0-9a-z]+)-`).exec(name);
    if (owner && !pidAlive(parseInt(owner[1]!, 36))) deleteNamespace(name);
  }
}

/**
 * Whether namespaces can be made here: undefined when yes, otherwise a skip
 * reason. Under CI=true a machine that cannot is a failure, not a skip.
 */
export async function netnsSkipReason(): Promise<string | undefined> {
  const probe = `${PREFIX}${process.pid.toString(36)}-probe`;
  try {
    if (process.getuid?.() !== 0) throw new Error('not root');
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    await execFileAsync('tc', ['-V']);
    if ((await latencyMode()) === 'wire') await execFileAsync('python3', ['--version']);
    return undefined;
  } catch (error) {
    await ip('netns', 'del', probe).catch(() => undefined);
    if (process.env.CI === 'true') throw new Error(`network namespaces are required in CI (root, iproute2): ${String(error)}`, { cause: error });
    return `cannot create network namespaces here: ${String(error)}`;
  }
}

let mode: Promise<LatencyMode> | undefined;
/** netem when the kernel has it, else the userspace wire; NERVE_NETNS_LATENCY forces one. */
export function latencyMode(): Promise<LatencyMode> {
  mode ??= (async (): Promise<LatencyMode> => {
    const forced = process.env.NERVE_NETNS_LATENCY;
    if (forced === 'netem' || forced === 'wire') return forced;
    const probe = `${PREFIX}${process.pid.toString(36)}-netem`;
    try {
      await ip('netns', 'add', probe);
      await ip('-n', probe, 'link', 'set', 'lo', 'up');
      await execFileAsync('tc', ['-n', probe, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
      return 'netem';
    } catch {
      return 'wire';
    } finally {
      await ip('netns', 'del', probe).catch(() => undefined);
    }
  })();
  return mode;
}

/** An even P such that no route of this machine uses 198.18.P.0/24 or 198.18.P+1.0/24 (another run's, say). */
async function freeSubnet(): Promise<number> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show']);
  for (let attempt = 0; attempt < 50; attempt++) {
    const p = 2 * Math.floor(Math.random() * 127);
    if (!stdout.includes(`198.18.${p}.`) && !stdout.includes(`198.18.${p + 1}.`)) return p;
  }
  throw new Error('no free pair of 198.18.x.0/24 for the test network');
}

/** Build the network; on any failure, everything made so far is removed. */
export async function createNetwork(specs: HostSpec[]): Promise<Network> {
  sweepStale();
  const latency = await latencyMode();
  const run = `${PREFIX}${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 5)}`;
  const p = await freeSubnet();
  const sw = `${run}-sw`;
  const rootLink = `nv${run.slice(-3)}${process.pid.toString(36).slice(-4)}`;
  const rootWan = `${rootLink}w`;
  const hosts = new Map<string, Host & { index: number; delayMs: number }>();
  if (specs.filter((spec) => spec.here).length > 1 || specs.some((spec) => spec.here && spec.lan))
    throw new RangeError('at most one `here` host, not on the LAN');
  specs.forEach((spec, i) => {
    hosts.set(spec.name, {
      name: spec.name,
      ns: spec.here ? undefined : `${run}-${spec.name}`,
      wanIp: `198.18.${p}.${10 + i}`,
      lanIp: spec.lan ? `198.18.${p + 1}.${10 + i}` : undefined,
      index: i,
      delayMs: spec.delayMs,
    });
  });
  const namespaces = [sw, ...[...hosts.values()].flatMap((host) => (host.ns ? [host.ns] : []))];
  const children = new Set<ChildProcess>();
  let wire: ChildProcess | undefined;
  let wireAnswers: AsyncIterator<string> | undefined;

  const removeSync = (): void => {
    for (const child of children) child.kill('SIGKILL');
    wire?.kill('SIGKILL');
    // Processes started in a namespace by others (startNode with a launcher) go too.
    for (const ns of namespaces) deleteNamespace(ns);
    for (const link of [rootLink, rootWan]) {
      try {
        execFileSync('ip', ['link', 'del', link], { stdio: 'ignore' });
      } catch {
        // gone with the switch namespace (or the wire)
      }
    }
  };
  process.once('exit', removeSync);

  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      const exits = [...children, ...(wire ? [wire] : [])]
        .filter((child) => child.exitCode === null && child.signalCode === null)
        .map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
      for (const child of children) child.kill('SIGKILL');
      wire?.stdin?.end();
      wire?.kill('SIGKILL');
      await Promise.all(exits);
      removeSync();
      process.off('exit', removeSync);
    })();
    return destroyed;
  };

  const get = (name: string): Host & { index: number; delayMs: number } => {
    const host = hosts.get(name);
    if (!host) throw new RangeError(`no host ${name}`);
    return host;
  };
  const switchPort = (host: Host & { index: number }): string => `w${host.index}`;
  /** `ip`/`tc` arguments that address the host's namespace, and the name of its WAN device. */
  const inHost = (host: Host): string[] => (host.ns ? ['-n', host.ns] : []);
  const wanDevice = (host: Host): string => (host.ns ? 'wan0' : rootWan);

  try {
    for (const ns of namespaces) {
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    for (const bridge of ['brwan', 'brlan']) {
      await ip('-n', sw, 'link', 'add', bridge, 'type', 'bridge');
      await ip('-n', sw, 'link', 'set', bridge, 'up');
    }
    // The test's own way in: a veth from this namespace onto the LAN bridge.
    await ip('link', 'add', rootLink, 'type', 'veth', 'peer', 'name', 'c0', 'netns', sw);
    await ip('-n', sw, 'link', 'set', 'c0', 'master', 'brlan', 'up');
    await ip('addr', 'add', `198.18.${p + 1}.1/24`, 'dev', rootLink);
    await ip('link', 'set', rootLink, 'up');

    // WAN links, with their delay.
    if (latency === 'wire') {
      const spec = [...hosts.values()].map((host) => ({ a: [host.ns ?? null, wanDevice(host)], b: [sw, switchPort(host)], delayMs: host.delayMs }));
      wire = spawn('python3', [WIRE, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
      let wireErrors = '';
      wire.stderr?.on('data', (chunk: Buffer) => (wireErrors += chunk.toString()));
      wireAnswers = createInterface({ input: wire.stdout! })[Symbol.asyncIterator]();
      const first = await Promise.race([
        wireAnswers.next(),
        new Promise<never>((_, reject) => wire!.once('exit', (code) => reject(new Error(`netns-wire exited with ${code}: ${wireErrors}`)))),
      ]);
      if (first.value !== 'ready') throw new Error(`netns-wire: ${String(first.value)} ${wireErrors}`);
    } else {
      for (const host of hosts.values()) {
        if (host.ns) {
          await ip('link', 'add', `${run.slice(-3)}w${host.index}`, 'netns', host.ns, 'type', 'veth', 'peer', 'name', switchPort(host), 'netns', sw);
          await ip('-n', host.ns, 'link', 'set', `${run.slice(-3)}w${host.index}`, 'name', 'wan0');
        } else {
          await ip('link', 'add', rootWan, 'type', 'veth', 'peer', 'name', switchPort(host), 'netns', sw);
        }
        await execFileAsync('tc', [...inHost(host), 'qdisc', 'add', 'dev', wanDevice(host), 'root', 'netem', 'delay', `${host.delayMs}ms`]);
        await execFileAsync('tc', ['-n', sw, 'qdisc', 'add', 'dev', switchPort(host), 'root', 'netem', 'delay', `${host.delayMs}ms`]);
      }
    }
    for (const host of hosts.values()) {
      await ip('-n', sw, 'link', 'set', switchPort(host), 'master', 'brwan', 'up');
      await ip(...inHost(host), 'addr', 'add', `${host.wanIp}/24`, 'dev', wanDevice(host));
      await ip(...inHost(host), 'link', 'set', wanDevice(host), 'up');
      if (host.lanIp && host.ns) {
        await ip('link', 'add', `${run.slice(-3)}l${host.index}`, 'netns', host.ns, 'type', 'veth', 'peer', 'name', `l${host.index}`, 'netns', sw);
        await ip('-n', host.ns, 'link', 'set', `${run.slice(-3)}l${host.index}`, 'name', 'lan0');
        await ip('-n', sw, 'link', 'set', `l${host.index}`, 'master', 'brlan', 'up');
        await ip('-n', host.ns, 'addr', 'add', `${host.lanIp}/24`, 'dev', 'lan0');
        await ip('-n', host.ns, 'link', 'set', 'lan0', 'up');
      }
    }
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    mode: latency,
    host: (name) => {
      const { index: _index, delayMs: _delay, ...host } = get(name);
      return host;
    },
    setDelay: async (name, delayMs) => {
      const host = get(name);
      host.delayMs = delayMs;
      if (latency === 'wire') {
        wire!.stdin!.write(`${JSON.stringify({ wire: host.index, delayMs })}\n`);
        const answer = await wireAnswers!.next();
        if (answer.value !== 'ok') throw new Error(`netns-wire did not take the delay: ${String(answer.value)}`);
      } else {
        await execFileAsync('tc', [...inHost(host), 'qdisc', 'change', 'dev', wanDevice(host), 'root', 'netem', 'delay', `${delayMs}ms`]);
        await execFileAsync('tc', ['-n', sw, 'qdisc', 'change', 'dev', switchPort(host), 'root', 'netem', 'delay', `${delayMs}ms`]);
      }
    },
    setLinkUp: async (name, up) => {
      await ip('-n', sw, 'link', 'set', switchPort(get(name)), up ? 'up' : 'down');
    },
    exec: async (name, command, ...args) => {
      const ns = get(name).ns;
      return (await (ns ? execFileAsync('ip', ['netns', 'exec', ns, command, ...args]) : execFileAsync(command, args))).stdout;
    },
    spawn: (name, command, args) => {
      const ns = get(name).ns;
      const child = ns
        ? spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    destroy,
  };
}

export interface NetnsRedis {
  /** redis://<wan address>:6379 */
  url: string;
  stop(): Promise<void>;
}

/** A private, non-persistent redis-server on `host`'s WAN address. */
export async function startRedisOn(network: Network, host: string): Promise<NetnsRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'nerve-netns-redis-'));
  const { wanIp } = network.host(host);
  const child = network.spawn(host, 'redis-server', [
    '--port',
    '6379',
    '--bind',
    wanIp,
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--dir',
    dir,
  ]);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server on ${host} not ready: ${output.slice(-500)}`)), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on ${host} exited with ${code}: ${output.slice(-500)}`));
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  });
  child.stdout?.removeAllListeners('data');
  child.stdout?.resume();
  let stopped: Promise<void> | undefined;
  return {
    url: `redis://${wanIp}:6379`,
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.kill('SIGKILL');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

export interface Forward {
  port: number;
  close(): Promise<void>;
}

/**
 * Listen on `host`:0 (an address of the test's own namespace, e.g. the
 * `here` host's WAN address) and pass every connection through to
 * `target` — how a service of this machine that listens on 127.0.0.1 only
 * (the shared RabbitMQ, PostgreSQL) is put on the WAN.
 */
export async function forward(host: string, target: { host: string; port: number }): Promise<Forward> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
