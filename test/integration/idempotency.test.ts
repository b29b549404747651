/**
 * Idempotent chat across reconnects: 1,000 publishes, each sent twice with
 * the same client message id — the second time after the socket was cut
 * (terminated mid-batch, so some first sends were acked, some processed but
 * unacked, some never read) and the publisher reconnected, alternately to
 * the other node. Exactly 1,000 messages end up in the history, and a member
 * on the other node receives each exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const env = testNamespace('id');
let nodes: NodeProcess[] = [];

before(async () => {
  if (skip) return;
  // Both rate limits off: a refused publish would make the count of first acks depend on timing.
  const limits = ['--rate-per-second', '1000000', '--rate-burst', '1000000', '--room-rate-per-second', '1000000', '--room-rate-burst', '1000000'];
  const args = ['--redis-url', SHARED_REDIS_URL, '--env', env, ...limits];
  nodes = await Promise.all([startNode({ args }), startNode({ args })]);
});

after(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
  if (!skip) await deleteNamespace(SHARED_REDIS_URL, env);
});

const TOTAL = 1000;
const BATCH = 100;

it('1,000 publishes sent twice with the same cmid: stored once, delivered once', { skip, timeout: 90_000 }, async () => {
  const [a, b] = nodes as [NodeProcess, NodeProcess];
  const room = testNamespace('idem');
  const member = await RawClient.connect(b.wsUrl, 'member');
  const start = await member.request({ op: 'join', room });
  const deliveries = new Map<string, number>();
  member.socket.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as Frame;
    if (frame.op === 'message' && typeof frame.cmid === 'string') deliveries.set(frame.cmid, (deliveries.get(frame.cmid) ?? 0) + 1);
  });

  const firstAcks = new Map<string, Frame>();
  const secondAcks = new Map<string, Frame>();
  let duplicates = 0;
  for (let batch = 0; batch < TOTAL / BATCH; batch += 1) {
    const cmids = Array.from({ length: BATCH }, (_, i) => `m-${batch * BATCH + i}`);
    // First send, on a connection cut once about half the acks are in.
    const first = await RawClient.connect((batch % 2 === 0 ? a : b).wsUrl, 'sender');
    await first.request({ op: 'join', room, history: 0 });
    const rids = new Map<number, string>();
    for (const cmid of cmids) {
      const rid = first.rid();
      rids.set(rid, cmid);
      first.send({ op: 'publish', rid, room, class: 'chat', data: { cmid }, cmid });
    }
    // waitFor takes the frame it matched out of `frames`: keep it, it is one of the first acks.
    const half = await first.waitFor((f) => f.op === 'ack' && typeof f.rid === 'number' && f.rid >= [...rids.keys()][BATCH / 2]!, 10_000, 'half the acks');
    first.socket.terminate();
    await first.closed;
    const answers = [half, ...first.frames].filter((frame) => typeof frame.rid === 'number' && rids.has(frame.rid));
    assert.deepEqual(
      answers.filter((frame) => frame.op !== 'ack'),
      [],
      'the first sends are only ever acked',
    );
    // Acks come in rid order (one ordered queue per connection): the half mark means at least BATCH / 2 + 1 of them.
    assert.ok(answers.length > BATCH / 2, `batch ${batch}: ${answers.length} first acks`);
    for (const frame of answers) firstAcks.set(rids.get(frame.rid as number)!, frame);

    // Second send, same cmids, after reconnecting to the other node.
    const second = await RawClient.connect((batch % 2 === 0 ? b : a).wsUrl, 'sender');
    await second.request({ op: 'join', room, history: 0 });
    const pending = cmids.map((cmid) => {
      const rid = second.rid();
      second.send({ op: 'publish', rid, room, class: 'chat', data: { cmid }, cmid });
      return [cmid, rid] as const;
    });
    for (const [cmid, rid] of pending) {
      const ack = await second.waitFor((f) => f.rid === rid, 10_000, `ack of ${cmid}`);
      assert.equal(ack.op, 'ack', JSON.stringify(ack));
      secondAcks.set(cmid, ack);
      if (ack.duplicate === true) duplicates += 1;
    }
    second.close();
  }

  // Every first ack is repeated as a duplicate with the same position.
  assert.ok(firstAcks.size > TOTAL / 2, `first acks: ${firstAcks.size}`);
  for (const [cmid, ack] of firstAcks) {
    const again = secondAcks.get(cmid)!;
    assert.equal(again.duplicate, true, `${cmid} re-sent after its ack must be a duplicate`);
    assert.deepEqual([again.id, again.offset, again.epoch], [ack.id, ack.offset, ack.epoch]);
  }
  assert.ok(duplicates >= firstAcks.size);
  const offsets = [...secondAcks.values()].map((ack) => ack.offset as number).sort((x, y) => x - y);
  assert.deepEqual(
    offsets,
    Array.from({ length: TOTAL }, (_, i) => i + 1),
    'one offset per cmid, no hole',
  );

  // History holds exactly 1,000, one per cmid.
  const reader = await RawClient.connect(a.wsUrl, 'reader');
  const joined = await reader.request({ op: 'join', room, since: { offset: 0, epoch: (start.position as { epoch: string }).epoch } }, 10_000);
  assert.equal(joined.recovered, true);
  const history = joined.history as Array<{ cmid: string; offset: number }>;
  assert.equal(history.length, TOTAL);
  assert.equal(new Set(history.map((m) => m.cmid)).size, TOTAL);
  reader.close();

  // The member on the other node got each exactly once.
  await waitFor(() => [...deliveries.values()].reduce((sum, n) => sum + n, 0) >= TOTAL, { timeoutMs: 10_000, what: '1,000 deliveries' });
  await member.request({ op: 'ping' });
  assert.equal(deliveries.size, TOTAL);
  assert.deepEqual(
    [...deliveries.values()].filter((n) => n !== 1),
    [],
    'no duplicate delivery',
  );
  member.close();
});
