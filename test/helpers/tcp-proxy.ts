/**
 * A TCP proxy inside the test process, to cut a client's connection to a
 * shared service without ever stopping the service (test rule: never restart
 * the shared RabbitMQ). `cut()` destroys every open socket pair; new
 * connections are accepted again at once, so the client reconnects.
 *
 * Quiet faults (issue 14), for every connection, open or new, both ways:
 * `hold()` keeps the bytes (a partition TCP later repairs: they all arrive
 * at `pass()`, even those a client sent before it gave up); `drop()`
 * discards them (a faulty middlebox, a conntrack flush) while the sessions
 * stay up; `reset()` ends every open connection with a TCP RST.
 */
import net from 'node:net';

/** What the proxy does with the bytes it reads. */
export type ProxyMode = 'pass' | 'hold' | 'drop';

export interface TcpProxy {
  /** Port the proxy listens on, on 127.0.0.1 (chosen by the OS). */
  port: number;
  /** Connections forwarded so far. */
  readonly accepted: number;
  /** Destroy every open connection; returns how many were cut. */
  cut(): number;
  /** Refuse (destroy at once) new connections while true. */
  setRefusing(refusing: boolean): void;
  /** Keep every byte from now on, both ways, until `pass()`. */
  hold(): void;
  /** Discard every byte from now on, both ways, until `pass()`; the TCP sessions stay up. */
  drop(): void;
  /** Forward again, first delivering what `hold()` kept (to a side that has not closed). */
  pass(): void;
  readonly mode: ProxyMode;
  /** End every open connection with a TCP RST; returns how many. */
  reset(): number;
  close(): Promise<void>;
}

/** One direction of a pair: forwards, holds or drops by the proxy's mode. */
class Pipe {
  private held: Buffer[] = [];

  constructor(
    from: net.Socket,
    private readonly to: net.Socket,
    private readonly mode: () => ProxyMode,
  ) {
    from.on('data', (data: Buffer) => {
      const mode = this.mode();
      if (mode === 'drop') return;
      if (mode === 'hold' || this.held.length > 0) this.held.push(data);
      else this.write(data);
    });
  }

  flush(): void {
    const held = this.held;
    this.held = [];
    for (const data of held) this.write(data);
  }

  private write(data: Buffer): void {
    if (!this.to.destroyed) this.to.write(data);
  }
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<net.Socket>();
  const pipes = new Set<Pipe>();
  let accepted = 0;
  let refusing = false;
  let mode: ProxyMode = 'pass';
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = net.connect(targetPort, targetHost);
    pairs.add(client);
    pairs.add(upstream);
    const up = new Pipe(client, upstream, () => mode);
    const down = new Pipe(upstream, client, () => mode);
    pipes.add(up);
    pipes.add(down);
    let closing = false;
    const teardown = (): void => {
      if (closing) return;
      closing = true;
      pairs.delete(client);
      pairs.delete(upstream);
      pipes.delete(down);
      if (mode === 'hold') {
        // A partition: what the client sent before it gave up still reaches the server once the network heals.
        client.destroy();
        const release = (): void => {
          pipes.delete(up);
          up.flush();
          upstream.end();
        };
        held.push(release);
        return;
      }
      pipes.delete(up);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', teardown);
    upstream.on('close', teardown);
  });
  /** Pairs whose client left during a hold: their held bytes still go to the server at `pass()`. */
  const held: Array<() => void> = [];
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    cut() {
      const sockets = [...pairs];
      for (const socket of sockets) socket.destroy();
      pairs.clear();
      return sockets.length / 2;
    },
    setRefusing(value: boolean) {
      refusing = value;
    },
    get mode() {
      return mode;
    },
    hold() {
      mode = 'hold';
    },
    drop() {
      mode = 'drop';
    },
    pass() {
      mode = 'pass';
      for (const pipe of pipes) pipe.flush();
      for (const release of held.splice(0)) release();
    },
    reset() {
      const sockets = [...pairs];
      for (const socket of sockets) socket.resetAndDestroy();
      pairs.clear();
      return sockets.length / 2;
    },
    close() {
      for (const socket of pairs) socket.destroy();
      pairs.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (within 1 s). */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * Undefined when the service at `port` is up. Otherwise a one-line skip
 * reason — or a thrown error under CI, where a missing service must fail.
 */
export async function serviceSkip(name: string, port: number): Promise<string | undefined> {
  if (await canConnect(port)) return undefined;
  const reason = `${name} not reachable on 127.0.0.1:${port}`;
  if (process.env.CI === 'true') throw new Error(`${reason} (required in CI)`);
  return reason;
}
