/**
 * The cold lane from the node's side, on real RabbitMQ, Redis and
 * PostgreSQL: 3 nodes emit lifecycle events (exactly one room.ended per room
 * session across the cluster, one session id on every event of a session,
 * every member in room.ended), chat reaches PostgreSQL through the
 * chat-store worker, and the server API pages through it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { pino } from 'pino';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTestDatabase, postgresSkip, POSTGRES_URL, type TestDatabase } from '../helpers/postgres.js';
import { consumerQueues, deleteTopology } from '../helpers/rabbitmq.js';
import { RawClient } from '../helpers/raw-client.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const REDIS_URL = SHARED_REDIS_URL;
const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await redisSkipReason()) ?? (await postgresSkip());
const API_KEY = 'test-api-key-0123456789abcdef';
const silent = pino({ level: 'silent' });

describe('cold lane through the nodes', { skip }, () => {
  const env = testNamespace('cold');
  let cluster: Cluster;
  let db: TestDatabase;
  let observer: RabbitEventLog;
  let worker: WorkerHandle;
  let admin: Connection;
  const events: LifecycleEvent[] = [];

  before(async () => {
    db = await createTestDatabase(env);
    admin = new Connection({ url: AMQP_URL });
    admin.on('error', () => undefined);
    // The observer and the worker declare the exchange and their queues before any node publishes.
    observer = new RabbitEventLog({ url: AMQP_URL, env, service: 'nerve', logger: silent });
    await observer.start();
    await observer.consume({ queue: 'observer', bindings: ['room.*', 'participant.*'] }, async (event) => {
      events.push(event);
      return 'ack';
    });
    worker = await runWorker('chat-store', { amqpUrl: AMQP_URL, postgresUrl: POSTGRES_URL, schema: env, env, service: 'nerve', logger: silent });
    cluster = await startCluster({
      count: 3,
      redisUrl: REDIS_URL,
      env,
      args: ['--amqp-url', AMQP_URL, '--postgres-url', POSTGRES_URL, '--postgres-schema', env, '--api-key', API_KEY],
    });
  });

  after(async () => {
    await cluster?.stop();
    await worker?.close();
    await observer?.close();
    // Every queue of the run (each worker's work, dead-letter and retry queues), whatever consumers it declared.
    const prefix = `${env}.nerve`;
    await deleteTopology(admin, `${env}.`, { queues: consumerQueues(prefix, ['observer', 'chat-store', 'chat-store-reads']), exchanges: [`${prefix}.events`] });
    await admin.close();
    await db?.drop();
  });

  it('emits exactly one room.ended per room session when members on different nodes all leave', async () => {
    for (let session = 1; session <= 2; session++) {
      const clients = await Promise.all(cluster.nodes.map((node, i) => RawClient.connect(node.wsUrl, `member-${i}`)));
      for (const client of clients) assert.equal((await client.request({ op: 'join', room: 'standup' })).op, 'joined');
      for (const client of clients) {
        assert.equal((await client.request({ op: 'leave', room: 'standup' })).op, 'left');
        client.close();
      }
      await waitFor(() => events.filter((e) => e.type === 'room.ended' && e.room === 'standup').length >= session, {
        timeoutMs: 10_000,
        what: `room.ended of session ${session}`,
      });
    }
    // Fence: each node's events reach the queue in the order it published them, so once
    // every node's join into another room is in, a second room.ended emitted by any node
    // before that join would be in too.
    const fences = await Promise.all(cluster.nodes.map((node, i) => RawClient.connect(node.wsUrl, `fence-${i}`)));
    for (const client of fences) assert.equal((await client.request({ op: 'join', room: 'fence' })).op, 'joined');
    await waitFor(() => events.filter((e) => e.type === 'participant.joined' && e.room === 'fence').length === fences.length, {
      timeoutMs: 10_000,
      what: 'the fence joins of all three nodes',
    });
    for (const client of fences) client.close();
    const created = events.filter((e) => e.type === 'room.created' && e.room === 'standup');
    const ended = events.filter((e) => e.type === 'room.ended' && e.room === 'standup');
    assert.equal(created.length, 2, 'one room.created per session');
    assert.equal(ended.length, 2, 'one room.ended per session');
    assert.notEqual(ended[0]!.session, ended[1]!.session, 'a new id for each session');
    const joins = events.filter((e) => e.type === 'participant.joined' && e.room === 'standup');
    assert.equal(joins.length, 6);
    for (const event of ended) {
      assert.equal(event.v, 1);
      assert.equal(typeof (event.data as { durationMs: unknown }).durationMs, 'number');
      assert.ok(Array.isArray((event.data as { participants: unknown }).participants));
    }
  });

  it('gives every event of a session one id and room.ended every member, whichever node they were on', async () => {
    const room = 'allhands';
    const users = ['ah-0', 'ah-1', 'ah-2'];
    const clients = await Promise.all(cluster.nodes.map((node, i) => RawClient.connect(node.wsUrl, users[i]!)));
    // All three in the room at once (peak 3), then all leave, each from their own node.
    for (const client of clients) assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    for (const client of clients) {
      assert.equal((await client.request({ op: 'leave', room })).op, 'left');
      client.close();
    }
    const ofRoom = (): LifecycleEvent[] => events.filter((e) => e.room === room);
    // Each node emits its events after its own store step: wait for all eight, not only for room.ended.
    await waitFor(() => ofRoom().length >= 8 && ofRoom().some((e) => e.type === 'room.ended'), { timeoutMs: 10_000, what: 'the eight events of the session' });
    const all = ofRoom();
    assert.deepEqual(all.map((e) => e.type).sort(), [
      'participant.joined',
      'participant.joined',
      'participant.joined',
      'participant.left',
      'participant.left',
      'participant.left',
      'room.created',
      'room.ended',
    ]);
    const sessions = new Set(all.map((e) => e.session));
    assert.equal(sessions.size, 1, `one session id, got ${[...sessions].join(', ')}`);
    assert.equal(new Set(all.filter((e) => e.type === 'participant.joined').map((e) => e.node)).size, 3, 'joins emitted by 3 nodes');

    const ended = all.find((e) => e.type === 'room.ended')!;
    const data = ended.data as { startedAt: number; durationMs: number; participants: Array<{ user: string; ms: number }>; peakParticipants: number };
    assert.equal(data.peakParticipants, 3);
    const created = all.find((e) => e.type === 'room.created')!;
    assert.ok(data.startedAt <= created.ts && created.ts - data.startedAt < 5000, 'started when the room was created');
    assert.ok(data.durationMs >= 0 && data.durationMs < 60_000);
    const participants = [...data.participants].sort((a, b) => a.user.localeCompare(b.user));
    assert.deepEqual(
      participants.map((p) => p.user),
      users,
    );
    // Each member's time in room.ended is the time their participant.left reported, and fits in the session.
    for (const participant of participants) {
      const left = all.find((e) => e.type === 'participant.left' && (e.data as { user: string }).user === participant.user)!;
      assert.equal((left.data as { ms?: number }).ms, participant.ms, `ms of ${participant.user}`);
      assert.ok(participant.ms >= 0 && participant.ms <= data.durationMs, `${participant.user}: ${participant.ms} of ${data.durationMs}`);
    }
  });

  it('stores chat through the chat-store worker and pages it through the API', async () => {
    const alice = await RawClient.connect(cluster.nodes[0]!.wsUrl, 'alice');
    await alice.request({ op: 'join', room: 'archive' });
    for (let i = 1; i <= 5; i++) assert.equal((await alice.request({ op: 'publish', room: 'archive', class: 'chat', data: { n: i } })).op, 'ack');
    alice.close();
    const api = (path: string, key: string | null = API_KEY) =>
      fetch(`${cluster.nodes[1]!.url}${path}`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
    const page = await waitFor(
      async () => {
        const body = (await (await api('/api/rooms/archive/messages?limit=3')).json()) as {
          messages: Array<{ data: { n: number }; offset: number; from: string }>;
          next: string | null;
        };
        // The worker stores asynchronously: wait for the newest (n = 5), not for any three.
        return body.messages.length === 3 && body.next && body.messages[2]?.data.n === 5 ? body : undefined;
      },
      { timeoutMs: 10_000, what: 'stored messages' },
    );
    assert.deepEqual(
      page.messages.map((m) => m.data.n),
      [3, 4, 5],
    );
    assert.deepEqual(
      page.messages.map((m) => m.offset),
      [3, 4, 5],
    );
    assert.equal(page.messages[0]!.from, 'alice');
    const older = (await (await api(`/api/rooms/archive/messages?limit=3&before=${encodeURIComponent(page.next!)}`)).json()) as {
      messages: Array<{ data: { n: number } }>;
      next: string | null;
    };
    assert.deepEqual(
      older.messages.map((m) => m.data.n),
      [1, 2],
    );
    assert.equal(older.next, null);

    assert.equal((await api('/api/rooms/archive/messages', null)).status, 401);
    assert.equal((await api('/api/rooms/archive/messages', 'wrong-key-wrong-key-wrong-key')).status, 401);
    const bad = await api('/api/rooms/bad%3Aroom/messages');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'invalid_room');
    assert.equal((await api('/api/rooms/archive/messages?before=garbage')).status, 400);
  });
});
