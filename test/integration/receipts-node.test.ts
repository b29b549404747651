/**
 * Read positions on one node (docs/protocol.md, "Read positions"): the
 * `read` op on the wire (forward only, answered with the stored position,
 * typed refusals), the `read` push to the room, `joined.read`, `unread` and
 * `reads`, and the SDK's `markRead`, `unread`, `readPositions` and `read`
 * event. The cluster cases are in cluster-redis.test.ts and
 * cluster-rabbitmq.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { NerveClient, type ReadPushFrame } from '../../packages/client/src/index.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

describe('read positions (single node)', () => {
  let node: NodeProcess;
  const raws: RawClient[] = [];
  const sdks: NerveClient[] = [];

  async function connect(user: string): Promise<RawClient> {
    const client = await RawClient.connect(node.wsUrl, user);
    raws.push(client);
    return client;
  }

  before(async () => {
    node = await startNode();
  });

  after(async () => {
    for (const client of raws) client.close();
    await Promise.all(sdks.map((client) => client.close()));
    await node.stop();
  });

  it('moves a read position forward only, pushes it to the room, and shows it at the next join', async () => {
    const room = testNamespace('rd');
    const alice = await connect('alice');
    const bob = await connect('bob');
    assert.equal((await alice.request({ op: 'join', room })).op, 'joined');
    const joinedBob = await bob.request({ op: 'join', room });
    assert.deepEqual([joinedBob.read, joinedBob.unread, joinedBob.reads], [0, 0, {}]);
    for (const text of ['one', 'two', 'three']) assert.equal((await alice.request({ op: 'publish', room, class: 'chat', data: text })).op, 'ack');
    const epoch = (joinedBob.position as { epoch: string }).epoch;

    const read = await bob.request({ op: 'read', room, offset: 2, epoch });
    assert.deepEqual(read, { op: 'read', rid: read.rid, room, offset: 2, epoch });
    const push = await alice.waitFor((f) => f.op === 'read', 5000, 'the read push');
    assert.deepEqual([push.room, push.user, push.offset, push.epoch], [room, 'bob', 2, epoch]);
    // Lower: nothing moves, the answer is what is stored.
    assert.equal((await bob.request({ op: 'read', room, offset: 1 })).offset, 2);

    assert.equal((await bob.request({ op: 'leave', room })).op, 'left');
    const again = await bob.request({ op: 'join', room });
    assert.deepEqual([again.read, again.unread, again.reads], [2, 1, {}], 'alice never read: no position of hers');
    const rejoinedAlice = await connect('alice');
    const joinedAlice = await rejoinedAlice.request({ op: 'join', room });
    // Her own messages are not unread to her; bob's position is listed.
    assert.deepEqual([joinedAlice.read, joinedAlice.unread, joinedAlice.reads], [0, 0, { bob: 2 }]);
  });

  it('answers bad reads with typed codes', async () => {
    const room = testNamespace('rdx');
    const carol = await connect('carol');
    assert.equal((await carol.request({ op: 'read', room, offset: 1 })).code, 'not_joined');
    assert.equal((await carol.request({ op: 'join', room })).op, 'joined');
    assert.equal((await carol.request({ op: 'read', room, offset: -1 })).code, 'invalid_frame');
    assert.equal((await carol.request({ op: 'read', room, offset: 0, epoch: 'not-this-one' })).code, 'epoch_mismatch');
    assert.equal((await carol.request({ op: 'read', room: 'a b', offset: 0 })).code, 'invalid_room');
    // Nothing stored yet: a position past the log is taken as its newest offset, 0.
    assert.equal((await carol.request({ op: 'read', room, offset: 500 })).offset, 0);
  });

  it('gives the SDK unread counts, markRead, the others’ positions and read events', async () => {
    const room = testNamespace('rds');
    const sdk = (user: string): NerveClient => {
      const client = new NerveClient({ url: node.wsUrl, user, WebSocket, requestTimeoutMs: 5000, reconnect: { minDelayMs: 20, maxDelayMs: 100 } });
      sdks.push(client);
      return client;
    };
    const dan = sdk('dan');
    const erin = sdk('erin');
    await Promise.all([dan.connect(), erin.connect()]);
    const danRoom = dan.room(room);
    await danRoom.join();
    for (const text of ['a', 'b']) await danRoom.publish(text);
    const erinRoom = erin.room(room);
    await erinRoom.join();
    assert.deepEqual([erinRoom.read, erinRoom.unread], [0, 2]);

    const pushes: ReadPushFrame[] = [];
    danRoom.on('read', (push) => pushes.push(push));
    assert.equal(await erinRoom.markRead(1), 1);
    assert.equal(erinRoom.unread, 1);
    const push = await waitFor(() => pushes[0], { what: "erin's read event at dan" });
    assert.deepEqual([push.user, push.offset], ['erin', 1]);
    assert.equal(danRoom.readPositions.get('erin'), 1);

    // Live chat counts until read; the default marks the newest loaded.
    await danRoom.publish('c');
    await waitFor(() => erinRoom.unread === 2, { what: 'a live message counted' });
    assert.equal(await erinRoom.markRead(), 3);
    assert.equal(erinRoom.unread, 0);
    await waitFor(() => danRoom.readPositions.get('erin') === 3, { what: "erin's newest position at dan" });
  });
});
