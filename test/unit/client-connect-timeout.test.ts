/**
 * The SDK's connect timeout (issue 17): `connect()` to a dead server (port
 * closed), a silent one (TCP accepted, no HTTP answer), one that upgrades
 * but never sends `welcome`, or a scripted socket that never opens, rejects
 * with `connect_timeout` after `connectTimeoutMs` and the state machine goes
 * `connecting` → `closed` carrying the error; while reconnecting only the
 * call gives up and the reconnect goes on. Waits are for conditions: the
 * timeouts are small so the tests are quick, never asserted as durations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { ClientErrorCode, ClientState, NerveClient, NerveClientError, type NerveClientOptions, type StateChange } from '../../packages/client/src/index.js';
import { EPOCH, harness, joined } from '../helpers/fake-server.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

function isConnectTimeout(error: unknown): boolean {
  assert.ok(error instanceof NerveClientError, `expected a NerveClientError, got ${String(error)}`);
  assert.equal(error.code, ClientErrorCode.ConnectTimeout);
  assert.equal(error.code, 'connect_timeout');
  return true;
}

/** A client of a real `ws` WebSocket with a small connect timeout, recording its state changes. */
function realClient(url: string, options: Partial<NerveClientOptions> = {}) {
  const client = new NerveClient({
    url,
    user: 'alice',
    WebSocket,
    connectTimeoutMs: 300,
    requestTimeoutMs: 2000,
    reconnect: { minDelayMs: 5, maxDelayMs: 20 },
    ...options,
  });
  const states: StateChange[] = [];
  client.on('state', (change) => states.push(change));
  return { client, states };
}

function assertStoppedByTimeout(client: NerveClient, states: StateChange[]): void {
  assert.equal(client.state, ClientState.Closed);
  const last = states.at(-1);
  assert.deepEqual([last?.from, last?.to], [ClientState.Connecting, ClientState.Closed]);
  assert.ok(last?.error && isConnectTimeout(last.error), 'the change to closed says why');
}

test('connect() to a port nobody listens on rejects with connect_timeout after retrying', async () => {
  const port = await freePort();
  const { client, states } = realClient(`ws://127.0.0.1:${port}/ws`);
  let disconnects = 0;
  client.on('disconnected', () => (disconnects += 1));
  await assert.rejects(client.connect(), isConnectTimeout);
  assert.ok(disconnects >= 1, 'refused attempts were made (and retried) before giving up');
  assertStoppedByTimeout(client, states);
});

test('connect() to a server that accepts TCP but never answers rejects with connect_timeout', async () => {
  const sockets = new Set<net.Socket>();
  let closed = 0;
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => (closed += 1));
    socket.resume(); // read (and drop) the upgrade request, so its end is seen
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  try {
    const { client, states } = realClient(`ws://127.0.0.1:${port}/ws`);
    await assert.rejects(client.connect(), isConnectTimeout);
    assert.ok(sockets.size >= 1, 'the client did reach the silent server');
    assertStoppedByTimeout(client, states);
    // The client let go of the silent socket: the server side sees it end.
    await waitFor(() => closed === sockets.size, { what: 'the client to drop its socket' });
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('connect() to a WebSocket server that never sends welcome rejects with connect_timeout', async () => {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const frames: string[] = [];
  server.on('connection', (socket) => socket.on('message', (data: Buffer) => frames.push(data.toString())));
  try {
    const { client, states } = realClient(`ws://127.0.0.1:${(server.address() as net.AddressInfo).port}/ws`);
    await assert.rejects(client.connect(), isConnectTimeout);
    assert.ok(
      frames.some((frame) => (JSON.parse(frame) as { op: string }).op === 'connect'),
      'the connect frame was sent',
    );
    assertStoppedByTimeout(client, states);
  } finally {
    for (const socket of server.clients) socket.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('connect timeout before the first welcome: queued requests reject with it, and connect() works again after', async () => {
  const { client, sockets, states, accept } = harness({ connectTimeoutMs: 50 });
  const connecting = client.connect();
  const joining = client.join('lobby');
  await waitFor(() => sockets[0], { what: 'socket #0' }); // never opened: a server that never answers
  await assert.rejects(connecting, isConnectTimeout);
  await assert.rejects(joining, isConnectTimeout);
  assert.equal(client.state, ClientState.Closed);
  assert.equal(sockets[0]!.readyState, 3, 'the unanswered socket was closed');
  assert.ok(states.at(-1)?.error && isConnectTimeout(states.at(-1)!.error));

  // Reconnect logic keeps working: a new connect() starts over, and succeeds.
  const again = client.connect();
  await accept(1);
  assert.equal((await again).user, 'alice');
  assert.equal(client.state, ClientState.Connected);
  assert.deepEqual(
    states.map((change) => `${change.from}>${change.to}`),
    ['closed>connecting', 'connecting>closed', 'closed>connecting', 'connecting>connected'],
  );
  await client.close();
  assert.equal(states.at(-1)?.error?.code, ClientErrorCode.Closed, 'close() says why too');
});

test('while reconnecting the deadline only rejects that connect() call; the client reconnects and resumes', async () => {
  const { client, sockets, states, accept, request } = harness({ connectTimeoutMs: 30 });
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  first.receive(joined((await request(first, 'join')).rid, { offset: 3, epoch: EPOCH }));
  await joining;

  first.drop(1006);
  assert.equal(client.state, ClientState.Reconnecting);
  let settled = false;
  const waiting = client.connect().then(
    () => undefined,
    (error: unknown) => error,
  );
  void waiting.finally(() => (settled = true));
  // Refuse attempts until the deadline has rejected that connect(), and one more after it: the client keeps trying.
  let refused = 0;
  let refusedAfterDeadline = 0;
  await waitFor(
    () => {
      const socket = sockets[1 + refused];
      if (socket && socket.readyState === 0) {
        socket.drop(1006);
        refused += 1;
        if (settled) refusedAfterDeadline += 1;
      }
      return refusedAfterDeadline >= 1;
    },
    { what: 'refused reconnect attempts past the deadline' },
  );
  assert.ok(isConnectTimeout(await waiting));
  assert.equal(client.state, ClientState.Reconnecting, 'still reconnecting: the deadline does not stop a client that has rooms to resume');
  assert.ok(!states.some((change) => change.to === ClientState.Closed));

  const socket = await accept(1 + refused); // the attempt after the last refused one
  const rejoin = await request(socket, 'join');
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH }, 'the room resumes from where it was');
  socket.receive(joined(rejoin.rid, { offset: 3, epoch: EPOCH }, [], true));
  await waitFor(() => client.state === ClientState.Connected, { what: 'reconnected' });
  await client.close();
});

test('connectTimeoutMs: false waits for ever; bad values fail at construction', async () => {
  assert.throws(() => harness({ connectTimeoutMs: 0 }), RangeError);
  assert.throws(() => harness({ connectTimeoutMs: 1.5 }), /connectTimeoutMs must be a positive integer or false/);
  const { client, accept } = harness({ connectTimeoutMs: false });
  const connecting = client.connect();
  await accept(0);
  await connecting;
  await client.close();
});
