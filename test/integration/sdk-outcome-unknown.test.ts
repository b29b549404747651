/**
 * One ack per message through a stalled Redis (docs/protocol.md,
 * `outcome_unknown`): a node reaches a private redis-server through a TCP
 * proxy that holds every byte for longer than the store's command timeout
 * (5 s). Chat published by the SDK meanwhile is answered `outcome_unknown`
 * (sent to Redis, no reply); the SDK re-sends it with the same cmid until
 * the store answers again. The app sees exactly one ack per message, the
 * other member and the history exactly one copy.
 *
 * redis-server missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { NerveClient, type AckFrame, type ChatMessage, type MessageFrame } from '../../packages/client/src/index.js';
import { createLogger } from '../../src/logger.js';
import { NerveNode } from '../../src/node.js';
import { redisServerSkipReason, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;

/** Longer than the store's 5 s command timeout, so the appends in flight time out. */
const STALL_MS = 6500;

describe('SDK chat through a stalled Redis', { skip, timeout: 60_000 }, () => {
  let redis: RedisServer;
  let proxy: TcpProxy;
  let node: NerveNode;
  let url: string;
  const clients: NerveClient[] = [];

  before(async () => {
    redis = await startRedis();
    proxy = await startTcpProxy(redis.port);
    node = new NerveNode(
      { port: 0, host: '127.0.0.1', demo: false, redisUrl: `redis://127.0.0.1:${proxy.port}`, env: testNamespace('ou') },
      { logger: createLogger('silent') },
    );
    url = `ws://127.0.0.1:${(await node.start()).port}/ws`;
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    proxy?.pass();
    await node?.stop();
    await proxy?.close();
    await redis?.stop();
  });

  function client(user: string): NerveClient {
    const created = new NerveClient({ url, user, WebSocket, requestTimeoutMs: 30_000, reconnect: { minDelayMs: 100, maxDelayMs: 500 } });
    created.on('error', () => {}); // reported through the assertions below
    clients.push(created);
    return created;
  }

  async function outcomeUnknownAnswers(): Promise<number> {
    const metric = (await node.metrics.errors.get()).values.find((value) => value.labels.code === 'outcome_unknown');
    return metric?.value ?? 0;
  }

  it('acks every message once and delivers it once', async () => {
    const room = 'stalled';
    const sender = client('sender');
    const reader = client('reader');
    await Promise.all([sender.connect(), reader.connect()]);
    const seen: ChatMessage[] = [];
    reader.on('message', (message: MessageFrame) => {
      if (message.class === 'chat' && message.room === room) seen.push(message);
    });
    await sender.join(room);
    await reader.join(room);
    assert.equal((await sender.publish(room, { n: 0 }, { cmid: 'before' })).offset, 1);

    proxy.hold();
    const acks: AckFrame[] = [];
    const settled: string[] = [];
    const publishes = Array.from({ length: 5 }, (_, i) =>
      sender.publish(room, { n: i + 1 }, { cmid: `stalled-${i + 1}` }).then(
        (ack) => {
          acks.push(ack);
          settled.push('ack');
        },
        (error: unknown) => settled.push(String((error as { code?: string }).code)),
      ),
    );
    // The appends in flight time out as outcome_unknown (the SDK re-sends them; their re-sends stall too).
    await waitFor(async () => (await outcomeUnknownAnswers()) >= 1, { timeoutMs: STALL_MS + 3000, what: 'an outcome_unknown answer' });
    proxy.pass();
    await Promise.all(publishes);

    assert.deepEqual(settled, ['ack', 'ack', 'ack', 'ack', 'ack'], 'one ack per message, no error');
    assert.deepEqual(
      acks.map((ack) => ack.offset).sort((a, b) => Number(a) - Number(b)),
      [2, 3, 4, 5, 6],
      'each stored once',
    );
    assert.equal(new Set(acks.map((ack) => ack.id)).size, 5);
    // The reader gets each message once, in order; a message after the stall shows nothing else is on its way.
    assert.equal((await sender.publish(room, { n: 6 }, { cmid: 'after' })).offset, 7);
    await waitFor(() => seen.some((message) => message.cmid === 'after'), { timeoutMs: 15_000, what: 'the last message at the reader' });
    assert.deepEqual(
      seen.map((message) => message.offset),
      [1, 2, 3, 4, 5, 6, 7],
      'delivered once each, in order',
    );
    const auditor = client('auditor');
    await auditor.connect();
    const recent = await auditor.join(room); // the newest 50 of the history
    const stored = recent.history
      .map((message) => message.cmid ?? '')
      .filter((cmid) => cmid.startsWith('stalled-'))
      .sort();
    assert.deepEqual(stored, ['stalled-1', 'stalled-2', 'stalled-3', 'stalled-4', 'stalled-5'], 'stored once each');
  });
});
