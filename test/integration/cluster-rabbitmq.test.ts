/**
 * Issue 6, the cluster-level proof: three `nerve serve --bus rabbitmq`
 * processes with no Redis route room messages and direct signals across
 * nodes through RabbitMQ bindings alone; chat is stored in PostgreSQL before
 * delivery, acked with its offset, delivered in one order on every node and
 * replayed after a reconnect to another node; a node whose broker connection is
 * cut (TCP proxy) binds everything again and its users receive again; a
 * stopped node leaves no queue and no binding behind. `history` pages reach
 * every message published on other nodes once, in order, and refuse a stale
 * epoch; a room above `--presence-list-max` members on a node gets counts.
 *
 * Every node shares one random `--env`; the exchanges it creates
 * (`{env}.nerve.hot`, and the cold lane's `{env}.nerve.events`) are deleted
 * in `after`, and so is the PostgreSQL schema. RabbitMQ or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { assertChatOrder } from '../helpers/chat-order.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { POSTGRES_URL, createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { exchangeExists, listBindings, listQueues, queueExists } from '../helpers/rabbitmq.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { readyLane } from '../helpers/readyz.js';
import { AMQP_URL, serviceSkip, startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip()) ?? false;

/** The queue a node logged last (`rabbitmq bus queue declared and bound`). */
function lastQueue(node: NodeProcess): string | undefined {
  const entries = node.logs.filter((entry) => entry.msg === 'rabbitmq bus queue declared and bound');
  const queue = entries[entries.length - 1]?.queue;
  return typeof queue === 'string' ? queue : undefined;
}

describe('cluster of 3 nodes on RabbitMQ routing (--bus rabbitmq, no Redis)', { skip, timeout: 120_000 }, () => {
  const env = testNamespace('rq');
  const nodes: NodeProcess[] = [];
  const clients: RawClient[] = [];
  let proxy: TcpProxy;
  let admin: Connection;
  let db: TestDatabase;

  const node = (i: number): NodeProcess => {
    const found = nodes[i];
    if (!found) throw new RangeError(`no node ${i}`);
    return found;
  };
  async function connect(i: number, user: string): Promise<RawClient> {
    const client = await RawClient.connect(node(i).wsUrl, user);
    clients.push(client);
    return client;
  }
  const isSignal = (f: Frame) => f.op === 'signal';
  const isEphemeral = (room: string) => (f: Frame) => f.op === 'message' && f.class === 'ephemeral' && f.room === room;

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    db = await createTestDatabase(env);
    // Node 1 reaches the broker through a proxy the fault test cuts.
    proxy = await startTcpProxy(5672);
    const urls = [AMQP_URL, `amqp://guest:guest@127.0.0.1:${proxy.port}`, AMQP_URL];
    const started = await Promise.all(
      urls.map((url, i) =>
        startNode({
          nodeId: `${env}-n${i}`,
          args: [
            '--bus',
            'rabbitmq',
            '--amqp-url',
            url,
            '--postgres-url',
            POSTGRES_URL,
            '--postgres-schema',
            env,
            '--env',
            env,
            '--mailbox-ttl-ms',
            '0',
            '--drain-window-ms',
            '0',
            '--shutdown-timeout-ms',
            '3000',
            // Rooms above 4 members on a node are large (member_count instead of member frames); the other
            // cases that assert member frames or read pushes keep their rooms at 3 members or fewer.
            '--presence-list-max',
            '4',
            '--presence-count-interval-ms',
            '200',
          ],
        }),
      ),
    );
    nodes.push(...started);
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await proxy?.close();
    for (const exchange of [`${env}.nerve.hot`, `${env}.nerve.events`]) await admin.exchangeDelete({ exchange }).catch(() => undefined);
    for (const exchange of [`${env}.nerve.hot`, `${env}.nerve.events`]) assert.equal(await exchangeExists(admin, exchange), false, `${exchange} deleted`);
    const queues = await listQueues(`${env}.`);
    if (queues) assert.deepEqual(queues, [], 'no queue of the run is left');
    await admin.close();
    await db?.drop();
  });

  it('reports the rabbitmq bus healthy on every node', async () => {
    for (const n of nodes) {
      const { status, lane } = await readyLane(n.url, 'bus');
      assert.deepEqual([status, lane?.driver, lane?.ok], [200, 'rabbitmq', true]);
    }
  });

  it('delivers room messages across nodes to every member but the sender', async () => {
    const room = testNamespace('room');
    const members = await Promise.all([0, 1, 2, 0, 1, 2].map((i, n) => connect(i, `${room}-m${n}`)));
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const sender = members[0]!;
    // Ephemeral publishes are not acked: sent without waiting; a pong shows every one was handled without an error.
    for (let n = 0; n < 10; n += 1) sender.send({ op: 'publish', rid: sender.rid(), room, class: 'ephemeral', data: { n } });
    assert.equal((await sender.request({ op: 'ping' })).op, 'pong');
    assert.equal(sender.frames.filter((f) => f.op === 'error').length, 0, JSON.stringify(sender.frames));
    for (const [i, member] of members.entries()) {
      if (i === 0) continue;
      await waitFor(() => member.frames.filter(isEphemeral(room)).length >= 10, { timeoutMs: 10_000, what: `10 messages at member ${i}` });
      assert.deepEqual(
        member.frames.filter(isEphemeral(room)).map((f) => (f.data as { n: number }).n),
        Array.from({ length: 10 }, (_, n) => n),
        `member ${i}: once each, in the sender's order`,
      );
    }
    assert.equal(sender.frames.filter(isEphemeral(room)).length, 0, 'no echo to the sender');
  });

  it('stores chat before delivery: acked with offsets, one order on every node, stored in PostgreSQL', async () => {
    const room = testNamespace('chat');
    const members = await Promise.all(Array.from({ length: 9 }, (_, i) => connect(i % 3, `${room}-m${i}`)));
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const publishers = members.slice(0, 3); // one per node
    const acks = await Promise.all(
      publishers.flatMap((publisher, p) =>
        Array.from({ length: 10 }, (_, n) => publisher.request({ op: 'publish', room, class: 'chat', data: { p, n } }, 15_000)),
      ),
    );
    for (const ack of acks) assert.equal(ack.op, 'ack', JSON.stringify(ack));
    assert.deepEqual(
      acks.map((a) => Number(a.offset)).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.equal(new Set(acks.map((a) => a.epoch)).size, 1, 'one epoch');
    await assertChatOrder(members, room, 30, 15_000);
    const stored = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${env}".chat_messages WHERE room = $1`, [room]);
    assert.equal(Number(stored.rows[0]?.n), 30);

    // A retried cmid gets the original ack, from another node too.
    const first = await publishers[0]!.request({ op: 'publish', room, class: 'chat', data: 'once', cmid: 'retry-1' });
    const again = await publishers[0]!.request({ op: 'publish', room, class: 'chat', data: 'once', cmid: 'retry-1' });
    assert.equal(again.id, first.id);
    assert.equal(again.offset, first.offset);
    assert.equal(again.duplicate, true);

    // Replay after a reconnect to another node: exactly the missed messages.
    const resumer = members[2]!; // on node 2
    const position = { offset: 30, epoch: acks[0]!.epoch };
    resumer.close();
    await publishers[1]!.request({ op: 'publish', room, class: 'chat', data: 'missed' });
    const back = await connect(0, `${room}-m2`);
    const joined = await back.request({ op: 'join', room, since: position });
    assert.equal(joined.op, 'joined', JSON.stringify(joined));
    assert.equal(joined.recovered, true);
    assert.deepEqual(
      (joined.history as Array<{ offset: number; data: unknown }>).map((m) => [m.offset, m.data]),
      [
        [31, 'once'],
        [32, 'missed'],
      ],
    );
  });

  it('carries presence state pushes across nodes (member_joined with state, member_updated)', async () => {
    const room = testNamespace('pst');
    const watcher = await connect(2, `${room}-w`);
    assert.equal((await watcher.request({ op: 'join', room })).op, 'joined');
    const alice = await connect(0, `${room}-alice`);
    assert.equal((await alice.request({ op: 'join', room, state: { status: 'here' } })).op, 'joined');
    const joined = await watcher.waitFor((f) => f.op === 'member_joined' && f.user === `${room}-alice`, 5000, 'member_joined on node 2');
    assert.deepEqual(joined.state, { status: 'here' });
    assert.equal((await alice.request({ op: 'presence_set', room, state: { status: 'in a call' } })).op, 'presence_set');
    const updated = await watcher.waitFor((f) => f.op === 'member_updated', 5000, 'member_updated on node 2');
    assert.deepEqual([updated.user, updated.state], [`${room}-alice`, { status: 'in a call' }]);
  });

  it('edits, deletes and reactions cross nodes as chat entries and are replayed on another node', async () => {
    const room = testNamespace('actions');
    const [alice, bob, carol] = await Promise.all([0, 1, 2].map((i) => connect(i, `${room}-u${i}`)));
    for (const member of [alice!, bob!, carol!]) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const m1 = await alice!.request({ op: 'publish', room, class: 'chat', data: 'hi' }, 15_000);
    const target = { id: m1.id, offset: m1.offset, epoch: m1.epoch };
    // The nodes of bob and carol find alice's message in the PostgreSQL history.
    assert.equal((await bob!.request({ op: 'react', room, target, emoji: '👍' }, 15_000)).offset, 2);
    assert.equal((await carol!.request({ op: 'edit', room, target, data: 'mine' }, 15_000)).code, 'forbidden');
    assert.equal((await alice!.request({ op: 'edit', room, target, data: 'hi!' }, 15_000)).offset, 3);
    assert.equal((await alice!.request({ op: 'delete', room, target }, 15_000)).offset, 4);
    const entries = (f: Frame) => f.op === 'message' && f.room === room && f.action !== undefined;
    await waitFor(() => carol!.frames.filter(entries).length === 3, { timeoutMs: 10_000, what: 'three entries at carol' });
    assert.deepEqual(
      carol!.frames.filter(entries).map((f) => [f.offset, f.action, f.data]),
      [
        [2, 'react', { emoji: '👍', on: true }],
        [3, 'edit', 'hi!'],
        [4, 'delete', null],
      ],
    );
    const back = await connect(2, `${room}-u1`);
    const joined = await back.request({ op: 'join', room, since: { offset: 1, epoch: m1.epoch } });
    assert.equal(joined.recovered, true);
    assert.deepEqual(
      (joined.history as Frame[]).map((m) => [m.offset, m.action, (m.target as { id: string }).id]),
      [
        [2, 'react', m1.id],
        [3, 'edit', m1.id],
        [4, 'delete', m1.id],
      ],
    );
  });

  it('keeps read positions in PostgreSQL for every node, not counting entries as unread', async () => {
    const room = testNamespace('reads');
    const bobId = `${room}-bob`;
    const [alice, bob, carol] = await Promise.all([connect(0, `${room}-alice`), connect(1, bobId), connect(2, `${room}-carol`)]);
    for (const member of [alice, bob, carol]) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const m1 = await alice.request({ op: 'publish', room, class: 'chat', data: 'one' }, 15_000);
    assert.equal((await alice.request({ op: 'publish', room, class: 'chat', data: 'two' }, 15_000)).offset, 2);
    assert.equal((await bob.request({ op: 'read', room, offset: 1, epoch: m1.epoch }, 15_000)).offset, 1);
    const push = await carol.waitFor((f) => f.op === 'read' && f.user === bobId, 10_000, "bob's read on node 2");
    assert.equal(push.offset, 1);
    // A reaction is an entry of the log (offset 3), not a message: it is not unread.
    assert.equal((await carol.request({ op: 'react', room, target: { id: m1.id, offset: 1 }, emoji: '👍' }, 15_000)).offset, 3);
    bob.close();
    const moved = await connect(0, bobId);
    const joined = await moved.request({ op: 'join', room }, 15_000);
    assert.deepEqual([joined.read, joined.unread], [1, 1]);
    const row = await db.pool.query<{ read_offset: string }>(`SELECT read_offset FROM "${env}".read_positions WHERE room = $1 AND user_id = $2`, [room, bobId]);
    assert.deepEqual(row.rows, [{ read_offset: '1' }]);
  });

  it('pages history published on the other nodes: each message once, in order, `more` right, a stale epoch refused', async () => {
    const room = testNamespace('paging');
    const [alice, bob] = await Promise.all([connect(0, `${room}-alice`), connect(1, `${room}-bob`)]);
    for (const member of [alice, bob]) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    // Interleaved from two nodes: the offsets are PostgreSQL's order, not one sender's.
    const acks = await Promise.all(
      Array.from({ length: 11 }, (_, n) => (n % 2 === 0 ? alice : bob).request({ op: 'publish', room, class: 'chat', data: { n } }, 15_000)),
    );
    for (const ack of acks) assert.equal(ack.op, 'ack', JSON.stringify(ack));
    const sent = new Map(acks.map((ack, n) => [Number(ack.offset), { n }]));
    const epoch = acks[0]!.epoch;

    const reader = await connect(2, `${room}-carol`);
    const joined = await reader.request({ op: 'join', room, history: 3 }, 15_000);
    const held = (joined.history as Frame[]).map((m) => [m.offset, m.data]);
    assert.deepEqual(
      held.map(([offset]) => offset),
      [9, 10, 11],
    );
    const pages: Array<[number, boolean]> = [];
    let before = 9;
    for (;;) {
      const page = await reader.request({ op: 'history', room, before, limit: 4, epoch }, 15_000);
      assert.equal(page.op, 'history', JSON.stringify(page));
      assert.equal(page.epoch, epoch);
      const messages = page.messages as Frame[];
      held.unshift(...messages.map((m) => [m.offset, m.data]));
      pages.push([messages.length, page.more as boolean]);
      if (!page.more) break;
      before = Number(messages[0]!.offset);
    }
    assert.deepEqual(pages, [
      [4, true],
      [4, false],
    ]);
    assert.deepEqual(
      held,
      Array.from({ length: 11 }, (_, i) => [i + 1, sent.get(i + 1)]),
      'every message once, oldest first, as acked',
    );
    const newest = await reader.request({ op: 'history', room, limit: 2 }, 15_000);
    assert.deepEqual([(newest.messages as Frame[]).map((m) => m.offset), newest.more], [[10, 11], true]);

    // The room log starts a new epoch (its log row gone): offsets of the old one are refused, not misread.
    await db.pool.query(`DELETE FROM "${env}".room_logs WHERE room = $1`, [room]);
    const stale = await reader.request({ op: 'history', room, before: 5, epoch }, 15_000);
    assert.deepEqual([stale.op, stale.code], ['error', 'epoch_mismatch']);
    const fresh = await reader.request({ op: 'history', room }, 15_000);
    assert.notEqual(fresh.epoch, epoch);
    assert.deepEqual([fresh.messages, fresh.more], [[], false], 'nothing of the old epoch leaks into the new one');
  });

  it('counts members instead of listing them in a room above --presence-list-max on a node', async () => {
    const room = testNamespace('large');
    const isMemberFrame = (user: string) => (f: Frame) => (f.op === 'member_joined' || f.op === 'member_left') && f.user === user;
    const counts = (client: RawClient) => client.frames.filter((f) => f.op === 'member_count' && f.room === room);
    const joinedSum = (client: RawClient) => counts(client).reduce((sum, f) => sum + Number(f.joined), 0);
    const users = Array.from({ length: 5 }, (_, i) => `${room}-u${i}`);
    // Presence is per node without Redis (docs/architecture.md): node 1, holding one or two members, keeps the room small.
    const watcher = await connect(1, `${room}-w`);
    assert.equal((await watcher.request({ op: 'join', room }, 15_000)).op, 'joined');
    const members: RawClient[] = [];
    for (const user of users) {
      const member = await connect(0, user);
      const joined = await member.request({ op: 'join', room }, 15_000);
      assert.equal(joined.op, 'joined', JSON.stringify(joined));
      members.push(member);
      // The first four by `since` (ties by user id), and the whole count.
      assert.equal(joined.count, members.length);
      assert.deepEqual(
        (joined.members as Array<{ user: string }>).map((m) => m.user),
        users.slice(0, Math.min(members.length, 4)),
      );
    }
    const [first] = members as [RawClient];
    const presence = await first.request({ op: 'presence', room });
    assert.deepEqual([presence.count, (presence.members as unknown[]).length], [5, 4]);
    // Read in place (RawClient.waitFor would take the frame out of `frames`, and the sum below counts it).
    await waitFor(() => counts(first).length > 0, { timeoutMs: 5000, what: 'member_count after the fifth join' });

    // A join on another node is counted on node 0 too, not told one by one.
    const remote = await connect(1, `${room}-v`);
    assert.equal((await remote.request({ op: 'join', room }, 15_000)).op, 'joined');
    await waitFor(() => joinedSum(first) >= 2, { timeoutMs: 5000, what: 'member_count with both joins' });
    const last = counts(first).at(-1)!;
    assert.equal(last.listed, false);
    assert.equal(last.count, (await first.request({ op: 'presence', room })).count, 'the count the presence store holds');
    assert.equal(joinedSum(first), 2, 'each join counted once');
    for (const user of [users[4]!, `${room}-v`]) assert.equal(first.frames.filter(isMemberFrame(user)).length, 0, `no member frame for ${user}`);

    // Back at 4 members on node 0: one member_count with listed: true, then member frames again.
    members[4]!.close();
    assert.equal((await remote.request({ op: 'leave', room })).op, 'left');
    const listed = await first.waitFor((f) => f.op === 'member_count' && f.room === room && f.listed === true, 5000, 'listed: true');
    assert.equal(listed.count, 4);
    assert.equal((await members[3]!.request({ op: 'leave', room })).op, 'left');
    const left = await first.waitFor((f) => f.op === 'member_left' && f.user === users[3], 5000, 'member_left once the room is small');
    assert.equal(left.room, room);
    await watcher.waitFor((f) => f.op === 'member_left' && f.user === users[3], 5000, 'member_left at the watcher');
    assert.deepEqual(
      watcher.frames.filter((f) => f.op === 'member_joined' || f.op === 'member_count').map((f) => f.user),
      [...users, `${room}-v`],
      'node 1 is not large: every join told, no member_count',
    );
  });

  it('delivers a direct signal to every connection of a user on other nodes, and to nobody else', async () => {
    const user = testNamespace('callee');
    const targets = [await connect(2, user), await connect(2, user), await connect(1, user)];
    const bystanderUser = testNamespace('by');
    const bystander = await connect(2, bystanderUser);
    const sender = await connect(0, testNamespace('caller'));
    const ack = await sender.request({ op: 'signal', to: user, kind: 'offer', data: { sdp: 'v=0' } });
    assert.equal(ack.op, 'ack', JSON.stringify(ack));
    for (const target of targets) {
      const signal = await target.waitFor(isSignal, 5000, 'the offer on each connection');
      assert.equal(signal.id, ack.id);
      assert.deepEqual(signal.data, { sdp: 'v=0' });
    }
    const barrier = await sender.request({ op: 'signal', to: bystanderUser, kind: 'custom', data: 'barrier' });
    assert.equal(barrier.op, 'ack');
    const first = await bystander.waitFor(isSignal, 5000, 'the barrier');
    assert.equal(first.data, 'barrier', 'the bystander got nothing before its own signal');
  });

  it('answers a signal to a user connected nowhere with peer_offline, also after the user left', async () => {
    const sender = await connect(1, testNamespace('lonely'));
    const ghost = await sender.request({ op: 'signal', to: testNamespace('ghost'), kind: 'offer', data: {} });
    assert.equal(ghost.op, 'error');
    assert.equal(ghost.code, 'peer_offline');

    const user = testNamespace('gone');
    const leaving = await connect(2, user);
    assert.equal((await sender.request({ op: 'signal', to: user, kind: 'offer', data: {} })).op, 'ack');
    leaving.close();
    // Unbound once its last connection is gone on node 2.
    await waitFor(async () => (await sender.request({ op: 'signal', to: user, kind: 'offer', data: {} })).code === 'peer_offline', {
      timeoutMs: 5000,
      what: 'peer_offline after the last connection closed',
    });
  });

  it('after node 1 loses its broker connection, its users receive direct signals and room messages again', async () => {
    const room = testNamespace('cut');
    const user = testNamespace('cutuser');
    const onCut = await connect(1, user);
    const elsewhere = await connect(0, testNamespace('peer'));
    assert.equal((await onCut.request({ op: 'join', room })).op, 'joined');
    assert.equal((await elsewhere.request({ op: 'join', room })).op, 'joined');
    const before = lastQueue(node(1));
    assert.ok(before, 'node 1 logged its queue');

    const isRoomChat = (f: Frame) => f.op === 'message' && f.class === 'chat' && f.room === room;
    const beforeAck = await elsewhere.request({ op: 'publish', room, class: 'chat', data: 'before-cut' });
    assert.equal(beforeAck.op, 'ack', JSON.stringify(beforeAck));
    await onCut.waitFor(isRoomChat, 5000, 'chat before the cut');

    // Cut, and keep node 1 away from the broker while chat goes on elsewhere.
    proxy.setRefusing(true);
    assert.ok(proxy.cut() > 0, 'cut the broker connections of node 1');
    const duringAck = await elsewhere.request({ op: 'publish', room, class: 'chat', data: 'during-cut' });
    assert.equal(duringAck.op, 'ack', JSON.stringify(duringAck));
    proxy.setRefusing(false);
    await waitFor(() => lastQueue(node(1)) !== before, { timeoutMs: 15_000, what: 'node 1 to declare a new queue' });
    await waitFor(async () => (await fetch(`${node(1).url}/readyz`)).status === 200, { timeoutMs: 15_000, what: 'node 1 ready again' });
    await waitFor(async () => !(await queueExists(admin, before)), { timeoutMs: 10_000, what: 'the old queue gone' });

    const signalAck = await elsewhere.request({ op: 'signal', to: user, kind: 'offer', data: 'after-cut' });
    assert.equal(signalAck.op, 'ack', JSON.stringify(signalAck));
    const signal = await onCut.waitFor(isSignal, 5000, 'the signal after the cut');
    assert.equal(signal.data, 'after-cut');
    elsewhere.send({ op: 'publish', rid: elsewhere.rid(), room, class: 'ephemeral', data: 'after-cut' });
    const message = await onCut.waitFor(isEphemeral(room), 5000, 'the room message after the cut');
    assert.equal(message.data, 'after-cut');

    // The chat sent while node 1 was cut off is refilled from PostgreSQL (the gateway's resubscribe path), once.
    const refilled = await onCut.waitFor(isRoomChat, 10_000, 'the chat missed during the cut');
    assert.deepEqual([refilled.data, refilled.offset], ['during-cut', duringAck.offset]);
    const next = await elsewhere.request({ op: 'publish', room, class: 'chat', data: 'after-refill' });
    const live = await onCut.waitFor(isRoomChat, 5000, 'live chat after the refill');
    assert.deepEqual([live.data, live.offset], ['after-refill', next.offset], 'no duplicate of the refilled message');

    const bindings = await listBindings(`${env}.nerve.hot`);
    if (bindings) {
      const ofNode1 = bindings.filter((b) => b.destination.startsWith(`${env}.nerve.hot.node.${node(1).nodeId}.`) && b.source !== '');
      assert.deepEqual([...new Set(ofNode1.map((b) => b.destination))], [lastQueue(node(1))], 'node 1 has bindings on its new queue only');
    }
  });

  it('leaves no queue and no binding of a stopped node', async () => {
    const stopped = node(2);
    const user = testNamespace('bound');
    const client = await connect(2, user);
    assert.equal((await client.request({ op: 'join', room: testNamespace('r') })).op, 'joined');
    const queue = lastQueue(stopped);
    assert.ok(queue);
    assert.equal(await queueExists(admin, queue), true);
    await stopped.stop();
    assert.equal(await queueExists(admin, queue), false, 'the exclusive queue went with the node');
    const bindings = await listBindings(`${env}.nerve.hot.node.${stopped.nodeId}.`);
    if (bindings) assert.deepEqual(bindings, [], 'no binding to any queue of the stopped node');
    const sender = await connect(0, testNamespace('after'));
    const reply = await sender.request({ op: 'signal', to: user, kind: 'offer', data: {} });
    assert.equal(reply.code, 'peer_offline', 'the stopped node no longer counts as a receiver');
  });
});
