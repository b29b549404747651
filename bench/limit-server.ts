/**
 * The physical-limit references of `npm run bench` (bench/README.md, "The
 * limits"): a bare `ws` server that speaks just enough of nerve's protocol
 * (docs/protocol.md) for bench/lib/clients.ts, corking each socket for the
 * event-loop turn. No bus, history, presence or auth.
 *
 * Without --redis-url it fans out in process ("limit-1"). With --redis-url and
 * --channel every publish and signal goes through that ONE Pub/Sub channel and
 * each process writes to its sockets only what Redis hands back ("limit-3").
 *
 * Usage: node --import tsx bench/limit-server.ts --port 0 [--redis-url redis://… --channel <name>] --node-id <id>
 * Prints one JSON line `{"msg":"listening","port":…}` on stdout. `GET /metrics`
 * answers the two runtime series the bench reads from nerve (event-loop delay
 * p99 since the last read, GC time so far), measured the way prom-client does.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import WebSocket, { WebSocketServer } from 'ws';
import { flag } from './lib/flags.js';

const port = Number(flag('port', '0'));
const host = flag('host', '127.0.0.1');
const nodeId = flag('node-id', `limit-${process.pid}`);
const redisUrl = flag('redis-url', '');
const channel = flag('channel', '');
if (redisUrl !== '' && channel === '') throw new Error('--redis-url needs --channel');

interface Client {
  ws: WebSocket;
  socket: Socket;
  connId: string;
  user: string | undefined;
  corked: boolean;
}

const rooms = new Map<string, Set<Client>>();
const users = new Map<string, Set<Client>>();
const byConnId = new Map<string, Client>();
/** Offsets of chat messages per room (this process's counter: there is no history to order). */
const offsets = new Map<string, number>();
let connSeq = 0;
let idSeq = 0;

// Cork a socket on its first write in a turn, uncork every corked socket once the turn's I/O is done.
let corked: Client[] = [];
let flushScheduled = false;
const SEND = { binary: false };
function flush(): void {
  flushScheduled = false;
  const batch = corked;
  corked = [];
  for (const client of batch) {
    client.corked = false;
    client.socket.uncork();
  }
}
function write(client: Client, data: Buffer): void {
  if (client.ws.readyState !== WebSocket.OPEN) return;
  if (!client.corked) {
    client.corked = true;
    client.socket.cork();
    corked.push(client);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  client.ws.send(data, SEND);
}
function reply(client: Client, frame: Record<string, unknown>): void {
  write(client, Buffer.from(JSON.stringify(frame)));
}

/** Deliver a stamped frame to a room's local members (`exclude`: the sender's connId for ephemeral). */
function deliverRoom(room: string, exclude: string, frame: string): void {
  const members = rooms.get(room);
  if (!members) return;
  const data = Buffer.from(frame);
  for (const member of members) if (member.connId !== exclude) write(member, data);
}
function deliverUser(user: string, exclude: string, frame: string): void {
  const targets = users.get(user);
  if (!targets) return;
  const data = Buffer.from(frame);
  for (const target of targets) if (target.connId !== exclude) write(target, data);
}

// limit-3: one publisher and one subscriber connection per process, one channel for everything.
// A relayed record is `m|room|exclude|frame` or `s|user|exclude|frame` (room, user and connId have no `|`).
const pub = redisUrl ? new Redis(redisUrl) : undefined;
const sub = redisUrl ? new Redis(redisUrl) : undefined;
pub?.on('error', (error: Error) => process.stderr.write(`redis pub: ${error.message}\n`));
sub?.on('error', (error: Error) => process.stderr.write(`redis sub: ${error.message}\n`));
sub?.on('message', (_channel: string, record: string) => {
  const a = record.indexOf('|', 2);
  const b = record.indexOf('|', a + 1);
  const target = record.slice(2, a);
  const exclude = record.slice(a + 1, b);
  const frame = record.slice(b + 1);
  if (record.charCodeAt(0) === 109 /* m */) deliverRoom(target, exclude, frame);
  else deliverUser(target, exclude, frame);
});

function relay(kind: 'm' | 's', target: string, exclude: string, frame: string): void {
  if (pub) void pub.publish(channel, `${kind}|${target}|${exclude}|${frame}`);
  else if (kind === 'm') deliverRoom(target, exclude, frame);
  else deliverUser(target, exclude, frame);
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' && !value.includes('|') ? value : undefined);

function onFrame(client: Client, raw: WebSocket.RawData): void {
  let frame: Record<string, unknown>;
  try {
    frame = JSON.parse(raw.toString()) as Record<string, unknown>;
  } catch {
    return;
  }
  const rid = frame.rid;
  if (frame.op === 'connect') {
    const user = text(frame.user);
    if (!user) return reply(client, { op: 'error', rid, code: 'auth_failed', message: 'user required' });
    client.user = user;
    let mine = users.get(user);
    if (!mine) users.set(user, (mine = new Set()));
    mine.add(client);
    return reply(client, { op: 'welcome', rid, v: 1, connId: client.connId, nodeId, user, tenant: 'default', limits: {}, iceServers: [] });
  }
  const user = client.user;
  if (user === undefined) return reply(client, { op: 'error', rid, code: 'not_connected', message: 'connect first' });
  switch (frame.op) {
    case 'join': {
      const room = text(frame.room);
      if (!room) return reply(client, { op: 'error', rid, code: 'invalid_room', message: 'room' });
      let members = rooms.get(room);
      if (!members) rooms.set(room, (members = new Set()));
      members.add(client);
      return reply(client, { op: 'joined', rid, room, members: [], history: [], position: { offset: offsets.get(room) ?? 0, epoch: nodeId } });
    }
    case 'publish': {
      const room = text(frame.room);
      if (!room || !rooms.get(room)?.has(client)) return reply(client, { op: 'error', rid, code: 'not_joined', message: 'join first' });
      const id = `${client.connId}-${++idSeq}`;
      const ts = Date.now();
      if (frame.class === 'chat') {
        const offset = (offsets.get(room) ?? 0) + 1;
        offsets.set(room, offset);
        relay('m', room, '', JSON.stringify({ op: 'message', class: 'chat', room, id, from: user, ts, data: frame.data, offset, epoch: nodeId }));
        return reply(client, { op: 'ack', rid, id, ts, offset, epoch: nodeId });
      }
      return relay('m', room, client.connId, JSON.stringify({ op: 'message', class: 'ephemeral', room, id, from: user, ts, data: frame.data }));
    }
    case 'signal': {
      const to = text(frame.to);
      if (!to || typeof frame.kind !== 'string') return reply(client, { op: 'error', rid, code: 'invalid_signal', message: 'to and kind' });
      const id = `${client.connId}-${++idSeq}`;
      const ts = Date.now();
      relay('s', to, client.connId, JSON.stringify({ op: 'signal', id, from: user, fromConn: client.connId, kind: frame.kind, data: frame.data, ts }));
      return reply(client, { op: 'ack', rid, id, ts });
    }
    case 'ping':
      return reply(client, { op: 'pong', rid, ts: Date.now() });
    default:
      return reply(client, { op: 'error', rid, code: 'unsupported', message: 'not in the limit server' });
  }
}

function onClose(client: Client): void {
  byConnId.delete(client.connId);
  if (client.user !== undefined) {
    const mine = users.get(client.user);
    mine?.delete(client);
    if (mine?.size === 0) users.delete(client.user);
  }
  for (const [room, members] of rooms) {
    members.delete(client);
    if (members.size === 0) rooms.delete(room);
  }
}

// prom-client's defaults: a 10 ms sampling timer, reset at each read; every GC's duration summed.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let gcSeconds = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcSeconds += entry.duration / 1000;
}).observe({ entryTypes: ['gc'] });
function metricsPage(): string {
  const p99 = loopDelay.percentile(99) / 1e9;
  loopDelay.reset();
  return `nerve_process_nodejs_eventloop_lag_p99_seconds ${p99}\nnerve_process_nodejs_gc_duration_seconds_sum ${gcSeconds}\n`;
}

async function main(): Promise<void> {
  if (sub) await sub.subscribe(channel);
  const http = createServer((request, response) => {
    if (request.url === '/metrics') response.writeHead(200, { 'content-type': 'text/plain' }).end(metricsPage());
    else response.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false, maxPayload: 1 << 20 });
  wss.on('connection', (ws: WebSocket, request: IncomingMessage) => {
    const client: Client = { ws, socket: request.socket, connId: `${nodeId}.${(++connSeq).toString(36)}`, user: undefined, corked: false };
    byConnId.set(client.connId, client);
    ws.on('message', (raw: WebSocket.RawData) => onFrame(client, raw));
    ws.on('close', () => onClose(client));
    ws.on('error', () => ws.terminate());
  });
  http.listen(port, host, () => {
    const address = http.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ msg: 'listening', port: address.port, nodeId })}\n`);
  });
  const shutdown = () => {
    for (const client of byConnId.values()) client.ws.terminate();
    wss.close();
    http.close();
    if (sub) void sub.unsubscribe(channel).finally(() => sub.disconnect());
    pub?.disconnect();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`limit-server: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
