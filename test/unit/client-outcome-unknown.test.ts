/**
 * The SDK's chat retry on `outcome_unknown` (docs/protocol.md, Error codes):
 * a chat publish whose store did not answer in time is re-sent with the
 * same cmid after a backoff, so the app sees exactly one ack per message,
 * through several unknown outcomes and a reconnect; signals are not
 * re-sent; a publish that never gets an ack rejects with `timeout`; close
 * rejects one waiting for its re-send. Scripted fake WebSocket, no server,
 * no timing thresholds (retry delays are made tiny, waits are for conditions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientErrorCode, ErrorCode, NerveClientError } from '../../packages/client/src/index.js';
import type { ServerFrame } from '../../packages/protocol/src/frames.js';
import { EPOCH, harness } from '../helpers/fake-server.js';

const unknown = (rid: string | number): ServerFrame => ({ op: 'error', rid, code: 'outcome_unknown', message: 'the history did not answer in time' });

async function joinedLobby(h: ReturnType<typeof harness>) {
  void h.client.connect();
  const socket = await h.accept(0);
  const joining = h.client.join('lobby');
  const join = await h.request(socket, 'join');
  socket.receive({ op: 'joined', rid: join.rid, room: 'lobby', members: [], history: [], position: { offset: 0, epoch: EPOCH } });
  await joining;
  return socket;
}

test('a chat publish answered outcome_unknown is re-sent with the same cmid until acked: one ack for the app', async () => {
  const h = harness();
  const socket = await joinedLobby(h);
  const errors: NerveClientError[] = [];
  h.client.on('error', (error) => errors.push(error));
  let settled = 0;
  const publishing = h.client.publish('lobby', { text: 'hi' }).finally(() => (settled += 1));
  const first = await h.request(socket, 'publish', 0);
  socket.receive(unknown(first.rid));
  const second = await h.request(socket, 'publish', 1);
  assert.equal(second.cmid, first.cmid, 'the re-send keeps the cmid');
  assert.notEqual(second.rid, first.rid);
  // The store is still down for the re-send: not sent this time, but the first try may be stored, so it is re-sent again.
  socket.receive({ op: 'error', rid: second.rid, code: 'unavailable', message: 'history store unavailable' });
  const third = await h.request(socket, 'publish', 2);
  assert.equal(third.cmid, first.cmid);
  // The first try had been stored: the re-send is acked as a duplicate of it.
  socket.receive({ op: 'ack', rid: third.rid, id: 'm1', ts: 1, offset: 1, epoch: EPOCH, duplicate: true });
  const ack = await publishing;
  assert.deepEqual([ack.id, ack.offset, ack.duplicate], ['m1', 1, true]);
  // A late answer to an earlier try changes nothing.
  socket.receive({ op: 'ack', rid: first.rid, id: 'm1', ts: 1, offset: 1, epoch: EPOCH });
  assert.equal(settled, 1, 'settled once');
  assert.equal(socket.sent.filter((frame) => frame.op === 'publish').length, 3, 'no further re-send after the ack');
  assert.deepEqual(
    errors.map((error) => error.code),
    [],
    'outcome_unknown on a chat publish is not surfaced: it is retried',
  );
  await h.client.close();
});

test('a re-send pending when the socket drops goes out on the next connection, same cmid', async () => {
  const h = harness({ reconnect: { minDelayMs: 50, maxDelayMs: 60 } });
  const socket = await joinedLobby(h);
  const publishing = h.client.publish('lobby', 'x', { cmid: 'fixed' });
  const first = await h.request(socket, 'publish', 0);
  socket.receive(unknown(first.rid));
  socket.drop();
  const next = await h.accept(1);
  const rejoin = await h.request(next, 'join');
  next.receive({ op: 'joined', rid: rejoin.rid, room: 'lobby', members: [], history: [], position: { offset: 0, epoch: EPOCH }, recovered: true });
  const resent = await h.request(next, 'publish', 0);
  assert.equal(resent.cmid, 'fixed');
  next.receive({ op: 'ack', rid: resent.rid, id: 'm1', ts: 1, offset: 1, epoch: EPOCH });
  assert.equal((await publishing).offset, 1);
  assert.equal(next.sent.filter((frame) => frame.op === 'publish').length, 1, 'sent once on the new connection');
  await h.client.close();
});

test('a chat publish answered unavailable at its first try rejects: nothing was stored', async () => {
  const h = harness();
  const socket = await joinedLobby(h);
  const publishing = h.client.publish('lobby', 'x');
  const publish = await h.request(socket, 'publish');
  socket.receive({ op: 'error', rid: publish.rid, code: 'unavailable', message: 'history store unavailable' });
  await assert.rejects(publishing, (error: unknown) => error instanceof NerveClientError && error.code === ErrorCode.Unavailable);
  await h.client.close();
});

test('signals answered outcome_unknown reject with that code (at most once: never re-sent)', async () => {
  const h = harness();
  const socket = await joinedLobby(h);
  const signalling = h.client.signal('bob', 'candidate', { c: 1 });
  const signal = await h.request(socket, 'signal');
  socket.receive(unknown(signal.rid));
  await assert.rejects(signalling, (error: unknown) => error instanceof NerveClientError && error.code === ErrorCode.OutcomeUnknown);
  assert.equal(socket.sent.filter((frame) => frame.op === 'signal').length, 1);
  await h.client.close();
});

test('a chat publish never acked rejects with timeout; close rejects one waiting for its re-send', async () => {
  const h = harness({ requestTimeoutMs: 300, reconnect: { minDelayMs: 1, maxDelayMs: 2 } });
  const socket = await joinedLobby(h);
  const publishing = h.client.publish('lobby', 'never');
  socket.receive(unknown((await h.request(socket, 'publish', 0)).rid));
  // Every re-send is answered outcome_unknown too, until the request timeout.
  let answered = 1;
  const stop = setInterval(() => {
    const sent = socket.sent.filter((frame) => frame.op === 'publish');
    for (; answered < sent.length; answered += 1) socket.receive(unknown(sent[answered]!.rid));
  }, 5);
  try {
    await assert.rejects(publishing, (error: unknown) => error instanceof NerveClientError && error.code === ClientErrorCode.Timeout);
  } finally {
    clearInterval(stop);
  }

  const slow = harness({ reconnect: { minDelayMs: 60_000, maxDelayMs: 60_000 }, requestTimeoutMs: 120_000 });
  const slowSocket = await joinedLobby(slow);
  const waiting = slow.client.publish('lobby', 'waits');
  slowSocket.receive(unknown((await slow.request(slowSocket, 'publish', 0)).rid));
  await slow.client.close();
  await assert.rejects(waiting, (error: unknown) => error instanceof NerveClientError && error.code === ClientErrorCode.Closed);
  await h.client.close();
});

test('a tenant quota: a per-second refusal of a re-send is retried, a first refusal rejects naming the quota', async () => {
  const h = harness();
  const socket = await joinedLobby(h);
  const publishing = h.client.publish('lobby', 'x', { cmid: 'q1' });
  const first = await h.request(socket, 'publish', 0);
  socket.receive(unknown(first.rid));
  const second = await h.request(socket, 'publish', 1);
  // The first try may be stored: a per-second quota (retryAfterMs) is no answer about it, so it is re-sent.
  socket.receive({ op: 'error', rid: second.rid, code: 'quota_exceeded', message: 'tenant quota exceeded: publishes', retryAfterMs: 5, quota: 'publishes' });
  const third = await h.request(socket, 'publish', 2);
  assert.equal(third.cmid, 'q1');
  socket.receive({ op: 'ack', rid: third.rid, id: 'm1', ts: 1, offset: 1, epoch: EPOCH, duplicate: true });
  assert.equal((await publishing).duplicate, true);
  const refused = h.client.publish('lobby', 'y');
  const publish = await h.request(socket, 'publish', 3);
  socket.receive({ op: 'error', rid: publish.rid, code: 'quota_exceeded', message: 'tenant quota exceeded: stored_bytes', quota: 'stored_bytes' });
  await assert.rejects(
    refused,
    (error: unknown) => error instanceof NerveClientError && error.code === ErrorCode.QuotaExceeded && error.quota === 'stored_bytes',
  );
  await h.client.close();
});
