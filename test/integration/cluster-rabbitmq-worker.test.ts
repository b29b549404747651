/**
 * Issue 6, the worker chat path on real processes: three `nerve serve --bus
 * rabbitmq --chat-path worker` nodes (no Redis) and two `nerve worker
 * chat-store --chat-intake` processes, one active and one standby. While
 * three publishers on three nodes pipeline chat with `cmid`s, the active
 * worker is SIGKILLed. The standby takes over (the broker hands it the dead
 * worker's unacked requests); every publish ends acked, at once or on its
 * retry with the same `cmid`; PostgreSQL holds each message once; and every
 * member of every node ends with offsets 1..n in order, each once (a message
 * stored but not published before the kill reaches them through the gap
 * refill at the next message).
 *
 * RabbitMQ or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { assertChatOrder } from '../helpers/chat-order.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { POSTGRES_URL, createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { listExchanges, listQueues } from '../helpers/rabbitmq.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { killWorker, spawnWorker, type WorkerProcess } from '../helpers/worker-process.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip()) ?? false;
const PER_PUBLISHER = 20;

describe('cluster of 3 nodes with chat stored by the chat-store worker (--chat-path worker)', { skip, timeout: 180_000 }, () => {
  const env = testNamespace('rqw');
  const nodes: NodeProcess[] = [];
  const workers: WorkerProcess[] = [];
  const clients: RawClient[] = [];
  let admin: Connection;
  let db: TestDatabase;

  const startWorker = async (): Promise<WorkerProcess> => {
    const worker = spawnWorker([
      'chat-store',
      '--chat-intake',
      '--amqp-url',
      AMQP_URL,
      '--postgres-url',
      POSTGRES_URL,
      '--postgres-schema',
      env,
      '--env',
      env,
      '--prefetch',
      '8',
    ]);
    workers.push(worker);
    await waitFor(() => worker.logs.some((entry) => entry.msg === 'chat intake consuming'), { timeoutMs: 30_000, what: 'the chat intake consuming' });
    return worker;
  };
  const connect = async (i: number, user: string): Promise<RawClient> => {
    const client = await RawClient.connect(nodes[i]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    db = await createTestDatabase(env);
    // The first worker migrates the schema and becomes the active consumer; the second waits as standby.
    await startWorker();
    await startWorker();
    const args = [
      '--bus',
      'rabbitmq',
      '--chat-path',
      'worker',
      '--chat-intake-timeout-ms',
      '10000',
      '--amqp-url',
      AMQP_URL,
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
      '--room-rate-per-second',
      '100000',
      '--room-rate-burst',
      '100000',
    ];
    nodes.push(...(await Promise.all([0, 1, 2].map((i) => startNode({ nodeId: `${env}-n${i}`, args })))));
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((n) => n.stop()));
    for (const worker of workers) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGTERM');
    }
    await Promise.race([Promise.all(workers.map((w) => w.exited)), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    for (const worker of workers) killWorker(worker);
    for (const queue of (await listQueues(`${env}.`)) ?? []) await admin.queueDelete({ queue }).catch(() => undefined);
    for (const exchange of (await listExchanges(`${env}.`)) ?? []) await admin.exchangeDelete({ exchange }).catch(() => undefined);
    const left = await listQueues(`${env}.`);
    if (left) assert.deepEqual(left, [], 'no queue of the run is left');
    await admin.close();
    await db?.drop();
  });

  it('loses nothing and duplicates nothing when the active worker is killed mid-stream', async (t) => {
    const room = testNamespace('chat');
    const members = await Promise.all(Array.from({ length: 9 }, (_, i) => connect(i % 3, `${room}-m${i}`)));
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const publishers = members.slice(0, 3); // one per node

    let acked = 0;
    const send = (p: number, n: number): Promise<Frame> =>
      publishers[p]!.request({ op: 'publish', room, class: 'chat', data: { p, n }, cmid: `p${p}-${n}` }, 30_000).then((answer) => {
        if (answer.op === 'ack') acked += 1;
        return answer;
      });
    const first = publishers.flatMap((_, p) => Array.from({ length: PER_PUBLISHER }, (__, n) => send(p, n)));
    await waitFor(() => acked >= 3, { timeoutMs: 20_000, what: 'the first acks' }).catch((error: unknown) => {
      // Say what the workers and publishers last saw, for a failure in CI.
      throw new Error(
        `${String(error)}; workers: ${JSON.stringify(workers.map((w) => w.logs.slice(-5)))}; publishers: ${JSON.stringify(publishers.map((p) => p.frames.slice(-2)))}`,
      );
    });
    killWorker(workers[0]!);
    const ackedAtKill = acked;
    const answers = await Promise.all(first);
    assert.ok(ackedAtKill < 3 * PER_PUBLISHER, `killed mid-stream (${ackedAtKill} acked before)`);

    // What was refused (a request in the dead worker's hands whose answer was lost) is retried with its cmid.
    const refused = answers.flatMap((answer, i) => (answer.op === 'ack' ? [] : [{ i, answer }]));
    // Unanswered (outcome_unknown), or refused before it was sent while the broker connection was down (unavailable).
    for (const { answer } of refused) assert.ok(['outcome_unknown', 'unavailable'].includes(String(answer.code)), JSON.stringify(answer));
    const retried = await Promise.all(refused.map(({ i }) => send(Math.floor(i / PER_PUBLISHER), i % PER_PUBLISHER)));
    for (const answer of retried) assert.equal(answer.op, 'ack', JSON.stringify(answer));
    t.diagnostic(`acked before the kill: ${ackedAtKill}; refused and retried: ${refused.length}`);
    const acks = answers.map((answer, i) => (answer.op === 'ack' ? answer : retried[refused.findIndex((r) => r.i === i)]!));

    const total = 3 * PER_PUBLISHER;
    assert.deepEqual(
      acks.map((a) => Number(a.offset)).sort((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i + 1),
      'one offset per message',
    );
    assert.equal(new Set(acks.map((a) => a.id)).size, total, 'one id per message');
    const stored = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${env}".chat_messages WHERE room = $1`, [room]);
    assert.equal(Number(stored.rows[0]?.n), total, 'stored once each');

    // A last message: a member that missed a stored-but-unpublished one sees the gap and refills it.
    const fence = await publishers[0]!.request({ op: 'publish', room, class: 'chat', data: 'fence' }, 15_000);
    assert.deepEqual([fence.op, fence.offset], ['ack', total + 1]);
    await assertChatOrder(members, room, total + 1, 20_000);
    // The failover really happened: the active worker died by SIGKILL, so the standby stored the rest and the fence.
    assert.equal((await workers[0]!.exited).signal, 'SIGKILL');
  });
});
