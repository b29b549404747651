/**
 * Calls across a 3-node cluster on real Redis and RabbitMQ, with the Redis
 * hot lane and with RabbitMQ routing (`--bus rabbitmq`, call state still on
 * Redis): exactly one call.started and one call.ended per call whichever
 * nodes its participants are on, with the server's times; a call whose
 * node was SIGKILLed ended once by a survivor at its last-seen time, and a
 * participant of a killed node counted up to then while the call goes on;
 * the SDK's answered_elsewhere and busy through the nodes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { pino } from 'pino';
import WebSocket from 'ws';
import { NerveClient, PeerCall, pairCallId, type CallEndReason } from '../../packages/client/src/index.js';
import type { SignalDelivery } from '../../packages/protocol/src/frames.js';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { eventData } from '../../src/events/events.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { PC, fakeStream } from '../helpers/fake-rtc.js';
import { createTestDatabase, postgresSkip, POSTGRES_URL, type TestDatabase } from '../helpers/postgres.js';
import { consumerQueues, deleteTopology } from '../helpers/rabbitmq.js';
import { RawClient } from '../helpers/raw-client.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await redisSkipReason()) ?? (await postgresSkip());
const silent = pino({ level: 'silent' });

for (const bus of ['redis', 'rabbitmq'] as const) {
  describe(`calls across 3 nodes (--bus ${bus})`, { skip, timeout: 60_000 }, () => {
    const env = testNamespace('calls');
    let cluster: Cluster;
    let db: TestDatabase | undefined;
    let observer: RabbitEventLog;
    const events: LifecycleEvent[] = [];
    const clients: RawClient[] = [];
    const sdkClients: NerveClient[] = [];
    const ofCall = (call: string, type: string) => events.filter((e) => e.type === type && (e.data as { call: string }).call === call);

    const member = async (node: number, user: string): Promise<RawClient> => {
      const client = await RawClient.connect(cluster.node(node).wsUrl, user);
      clients.push(client);
      assert.equal((await client.request({ op: 'join', room: 'standup' })).op, 'joined');
      return client;
    };
    const callOp = async (client: RawClient, call: string, action: 'join' | 'leave'): Promise<number> => {
      const answer = await client.request({ op: 'call', room: 'standup', call, action });
      assert.equal(answer.op, 'call', JSON.stringify(answer));
      return Number(answer.ts);
    };
    /**
     * Each node's events reach the queue in the order it published them: once
     * a fresh call.started from each of `nodes` is in, a duplicate emitted by
     * any of them before would be in too.
     */
    const fence = async (name: string, nodes: number[]): Promise<void> => {
      const fences = await Promise.all(nodes.map((node) => member(node, `${name}-${node}`)));
      await Promise.all(fences.map((client, i) => callOp(client, `${name}-${nodes[i]}`, 'join')));
      await waitFor(() => nodes.every((node) => ofCall(`${name}-${node}`, 'call.started').length === 1), { timeoutMs: 10_000, what: `${name} calls` });
    };

    before(async () => {
      if (bus === 'rabbitmq') db = await createTestDatabase(env);
      observer = new RabbitEventLog({ url: AMQP_URL, env, service: 'nerve', logger: silent });
      await observer.start();
      await observer.consume({ queue: 'observer', bindings: ['call.*'] }, async (event) => {
        events.push(event);
        return 'ack';
      });
      cluster = await startCluster({
        count: 3,
        redisUrl: SHARED_REDIS_URL,
        env,
        args: [
          '--amqp-url',
          AMQP_URL,
          // Short, so a dead node's participants expire within the test.
          '--presence-ttl-ms',
          '1000',
          ...(bus === 'rabbitmq' ? ['--bus', 'rabbitmq', '--postgres-url', POSTGRES_URL, '--postgres-schema', env] : []),
        ],
      });
    });

    after(async () => {
      for (const client of clients) client.close();
      await Promise.all(sdkClients.map((client) => client.close()));
      await cluster?.stop();
      await observer?.close();
      const admin = new Connection({ url: AMQP_URL });
      admin.on('error', () => undefined);
      const prefix = `${env}.nerve`;
      await deleteTopology(admin, `${env}.`, { queues: consumerQueues(prefix, ['observer']), exchanges: [`${prefix}.hot`, `${prefix}.events`] });
      await admin.close();
      await db?.drop();
    });

    it('emits one call.started and one call.ended for a call over three nodes, with server times', async () => {
      const users = await Promise.all([0, 1, 2].map((node) => member(node, `u${node}`)));
      const joined: number[] = [];
      for (const client of users) joined.push(await callOp(client, 'main', 'join'));
      const left: number[] = [];
      for (const client of users) left.push(await callOp(client, 'main', 'leave'));
      await waitFor(() => ofCall('main', 'call.ended').length >= 1, { timeoutMs: 10_000, what: 'call.ended' });
      await fence('after-main', [0, 1, 2]);
      assert.equal(ofCall('main', 'call.started').length, 1, 'one call.started');
      assert.equal(ofCall('main', 'call.ended').length, 1, 'one call.ended');
      const started = eventData(ofCall('main', 'call.started')[0]!, 'call.started');
      const endedEvent = ofCall('main', 'call.ended')[0]!;
      const ended = eventData(endedEvent, 'call.ended');
      assert.equal(started.startedBy, 'u0');
      assert.equal(started.startedAt, joined[0]);
      assert.equal(ended.callSession, started.callSession);
      assert.equal(ended.startedAt, joined[0]);
      assert.equal(ended.endedAt, left[2]);
      assert.equal(ended.ms, left[2]! - joined[0]!);
      assert.equal(ended.reason, 'left');
      assert.equal(ended.peakParticipants, 3);
      assert.deepEqual(
        ended.participants,
        [0, 1, 2].map((i) => ({ user: `u${i}`, ms: left[i]! - joined[i]! })),
      );
      assert.equal(endedEvent.node, cluster.node(2).nodeId, 'the last leave ended it');
      assert.equal(endedEvent.tenant, 'default');
    });

    /** A NerveClient (the SDK, over ws) of `user` on node `node`, in room `support`. */
    const sdk = async (node: number, user: string): Promise<NerveClient> => {
      const client = new NerveClient({ url: cluster.node(node).wsUrl, user, WebSocket, requestTimeoutMs: 5000 });
      sdkClients.push(client);
      await client.connect();
      await client.join('support');
      return client;
    };
    /** The next offer `client` receives, as an app's incoming-call handler sees it. */
    const nextOffer = (client: NerveClient): Promise<SignalDelivery> =>
      new Promise((resolve) => {
        const off = client.on('signal', (signal) => {
          if (signal.kind !== 'offer') return;
          off();
          resolve(signal);
        });
      });
    const endOf = (call: PeerCall): Promise<CallEndReason> => new Promise((resolve) => call.on('ended', ({ reason }) => resolve(reason)));

    it('SDK calls through the nodes: answered on one tab, the other stops with answered_elsewhere; busy; timed by the server', async () => {
      const alice = await sdk(0, 'alice');
      const [bobTab1, bobTab2] = await Promise.all([sdk(1, 'bob'), sdk(0, 'bob')]);
      const carol = await sdk(1, 'carol');
      // Bob's two tabs ring; tab 1 answers.
      const offers = Promise.all([nextOffer(bobTab1), nextOffer(bobTab2)]);
      const call = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC, room: 'support' });
      call.start(fakeStream());
      const [offer1, offer2] = await offers;
      const tab1 = new PeerCall({ client: bobTab1, peer: 'alice', incoming: offer1, RTCPeerConnection: PC, room: 'support' });
      const tab2 = new PeerCall({ client: bobTab2, peer: 'alice', incoming: offer2, RTCPeerConnection: PC, room: 'support' });
      const tab2Ended = endOf(tab2);
      await tab1.accept(fakeStream());
      await waitFor(() => call.callState === 'connected' && tab1.callState === 'connected', { timeoutMs: 10_000, what: 'alice and tab 1 connected' });
      assert.equal(await tab2Ended, 'answered_elsewhere');
      // Carol calls Bob, who is busy.
      const busyOffer = nextOffer(bobTab1);
      const carolCall = new PeerCall({ client: carol, peer: 'bob', RTCPeerConnection: PC, room: 'support' });
      const carolEnded = endOf(carolCall);
      carolCall.start(fakeStream());
      await PeerCall.reject(bobTab1, await busyOffer, 'busy');
      assert.equal(await carolEnded, 'busy');
      assert.equal(carolCall.callState, 'busy');
      // Alice hangs up: the server timed the call of Alice and Bob's tab 1 only.
      const id = pairCallId('alice', 'bob');
      await waitFor(() => ofCall(id, 'call.started').length === 1, { timeoutMs: 10_000, what: 'the 1:1 call started' });
      call.hangup();
      await waitFor(() => ofCall(id, 'call.ended').length === 1, { timeoutMs: 10_000, what: 'the 1:1 call ended' });
      const ended = eventData(ofCall(id, 'call.ended')[0]!, 'call.ended');
      assert.deepEqual(
        ended.participants.map((p) => p.user),
        ['alice', 'bob'],
      );
      assert.equal(ended.peakParticipants, 2);
      assert.equal(ofCall(pairCallId('bob', 'carol'), 'call.started').length, 0, 'a busy call is never timed');
    });

    it('ends once, at the last-seen time, a call whose participants’ node was SIGKILLed', async () => {
      const [a, b] = await Promise.all([member(2, 'ka'), member(2, 'kb')]);
      const joinedAt = await callOp(a, 'killed', 'join');
      await callOp(b, 'killed', 'join');
      await waitFor(() => ofCall('killed', 'call.started').length === 1, { timeoutMs: 10_000, what: 'call.started' });
      await cluster.node(2).kill();
      const killedAt = Date.now();
      // Nodes 0 and 1 both sweep: the store reports the end to one of them.
      await waitFor(() => ofCall('killed', 'call.ended').length >= 1, { timeoutMs: 15_000, what: 'call.ended after the kill' });
      await fence('after-kill', [0, 1]);
      assert.equal(ofCall('killed', 'call.ended').length, 1, 'one call.ended');
      const endedEvent = ofCall('killed', 'call.ended')[0]!;
      const ended = eventData(endedEvent, 'call.ended');
      assert.equal(ended.reason, 'node_crash');
      assert.notEqual(endedEvent.node, cluster.node(2).nodeId);
      assert.ok(ended.endedAt >= joinedAt && ended.endedAt <= killedAt, `ended ${ended.endedAt} between join ${joinedAt} and kill ${killedAt}`);
      assert.deepEqual(
        ended.participants.map((p) => p.user),
        ['ka', 'kb'],
      );
      for (const participant of ended.participants) assert.ok(participant.ms <= ended.ms, JSON.stringify(participant));
    });

    // After the sweep test (node 2 dead): node 1 dies now, node 0 is left.
    it('counts a participant whose node was SIGKILLed up to its last-seen time, while the call goes on', async () => {
      const [stays, dies] = await Promise.all([member(0, 'hs'), member(1, 'hd')]);
      const joinedAt = await callOp(stays, 'half', 'join');
      const diesAt = await callOp(dies, 'half', 'join');
      await cluster.node(1).kill();
      const killedAt = Date.now();
      // Presence reports the dead node's member once its TTL passed; the call store expires it on the same TTL.
      await stays.waitFor((frame) => frame.op === 'member_left' && frame.user === 'hd', 15_000, 'hd left the room');
      const leftAt = await callOp(stays, 'half', 'leave');
      await waitFor(() => ofCall('half', 'call.ended').length >= 1, { timeoutMs: 15_000, what: 'call.ended' });
      await fence('after-half', [0]);
      assert.equal(ofCall('half', 'call.ended').length, 1, 'one call.ended');
      const ended = eventData(ofCall('half', 'call.ended')[0]!, 'call.ended');
      const ms = Object.fromEntries(ended.participants.map((p) => [p.user, p.ms]));
      assert.equal(ms.hs, leftAt - joinedAt, 'the live participant to the millisecond');
      assert.ok(ms.hd !== undefined && ms.hd >= 0 && ms.hd <= killedAt - diesAt, `hd ${ms.hd} ms, at most ${killedAt - diesAt}`);
      // hd expired before hs left (reason left), or just after (swept: node_crash); either way hs's time ends the call.
      assert.ok(ended.reason === 'left' || ended.reason === 'node_crash', ended.reason);
    });
  });
}
