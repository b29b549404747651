/**
 * Pusher-format webhooks (docs/pusher.md, "Webhooks"): a node emits
 * `pusher.webhook` events on the cold lane (RabbitMQ), the webhooks worker
 * batches them into Pusher's `{time_ms, events}` body, signs it with the
 * app's key and secret, and retries a refused POST; the official `pusher`
 * library verifies every delivery. And the sweep those facts rely on: the
 * Pusher members of a killed node leave for the survivors' subscribers.
 *
 * RabbitMQ (or, for the crash, Redis) missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import PusherServer from 'pusher';
import * as pusherJs from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback } from 'pusher-js';
import { Connection } from 'rabbitmq-client';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { normalizePusherApps } from '../../src/config/pusher-apps.js';
import { pusherWebhookQueue } from '../../src/pusher/webhooks.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { deleteTopology } from '../helpers/rabbitmq.js';

const skip = await serviceSkip('RabbitMQ', 5672);

type PusherClient = InstanceType<typeof pusherJs.default.default>;
const PusherClient = pusherJs.default as unknown as typeof pusherJs.default.default;

interface Delivery {
  valid: boolean;
  timeMs: number;
  events: Array<Record<string, unknown>>;
}

describe('Pusher webhooks from the cold lane', { skip, timeout: 60_000 }, () => {
  const ns = testNamespace('pwh');
  let receiver: Server;
  let url: string;
  let node: NodeProcess | undefined;
  let worker: WorkerHandle | undefined;
  const clients: PusherClient[] = [];
  const deliveries: Delivery[] = [];
  let refuseNext = 1;
  let app: { id: string; key: string; secret: string; enableClientMessages: boolean; webhooks: { url: string }[] };

  before(async () => {
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        // The first POST is refused: the worker must send its events again.
        if (refuseNext > 0) {
          refuseNext -= 1;
          response.statusCode = 500;
          response.end();
          return;
        }
        const webhook = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' }).webhook({
          headers: request.headers,
          rawBody: Buffer.concat(chunks).toString('utf8'),
        });
        const valid = webhook.isValid();
        deliveries.push({
          valid,
          timeMs: valid ? webhook.getTime().getTime() : 0,
          events: valid ? (webhook.getEvents() as unknown as Array<Record<string, unknown>>) : [],
        });
        response.statusCode = 200;
        response.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const address = receiver.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    url = `http://127.0.0.1:${address.port}/pusher/webhooks`;
    app = { id: '3001', key: 'hook-key', secret: 'hook-secret-0123456789', enableClientMessages: true, webhooks: [{ url }] };
    worker = await runWorker('webhooks', { amqpUrl: AMQP_URL, env: ns, pusherApps: [app], retryDelayMs: 20, logger: pino({ level: 'silent' }) });
    node = await startNode({ args: ['--amqp-url', AMQP_URL, '--env', ns, '--pusher-apps', JSON.stringify([app])] });
  });

  after(async () => {
    for (const client of clients) client.disconnect();
    await node?.stop();
    await worker?.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    const admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    const queue = `${ns}.nerve.${pusherWebhookQueue(normalizePusherApps([app])[0]!, normalizePusherApps([app])[0]!.webhooks[0]!.url)}`;
    const retries = [20, 40, 80, 160, 320].map((delay) => `${queue}.retry.${delay}`);
    await deleteTopology(admin, `${ns}.`, { queues: [queue, `${queue}.dlq`, ...retries], exchanges: [`${ns}.nerve.events`] });
    await admin.close();
  });

  function client(user: string): PusherClient {
    const signer = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });
    const pusher = new PusherClient(app.key, {
      cluster: 'nerve',
      wsHost: '127.0.0.1',
      wsPort: node!.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) =>
          callback(null, signer.authorizeChannel(socketId, channelName, { user_id: user })),
      },
    });
    clients.push(pusher);
    return pusher;
  }

  function subscribed(pusher: PusherClient, name: string): Promise<Channel> {
    const channel = pusher.subscribe(name);
    return new Promise((resolve) => channel.bind('pusher:subscription_succeeded', () => resolve(channel)));
  }

  it('channel_occupied, member_added, client_event, member_removed and channel_vacated arrive batched, signed, and again after a refused POST', async () => {
    const name = `presence-${testNamespace('hooks')}`;
    const alice = client('alice');
    const bob = client('bob');
    await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    bobChannel.trigger('client-hello', { text: 'hi' });
    await waitFor(() => deliveries.flatMap((d) => d.events).some((event) => event.name === 'client_event'), {
      timeoutMs: 15_000,
      what: 'client_event webhook',
    });
    bob.disconnect();

    const seen = await waitFor(
      () => {
        const events = deliveries.flatMap((d) => d.events);
        return events.some((event) => event.name === 'member_removed') ? events : undefined;
      },
      { timeoutMs: 15_000, what: 'member_removed webhook' },
    );
    assert.ok(
      deliveries.every((delivery) => delivery.valid),
      'every delivery verified by the pusher library',
    );
    assert.ok(deliveries.every((delivery) => Math.abs(delivery.timeMs - Date.now()) < 60_000));
    const ofChannel = seen.filter((event) => event.channel === name);
    assert.deepEqual(
      ofChannel
        .filter((event) => event.name === 'member_added')
        .map((event) => event.user_id)
        .sort(),
      ['alice', 'bob'],
    );
    const clientEvent = ofChannel.find((event) => event.name === 'client_event');
    assert.equal(clientEvent?.event, 'client-hello');
    assert.equal(clientEvent?.data, JSON.stringify({ text: 'hi' }));
    assert.equal(clientEvent?.user_id, 'bob');
    assert.match(String(clientEvent?.socket_id), /^\d+\.\d+$/);
    assert.deepEqual(
      ofChannel.filter((event) => event.name === 'member_removed').map((event) => event.user_id),
      ['bob'],
    );
    assert.equal(refuseNext, 0, 'the refused first POST was sent again');

    // The last subscriber leaves: the channel is vacated, once; it was occupied once.
    alice.disconnect();
    const all = await waitFor(
      () => {
        const events = deliveries.flatMap((d) => d.events).filter((event) => event.channel === name);
        return events.some((event) => event.name === 'channel_vacated') ? events : undefined;
      },
      { timeoutMs: 15_000, what: 'channel_vacated webhook' },
    );
    assert.equal(all.filter((event) => event.name === 'channel_occupied').length, 1);
    assert.equal(all.filter((event) => event.name === 'channel_vacated').length, 1);
    assert.deepEqual(Object.keys(all.find((event) => event.name === 'channel_occupied') ?? {}).sort(), ['channel', 'name']);
    // The two joins came within one batch window of each other on one connection: at least one POST carried several events.
    assert.ok(deliveries.some((delivery) => delivery.events.length > 1) || deliveries.length >= 3);
  });
});

const crashSkip = skip || ((await redisSkipReason(SHARED_REDIS_URL)) ?? false);

describe('Pusher presence when a node crashes', { skip: crashSkip, timeout: 60_000 }, () => {
  const APP = { id: '3101', key: 'crash-key', secret: 'crash-secret-0123456789' };
  let cluster: Cluster | undefined;
  const clients: PusherClient[] = [];

  before(async () => {
    cluster = await startCluster({ count: 2, redisUrl: SHARED_REDIS_URL, args: ['--pusher-apps', JSON.stringify([APP]), '--presence-ttl-ms', '1000'] });
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it("a survivor's subscriber gets member_removed for the members of a killed node, within the presence TTL", async () => {
    const name = `presence-${testNamespace('crash')}`;
    const join = (node: number, user: string): Promise<Channel> => {
      const signer = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });
      const pusher = new PusherClient(APP.key, {
        cluster: 'nerve',
        wsHost: '127.0.0.1',
        wsPort: cluster!.node(node).port,
        forceTLS: false,
        enabledTransports: ['ws'],
        disableStats: true,
        channelAuthorization: {
          endpoint: '/unused',
          transport: 'ajax',
          customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) =>
            callback(null, signer.authorizeChannel(socketId, channelName, { user_id: user })),
        },
      });
      clients.push(pusher);
      const channel = pusher.subscribe(name);
      return new Promise((resolve) => channel.bind('pusher:subscription_succeeded', () => resolve(channel)));
    };
    const survivor = await join(0, 'stays');
    await join(1, 'doomed');
    const removed = new Promise<{ id: string }>((resolve) => survivor.bind('pusher:member_removed', resolve));
    // The TTL is 1 s; the sweep runs on the survivor's next heartbeat.
    await cluster!.node(1).kill();
    const member = await Promise.race([
      removed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no member_removed within 10 s')), 10_000)),
    ]);
    assert.equal(member.id, 'doomed');
  });
});
