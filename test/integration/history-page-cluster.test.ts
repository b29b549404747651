/**
 * History paging through a cluster (docs/protocol.md, `history`): three
 * `nerve serve` processes on Redis keep 5 messages of a room hot
 * (`--history-size 5`), the chat-store worker stores every message in
 * PostgreSQL from the cold lane (RabbitMQ), and a member on another node
 * pages back through all of it, across the seam of the Redis stream and
 * PostgreSQL, with one offset cursor. Refusals: a non-member, another
 * tenant, a stale epoch, a malformed frame.
 *
 * Redis, RabbitMQ or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Connection } from 'rabbitmq-client';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { hs256Token } from '../helpers/jwt.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTestDatabase, postgresSkip, POSTGRES_URL, type TestDatabase } from '../helpers/postgres.js';
import { consumerQueues, deleteTopology } from '../helpers/rabbitmq.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const SECRET = 'history-page-cluster-secret-'.padEnd(40, 'z');
const API_KEY = 'history-page-api-key-'.padEnd(32, 'k');
const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? (await postgresSkip()) ?? false;
const silent = pino({ level: 'silent' });
/** Enough that `MAXLEN ~ 5` trims the stream's first node (100 entries by default): the oldest then live in PostgreSQL only. */
const COUNT = 130;

function token(user: string, tenant: string): Promise<string> {
  return hs256Token(SECRET, user, { claims: { tenant } });
}

type ChatFrame = Frame & { offset: number; id: string; epoch: string; data: unknown };

describe('history paging across a 3-node cluster, Redis and PostgreSQL', { skip, timeout: 180_000 }, () => {
  const env = testNamespace('hpc');
  const room = 'archive-room';
  let cluster: Cluster;
  let db: TestDatabase;
  let worker: WorkerHandle;
  let admin: Connection;
  const clients: RawClient[] = [];
  /** The acks of the published messages, by offset. */
  const acked = new Map<number, Frame>();
  let epoch = '';

  async function connect(node: number, user: string, tenant = 'acme'): Promise<RawClient> {
    const client = await RawClient.open(cluster.node(node).wsUrl);
    clients.push(client);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token(user, tenant) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    assert.equal(welcome.tenant, tenant);
    return client;
  }

  before(async () => {
    db = await createTestDatabase(env);
    admin = new Connection({ url: AMQP_URL });
    admin.on('error', () => undefined);
    // The worker declares its queue before any node publishes, so no message.created is lost.
    worker = await runWorker('chat-store', { amqpUrl: AMQP_URL, postgresUrl: POSTGRES_URL, schema: env, env, service: 'nerve', logger: silent });
    cluster = await startCluster({
      count: 3,
      redisUrl: SHARED_REDIS_URL,
      env,
      args: [
        '--amqp-url',
        AMQP_URL,
        '--postgres-url',
        POSTGRES_URL,
        '--postgres-schema',
        env,
        '--history-size',
        '5',
        '--auth-secret',
        SECRET,
        '--rate-burst',
        '1000',
        '--api-key',
        API_KEY,
      ],
    });

    const alice = await connect(0, 'alice');
    assert.equal((await alice.request({ op: 'join', room })).op, 'joined');
    const acks = await Promise.all(
      Array.from({ length: COUNT }, (_, n) => alice.request({ op: 'publish', room, class: 'chat', data: { n }, cmid: `c${n}` }, 30_000)),
    );
    for (const ack of acks) {
      assert.equal(ack.op, 'ack', JSON.stringify(ack));
      acked.set(Number(ack.offset), ack);
    }
    assert.deepEqual(
      [...acked.keys()].sort((a, b) => a - b),
      Array.from({ length: COUNT }, (_, i) => i + 1),
    );
    epoch = String(acks[0]!.epoch);
    const stored = async (): Promise<number> =>
      Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${env}".chat_messages WHERE room = $1`, [room])).rows[0]!.n);
    await waitFor(async () => (await stored()) === COUNT, { timeoutMs: 60_000, what: `the chat-store worker storing all ${COUNT} messages` });
  });

  after(async () => {
    for (const client of clients) client.close();
    await cluster?.stop();
    await worker?.close();
    // Every queue of the run (the chat-store worker consumes chat and read positions, each with retry and dead-letter queues).
    const prefix = `${env}.nerve`;
    if (admin) await deleteTopology(admin, `${env}.`, { queues: consumerQueues(prefix, ['chat-store', 'chat-store-reads']), exchanges: [`${prefix}.events`] });
    await admin?.close();
    await db?.drop();
  });

  it('the oldest messages are in PostgreSQL only: the stream was trimmed', async () => {
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      const [, keys] = await redis.scan('0', 'MATCH', `${env}:nerve:*${room}*:history:stream`, 'COUNT', 10_000);
      assert.equal(keys.length, 1, `one stream key, got ${keys.join(', ')}`);
      const first = await redis.xrange(keys[0]!, '-', '+', 'COUNT', 1);
      const oldest = Number(first[0]![0].split('-')[1]);
      assert.ok(oldest > 1, `the stream starts at offset ${oldest}, not at 1`);
    } finally {
      redis.disconnect();
    }
  });

  it('pages every message once, in order, on a node other than the publisher’s', async () => {
    const carol = await connect(2, 'carol');
    const joined = await carol.request({ op: 'join', room });
    assert.equal(joined.op, 'joined');
    const recent = joined.history as ChatFrame[];
    assert.deepEqual(
      recent.map((m) => m.offset),
      [126, 127, 128, 129, 130],
      'join returns the newest --history-size',
    );
    const all: ChatFrame[] = [...recent];
    let before = recent[0]!.offset;
    const mores: boolean[] = [];
    for (let page = 0; page < 10; page += 1) {
      const answer = await carol.request({ op: 'history', room, before, limit: 50, epoch });
      assert.equal(answer.op, 'history', JSON.stringify(answer));
      assert.equal(answer.epoch, epoch);
      const messages = answer.messages as ChatFrame[];
      all.unshift(...messages);
      mores.push(answer.more === true);
      if (answer.more !== true) break;
      before = messages[0]!.offset;
    }
    assert.deepEqual(mores, [true, true, false], '125 older messages: pages of 50, 50 and 25');
    assert.deepEqual(
      all.map((m) => m.offset),
      Array.from({ length: COUNT }, (_, i) => i + 1),
    );
    for (const message of all) {
      const ack = acked.get(message.offset)!;
      assert.equal(message.id, ack.id, `offset ${message.offset}`);
      assert.equal(message.epoch, epoch);
      assert.equal(message.from, 'alice');
      assert.deepEqual(message.data, { n: message.offset - 1 });
      assert.equal(message.cmid, `c${message.offset - 1}`);
    }
  });

  it('answers the newest page without before, and pages with the default limit of 50', async () => {
    const bob = await connect(1, 'bob');
    assert.equal((await bob.request({ op: 'join', room, history: 0 })).op, 'joined');
    const answer = await bob.request({ op: 'history', room });
    assert.equal(answer.op, 'history');
    assert.deepEqual(
      (answer.messages as ChatFrame[]).map((m) => m.offset),
      Array.from({ length: 50 }, (_, i) => COUNT - 49 + i),
    );
    assert.equal(answer.more, true);
  });

  it('pages the same way over the server API (history with before)', async () => {
    const get = async (query: string) => {
      const response = await fetch(`${cluster.node(1).url}/api/rooms/${room}/history?tenant=acme&${query}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const page = await get(`before=60&limit=10&epoch=${epoch}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.deepEqual(
      (page.body.messages as ChatFrame[]).map((m) => m.offset),
      Array.from({ length: 10 }, (_, i) => 50 + i),
    );
    assert.deepEqual([page.body.more, page.body.epoch], [true, epoch]);
    const oldest = await get('before=3');
    assert.deepEqual(
      (oldest.body.messages as ChatFrame[]).map((m) => m.offset),
      [1, 2],
    );
    assert.equal(oldest.body.more, false);
    for (const bad of ['before=0', 'before=abc', 'before=1.5']) {
      const refused = await get(bad);
      assert.deepEqual([refused.status, refused.body.code], [400, 'invalid_cursor'], bad);
    }
    const stale = await get('before=10&epoch=an-older-epoch');
    assert.deepEqual([stale.status, stale.body.code], [409, 'epoch_mismatch']);
    // Without before, the recent answer as before.
    const recent = await get('limit=2');
    assert.deepEqual(recent.body.position, { offset: COUNT, epoch });
  });

  it('refuses a non-member with not_joined', async () => {
    const dave = await connect(1, 'dave');
    const answer = await dave.request({ op: 'history', room, limit: 10 });
    assert.equal(answer.op, 'error');
    assert.equal(answer.code, 'not_joined');
  });

  it('keeps tenants apart: another tenant is refused the room, and its own room of that id is empty', async () => {
    const eve = await connect(1, 'eve', 'globex');
    const refused = await eve.request({ op: 'history', room, before: 100 });
    assert.equal(refused.op, 'error');
    assert.equal(refused.code, 'not_joined');
    const joined = await eve.request({ op: 'join', room });
    assert.equal(joined.op, 'joined');
    assert.deepEqual(joined.history, []);
    const own = await eve.request({ op: 'history', room, before: 100 });
    assert.equal(own.op, 'history');
    assert.deepEqual(own.messages, []);
    assert.equal(own.more, false);
    assert.notEqual(own.epoch, epoch);
    // acme's epoch means nothing in globex's log of the same id.
    const stale = await eve.request({ op: 'history', room, epoch });
    assert.equal(stale.code, 'epoch_mismatch');
  });

  it('answers a stale epoch with epoch_mismatch and a malformed frame with invalid_frame, both with the rid', async () => {
    const frank = await connect(0, 'frank');
    assert.equal((await frank.request({ op: 'join', room, history: 0 })).op, 'joined');
    const stale = await frank.request({ op: 'history', rid: 'stale', room, epoch: 'an-older-epoch' });
    assert.deepEqual([stale.op, stale.rid, stale.code], ['error', 'stale', 'epoch_mismatch']);
    const tooMany = await frank.request({ op: 'history', rid: 'big', room, limit: 101 });
    assert.deepEqual([tooMany.op, tooMany.rid, tooMany.code], ['error', 'big', 'invalid_frame']);
    const zero = await frank.request({ op: 'history', rid: 'zero', room, before: 0 });
    assert.deepEqual([zero.op, zero.rid, zero.code], ['error', 'zero', 'invalid_frame']);
    const badRoom = await frank.request({ op: 'history', rid: 'room', room: 'no spaces' });
    assert.deepEqual([badRoom.op, badRoom.rid, badRoom.code], ['error', 'room', 'invalid_room']);
    // The connection is still fine.
    assert.equal((await frank.request({ op: 'history', room, limit: 1 })).op, 'history');
  });

  it('edits, deletes and reactions: across nodes, on a target only PostgreSQL holds, replayed on resume, folded in PostgreSQL', async () => {
    const alice = await connect(0, 'alice');
    const bob = await connect(1, 'bob');
    const mod = await RawClient.open(cluster.node(2).wsUrl);
    clients.push(mod);
    const modToken = await hs256Token(SECRET, 'mod', { claims: { tenant: 'acme', rooms: [{ room, rights: ['join', 'publish', 'moderate'] }] } });
    assert.equal((await mod.request({ op: 'connect', v: 1, token: modToken })).op, 'welcome');
    for (const member of [alice, bob, mod]) assert.equal((await member.request({ op: 'join', room, history: 0 })).op, 'joined');
    const target = (offset: number) => ({ id: acked.get(offset)!.id, offset, epoch });
    // Offset 3 was trimmed from the stream: the node finds it in the archive.
    const edit = await alice.request({ op: 'edit', room, target: target(3), data: { n: 2, edited: true } });
    assert.deepEqual([edit.op, edit.offset], ['ack', COUNT + 1], JSON.stringify(edit));
    const live = await bob.waitFor((f) => f.op === 'message' && f.offset === COUNT + 1, 10_000);
    assert.deepEqual([live.action, live.target, live.from], ['edit', { id: acked.get(3)!.id, offset: 3 }, 'alice']);
    assert.equal((await bob.request({ op: 'react', room, target: target(130), emoji: '👍' })).offset, COUNT + 2);
    assert.equal((await bob.request({ op: 'delete', room, target: target(129) })).code, 'forbidden', 'not the author');
    assert.equal((await mod.request({ op: 'delete', room, target: target(129) })).offset, COUNT + 3);

    // Resume on another node: the missed entries are among the missed messages.
    const back = await connect(2, 'bob');
    const joined = await back.request({ op: 'join', room, since: { offset: COUNT, epoch } });
    assert.equal(joined.recovered, true);
    assert.deepEqual(
      (joined.history as ChatFrame[]).map((m) => [m.offset, m.action, (m.target as { offset: number }).offset]),
      [
        [COUNT + 1, 'edit', 3],
        [COUNT + 2, 'react', 130],
        [COUNT + 3, 'delete', 129],
      ],
    );

    // The chat-store worker stores the entries and folds them into their targets' rows.
    const rows = async () =>
      (
        await db.pool.query<{ room_offset: string; body: unknown; edited_at: string | null; deleted_at: string | null; reactions: unknown }>(
          `SELECT room_offset, body, edited_at, deleted_at, reactions FROM "${env}".chat_messages WHERE room = $1 AND room_offset IN (3, 129, 130) ORDER BY room_offset`,
          [room],
        )
      ).rows;
    await waitFor(async () => (await rows()).every((row) => row.edited_at !== null || row.deleted_at !== null || row.reactions !== null), {
      timeoutMs: 30_000,
      what: 'the three targets folded',
    });
    assert.deepEqual(
      (await rows()).map((row) => [Number(row.room_offset), row.body, row.edited_at === null, row.deleted_at === null, row.reactions]),
      [
        [3, { n: 2, edited: true }, false, true, null],
        [129, null, true, false, null],
        [130, { n: 129 }, true, true, [{ emoji: '👍', count: 1, users: ['bob'] }]],
      ],
    );
    // Paging reads the folded archive row (and the entry after it, which folds to the same).
    const page = await back.request({ op: 'history', room, before: 4, limit: 1, epoch });
    const archived = (page.messages as ChatFrame[])[0]!;
    assert.deepEqual([archived.offset, archived.data, archived.editedAt], [3, { n: 2, edited: true }, edit.ts]);
    // The server API's stored messages: folded rows, no entry rows.
    const response = await fetch(`${cluster.node(1).url}/api/rooms/${room}/messages?tenant=acme&limit=3`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const body = (await response.json()) as { messages: ChatFrame[] };
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(
      body.messages.map((m) => [m.offset, m.data, m.deleted ?? false, m.reactions ?? null]),
      [
        [128, { n: 127 }, false, null],
        [129, null, true, null],
        [130, { n: 129 }, false, [{ emoji: '👍', count: 1, users: ['bob'] }]],
      ],
    );
  });
});
