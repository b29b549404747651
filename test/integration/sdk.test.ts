/**
 * The SDK against a real node (`nerve serve` as a child process): chat order
 * and offsets, signal fan-out to every connection of one user, presence
 * events, and reconnect + resume after the connection is cut by a TCP proxy
 * standing between client and node (the deterministic way to drop a socket
 * "from the network").
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import {
  ClientState,
  ErrorCode,
  NerveClient,
  NerveClientError,
  type ChatMessage,
  type MessageFrame,
  type NerveClientEvents,
  type NerveClientOptions,
  type SignalDelivery,
} from '../../packages/client/src/index.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

let node: NodeProcess;
const clients: NerveClient[] = [];

before(async () => {
  node = await startNode();
});

after(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await node.stop();
});

function client(user: string, options: Partial<NerveClientOptions> = {}): NerveClient {
  const created = new NerveClient({
    url: node.wsUrl,
    user,
    WebSocket,
    requestTimeoutMs: 5000,
    reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    ...options,
  });
  clients.push(created);
  return created;
}

/** The next `name` event of `target`, typed by the client's event map; rejects after `timeoutMs`. */
function once<K extends keyof NerveClientEvents>(target: NerveClient, name: K, timeoutMs = 5000): Promise<NerveClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event ${String(name)}`));
    }, timeoutMs);
    const off = target.once(name, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

function chats(target: NerveClient, room: string): ChatMessage[] {
  const seen: ChatMessage[] = [];
  target.on('message', (message: MessageFrame) => {
    if (message.class === 'chat' && message.room === room) seen.push(message);
  });
  return seen;
}

test('two clients chat: both see every message, in one order, with offsets increasing by 1', async () => {
  const room = testNamespace('chat');
  const alice = client('alice');
  const bob = client('bob');
  await Promise.all([alice.connect(), bob.connect()]);
  const aliceSaw = chats(alice, room);
  const bobSaw = chats(bob, room);
  const joinedA = await alice.join(room);
  await bob.join(room);

  const total = 20;
  const acks = await Promise.all(Array.from({ length: total }, (_, i) => (i % 2 === 0 ? alice : bob).publish(room, { n: i })));
  assert.ok(acks.every((ack) => typeof ack.offset === 'number' && ack.duplicate !== true));
  await waitFor(() => aliceSaw.length === total && bobSaw.length === total, { what: 'every message at both' });

  const order = (seen: ChatMessage[]) => seen.map((message) => `${message.offset}:${JSON.stringify(message.data)}`);
  assert.deepEqual(order(aliceSaw), order(bobSaw), 'one order for everyone');
  const offsets = aliceSaw.map((message) => message.offset);
  const first = joinedA.position.offset + 1;
  assert.deepEqual(
    offsets,
    Array.from({ length: total }, (_, i) => first + i),
  );
  assert.deepEqual(alice.position(room), { offset: first + total - 1, epoch: joinedA.position.epoch });
  // Each sender's own messages came back with the cmid it generated.
  assert.ok(aliceSaw.every((message) => typeof message.cmid === 'string'));
});

test('a signal reaches every connection of its target user and nobody else', async () => {
  const [dana1, dana2, erin, frank] = [client('dana'), client('dana'), client('erin'), client('frank')];
  await Promise.all([dana1, dana2, erin, frank].map((c) => c.connect()));
  const received = new Map<NerveClient, SignalDelivery[]>();
  for (const c of [dana1, dana2, erin, frank]) {
    const list: SignalDelivery[] = [];
    received.set(c, list);
    c.on('signal', (signal) => list.push(signal));
  }
  const ack = await erin.signal('dana', 'offer', { sdp: 'v=0' });
  assert.equal(typeof ack.id, 'string');
  await waitFor(() => received.get(dana1)!.length === 1 && received.get(dana2)!.length === 1, { what: 'both dana connections' });
  for (const c of [dana1, dana2]) {
    const [signal] = received.get(c)!;
    assert.equal(signal?.from, 'erin');
    assert.equal(signal?.kind, 'offer');
    assert.equal(signal?.fromConn, erin.connId);
    assert.deepEqual(signal?.data, { sdp: 'v=0' });
  }
  // Signals are ordered per sender → recipient: had the offer gone to frank,
  // it would have arrived before this sentinel.
  await erin.signal('frank', 'custom', 'sentinel');
  await waitFor(() => received.get(frank)!.length === 1, { what: 'sentinel at frank' });
  assert.deepEqual(
    received.get(frank)!.map((signal) => signal.data),
    ['sentinel'],
  );
  await erin.ping();
  assert.equal(received.get(erin)!.length, 0, 'the sender does not get its own signal');

  await assert.rejects(erin.signal('nobody-home', 'offer', {}), (error: unknown) => {
    assert.ok(error instanceof NerveClientError);
    assert.equal(error.code, ErrorCode.PeerOffline);
    return true;
  });
});

test('presence: member_joined and member_left arrive, presence() lists members', async () => {
  const room = testNamespace('presence');
  const gina = client('gina');
  const hank = client('hank');
  await Promise.all([gina.connect(), hank.connect()]);
  await gina.join(room);
  const joinedEvent = once(gina, 'member_joined');
  const joined = await hank.join(room);
  assert.deepEqual(joined.members.map((member) => member.user).sort(), ['gina', 'hank']);
  assert.deepEqual(await joinedEvent.then((event) => [event.room, event.user]), [room, 'hank']);
  assert.deepEqual((await gina.presence(room)).map((member) => member.user).sort(), ['gina', 'hank']);

  const leftEvent = once(gina, 'member_left');
  await hank.leave(room);
  assert.deepEqual(await leftEvent.then((event) => [event.room, event.user]), [room, 'hank']);
  assert.deepEqual(
    (await gina.presence(room)).map((member) => member.user),
    ['gina'],
  );
  await hank.leave(room); // idempotent
});

test('after the connection is cut, the client reconnects, rejoins and recovers the missed messages', async () => {
  const room = testNamespace('resume');
  const proxy = await startTcpProxy(node.port);
  try {
    const ivy = client('ivy', { url: `ws://127.0.0.1:${proxy.port}/ws` });
    const jack = client('jack');
    await Promise.all([ivy.connect(), jack.connect()]);
    const ivySaw = chats(ivy, room);
    await ivy.join(room);
    await jack.join(room);
    await jack.publish(room, 'before');
    await waitFor(() => ivySaw.length === 1, { what: 'first message at ivy' });

    // Cut ivy's connection and keep her out while jack writes.
    const states: string[] = [];
    ivy.on('state', ({ to }) => states.push(to));
    const left = once(jack, 'member_left');
    proxy.setRefusing(true);
    proxy.cut();
    await waitFor(() => ivy.state === ClientState.Reconnecting, { what: 'ivy reconnecting' });
    assert.equal((await left).user, 'ivy', 'the node noticed the dropped socket');
    for (const text of ['missed-1', 'missed-2', 'missed-3']) await jack.publish(room, text);

    // Let her back in: she rejoins from her last offset and gets exactly what she missed.
    const rejoined = once(ivy, 'rejoined', 10_000);
    const back = once(jack, 'member_joined', 10_000);
    proxy.setRefusing(false);
    const answer = await rejoined;
    assert.equal(answer.room, room);
    assert.equal(answer.recovered, true);
    assert.equal((await back).user, 'ivy');
    await waitFor(() => ivySaw.length === 4, { what: 'missed messages replayed' });
    assert.deepEqual(
      ivySaw.map((message) => message.data),
      ['before', 'missed-1', 'missed-2', 'missed-3'],
    );
    const offsets = ivySaw.map((message) => message.offset);
    assert.deepEqual(
      offsets,
      offsets.map((_, i) => offsets[0]! + i),
      'no gap, no duplicate',
    );
    assert.equal(ivy.state, ClientState.Connected);
    assert.ok(states.includes(ClientState.Reconnecting) && states.at(-1) === ClientState.Connected);

    // And the connection works as before.
    await ivy.publish(room, 'after');
    await waitFor(() => ivySaw.length === 5, { what: 'live message after the resume' });
  } finally {
    await proxy.close();
  }
});
