/**
 * NerveClient against a scripted fake WebSocket: state machine, request /
 * answer matching, timeouts, reconnect with resume, chat retry with the same
 * cmid, terminal close codes. No server, no timing thresholds: reconnect
 * delays are made tiny and every wait is for a condition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientErrorCode, ClientState, CloseCode, ErrorCode, NerveClient, NerveClientError } from '../../packages/client/src/index.js';
import type { ChatMessage, MessageFrame } from '../../packages/protocol/src/frames.js';
import { waitFor } from '../helpers/wait.js';
import { EPOCH, FakeSocket, harness } from '../helpers/fake-server.js';

function chat(room: string, offset: number, data: unknown = offset, cmid?: string): ChatMessage {
  const message: ChatMessage = { op: 'message', class: 'chat', room, id: `m${offset}`, from: 'bob', ts: 1, offset, epoch: EPOCH, data };
  if (cmid !== undefined) message.cmid = cmid;
  return message;
}

test('connect: closed → connecting → connected, resolves with the welcome; close is idempotent', async () => {
  const { client, states, accept } = harness();
  assert.equal(client.state, ClientState.Closed);
  const connecting = client.connect();
  const socket = await accept(0);
  const frame = await connecting;
  assert.equal(frame.user, 'alice');
  assert.equal(client.user, 'alice');
  assert.equal(client.connId, 'c-0');
  const connect = socket.sent[0]!;
  assert.equal(connect.op, 'connect');
  assert.equal(connect.v, 1);
  assert.equal(connect.user, 'alice');
  assert.deepEqual(await client.connect(), frame, 'connect() when connected resolves at once');

  const first = client.close();
  const second = client.close();
  assert.equal(first, second, 'close() memoizes its promise');
  await first;
  assert.equal(socket.closedWith, CloseCode.Normal);
  assert.deepEqual(
    states.map((s) => `${s.from}>${s.to}`),
    ['closed>connecting', 'connecting>connected', 'connected>closed'],
  );
});

test('constructor rejects bad configuration', () => {
  assert.throws(() => new NerveClient({ url: 'http://x/ws', WebSocket: FakeSocket }), /ws:\/\//);
  assert.throws(() => new NerveClient({ url: 'ws://x/ws', WebSocket: FakeSocket, requestTimeoutMs: 0 }), RangeError);
});

test('requests are matched by rid; error frames reject with the server code', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const socket = await accept(0);

  const joining = client.join('lobby');
  const join = await request(socket, 'join');
  assert.equal(join.room, 'lobby');
  assert.equal(join.since, undefined);
  socket.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 4, epoch: EPOCH } });
  const joined = await joining;
  assert.deepEqual(joined.position, { offset: 4, epoch: EPOCH });
  assert.deepEqual(client.position('lobby'), { offset: 4, epoch: EPOCH });

  const publishing = client.publish('lobby', { text: 'hi' });
  const publish = await request(socket, 'publish');
  assert.equal(publish.class, 'chat');
  assert.equal(typeof publish.cmid, 'string', 'every chat publish gets a cmid');
  socket.receive({ op: 'ack', rid: publish.rid, id: 'x', ts: 1, offset: 5, epoch: EPOCH });
  assert.equal((await publishing).offset, 5);

  const signalling = client.signal('carol', 'offer', { sdp: 'x' });
  const signal = await request(socket, 'signal');
  assert.deepEqual([signal.to, signal.kind], ['carol', 'offer']);
  socket.receive({ op: 'error', rid: signal.rid, code: 'peer_offline', message: 'that user is not connected' });
  await assert.rejects(signalling, (error: unknown) => {
    assert.ok(error instanceof NerveClientError);
    assert.equal(error.code, ErrorCode.PeerOffline);
    return true;
  });

  const errors: NerveClientError[] = [];
  client.on('error', (error) => errors.push(error));
  await client.publish('lobby', { x: 1 }, { class: 'ephemeral', key: 'cursor' });
  const ephemeral = await request(socket, 'publish', 1);
  assert.deepEqual([ephemeral.class, ephemeral.key], ['ephemeral', 'cursor']);
  socket.receive({ op: 'error', rid: ephemeral.rid, code: 'rate_limited', message: 'slow down', retryAfterMs: 50 });
  assert.equal(errors[0]?.code, ErrorCode.RateLimited, 'an error for a fire-and-forget frame becomes an error event');
  assert.equal(errors[0]?.retryAfterMs, 50);
  await client.close();
});

test('a request without an answer rejects with code timeout', async () => {
  const { client, accept } = harness({ requestTimeoutMs: 30 });
  void client.connect();
  await accept(0);
  await assert.rejects(client.ping(), (error: unknown) => error instanceof NerveClientError && error.code === ClientErrorCode.Timeout);
  await client.close();
});

test('reconnect: rejoin from the last position, replay missed messages, then resend unacked chat with the same cmid', async () => {
  const { client, states, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  const join = await request(first, 'join');
  first.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 2, epoch: EPOCH } });
  await joining;

  const messages: MessageFrame[] = [];
  client.on('message', (message) => messages.push(message));
  first.receive(chat('lobby', 3));
  assert.deepEqual(client.position('lobby'), { offset: 3, epoch: EPOCH });

  // A chat publish and a signal are in flight when the socket drops.
  const publishing = client.publish('lobby', 'unacked');
  const published = await request(first, 'publish');
  const signalling = client.signal('bob', 'candidate', {});
  await request(first, 'signal');
  const rejoinedEvents: string[] = [];
  client.on('rejoined', (joined) => rejoinedEvents.push(joined.room));

  first.drop(CloseCode.InternalError, 'boom');
  await assert.rejects(signalling, (error: unknown) => error instanceof NerveClientError && error.code === ClientErrorCode.Disconnected);
  assert.equal(client.state, ClientState.Reconnecting);

  // Requested while reconnecting: queued until the rejoin is done.
  const queuedPing = client.ping();

  const second = await accept(1);
  const rejoin = await request(second, 'join');
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH }, 'resume from the last offset seen');
  assert.equal(second.sent.filter((frame) => frame.op === 'publish').length, 0, 'nothing resent before the rejoin answer');
  second.receive({
    op: 'joined',
    rid: rejoin.rid,
    room: 'lobby',
    members: [],
    history: [chat('lobby', 3), chat('lobby', 4)],
    position: { offset: 4, epoch: EPOCH },
    recovered: true,
  });
  const resent = await request(second, 'publish');
  assert.equal(resent.cmid, published.cmid, 'the retry carries the original cmid');
  assert.deepEqual(
    messages.map((message) => (message.class === 'chat' ? message.offset : -1)),
    [3, 4],
    'offset 3 was already seen and is not delivered twice; 4 was missed and is replayed',
  );
  assert.deepEqual(rejoinedEvents, ['lobby']);
  second.receive({ op: 'ack', rid: resent.rid, id: 'y', ts: 2, offset: 5, epoch: EPOCH, duplicate: true });
  assert.equal((await publishing).duplicate, true);
  const ping = await request(second, 'ping');
  second.receive({ op: 'pong', rid: ping.rid, ts: 3 });
  assert.equal(typeof (await queuedPing), 'number');

  assert.deepEqual(
    states.map((s) => `${s.from}>${s.to}`),
    ['closed>connecting', 'connecting>connected', 'connected>reconnecting', 'reconnecting>connected'],
  );
  await client.close();
});

test('a rejoin answered recovered:false emits recovery_failed and adopts the new position', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  const join = await request(first, 'join');
  first.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 9, epoch: EPOCH } });
  await joining;
  const failures: string[] = [];
  client.on('recovery_failed', ({ room }) => failures.push(room));
  first.drop(CloseCode.GoingAway, 'drain');
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  second.receive({
    op: 'joined',
    rid: rejoin.rid,
    room: 'lobby',
    members: [],
    history: [],
    position: { offset: 2, epoch: 'e2' },
    recovered: false,
  });
  await waitFor(() => failures.length === 1, { what: 'recovery_failed' });
  assert.deepEqual(client.position('lobby'), { offset: 2, epoch: 'e2' });
  await client.close();
});

test('a join in flight when the socket drops is sent again and resolves on the new connection', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  await request(first, 'join');
  first.drop();
  const second = await accept(1);
  const join = await request(second, 'join');
  assert.equal(second.sent.filter((frame) => frame.op === 'join').length, 1, 'joined once, not also as a rejoin');
  second.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 0, epoch: EPOCH } });
  assert.equal((await joining).room, 'lobby');
  await client.close();
});

test('leaving while disconnected: the room is not rejoined', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  const join = await request(first, 'join');
  first.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 0, epoch: EPOCH } });
  await joining;
  first.drop();
  await client.leave('lobby');
  const second = await accept(1);
  const pinging = client.ping();
  const ping = await request(second, 'ping');
  second.receive({ op: 'pong', rid: ping.rid, ts: 1 });
  await pinging;
  assert.equal(second.sent.filter((frame) => frame.op === 'join').length, 0);
  await client.close();
});

test('terminal close 4001: no reconnect, state closed, pending requests reject', async () => {
  const { client, sockets, states, accept } = harness();
  void client.connect();
  const socket = await accept(0);
  const pinging = client.ping();
  socket.drop(CloseCode.AuthFailed, 'token expired');
  await assert.rejects(pinging, (error: unknown) => error instanceof NerveClientError && error.code === ErrorCode.AuthFailed);
  assert.equal(client.state, ClientState.Closed);
  assert.equal(states.at(-1)?.to, ClientState.Closed);
  assert.equal(sockets.length, 1, 'no second socket');
  await assert.rejects(client.ping(), (error: unknown) => error instanceof NerveClientError && error.code === ClientErrorCode.Closed);
});

test('handshake refused with auth_failed rejects connect() and does not retry', async () => {
  const { client, sockets } = harness({ user: 'not allowed' });
  const connecting = client.connect();
  const socket = await waitFor(() => sockets[0]);
  socket.open();
  const connect = await waitFor(() => socket.last('connect'));
  socket.receive({ op: 'error', rid: connect.rid, code: 'auth_failed', message: 'no' });
  await assert.rejects(connecting, (error: unknown) => error instanceof NerveClientError && error.code === ErrorCode.AuthFailed);
  assert.equal(client.state, ClientState.Closed);
  assert.equal(sockets.length, 1);
});

test('failed first attempts stay in connecting and retry; getToken is called for every attempt', async () => {
  let calls = 0;
  const { client, sockets, states, accept } = harness({
    user: undefined,
    getToken: async () => {
      calls += 1;
      return `token-${calls}`;
    },
  });
  const connecting = client.connect();
  const refused = await waitFor(() => sockets[0]);
  refused.drop(1006);
  const socket = await accept(1);
  await connecting;
  assert.equal(socket.last('connect')?.token, 'token-2');
  assert.equal(calls, 2);
  assert.deepEqual(
    states.map((s) => `${s.from}>${s.to}`),
    ['closed>connecting', 'connecting>connected'],
  );
  await client.close();
});

test('ephemeral publishes are dropped while disconnected and never wait for an ack', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  first.drop();
  await client.publish('lobby', 'typing', { class: 'ephemeral', key: 'typing' });
  const second = await accept(1);
  const pinging = client.ping();
  const ping = await request(second, 'ping');
  second.receive({ op: 'pong', rid: ping.rid, ts: 1 });
  await pinging;
  assert.equal(second.sent.filter((frame) => frame.op === 'publish').length, 0);
  await client.close();
});

test('reconnect: false closes on the first loss', async () => {
  const { client, sockets, accept } = harness({ reconnect: false });
  void client.connect();
  const socket = await accept(0);
  const disconnects: boolean[] = [];
  client.on('disconnected', (info) => disconnects.push(info.willReconnect));
  socket.drop(CloseCode.GoingAway);
  assert.equal(client.state, ClientState.Closed);
  assert.deepEqual(disconnects, [false]);
  assert.equal(sockets.length, 1);
});

test('live messages arriving during a rejoin are delivered after the replayed ones, in offset order', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  const join = await request(first, 'join');
  first.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 3, epoch: EPOCH } });
  await joining;
  const offsets: number[] = [];
  client.on('message', (message) => {
    if (message.class === 'chat') offsets.push(message.offset);
  });
  first.drop();
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  second.receive(chat('lobby', 5));
  second.receive({
    op: 'joined',
    rid: rejoin.rid,
    room: 'lobby',
    members: [],
    history: [chat('lobby', 4), chat('lobby', 5)],
    position: { offset: 5, epoch: EPOCH },
    recovered: true,
  });
  await waitFor(() => offsets.length === 2, { what: 'two messages' });
  assert.deepEqual(offsets, [4, 5]);
  assert.deepEqual(client.position('lobby'), { offset: 5, epoch: EPOCH });
  await client.close();
});
