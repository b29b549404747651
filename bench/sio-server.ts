/**
 * The peer under comparison: a Socket.IO 4 server with the Redis adapter,
 * doing what nerve does for the benchmark scenarios, and nothing more.
 *
 * Best configuration we know for it: websocket transport only, no
 * per-message deflate (the v4 default), no HTTP long-polling upgrade dance,
 * the default `createAdapter` on ioredis (one of the two clients the
 * adapter's README documents; nerve uses ioredis too, so both sides speak to
 * Redis through the same library and plain Pub/Sub on one Redis).
 *
 * Events mirror nerve's protocol:
 * - handshake `auth: { user }` → the socket joins `user:<user>` and gets `welcome`;
 * - `join(room, ack)` → joins `room:<room>`, acks;
 * - `publish({ room, class, data }, ack?)` → stamped `message` to the room:
 *   ephemeral skips the sender (`socket.to`), chat echoes to the sender and acks;
 * - `signal({ to, kind, data })` → `signal` to `user:<to>` except this socket;
 * - `rtt(ack)` → ack (the flow-control ping the load generator uses).
 *
 * Usage: node --import tsx bench/sio-server.ts --port 0 --redis-url redis://127.0.0.1:6379 --key <prefix> --node-id <id>
 * Prints one JSON line `{"msg":"listening","port":…}` on stdout.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { flag } from './lib/flags.js';

const port = Number(flag('port', '0'));
const host = flag('host', '127.0.0.1');
const redisUrl = flag('redis-url', 'redis://127.0.0.1:6379');
const key = flag('key', 'socket.io');
const nodeId = flag('node-id', `sio-${process.pid}`);

interface PublishPayload {
  room: string;
  class: 'chat' | 'ephemeral';
  data: unknown;
}
interface SignalPayload {
  to: string;
  kind: string;
  data: unknown;
}

const pubClient = new Redis(redisUrl);
const subClient = pubClient.duplicate();
pubClient.on('error', (error: Error) => process.stderr.write(`redis pub: ${error.message}\n`));
subClient.on('error', (error: Error) => process.stderr.write(`redis sub: ${error.message}\n`));

const http = createServer((_req, res) => {
  res.writeHead(404).end();
});
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  adapter: createAdapter(pubClient, subClient, { key }),
});

io.use((socket, next) => {
  const user = (socket.handshake.auth as { user?: unknown }).user;
  if (typeof user !== 'string' || !/^[A-Za-z0-9._~@-]{1,128}$/.test(user)) {
    next(new Error('auth_failed'));
    return;
  }
  (socket.data as { user: string }).user = user;
  next();
});

io.on('connection', (socket) => {
  const user = (socket.data as { user: string }).user;
  void socket.join(`user:${user}`);
  socket.emit('welcome', { connId: socket.id, nodeId, user });

  socket.on('join', (room: unknown, ack: unknown) => {
    if (typeof room !== 'string') return;
    void socket.join(`room:${room}`);
    if (typeof ack === 'function') (ack as (answer: unknown) => void)({ room });
  });
  socket.on('publish', (payload: PublishPayload, ack: unknown) => {
    const message = { class: payload.class, room: payload.room, id: randomUUID(), from: user, ts: Date.now(), data: payload.data };
    if (payload.class === 'chat') {
      io.to(`room:${payload.room}`).emit('message', message);
      if (typeof ack === 'function') (ack as (answer: unknown) => void)({ id: message.id, ts: message.ts });
    } else {
      socket.to(`room:${payload.room}`).emit('message', message);
    }
  });
  socket.on('signal', (payload: SignalPayload) => {
    socket.to(`user:${payload.to}`).emit('signal', {
      id: randomUUID(),
      from: user,
      fromConn: socket.id,
      kind: payload.kind,
      ts: Date.now(),
      data: payload.data,
    });
  });
  socket.on('rtt', (ack: unknown) => {
    if (typeof ack === 'function') (ack as () => void)();
  });
});

http.listen(port, host, () => {
  const address = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: address.port, nodeId })}\n`);
});

const shutdown = () => {
  void io.close();
  pubClient.disconnect();
  subClient.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
