/**
 * A TCP proxy inside the test process, to cut a client's connection to a
 * shared service without ever stopping the service (test rule: never restart
 * the shared RabbitMQ). `cut()` destroys every open socket pair; new
 * connections are accepted again at once, so the client reconnects.
 */
import net from 'node:net';

export interface TcpProxy {
  /** Port the proxy listens on, on 127.0.0.1 (chosen by the OS). */
  port: number;
  /** Connections forwarded so far. */
  readonly accepted: number;
  /** Destroy every open connection; returns how many were cut. */
  cut(): number;
  /** Refuse (destroy at once) new connections while true. */
  setRefusing(refusing: boolean): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<net.Socket>();
  let accepted = 0;
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = net.connect(targetPort, targetHost);
    pairs.add(client);
    pairs.add(upstream);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(client);
      pairs.delete(upstream);
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', teardown);
    upstream.on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  });
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
