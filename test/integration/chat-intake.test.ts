/**
 * Issue 6, the worker chat path (`--bus rabbitmq --chat-path worker`): two
 * nodes send chat to the chat intake exchange; the chat-store worker
 * (`--chat-intake`) stores it in PostgreSQL, publishes it on the room channel
 * and answers the node, which only then acks the sender. Shown here: acks
 * carry offsets, pipelined publishes of one connection keep their order,
 * every member of both nodes receives one order, a `cmid` retry is answered
 * with the original, a request the worker cannot store is answered with its
 * error and dead-lettered without blocking the next one, a publish with no
 * worker running times out as `outcome_unknown` and its request is dead-lettered
 * when it expires, and a standby worker takes over when the active one stops.
 *
 * Every broker object carries a random env and is deleted in `after`, and so
 * is the PostgreSQL schema. RabbitMQ or PostgreSQL missing: fails in CI
 * (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Connection } from 'rabbitmq-client';
import { chatIntakeNames, deadLetterQueueDeclaration, intakeQueueDeclaration, intakeTopology } from '../../src/history/chat-intake.js';
import { IntakeRpc } from '../../src/history/intake-rpc.js';
import { createLogger } from '../../src/logger.js';
import { NerveNode } from '../../src/node.js';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { createTestDatabase, POSTGRES_URL, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { listExchanges, listQueues } from '../helpers/rabbitmq.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { readyLane } from '../helpers/readyz.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip()) ?? false;
const silent = pino({ level: 'silent' });
/** The nodes' answer timeout: generous, since a loaded CI machine stores one room's chat slowly. */
const TIMEOUT_MS = 15_000;
/** The node of the no-worker case, whose requests must expire quickly. */
const SHORT_TIMEOUT_MS = 1500;

describe('chat through the chat-store worker (--chat-path worker)', { skip, timeout: 120_000 }, () => {
  const env = testNamespace('ci');
  const names = chatIntakeNames(env, 'nerve');
  const nodes: NerveNode[] = [];
  const urls: string[] = [];
  const clients: RawClient[] = [];
  const workers: WorkerHandle[] = [];
  let admin: Connection;
  let db: TestDatabase;

  const startWorker = async (id: string): Promise<WorkerHandle> => {
    const worker = await runWorker('chat-store', {
      amqpUrl: AMQP_URL,
      postgresUrl: POSTGRES_URL,
      schema: env,
      env,
      service: 'nerve',
      chatIntake: true,
      processId: id,
      logger: silent,
    });
    workers.push(worker);
    return worker;
  };
  const startNode = async (i: number, chatIntakeTimeoutMs: number): Promise<void> => {
    const node = new NerveNode(
      {
        port: 0,
        host: '127.0.0.1',
        demo: false,
        nodeId: `${env}-n${i}`,
        env,
        bus: 'rabbitmq',
        chatPath: 'worker',
        chatIntakeTimeoutMs,
        amqpUrl: AMQP_URL,
        postgresUrl: POSTGRES_URL,
        postgresSchema: env,
        mailboxTtlMs: 0,
        drainWindowMs: 0,
        limits: { ratePerSecond: 100_000, rateBurst: 100_000, roomRatePerSecond: 100_000, roomRateBurst: 100_000 },
      },
      { logger: createLogger('silent') },
    );
    const address = await node.start();
    nodes[i] = node;
    urls[i] = `ws://127.0.0.1:${address.port}/ws`;
  };
  const connect = async (i: number, user: string): Promise<RawClient> => {
    const client = await RawClient.connect(urls[i]!, user);
    clients.push(client);
    return client;
  };
  const deadLettered = async (): Promise<number> => (await admin.queueDeclare({ queue: names.deadLetterQueue, passive: true })).messageCount;
  const isChat = (room: string) => (f: Frame) => f.op === 'message' && f.class === 'chat' && f.room === room;

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    db = await createTestDatabase(env);
    await startWorker('w1');
    await startNode(0, TIMEOUT_MS);
    await startNode(1, TIMEOUT_MS);
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await Promise.allSettled(workers.map((worker) => worker.close()));
    for (const queue of (await listQueues(`${env}.`)) ?? [names.queue, names.deadLetterQueue]) await admin.queueDelete({ queue }).catch(() => undefined);
    for (const exchange of (await listExchanges(`${env}.`)) ?? [names.exchange, names.deadLetterExchange, `${env}.nerve.hot`, `${env}.nerve.events`]) {
      await admin.exchangeDelete({ exchange }).catch(() => undefined);
    }
    const left = await listQueues(`${env}.`);
    if (left) assert.deepEqual(left, [], 'no queue of the run is left');
    await admin.close();
    await db?.drop();
  });

  it('reports the history lane as the worker path, ready', async () => {
    for (const url of urls.slice(0, 2)) {
      const { status, lane } = await readyLane(url, 'history');
      assert.deepEqual([status, lane?.driver, lane?.ok], [200, 'postgres-via-worker', true]);
    }
  });

  it("acks with offsets after storing, keeps each connection's pipelined order, and delivers one order on both nodes", async () => {
    const room = testNamespace('chat');
    const members = await Promise.all(Array.from({ length: 6 }, (_, i) => connect(i % 2, `${room}-m${i}`)));
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const publishers = members.slice(0, 4);
    // Pipelined: every publish is sent before any answer comes back.
    const acks = await Promise.all(
      publishers.map((publisher, p) =>
        Promise.all(Array.from({ length: 15 }, (_, n) => publisher.request({ op: 'publish', room, class: 'chat', data: { p, n } }, 15_000))),
      ),
    );
    for (const [p, list] of acks.entries()) {
      for (const ack of list) assert.equal(ack.op, 'ack', JSON.stringify(ack));
      const offsets = list.map((ack) => Number(ack.offset));
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
        `publisher ${p}: offsets follow its send order`,
      );
    }
    const all = acks.flat();
    assert.deepEqual(
      all.map((a) => Number(a.offset)).sort((a, b) => a - b),
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    assert.equal(new Set(all.map((a) => a.epoch)).size, 1, 'one epoch');
    for (const member of members)
      await waitFor(() => member.frames.filter(isChat(room)).length >= 60, { timeoutMs: 15_000, what: '60 chat messages on every member' });
    for (const member of members) {
      assert.deepEqual(
        member.frames.filter(isChat(room)).map((f) => f.offset),
        Array.from({ length: 60 }, (_, i) => i + 1),
        'offset order on every member, each once',
      );
    }
    const stored = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${env}".chat_messages WHERE room = $1`, [room]);
    assert.equal(Number(stored.rows[0]?.n), 60, 'stored once each');
  });

  it('answers a cmid retry with the original, from the other node too', async () => {
    const room = testNamespace('retry');
    const a = await connect(0, `${room}-a`);
    const b = await connect(1, `${room}-a`);
    for (const client of [a, b]) assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    const first = await a.request({ op: 'publish', room, class: 'chat', data: 'once', cmid: 'c-1' });
    const again = await b.request({ op: 'publish', room, class: 'chat', data: 'once', cmid: 'c-1' });
    assert.equal(first.op, 'ack', JSON.stringify(first));
    assert.deepEqual([again.op, again.id, again.offset, again.duplicate], ['ack', first.id, first.offset, true]);
    const replay = await connect(1, `${room}-late`);
    const joined = await replay.request({ op: 'join', room, history: 10 });
    assert.deepEqual(
      (joined.history as Array<{ id: string }>).map((m) => m.id),
      [first.id],
      'stored once',
    );
  });

  it('answers a message the worker cannot store with its error, dead-letters it, and stores the next one', async () => {
    const room = testNamespace('poison');
    const client = await connect(0, `${room}-u`);
    assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    const before = await deadLettered();
    // PostgreSQL jsonb cannot hold U+0000: the worker's store fails (src/history/postgres.ts).
    const refused = await client.request({ op: 'publish', room, class: 'chat', data: 'bad \u0000 byte' }, 10_000);
    assert.deepEqual([refused.op, refused.code], ['error', 'internal'], JSON.stringify(refused));
    await waitFor(async () => (await deadLettered()) === before + 1, { timeoutMs: 5000, what: 'the failed request in the dead-letter queue' });
    const next = await client.request({ op: 'publish', room, class: 'chat', data: 'fine' }, 10_000);
    assert.deepEqual([next.op, next.offset], ['ack', 1], JSON.stringify(next));
  });

  it('times out as outcome_unknown with no worker, dead-letters the expired request, and a standby worker takes over', async () => {
    const room = testNamespace('standby');
    await startNode(2, SHORT_TIMEOUT_MS);
    const client = await connect(2, `${room}-u`);
    assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    // A standby: a second consumer of a single-active-consumer queue gets nothing while the first is there.
    const standby = await startWorker('w2');
    assert.equal((await client.request({ op: 'publish', room, class: 'chat', data: 1 }, 10_000)).op, 'ack');
    const storedBy = async (worker: WorkerHandle): Promise<number> =>
      (await worker.metrics.chatIntake.get()).values.find((v) => v.labels.outcome === 'stored')?.value ?? 0;
    assert.equal(await storedBy(standby), 0, 'the standby took nothing while the active worker ran');
    await workers[0]!.close();
    const taken = await client.request({ op: 'publish', room, class: 'chat', data: 2 }, 10_000);
    assert.deepEqual([taken.op, taken.offset], ['ack', 2], JSON.stringify(taken));
    assert.equal(await storedBy(standby), 1, 'the standby stored it');

    await standby.close();
    const before = await deadLettered();
    const refused = await client.request({ op: 'publish', room, class: 'chat', data: 3, cmid: 'late' }, SHORT_TIMEOUT_MS + 5000);
    // Sent, never answered: the node cannot know whether a worker stored it.
    assert.deepEqual([refused.op, refused.code], ['error', 'outcome_unknown'], JSON.stringify(refused));
    await waitFor(async () => (await deadLettered()) === before + 1, { timeoutMs: 10_000, what: 'the expired request in the dead-letter queue' });
    // The node stays ready (signals and room messages work) and says why chat does not.
    const reading = await waitFor(
      async () => {
        const read = await readyLane(urls[2]!, 'history');
        return read.lane?.detail?.includes('no chat-store worker') ? read : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'readyz naming the missing worker' },
    );
    assert.deepEqual([reading.status, reading.lane?.ok], [200, true]);

    await startWorker('w3');
    const retried = await client.request({ op: 'publish', room, class: 'chat', data: 3, cmid: 'late' }, 10_000);
    assert.deepEqual([retried.op, retried.offset, retried.duplicate], ['ack', 3, undefined], `stored once, by the retry: ${JSON.stringify(retried)}`);
  });
});

describe('IntakeRpc', { skip }, () => {
  it('answers requests sent while its channel is still being set up, each with its own reply, in send order', async () => {
    const names = chatIntakeNames(testNamespace('rpc'), 'nerve');
    const connection = new Connection({ url: AMQP_URL, retryLow: 50 });
    connection.on('error', () => undefined);
    const topology = intakeTopology(names);
    const seen: number[] = [];
    for (const exchange of topology.exchanges) await connection.exchangeDeclare(exchange);
    await connection.queueDeclare(deadLetterQueueDeclaration(names));
    const echo = connection.createConsumer(
      { queue: names.queue, queueOptions: intakeQueueDeclaration(names), exchanges: topology.exchanges, queueBindings: topology.queueBindings },
      async (message, reply) => {
        seen.push((message.body as { n: number }).n);
        await reply({ n: (message.body as { n: number }).n });
      },
    );
    try {
      await new Promise<void>((resolve) => echo.once('ready', () => resolve()));
      const rpc = new IntakeRpc(connection, topology, 5000);
      // One request per turn of the event loop: the later ones arrive while the first one's setup is under way.
      const replies: Array<Promise<number>> = [];
      for (let n = 0; n < 20; n += 1) {
        replies.push(rpc.send({ exchange: names.exchange, routingKey: 'chat.append' }, { n }).then((reply) => (reply.body as { n: number }).n));
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.deepEqual(
        await Promise.all(replies),
        Array.from({ length: 20 }, (_, n) => n),
      );
      assert.deepEqual(
        seen,
        Array.from({ length: 20 }, (_, n) => n),
        'received in send order',
      );
      await rpc.close();
    } finally {
      await echo.close();
      for (const queue of [names.queue, names.deadLetterQueue]) await connection.queueDelete({ queue }).catch(() => undefined);
      for (const exchange of [names.exchange, names.deadLetterExchange]) await connection.exchangeDelete({ exchange }).catch(() => undefined);
      await connection.close();
    }
  });
});
