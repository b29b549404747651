/**
 * Issue 19: nerve speaks the Pusher Channels protocol. The real clients
 * (pusher-js from npm, in Node, and the official `pusher` server library)
 * against three `nerve serve` processes on the shared Redis: every channel
 * type, client events, presence across nodes, cache channels, the HTTP API
 * and its signing, reconnects, terminations, refusals, and nerve SDK
 * members meeting Pusher subscribers in one room. docs/pusher.md cites the
 * tests by name.
 *
 * Redis missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import PusherServer from 'pusher';
import * as pusherJs from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback, PresenceChannel, UserAuthenticationCallback } from 'pusher-js';
import { NerveNode } from '../../src/node.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

// pusher-js is CommonJS (module.exports = Pusher) with ES-style typings (`export default Pusher`): at run time the
// class is the namespace's default, where the typings see the namespace itself.
type PusherClient = InstanceType<typeof pusherJs.default.default>;
const PusherClient = pusherJs.default as unknown as typeof pusherJs.default.default;

/** The main app lives in the dev authenticator's tenant, so raw nerve clients meet its channels. */
const APP = { id: '1001', key: 'app-key-1', secret: 'app-secret-1-0123456789', tenant: 'default', enableClientMessages: true, maxClientEventsPerSecond: 5 };
/** A second app: another tenant, a short activity timeout, client events off. */
const QUIET = { id: '1002', key: 'app-key-2', secret: 'app-secret-2-0123456789', tenant: 'quiet', activityTimeoutS: 1 };
const DISABLED = { id: '1003', key: 'app-key-3', secret: 'app-secret-3-0123456789', tenant: 'off', enabled: false };
const MASTER_KEY = randomBytes(32).toString('base64');

type Bindable = { bind(event: string, callback: (...args: never[]) => void): unknown; unbind(event: string, callback: (...args: never[]) => void): unknown };

/** The next `event` of a pusher-js channel or connection, or a timeout error. */
function next<T = unknown>(target: Bindable, event: string, timeoutMs = 5000): Promise<[T, Record<string, unknown>]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.unbind(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
    }, timeoutMs);
    const listener = ((data: T, metadata: Record<string, unknown>) => {
      clearTimeout(timer);
      target.unbind(event, listener);
      resolve([data, metadata ?? {}]);
    }) as (...args: never[]) => void;
    target.bind(event, listener);
  });
}

describe('Pusher protocol on a 3-node cluster', { skip, timeout: 120_000 }, () => {
  let cluster: Cluster;
  const clients: PusherClient[] = [];
  const raws: RawClient[] = [];
  const proxies: TcpProxy[] = [];

  function server(node = 0, app: { id: string; key: string; secret: string } = APP): PusherServer {
    return new PusherServer({
      appId: app.id,
      key: app.key,
      secret: app.secret,
      host: '127.0.0.1',
      port: String(cluster.node(node).port),
      useTLS: false,
      encryptionMasterKeyBase64: MASTER_KEY,
    });
  }

  /** A pusher-js client on node `node` (or on `port`), authorized by the official server library as `member` on presence channels. */
  function client(
    node: number,
    options: { member?: { user_id: string; user_info?: Record<string, unknown> }; key?: string; port?: number } = {},
  ): PusherClient {
    const signer = server(node);
    const pusher = new PusherClient(options.key ?? APP.key, {
      cluster: 'nerve',
      wsHost: '127.0.0.1',
      wsPort: options.port ?? cluster.node(node).port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) => {
          try {
            const member = channelName.startsWith('presence-') && options.member ? options.member : undefined;
            callback(null, signer.authorizeChannel(socketId, channelName, member));
          } catch (error) {
            callback(error as Error, null);
          }
        },
      },
      userAuthentication: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: ({ socketId }: { socketId: string }, callback: UserAuthenticationCallback) =>
          callback(null, signer.authenticateUser(socketId, { id: options.member?.user_id ?? 'anon' })),
      },
    });
    clients.push(pusher);
    return pusher;
  }

  async function subscribed(pusher: PusherClient, name: string): Promise<Channel> {
    const channel = pusher.subscribe(name);
    await next(channel, 'pusher:subscription_succeeded');
    return channel;
  }

  before(async () => {
    const apps = JSON.stringify([APP, QUIET, DISABLED]);
    cluster = await startCluster({ count: 3, redisUrl: SHARED_REDIS_URL, args: ['--pusher-apps', apps] });
  });

  after(async () => {
    for (const pusher of clients) pusher.disconnect();
    for (const raw of raws) raw.close();
    for (const proxy of proxies) await proxy.close();
    await cluster?.stop();
  });

  it('connects: connection_established with a socket id and the activity timeout, ping answered by pong', async () => {
    const raw = await RawClient.open(`ws://127.0.0.1:${cluster.node(0).port}/app/${APP.key}?protocol=7&client=js&version=8.4.0`);
    raws.push(raw);
    const established = await raw.waitFor((frame) => frame.event === 'pusher:connection_established');
    const data = JSON.parse(established.data as string) as { socket_id: string; activity_timeout: number };
    assert.match(data.socket_id, /^\d+\.\d+$/);
    assert.equal(data.activity_timeout, 120);
    raw.send({ event: 'pusher:ping', data: {} });
    await raw.waitFor((frame) => frame.event === 'pusher:pong');
  });

  it('public channel: an event triggered by the server library on node 2 reaches subscribers on nodes 0 and 1; socket_id is excluded', async () => {
    const name = testNamespace('news');
    const a = client(0);
    const b = client(1);
    const [ca, cb] = await Promise.all([subscribed(a, name), subscribed(b, name)]);
    const got = Promise.all([next(ca, 'headline'), next(cb, 'headline')]);
    await server(2).trigger(name, 'headline', { title: 'hello' });
    for (const [data] of await got) assert.deepEqual(data, { title: 'hello' });

    // Excluding a's socket: only b hears it.
    let aHeard = 0;
    ca.bind('second', () => (aHeard += 1));
    const bGot = next(cb, 'second');
    await server(2).trigger(name, 'second', { n: 2 }, { socket_id: a.connection.socket_id });
    await bGot;
    const third = next(ca, 'third');
    await server(2).trigger(name, 'third', {});
    await third; // a's events arrive in order: had `second` reached it, it would have come before `third`
    assert.equal(aHeard, 0);
  });

  it('private channel: authorized by the server library; a bad signature is a subscription_error 401', async () => {
    const name = `private-${testNamespace('p')}`;
    const a = client(0);
    const channel = await subscribed(a, name);
    const got = next(channel, 'secret');
    await server(1).trigger(name, 'secret', 'plain text');
    assert.equal((await got)[0], 'plain text');

    const forger = new PusherClient(APP.key, {
      cluster: 'nerve',
      wsHost: '127.0.0.1',
      wsPort: cluster.node(1).port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: (_params: unknown, callback: ChannelAuthorizationCallback) => callback(null, { auth: `${APP.key}:${'0'.repeat(64)}` }),
      },
    });
    clients.push(forger);
    const [error] = await next<{ type: string; status: number }>(forger.subscribe(name), 'pusher:subscription_error');
    assert.equal(error.type, 'AuthError');
    assert.equal(error.status, 401);
  });

  it('presence channel across nodes: members with user_info, member_added and member_removed, users over the HTTP API', async () => {
    const name = `presence-${testNamespace('room')}`;
    const alice = client(0, { member: { user_id: 'alice', user_info: { name: 'Alice' } } });
    const aliceChannel = (await subscribed(alice, name)) as PresenceChannel;
    assert.equal(aliceChannel.members.count, 1);
    assert.equal((aliceChannel.members.me as { id?: string } | null)?.id, 'alice');

    const added = next<{ id: string; info: unknown }>(aliceChannel, 'pusher:member_added');
    const bob = client(1, { member: { user_id: 'bob', user_info: { name: 'Bob' } } });
    const bobChannel = (await subscribed(bob, name)) as PresenceChannel;
    assert.equal(bobChannel.members.count, 2);
    assert.deepEqual(bobChannel.members.get('alice'), { id: 'alice', info: { name: 'Alice' } });
    const [member] = await added;
    assert.deepEqual(member, { id: 'bob', info: { name: 'Bob' } });

    const users = (await (await server(2).get({ path: `/channels/${name}/users` })).json()) as { users: { id: string }[] };
    assert.deepEqual(users.users.map((user) => user.id).sort(), ['alice', 'bob']);
    const info = (await (await server(2).get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } })).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 2 });
    const list = (await (await server(2).get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json()) as {
      channels: Record<string, unknown>;
    };
    assert.deepEqual(list.channels[name], { user_count: 2 });

    const removed = next<{ id: string }>(aliceChannel, 'pusher:member_removed');
    bob.disconnect();
    assert.equal((await removed)[0].id, 'bob');
    await waitFor(
      async () =>
        ((await (await server(2).get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json()) as { subscription_count: number })
          .subscription_count === 1,
      { what: 'subscription count 1' },
    );
  });

  it('client events: relayed across nodes to the others only, with user_id on presence channels; refused on public channels; rate limited (4301)', async () => {
    const name = `presence-${testNamespace('chat')}`;
    const alice = client(0, { member: { user_id: 'alice' } });
    const bob = client(2, { member: { user_id: 'bob' } });
    const [ac, bc] = await Promise.all([subscribed(alice, name), subscribed(bob, name)]);
    let echoed = 0;
    ac.bind('client-typing', () => (echoed += 1));
    const got = next<{ typing: boolean }>(bc, 'client-typing');
    assert.equal(ac.trigger('client-typing', { typing: true }), true);
    const [data, metadata] = await got;
    assert.deepEqual(data, { typing: true });
    assert.equal(metadata.user_id, 'alice');

    const done = next(ac, 'client-done');
    bc.trigger('client-done', {});
    await done; // bob's later event reached alice, so her own earlier one would have too
    assert.equal(echoed, 0);

    const publicChannel = await subscribed(alice, testNamespace('open'));
    const refused = next<{ type: string; data: { code: number } }>(alice.connection, 'error');
    publicChannel.trigger('client-nope', {});
    assert.equal((await refused)[0].data.code, 4302);

    const limited = next<{ data: { code: number } }>(alice.connection, 'error');
    for (let i = 0; i < 8; i += 1) ac.trigger('client-burst', { i });
    assert.equal((await limited)[0].data.code, 4301);
    assert.equal(alice.connection.state, 'connected');
  });

  it('private-encrypted channel: the server relays the ciphertext that pusher-js decrypts', async () => {
    const name = `private-encrypted-${testNamespace('e')}`;
    const a = client(1);
    const channel = await subscribed(a, name);
    const got = next(channel, 'sealed');
    await server(0).trigger(name, 'sealed', { secret: 42 });
    assert.deepEqual((await got)[0], { secret: 42 });
  });

  it('cache channel: a subscriber gets the last event at once, or pusher:cache_miss', async () => {
    const name = `cache-${testNamespace('c')}`;
    const missing = client(0).subscribe(name);
    await next(missing, 'pusher:cache_miss');
    await server(1).trigger(name, 'price', { v: 1 });
    await server(1).trigger(name, 'price', { v: 2 });
    const late = client(2).subscribe(name);
    const [data] = await next(late, 'price');
    assert.deepEqual(data, { v: 2 });
  });

  it('batch_events: ten events in one call, info per event; an eleventh is refused 400', async () => {
    const name = `presence-${testNamespace('b')}`;
    const listener = client(0, { member: { user_id: 'u1' } });
    const channel = await subscribed(listener, name);
    const seen: number[] = [];
    channel.bind('tick', (data: { i: number }) => seen.push(data.i));
    const batch = Array.from({ length: 10 }, (_, i) => ({ channel: name, name: 'tick', data: JSON.stringify({ i }), info: 'user_count' }));
    const answer = (await (await server(1).triggerBatch(batch)).json()) as { batch: { user_count: number }[] };
    assert.equal(answer.batch.length, 10);
    assert.equal(answer.batch[0]?.user_count, 1);
    await waitFor(() => seen.length === 10, { what: '10 batch events' });
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await assert.rejects(
      server(1).triggerBatch([...batch, batch[0]!]),
      (error: { status: number; body: string }) => error.status === 400 && /Batch too large/.test(error.body),
    );
  });

  it('HTTP API refusals: bad signature, stale timestamp, wrong key, unknown app, disabled app, oversized data', async () => {
    const base = cluster.node(0).url;
    const wrongSecret = new PusherServer({
      appId: APP.id,
      key: APP.key,
      secret: 'not-the-secret-at-all',
      host: '127.0.0.1',
      port: String(cluster.node(0).port),
      useTLS: false,
    });
    await assert.rejects(
      wrongSecret.trigger('x', 'e', 'd'),
      (error: { status: number; body: string }) => error.status === 401 && /Invalid signature/.test(error.body),
    );
    const wrongKey = new PusherServer({
      appId: APP.id,
      key: 'other-key',
      secret: APP.secret,
      host: '127.0.0.1',
      port: String(cluster.node(0).port),
      useTLS: false,
    });
    await assert.rejects(
      wrongKey.trigger('x', 'e', 'd'),
      (error: { status: number; body: string }) => error.status === 401 && /Unknown auth_key/.test(error.body),
    );
    const stale = await fetch(
      `${base}/apps/${APP.id}/channels?auth_key=${APP.key}&auth_timestamp=${Math.floor(Date.now() / 1000) - 700}&auth_version=1.0&auth_signature=00`,
    );
    assert.equal(stale.status, 401);
    assert.match(await stale.text(), /Timestamp expired/);
    const unknown = await fetch(`${base}/apps/9999/channels`);
    assert.equal(unknown.status, 404);
    await assert.rejects(server(0, DISABLED).trigger('x', 'e', 'd'), (error: { status: number }) => error.status === 403);
    await assert.rejects(server(0).trigger('x', 'e', 'x'.repeat(10_241)), (error: { status: number }) => error.status === 413);
  });

  it('WebSocket refusals: unknown key 4001, disabled app 4003, no protocol 4008, unsupported protocol 4007, bad path 4005', async () => {
    const port = cluster.node(0).port;
    const closeCode = async (path: string): Promise<number> => {
      const raw = await RawClient.open(`ws://127.0.0.1:${port}${path}`);
      raws.push(raw);
      return raw.waitClose();
    };
    assert.equal(await closeCode('/app/nope?protocol=7'), 4001);
    assert.equal(await closeCode(`/app/${DISABLED.key}?protocol=7`), 4003);
    assert.equal(await closeCode(`/app/${APP.key}`), 4008);
    assert.equal(await closeCode(`/app/${APP.key}?protocol=3`), 4007);
    assert.equal(await closeCode(`/app/${APP.key}/extra?protocol=7`), 4005);

    // pusher-js, refused by key, stops (no reconnect loop).
    const lost = client(1, { key: 'nope' });
    await waitFor(() => lost.connection.state === 'failed' || lost.connection.state === 'disconnected', { what: 'pusher-js to give up' });
  });

  it('apps are tenants: the same channel name in two apps never meets', async () => {
    const name = testNamespace('shared');
    const main = client(0);
    const quiet = new PusherClient(QUIET.key, {
      cluster: 'nerve',
      wsHost: '127.0.0.1',
      wsPort: cluster.node(0).port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
    });
    clients.push(quiet);
    const [mainChannel, quietChannel] = await Promise.all([subscribed(main, name), subscribed(quiet, name)]);
    let crossed = 0;
    mainChannel.bind('only-quiet', () => (crossed += 1));
    const got = next(quietChannel, 'only-quiet');
    await server(1, QUIET).trigger(name, 'only-quiet', {});
    await got;
    const marker = next(mainChannel, 'marker');
    await server(1).trigger(name, 'marker', {});
    await marker;
    assert.equal(crossed, 0);
  });

  it('activity timeout: a client that does not answer the server ping is closed with 4201', async () => {
    const raw = await RawClient.open(`ws://127.0.0.1:${cluster.node(2).port}/app/${QUIET.key}?protocol=7`);
    raws.push(raw);
    await raw.waitFor((frame) => frame.event === 'pusher:ping', 5000, 'server ping');
    assert.equal(await raw.waitClose(5000), 4201);
  });

  it('nerve SDK members and Pusher subscribers share a room: ephemeral publishes and Pusher events cross both ways', async () => {
    const room = testNamespace('mixed');
    const nerve = await RawClient.connect(cluster.node(2).wsUrl, 'nerve-user');
    raws.push(nerve);
    assert.equal((await nerve.request({ op: 'join', room })).op, 'joined');
    const pusher = client(0);
    const channel = await subscribed(pusher, room);

    const fromNerve = next<{ text: string }>(channel, 'greeting');
    nerve.send({ op: 'publish', rid: nerve.rid(), room, class: 'ephemeral', data: { event: 'greeting', data: { text: 'hi from nerve' } } });
    assert.deepEqual((await fromNerve)[0], { text: 'hi from nerve' });

    const other = next<{ from: string; data: unknown }>(channel, 'nerve-message');
    nerve.send({ op: 'publish', rid: nerve.rid(), room, class: 'ephemeral', data: { plain: true } });
    const [wrapped] = await other;
    assert.equal(wrapped.from, 'nerve-user');
    assert.deepEqual(wrapped.data, { plain: true });

    const chat = next<{ from: string; data: unknown; offset: number }>(channel, 'nerve-chat');
    await nerve.request({ op: 'publish', room, class: 'chat', data: { text: 'stored' } });
    assert.deepEqual((await chat)[0].data, { text: 'stored' });

    await server(1).trigger(room, 'from-pusher', { n: 1 });
    const message = await nerve.waitFor((frame) => frame.op === 'message' && frame.class === 'ephemeral' && frame.room === room);
    assert.deepEqual(message.data, { event: 'from-pusher', data: JSON.stringify({ n: 1 }) });
    assert.equal(message.from, 'server');
  });

  it("terminate_connections closes a signed-in user's connections on every node with 4009", async () => {
    const carol0 = client(0, { member: { user_id: 'carol' } });
    const carol1 = client(1, { member: { user_id: 'carol' } });
    // After sign-in pusher-js subscribes to `#server-to-user-carol`, which nerve
    // refuses with 4302 (docs/pusher.md: not supported) at a moment of its own;
    // so collect every error code and look for the 4009.
    const codes = [carol0, carol1].map((pusher) => {
      const seen: number[] = [];
      pusher.connection.bind('error', (error: { data?: { code?: number } }) => seen.push(error.data?.code ?? 0));
      return seen;
    });
    for (const pusher of [carol0, carol1]) {
      pusher.signin();
      await waitFor(() => pusher.user.user_data !== null, { what: 'sign-in' });
    }
    await server(2).terminateUserConnections('carol');
    await waitFor(() => codes.every((seen) => seen.includes(4009)), { what: '4009 on both connections' });
    await waitFor(() => carol0.connection.state !== 'connected' && carol1.connection.state !== 'connected', { what: 'both connections closed' });
  });

  it('reconnect: a pusher-js client whose TCP connection is cut reconnects and is subscribed again', async () => {
    const proxy = await startTcpProxy(cluster.node(1).port);
    proxies.push(proxy);
    const name = `presence-${testNamespace('re')}`;
    const dave = client(1, { member: { user_id: 'dave' }, port: proxy.port });
    const channel = (await subscribed(dave, name)) as PresenceChannel;
    const firstSocket = dave.connection.socket_id;
    const again = next(channel, 'pusher:subscription_succeeded', 20_000);
    assert.ok(proxy.cut() > 0);
    await again;
    assert.notEqual(dave.connection.socket_id, firstSocket);
    assert.equal(channel.members.count, 1);
    const got = next(channel, 'after');
    await server(0).trigger(name, 'after', { ok: true });
    assert.deepEqual((await got)[0], { ok: true });
  });
});

describe('Pusher on one in-process node (memory lanes)', () => {
  const LIMITED = { id: '4001', key: 'limited-key', secret: 'limited-secret-0123456789', maxConnections: 1 };

  it('refuses bad messages and floods with pusher:error 4302 and keeps the connection; counts it in nerve_pusher_connections; over maxConnections: 4004; a drain closes with 4200', async () => {
    const node = new NerveNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: false, pusherApps: [LIMITED] });
    const port = (await node.start()).port;
    try {
      const raw = await RawClient.open(`ws://127.0.0.1:${port}/app/${LIMITED.key}?protocol=7`);
      await raw.waitFor((frame) => frame.event === 'pusher:connection_established');
      const refusal = (send: () => void) => {
        const got = raw.waitFor((frame) => frame.event === 'pusher:error');
        send();
        return got.then((frame) => (frame.data as { code: number }).code);
      };
      assert.equal(await refusal(() => raw.sendRaw('{not json')), 4302);
      assert.equal(await refusal(() => raw.sendRaw(Buffer.from([1, 2, 3]), { binary: true })), 4302);
      assert.equal(await refusal(() => raw.send({ event: 'pusher:nonsense', data: {} })), 4302);
      assert.equal(await refusal(() => raw.send({ event: 'pusher:subscribe', data: { channel: 'bad name!' } })), 4302);
      assert.equal(await refusal(() => raw.send({ event: 'client-x', channel: 'private-a', data: {} })), 4302); // client events off for this app
      raw.send({ event: 'pusher:ping', data: {} });
      await raw.waitFor((frame) => frame.event === 'pusher:pong');
      // The node's per-connection rate (burst 100 by default) applies to Pusher messages too.
      const flooded = raw.waitFor((frame) => frame.event === 'pusher:error' && /messages per second/.test(String((frame.data as { message: string }).message)));
      for (let i = 0; i < 150; i += 1) raw.send({ event: 'pusher:ping', data: {} });
      await flooded;

      assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /^nerve_pusher_connections\{[^}]*\} 1$/m);
      const second = await RawClient.open(`ws://127.0.0.1:${port}/app/${LIMITED.key}?protocol=7`);
      assert.equal(await second.waitClose(), 4004);

      const closed = raw.waitClose();
      await node.stop();
      assert.equal(await closed, 4200);
    } finally {
      await node.stop();
    }
  });

  it('refuses a message, channel_data or HTTP API body nested deeper than 32 levels: 4302 / subscription_error 400 / 400, counted', async () => {
    const CHATTY = { id: '4002', key: 'chatty-key', secret: 'chatty-secret-0123456789', enableClientMessages: true };
    const node = new NerveNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: false, pusherApps: [CHATTY] });
    const port = (await node.start()).port;
    try {
      const raw = await RawClient.open(`ws://127.0.0.1:${port}/app/${CHATTY.key}?protocol=7`);
      const socketId = String(
        (JSON.parse(String((await raw.waitFor((frame) => frame.event === 'pusher:connection_established')).data)) as { socket_id: string }).socket_id,
      );
      const sign = (text: string) => `${CHATTY.key}:${createHmac('sha256', CHATTY.secret).update(text).digest('hex')}`;
      raw.send({ event: 'pusher:subscribe', data: { channel: 'private-deep', auth: sign(`${socketId}:private-deep`) } });
      await raw.waitFor((frame) => frame.event === 'pusher_internal:subscription_succeeded');
      // 20000 levels: JSON.parse takes it, JSON.stringify overflows the stack (it used to end as an "internal error").
      const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      const refused = raw.waitFor((frame) => frame.event === 'pusher:error');
      raw.sendRaw(`{"event":"client-deep","channel":"private-deep","data":${deep}}`);
      const error = (await refused).data as { code: number; message: string };
      assert.equal(error.code, 4302);
      assert.match(error.message, /deeper than 32 levels/);
      // 33 levels is one too many; 32 (the message object and data 31 deep) passes the check.
      const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
      const tooDeep = raw.waitFor((frame) => frame.event === 'pusher:error');
      raw.sendRaw(`{"event":"pusher:ping","data":${nested(32)}}`);
      assert.match(((await tooDeep).data as { message: string }).message, /deeper than 32 levels/);
      raw.sendRaw(`{"event":"pusher:ping","data":${nested(31)}}`);
      await raw.waitFor((frame) => frame.event === 'pusher:pong');

      const channelData = `{"user_id":"u1","user_info":${deep}}`;
      const subscriptionRefused = raw.waitFor((frame) => frame.event === 'pusher:subscription_error');
      raw.send({
        event: 'pusher:subscribe',
        data: { channel: 'presence-deep', auth: sign(`${socketId}:presence-deep:${channelData}`), channel_data: channelData },
      });
      const subscriptionError = (await subscriptionRefused).data as { status: number; error: string };
      assert.equal(subscriptionError.status, 400);
      assert.match(subscriptionError.error, /deeper than 32 levels/);

      const api = new PusherServer({ appId: CHATTY.id, key: CHATTY.key, secret: CHATTY.secret, host: '127.0.0.1', port: String(port), useTLS: false });
      const deepField = JSON.parse(nested(40)) as unknown;
      // The library JSON-encodes `body` itself (lib/requests.js) and signs that; its typings say string.
      const post = (path: string, body: object) => api.post({ path, body: body as unknown as string });
      await assert.rejects(
        post('/events', { name: 'e', data: 'd', channels: ['c'], extra: deepField }),
        (rejection: { status: number; body: string }) => rejection.status === 400 && /deeper than 32 levels/.test(rejection.body),
      );
      await assert.rejects(
        post('/batch_events', { batch: [{ name: 'e', data: 'd', channel: 'c', extra: deepField }] }),
        (rejection: { status: number; body: string }) => rejection.status === 400 && /deeper than 32 levels/.test(rejection.body),
      );

      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^nerve_errors_total\{[^}]*code="pusher_4302"[^}]*\} 2$/m);
      assert.match(metrics, /^nerve_errors_total\{[^}]*code="pusher_subscription_400"[^}]*\} 1$/m);
      assert.match(metrics, /^nerve_errors_total\{[^}]*code="pusher_http_400"[^}]*\} 2$/m);
      raw.close();
    } finally {
      await node.stop();
    }
  });

  it('counts Pusher connections in the tenant quota (4004, nerve_quota_refusals_total), meters them, and shares the per-IP cap with /ws', async () => {
    const METERED = { id: '4003', key: 'metered-key', secret: 'metered-secret-0123456789', tenant: 'pq', enableClientMessages: true };
    const OTHER = { id: '4004', key: 'other-key', secret: 'other-secret-0123456789', tenant: 'po' };
    const node = new NerveNode({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      demo: false,
      pusherApps: [METERED, OTHER],
      tenantQuotas: new Map([['pq', { connections: 2 }]]),
      limits: { maxConnectionsPerIp: 3 },
    });
    const port = (await node.start()).port;
    const url = (app: { key: string }) => `ws://127.0.0.1:${port}/app/${app.key}?protocol=7`;
    const open: RawClient[] = [];
    try {
      const connect = async (app: { key: string }) => {
        const raw = await RawClient.open(url(app));
        open.push(raw);
        const established = await raw.waitFor((frame) => frame.event === 'pusher:connection_established');
        return { raw, socketId: String((JSON.parse(String(established.data)) as { socket_id: string }).socket_id) };
      };
      const first = await connect(METERED);
      const second = await connect(METERED);
      // The tenant's third connection: over its quota of 2, refused as Pusher says for an app over its connection quota.
      const third = await RawClient.open(url(METERED));
      open.push(third);
      const refused = await third.waitFor((frame) => frame.event === 'pusher:error');
      assert.equal((refused.data as { code: number }).code, 4004);
      assert.equal(await third.waitClose(), 4004);
      const metricsText = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(await metricsText(), /^nerve_quota_refusals_total\{(?=[^}]*quota="connections")(?=[^}]*tenant="pq")[^}]*\} 1$/m);

      // Usage: client events and the HTTP API are the tenant's messages, each socket written to a delivery.
      const sign = (socketId: string, channel: string) =>
        `${METERED.key}:${createHmac('sha256', METERED.secret).update(`${socketId}:${channel}`).digest('hex')}`;
      for (const { raw, socketId } of [first, second]) {
        raw.send({ event: 'pusher:subscribe', data: { channel: 'private-m', auth: sign(socketId, 'private-m') } });
        await raw.waitFor((frame) => frame.event === 'pusher_internal:subscription_succeeded');
      }
      first.raw.send({ event: 'client-hi', channel: 'private-m', data: { n: 1 } });
      await second.raw.waitFor((frame) => frame.event === 'client-hi');
      const api = new PusherServer({ appId: METERED.id, key: METERED.key, secret: METERED.secret, host: '127.0.0.1', port: String(port), useTLS: false });
      await api.trigger('private-m', 'from-api', { n: 2 });
      await Promise.all([first.raw, second.raw].map((raw) => raw.waitFor((frame) => frame.event === 'from-api')));
      const usage = await waitFor(
        () => {
          const row = node.tenancy.meter.snapshot().tenants.find((tenant) => tenant.tenant === 'pq');
          return row && row.deliveries === 3 && row.connectionMs > 0 ? row : undefined;
        },
        { what: 'pq usage' },
      );
      assert.equal(usage.connections, 2);
      assert.equal(usage.messages, 2);

      // Per address: 2 Pusher connections + 1 nerve /ws = the cap of 3; a Pusher upgrade of another app is refused with 429.
      const nerve = await RawClient.open(`ws://127.0.0.1:${port}/ws`);
      open.push(nerve);
      await assert.rejects(RawClient.open(url(OTHER)), /HTTP 429/);
      assert.match(await metricsText(), /^nerve_upgrades_rejected_total\{[^}]*reason="too_many_connections"[^}]*\} 1$/m);
      // A closed Pusher connection frees its slot in both the address cap and the tenant quota.
      first.raw.close();
      const again = await waitFor(async () => RawClient.open(url(METERED)).catch(() => undefined), { what: 'a freed slot' });
      open.push(again);
      await again.waitFor((frame) => frame.event === 'pusher:connection_established');
      assert.equal(node.tenancy.meter.snapshot().tenants.find((tenant) => tenant.tenant === 'pq')?.connections, 2);
    } finally {
      for (const raw of open) raw.close();
      await node.stop();
    }
  });

  it('nerve:resume: a pusher-js client that reconnects gets the nerve-chat events it missed, then nerve:resumed', async () => {
    const CHAT = { id: '4005', key: 'chat-key', secret: 'chat-secret-0123456789', tenant: 'pc' };
    const node = new NerveNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: false, pusherApps: [CHAT] });
    const port = (await node.start()).port;
    const pusher = new PusherClient(CHAT.key, {
      cluster: 'nerve',
      wsHost: '127.0.0.1',
      wsPort: port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
    });
    try {
      type Chat = { offset: number; epoch: string; data: { n: number } };
      const seen: Chat[] = [];
      const channel = pusher.subscribe('chat-room');
      channel.bind('nerve-chat', (data: string | Chat) => seen.push(typeof data === 'string' ? (JSON.parse(data) as Chat) : data));
      await next(channel, 'pusher:subscription_succeeded');
      const chat = (n: number) =>
        node.gateway.serverPublish({ tenant: CHAT.tenant, room: 'chat-room', class: 'chat', data: { n }, from: 'server', except: undefined });
      await chat(1);
      await chat(2);
      await waitFor(() => seen.length === 2 || undefined, { what: 'two live nerve-chat events' });
      const last = seen[1]!;

      pusher.disconnect();
      await waitFor(() => node.pusher!.gateway.connectionCount() === 0 || undefined, { what: 'the disconnect' });
      for (const n of [3, 4, 5]) await chat(n);
      const resubscribed = next(channel, 'pusher:subscription_succeeded');
      pusher.connect();
      await resubscribed;
      // pusher-js hands over event data parsed when it is JSON text.
      const parsed = <T>(data: unknown) => (typeof data === 'string' ? JSON.parse(data) : data) as T;
      const resumed = next(channel, 'nerve:resumed');
      assert.equal(pusher.send_event('nerve:resume', { channel: 'chat-room', epoch: last.epoch, offset: last.offset }), true);
      const answer = parsed<{ recovered: boolean; count: number; position: { offset: number; epoch: string } }>((await resumed)[0]);
      assert.deepEqual(answer, { recovered: true, count: 3, position: { offset: last.offset + 3, epoch: last.epoch } });
      assert.deepEqual(
        seen.map((message) => message.data.n),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(
        seen.slice(2).map((message) => message.offset),
        [last.offset + 1, last.offset + 2, last.offset + 3],
      );

      // Another epoch (the log was reset): recovered false, and the newest messages for a client that reloads.
      const stale = next(channel, 'nerve:resumed');
      pusher.send_event('nerve:resume', { channel: 'chat-room', epoch: 'not-this-epoch', offset: 1 });
      assert.equal(parsed<{ recovered: boolean }>((await stale)[0]).recovered, false);
      // Malformed or unsubscribed: pusher:error 4302, the connection stays.
      const refused = next<{ data: { code: number } }>(pusher.connection, 'error');
      pusher.send_event('nerve:resume', { channel: 'not-subscribed', epoch: last.epoch, offset: 0 });
      assert.equal((await refused)[0].data.code, 4302);
      assert.equal(pusher.connection.state, 'connected');
    } finally {
      pusher.disconnect();
      await node.stop();
    }
  });

  it('refuses a bad app list at start-up with a ConfigError naming the entry', async () => {
    const { normalizeOptions } = await import('../../src/config/normalize.js');
    const { ConfigError } = await import('../../src/config/errors.js');
    assert.throws(
      () => normalizeOptions({ pusherApps: '[{"id":"1","key":"k"}]' }),
      (error: unknown) => error instanceof ConfigError && /pusherApps\[0\]\.secret/.test(error.message),
    );
    assert.throws(() => normalizeOptions({ pusherApps: [APP, { ...QUIET, key: APP.key }] }), ConfigError);
    assert.throws(() => normalizeOptions({ pusherApps: '/no/such/file.json' }), ConfigError);
    assert.deepEqual(normalizeOptions({ pusherApps: JSON.stringify([APP]) }).pusherApps[0]?.tenant, 'default');
  });
});
