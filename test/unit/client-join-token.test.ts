/**
 * Join tokens in the SDK (issue 17) against the scripted fake server: the
 * token goes out as `join.token`, again on the rejoin of a new connection
 * (a fresh one from `getToken`, which learns the room), never on a gap fill
 * of the same connection (the grant lasts there, and an expired token would
 * be refused); a failing `getToken` rejects the join, or is retried during a
 * rejoin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientErrorCode, NerveClientError } from '../../packages/client/src/index.js';
import { EPOCH, chat, harness, joined } from '../helpers/fake-server.js';
import { waitFor } from '../helpers/wait.js';

test('join({ token }) sends join.token, and sends it again when the room is rejoined on a new connection', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.room('lobby').join({ token: 'jt-1' });
  const join = await request(first, 'join');
  assert.equal(join.token, 'jt-1');
  first.receive(joined(join.rid, { offset: 2, epoch: EPOCH }));
  await joining;

  // A gap on the same connection: the fill is a join with `since` and no token.
  first.receive(chat(5));
  const fill = await request(first, 'join', 1);
  assert.deepEqual(fill.since, { offset: 2, epoch: EPOCH });
  assert.equal(fill.token, undefined, 'a fill on the joined connection needs no token');
  first.receive(joined(fill.rid, { offset: 5, epoch: EPOCH }, [chat(3), chat(4), chat(5)]));
  await waitFor(() => client.position('lobby')?.offset === 5, { what: 'the fill applied' });

  first.drop(1006);
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  assert.equal(rejoin.token, 'jt-1', 'a new connection must show the join token again');
  assert.deepEqual(rejoin.since, { offset: 5, epoch: EPOCH });
  second.receive(joined(rejoin.rid, { offset: 5, epoch: EPOCH }, [], true));
  await waitFor(() => client.state === 'connected', { what: 'connected' });
  await client.close();
});

test('getToken is asked for a fresh join token for the join and for every rejoin, with the room', async () => {
  const { client, accept, request } = harness();
  const asked: string[] = [];
  const getToken = async (room: string) => {
    asked.push(room);
    return `jt-${room}-${asked.length}`;
  };
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby', { getToken, token: 'ignored' });
  const join = await request(first, 'join');
  assert.equal(join.token, 'jt-lobby-1', 'getToken wins over token');
  first.receive(joined(join.rid, { offset: 0, epoch: EPOCH }));
  await joining;

  first.drop(1006);
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  assert.equal(rejoin.token, 'jt-lobby-2');
  second.receive(joined(rejoin.rid, { offset: 0, epoch: EPOCH }, [], true));
  await waitFor(() => client.state === 'connected', { what: 'connected' });
  assert.deepEqual(asked, ['lobby', 'lobby']);
  await client.close();
});

test('a getToken that fails rejects join() with token_failed, and sends nothing', async () => {
  const { client, accept } = harness();
  void client.connect();
  const socket = await accept(0);
  await assert.rejects(
    client.join('vip', {
      getToken: () => Promise.reject(new Error('backend down')),
    }),
    (error: unknown) => {
      assert.ok(error instanceof NerveClientError);
      assert.equal(error.code, ClientErrorCode.TokenFailed);
      assert.equal(error.room, 'vip');
      assert.equal((error.cause as Error).message, 'backend down');
      return true;
    },
  );
  await assert.rejects(client.join('vip', { getToken: async () => '' }), { code: 'token_failed' });
  assert.equal(socket.ops('join').length, 0);
  assert.deepEqual(client.rooms(), [], 'a room never joined is forgotten');
  await client.close();
});

test('a getToken that fails during a rejoin is an error event of the room, and the rejoin is retried', async () => {
  const { client, accept, request } = harness();
  let fail = false;
  let calls = 0;
  const getToken = async () => {
    calls += 1;
    if (fail) throw new Error('token endpoint down');
    return `jt-${calls}`;
  };
  void client.connect();
  const first = await accept(0);
  const room = client.room('lobby');
  const roomErrors: NerveClientError[] = [];
  room.on('error', (error) => roomErrors.push(error));
  const joining = room.join({ getToken });
  first.receive(joined((await request(first, 'join')).rid, { offset: 1, epoch: EPOCH }));
  await joining;

  fail = true;
  first.drop(1006);
  const second = await accept(1);
  await waitFor(() => roomErrors.length >= 1, { what: 'the token failure reported on the room' });
  assert.equal(roomErrors[0]!.code, ClientErrorCode.TokenFailed);
  assert.equal(roomErrors[0]!.room, 'lobby');
  fail = false;
  const rejoin = await request(second, 'join');
  assert.match(String(rejoin.token), /^jt-\d+$/, 'the retried rejoin carries a fresh token');
  assert.deepEqual(rejoin.since, { offset: 1, epoch: EPOCH });
  second.receive(joined(rejoin.rid, { offset: 1, epoch: EPOCH }, [], true));
  await waitFor(() => client.rooms().length === 1 && second.ops('join').length === 1);
  await client.close();
});
