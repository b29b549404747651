/**
 * A TCP fault proxy for the chaos soak: every byte between the nerve
 * processes and a server (its own Redis, the shared RabbitMQ, the shared
 * PostgreSQL) goes through it, so the soak can break the path without ever
 * touching the server itself.
 *
 * - `hold()` stops reading on both sides of every connection (new ones too):
 *   TCP keeps the bytes, nothing is lost, and `release()` lets them through
 *   in order. This is a partition that TCP later repairs (a stall).
 * - `drop()` reads and discards every byte in both directions while the
 *   sessions stay up, then `release()` passes again: what a faulty
 *   middlebox, a conntrack flush or a NAT rebind does. The streams on both
 *   sides are then out of step (replies no longer match their commands).
 * - `cut()` destroys every open connection (a reset); `refuse()` makes new
 *   connections fail until `release()` (a server that is down).
 */
import net from 'node:net';

export type ProxyMode = 'pass' | 'hold' | 'drop' | 'refuse';

export interface FaultProxy {
  /** Port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  readonly mode: ProxyMode;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  hold(): void;
  drop(): void;
  refuse(): void;
  /** Back to passing bytes (resumes held connections, flushing what TCP kept). */
  release(): void;
  /** Destroy every open connection; returns how many were cut. */
  cut(): number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let accepted = 0;

  const forward = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (mode === 'drop') return; // byte loss: read and throw away
      if (!to.write(chunk)) {
        // Back-pressure from the far side: stop reading until it drains.
        from.pause();
        to.once('drain', () => {
          if (mode !== 'hold') from.resume();
        });
      }
    });
  };

  const server = net.createServer((client) => {
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect(targetPort, targetHost);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const teardown = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    forward(client, upstream);
    forward(upstream, client);
    if (mode === 'hold') {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy has no TCP address');

  const cut = (): number => {
    const cutCount = pairs.size;
    for (const pair of [...pairs]) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    pairs.clear();
    return cutCount;
  };
  return {
    port: address.port,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    hold() {
      mode = 'hold';
      for (const pair of pairs) {
        pair.client.pause();
        pair.upstream.pause();
      }
    },
    drop() {
      mode = 'drop';
      // Paused sockets would keep their bytes instead of losing them.
      for (const pair of pairs) {
        pair.client.resume();
        pair.upstream.resume();
      }
    },
    refuse() {
      mode = 'refuse';
    },
    release() {
      mode = 'pass';
      for (const pair of pairs) {
        pair.client.resume();
        pair.upstream.resume();
      }
    },
    cut,
    close() {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
