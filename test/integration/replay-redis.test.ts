/**
 * The recovery table (src/history/recovery.ts) end to end: `join` with
 * `since` against node processes sharing the real Redis, for each row of the
 * table, checking the exact `recovered` flag and exactly the messages
 * returned; and a client that resumes on the OTHER node.
 *
 * Nodes A and B run `--history-size 100 --recovery-limit 20` (the limit is
 * exceeded before anything is trimmed); node C runs `--history-size 5` with
 * the default recovery limit, so a trimmed position is tested without also
 * exceeding the limit. The Redis history trims
 * with `MAXLEN ~` (whole stream nodes), so how much survives a trim is read
 * from the stream itself rather than assumed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const env = testNamespace('rp');
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];
let a: NodeProcess;
let b: NodeProcess;
let c: NodeProcess;

const common = [
  '--redis-url',
  SHARED_REDIS_URL,
  '--env',
  env,
  '--rate-per-second',
  '100000',
  '--rate-burst',
  '100000',
  '--room-rate-per-second',
  '100000',
  '--room-rate-burst',
  '100000',
];

before(async () => {
  if (skip) return;
  [a, b, c] = await Promise.all([
    startNode({ args: [...common, '--history-size', '100', '--recovery-limit', '20'] }),
    startNode({ args: [...common, '--history-size', '100', '--recovery-limit', '20'] }),
    startNode({ args: [...common, '--history-size', '5'] }),
  ]);
  nodes.push(a, b, c);
});

after(async () => {
  for (const client of clients) client.close();
  await Promise.all(nodes.map((node) => node.stop()));
  if (!skip) await deleteNamespace(SHARED_REDIS_URL, env);
});

async function user(node: NodeProcess, name: string): Promise<RawClient> {
  const client = await RawClient.connect(node.wsUrl, name);
  clients.push(client);
  return client;
}

interface Position {
  offset: number;
  epoch: string;
}

async function join(
  client: RawClient,
  room: string,
  since?: Position,
): Promise<Frame & { history: Array<{ offset: number; data: unknown }>; position: Position; recovered?: boolean }> {
  const answer = await client.request({ op: 'join', room, ...(since ? { since } : {}) });
  assert.equal(answer.op, 'joined', JSON.stringify(answer));
  return answer as never;
}

async function leave(client: RawClient, room: string): Promise<void> {
  assert.equal((await client.request({ op: 'leave', room })).op, 'left');
}

/** Publish `count` chat messages numbered from `from`; resolves with the acks. */
async function publish(client: RawClient, room: string, count: number, from = 1): Promise<Frame[]> {
  const rids = Array.from({ length: count }, (_, i) => {
    const rid = client.rid();
    client.send({ op: 'publish', rid, room, class: 'chat', data: { n: from + i }, cmid: `${room}-${from + i}` });
    return rid;
  });
  const acks: Frame[] = [];
  for (const rid of rids) acks.push(await client.waitFor((f) => f.rid === rid, 10_000, `ack ${rid}`));
  for (const ack of acks) assert.equal(ack.op, 'ack', JSON.stringify(ack));
  return acks;
}

const offsets = (history: Array<{ offset: number }>) => history.map((m) => m.offset);
const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

describe('recovery table against 2+ nodes on Redis', { skip }, () => {
  it('empty stream: offset 0 recovers nothing; another epoch does not recover', async () => {
    const room = testNamespace('empty');
    const alice = await user(a, 'alice');
    const fresh = await join(alice, room, { offset: 0, epoch: 'whatever' });
    assert.equal(fresh.recovered, true);
    assert.deepEqual(fresh.history, []);
    assert.equal(fresh.position.offset, 0);
    await leave(alice, room);
    const stale = await join(alice, room, { offset: 3, epoch: 'not-this-one' });
    assert.equal(stale.recovered, false);
    assert.deepEqual(stale.history, []);
    assert.deepEqual(stale.position, fresh.position);
  });

  it('position in the future: recovered false with the most recent messages', async () => {
    const room = testNamespace('future');
    const alice = await user(a, 'alice');
    const joined = await join(alice, room);
    await publish(alice, room, 3);
    const bob = await user(b, 'bob');
    const answer = await join(bob, room, { offset: 10, epoch: joined.position.epoch });
    assert.equal(answer.recovered, false);
    assert.deepEqual(offsets(answer.history), [1, 2, 3]);
    assert.deepEqual(answer.position, { offset: 3, epoch: joined.position.epoch });
    // The same position within range, on the other node, recovers exactly.
    await leave(bob, room);
    const ok = await join(bob, room, { offset: 1, epoch: joined.position.epoch });
    assert.equal(ok.recovered, true);
    assert.deepEqual(offsets(ok.history), [2, 3]);
    assert.deepEqual(
      ok.history.map((m) => m.data),
      [{ n: 2 }, { n: 3 }],
    );
  });

  it('epoch changed (the stream was lost): recovered false, a new epoch from offset 0', async () => {
    const room = testNamespace('epoch');
    const alice = await user(a, 'alice');
    const joined = await join(alice, room);
    await publish(alice, room, 3);
    const admin = new Redis(SHARED_REDIS_URL);
    try {
      const keys = await admin.keys(`${env}:nerve:*{default:${room}}:history:*`);
      assert.ok(keys.length >= 2, `history keys found: ${keys.join(', ')}`);
      await admin.unlink(...keys);
    } finally {
      admin.disconnect();
    }
    const bob = await user(b, 'bob');
    const answer = await join(bob, room, { offset: 3, epoch: joined.position.epoch });
    assert.equal(answer.recovered, false);
    assert.deepEqual(answer.history, []);
    assert.equal(answer.position.offset, 0);
    assert.notEqual(answer.position.epoch, joined.position.epoch);
    const [ack] = await publish(bob, room, 1, 100);
    assert.deepEqual([ack?.offset, ack?.epoch], [1, answer.position.epoch]);
  });

  it('limit exceeded (--recovery-limit 20): 21 missed is not recovered, 20 is', async () => {
    const room = testNamespace('limit');
    const alice = await user(a, 'alice');
    const joined = await join(alice, room);
    await publish(alice, room, 30);
    const bob = await user(b, 'bob');
    const over = await join(bob, room, { offset: 9, epoch: joined.position.epoch });
    assert.equal(over.recovered, false);
    assert.deepEqual(offsets(over.history), range(11, 30), 'the newest 20');
    await leave(bob, room);
    const exact = await join(bob, room, { offset: 10, epoch: joined.position.epoch });
    assert.equal(exact.recovered, true);
    assert.deepEqual(offsets(exact.history), range(11, 30));
    await leave(bob, room);
    const fromZero = await join(bob, room, { offset: 0, epoch: joined.position.epoch });
    assert.equal(fromZero.recovered, false, '30 messages from offset 0 exceed the limit');
  });

  it('position trimmed away (--history-size 5): recovered false with what is kept', async () => {
    const room = testNamespace('trim');
    const carol = await user(c, 'carol');
    const joined = await join(carol, room);
    await publish(carol, room, 250);
    const admin = new Redis(SHARED_REDIS_URL);
    let kept: number[];
    try {
      const [stream] = await admin.keys(`${env}:nerve:*{default:${room}}:history:stream`);
      assert.ok(stream);
      kept = (await admin.xrange(stream, '-', '+')).map(([id]) => Number(id.split('-')[1]));
    } finally {
      admin.disconnect();
    }
    const oldest = kept[0]!;
    assert.ok(oldest > 2 && kept.length < 250, `the stream was trimmed (oldest kept ${oldest})`);
    assert.deepEqual(kept, range(oldest, 250));
    const dave = await user(c, 'dave');
    const trimmed = await join(dave, room, { offset: oldest - 2, epoch: joined.position.epoch });
    assert.equal(trimmed.recovered, false);
    assert.deepEqual(offsets(trimmed.history), kept, 'the kept messages, within the default limit');
    await leave(dave, room);
    const edge = await join(dave, room, { offset: oldest - 1, epoch: joined.position.epoch });
    assert.equal(edge.recovered, true, 'the message right after the position is still kept');
    assert.deepEqual(offsets(edge.history), kept);
  });

  it('a client that reconnects to the OTHER node resumes with exactly the missed messages', async () => {
    const room = testNamespace('resume');
    const erin = await user(a, 'erin');
    const frank = await user(b, 'frank');
    await join(frank, room);
    const first = await join(erin, room);
    await publish(frank, room, 4);
    const seen = await Promise.all([1, 2, 3, 4].map((n) => erin.waitFor((f) => f.op === 'message' && (f.data as { n: number }).n === n)));
    const position = { offset: seen[3]!.offset as number, epoch: first.position.epoch };
    erin.socket.terminate();
    await publish(frank, room, 5, 5);
    const again = await user(b, 'erin');
    const resumed = await join(again, room, position);
    assert.equal(resumed.recovered, true);
    assert.deepEqual(
      resumed.history.map((m) => m.data),
      [5, 6, 7, 8, 9].map((n) => ({ n })),
    );
    assert.deepEqual(offsets(resumed.history), range(position.offset + 1, position.offset + 5));
    assert.deepEqual(resumed.position, { offset: position.offset + 5, epoch: first.position.epoch });
    // Live traffic continues after the resume without a repeat.
    await publish(frank, room, 1, 10);
    const live = await again.waitFor((f) => f.op === 'message');
    assert.equal(live.offset, position.offset + 6);
    assert.equal(again.frames.filter((f) => f.op === 'message').length, 0);
  });
});
