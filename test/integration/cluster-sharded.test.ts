/**
 * `--redis-mode sharded` end to end (project issue 3): a private 3-master
 * Redis Cluster and three `nerve serve` processes seeded with one master's
 * URL. Chat goes through the history script's SPUBLISH, signals through
 * ShardedRedisBus, presence through Lua scripts on the cluster; the checks
 * are the cross-node promises of docs/architecture.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChannelNamer } from '../../src/bus/channels.js';
import { keySlot } from '../../src/redis/key-slot.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;

describe('three nodes on a 3-master Redis Cluster (--redis-mode sharded)', { skip, timeout: 60_000 }, () => {
  const env = testNamespace('cs');
  let cluster: RedisCluster | undefined;
  const nodes: NodeProcess[] = [];
  const clients: RawClient[] = [];

  const node = (index: number): NodeProcess => {
    const found = nodes[index];
    if (!found) throw new Error(`node ${index} not started`);
    return found;
  };
  const connect = async (index: number, user: string): Promise<RawClient> => {
    const client = await RawClient.connect(node(index).wsUrl, user);
    clients.push(client);
    return client;
  };

  before(async () => {
    cluster = await startRedisCluster();
    const seed = cluster.nodes[1]!;
    const started = await Promise.allSettled(
      [0, 1, 2].map((i) =>
        startNode({
          nodeId: `${env}-n${i + 1}`,
          args: ['--redis-mode', 'sharded', '--redis-url', `redis://${seed.host}:${seed.port}`, '--env', env],
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((n) => n.stop(5000)));
    await cluster?.stop();
  });

  it('every node reports its sharded lanes healthy', async () => {
    for (const n of nodes) {
      const response = await fetch(`${n.url}/readyz`);
      assert.equal(response.status, 200, await response.text());
    }
  });

  it('12 clients over 3 nodes get every chat message once, in one order, with contiguous offsets; presence agrees', async () => {
    const room = 'town';
    const members = await Promise.all(Array.from({ length: 12 }, (_, i) => connect(i % 3, `user-${i}`)));
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');

    const perClient = 5;
    const total = perClient * members.length;
    // Every client publishes without waiting, so appends from the three nodes interleave.
    await Promise.all(
      members.map(async (member, index) => {
        const rids = Array.from({ length: perClient }, (_, i) => `c${index}-${i}`);
        for (const [i, rid] of rids.entries()) member.send({ op: 'publish', rid, room, class: 'chat', data: `${index}:${i}` });
        for (const rid of rids) assert.equal((await member.waitFor((f) => f.rid === rid && f.op !== 'message', 10_000, `ack ${rid}`)).op, 'ack');
      }),
    );
    const sequences = await Promise.all(
      members.map(async (member) => {
        const seen: Frame[] = [];
        while (seen.length < total) seen.push(await member.waitFor((f) => f.op === 'message' && f.room === room, 10_000, `message ${seen.length + 1}`));
        return seen;
      }),
    );
    const reference = sequences[0]!.map((m) => m.id);
    assert.equal(new Set(reference).size, total, 'no message twice');
    for (const sequence of sequences) {
      assert.deepEqual(
        sequence.map((m) => m.id),
        reference,
        'one order on every node',
      );
      assert.deepEqual(
        sequence.map((m) => m.offset),
        Array.from({ length: total }, (_, i) => i + 1),
        'contiguous offsets',
      );
      assert.equal(new Set(sequence.map((m) => m.epoch)).size, 1);
    }
    // A ping answered after the last message: had any message been delivered twice, it would be queued by now.
    for (const member of members) {
      await member.request({ op: 'ping' });
      assert.equal(member.frames.filter((f) => f.op === 'message').length, 0, 'exactly once');
    }

    const views = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const answer = await members[i]!.request({ op: 'presence', room });
        return (answer.members as Array<{ user: string }>).map((m) => m.user).sort();
      }),
    );
    const everyone = members.map((_, i) => `user-${i}`).sort();
    for (const view of views) assert.deepEqual(view, everyone, 'presence agrees on every node');

    // The room's channel is a shard channel, in the slot of its history keys.
    const channel = new ChannelNamer({ env, service: 'nerve', hashTags: true }).room('default', room);
    const holders = await Promise.all(cluster!.nodes.map(async ({ port }) => (await cluster!.cli(port, 'pubsub', 'shardnumsub', channel)).trim().split('\n')));
    assert.deepEqual(holders.map((reply) => Number(reply[1])).sort(), [0, 0, 3], `one master holds ${channel} for the 3 nodes`);
  });

  it('an offer and answer between nodes 1 and 3, then 20 candidates in order', async () => {
    const caller = await connect(0, 'caller');
    const callee = await connect(2, 'callee');
    assert.equal((await caller.request({ op: 'signal', to: 'callee', kind: 'offer', data: { sdp: 'offer-sdp' } })).op, 'ack');
    const offer = await callee.waitFor((f) => f.op === 'signal', 5000, 'offer');
    assert.deepEqual([offer.from, offer.kind, offer.data], ['caller', 'offer', { sdp: 'offer-sdp' }]);
    assert.equal((await callee.request({ op: 'signal', to: 'caller', kind: 'answer', data: { sdp: 'answer-sdp' } })).op, 'ack');
    const answer = await caller.waitFor((f) => f.op === 'signal', 5000, 'answer');
    assert.deepEqual([answer.from, answer.kind, answer.data], ['callee', 'answer', { sdp: 'answer-sdp' }]);

    for (let i = 0; i < 20; i += 1) caller.send({ op: 'signal', rid: `ice-${i}`, to: 'callee', kind: 'candidate', data: { i } });
    const candidates: Frame[] = [];
    while (candidates.length < 20)
      candidates.push(await callee.waitFor((f) => f.op === 'signal' && f.kind === 'candidate', 5000, `candidate ${candidates.length}`));
    assert.deepEqual(
      candidates.map((c) => (c.data as { i: number }).i),
      Array.from({ length: 20 }, (_, i) => i),
    );
    for (let i = 0; i < 20; i += 1) assert.equal((await caller.waitFor((f) => f.rid === `ice-${i}`, 5000, `ack ice-${i}`)).op, 'ack');
  });

  it('a signal to a user connected nowhere is answered peer_offline', async () => {
    const lonely = await connect(1, 'lonely');
    const reply = await lonely.request({ op: 'signal', to: 'nobody-anywhere', kind: 'offer', data: {} });
    assert.equal(reply.op, 'error');
    assert.equal(reply.code, 'peer_offline');
  });

  it("30 rooms' channels land on all 3 masters", async () => {
    const joiners = await Promise.all([0, 1, 2].map((i) => connect(i, `spreader-${i}`)));
    const rooms = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
    await Promise.all(
      joiners.map(async (joiner, j) => {
        for (const room of rooms.filter((_, i) => i % 3 === j)) assert.equal((await joiner.request({ op: 'join', room })).op, 'joined');
      }),
    );
    const namer = new ChannelNamer({ env, service: 'nerve', hashTags: true });
    const perMaster = await Promise.all(
      cluster!.nodes.map(async ({ port }) =>
        (await cluster!.cli(port, 'pubsub', 'shardchannels', `${env}:*:room:*spread-*`)).trim().split('\n').filter(Boolean),
      ),
    );
    assert.deepEqual(perMaster.flat().sort(), rooms.map((room) => namer.room('default', room)).sort());
    for (const held of perMaster) assert.ok(held.length > 0, `every master holds some rooms: ${perMaster.map((h) => h.length).join(', ')}`);
    for (const [i, held] of perMaster.entries()) {
      for (const channel of held) {
        const slot = Number((await cluster!.cli(cluster!.nodes[i]!.port, 'cluster', 'keyslot', channel)).trim());
        assert.equal(slot, keySlot(channel));
      }
    }
  });
});
