/**
 * Issue 8: draining one node of three under load loses nothing.
 *
 * 3 nodes on the shared Redis; 12 SDK clients (NerveClient over `ws`, each
 * given the 3 node URLs, rotated so they start spread over the nodes) chat in
 * 3 rooms. SIGTERM one node: it answers /readyz 503 `draining`, refuses
 * upgrades with 503, closes its clients with 1001 in batches spread over
 * `--drain-window-ms`, and exits 0 within that window plus a margin. Its
 * clients reconnect to the other nodes and resume from their last offset;
 * every acknowledged message reaches every member, in contiguous offsets,
 * once (test/helpers/delivery-checker.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as pace } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { NerveClient } from '../../packages/client/src/index.js';
import type { AckFrame } from '../../packages/protocol/src/frames.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { DeliveryChecker } from '../helpers/delivery-checker.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
const DRAIN_WINDOW_MS = 3000;
const SHUTDOWN_TIMEOUT_MS = 6000;
/** Allowed beyond the window for the last batch's close handshake, the outbox flush and process exit. */
const EXIT_MARGIN_MS = 2500;
const CLIENTS = 12;
const ROOMS = 3;

let cluster: Cluster | undefined;
const clients: NerveClient[] = [];

before(async () => {
  if (skip) return;
  cluster = await startCluster({
    count: 3,
    redisUrl: SHARED_REDIS_URL,
    // Flags and their values in pairs.
    // prettier-ignore
    args: [
      '--drain-window-ms', String(DRAIN_WINDOW_MS),
      '--shutdown-timeout-ms', String(SHUTDOWN_TIMEOUT_MS),
      // The load below is well above the per-connection defaults; the limits are not what this test is about.
      '--rate-per-second', '1000', '--rate-burst', '1000', '--room-rate-per-second', '100000', '--room-rate-burst', '100000',
    ],
  });
});

after(async () => {
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  await cluster?.stop();
});

test('SIGTERM drains a node in batches; its clients move to the others and no acked message is lost', { skip, timeout: 90_000 }, async () => {
  const c = cluster!;
  const urls = c.nodes.map((node) => node.wsUrl);
  const ns = testNamespace('drain');
  const rooms = Array.from({ length: ROOMS }, (_, r) => `${ns}-r${r}`);
  const checker = new DeliveryChecker();

  // Clients: client i starts on node i % 3 and moves on to the next URLs when its node goes away.
  for (let i = 0; i < CLIENTS; i++) {
    const user = `${ns}-u${i}`;
    const rotated = [...urls.slice(i % 3), ...urls.slice(0, i % 3)];
    const client = new NerveClient({ url: rotated, user, WebSocket, requestTimeoutMs: 10_000, reconnect: { minDelayMs: 50, maxDelayMs: 1000 } });
    clients.push(client);
    client.on('message', (message) => {
      if (message.class === 'chat') checker.receive(user, message);
    });
    await client.connect();
    const room = rooms[i % ROOMS]!;
    const joined = await client.join(room, { history: 0 });
    checker.started(user, room, joined.position);
  }
  const drained = c.node(0);
  const onDrained = clients.filter((client) => client.welcome?.nodeId === drained.nodeId);
  assert.equal(onDrained.length, CLIENTS / 3);
  const disconnectedAt: number[] = [];
  for (const client of onDrained) client.on('disconnected', (info) => void (info.code === 1001 && disconnectedAt.push(Date.now())));

  // Load: every client publishes chat in turn (paced, bounded by `stop`), retrying a refused publish with the same cmid.
  let stop = false;
  let acked = 0;
  const unacked: string[] = [];
  const publishers = clients.map(async (client, i) => {
    const room = rooms[i % ROOMS]!;
    for (let n = 0; !stop && n < 10_000; n++) {
      const cmid = `${client.user}-${n}`;
      checker.sent(room, cmid);
      let ack: AckFrame | undefined;
      for (let attempt = 0; attempt < 20 && ack === undefined; attempt++) {
        try {
          ack = await client.publish(room, { n }, { cmid });
        } catch {
          // not acknowledged (e.g. the request timed out around the move): the same cmid again is stored once
          await waitFor(() => client.state === 'connected', { timeoutMs: 10_000, what: `${client.user} connected` });
        }
      }
      // Outside the try: a failed check must fail the test, not count as "not acknowledged".
      if (ack === undefined) {
        unacked.push(cmid);
      } else {
        assert.ok(ack.offset !== undefined && ack.epoch !== undefined, 'a chat ack carries its position');
        checker.acked(cmid, ack.offset, ack.epoch);
        acked += 1;
      }
      await pace(25); // pacing the load (about 40 msg/s per client), not a synchronization
    }
  });

  await waitFor(() => acked >= 100, { timeoutMs: 15_000, what: '100 acked messages before the drain' });
  const signalledAt = Date.now();
  const exit = drained.stop(SHUTDOWN_TIMEOUT_MS + 5000);

  // Not ready while draining, and upgrades get 503.
  const ready = await waitFor(
    async () => {
      const response = await fetch(`${drained.url}/readyz`).catch(() => undefined);
      return response?.status === 503 ? ((await response.json()) as { status: string }) : undefined;
    },
    { timeoutMs: 2000, what: '/readyz 503' },
  );
  assert.equal(ready.status, 'draining');
  await assert.rejects(RawClient.open(drained.wsUrl), /HTTP 503/);

  assert.equal(await exit, 0, 'the drained node exits 0');
  const tookMs = Date.now() - signalledAt;
  assert.ok(tookMs <= DRAIN_WINDOW_MS + EXIT_MARGIN_MS, `exited after ${tookMs} ms (window ${DRAIN_WINDOW_MS} ms)`);
  // Batches: the closes were spread over the window, not sent at once.
  assert.equal(disconnectedAt.length, onDrained.length, 'every client of the drained node was told 1001');
  const spread = Math.max(...disconnectedAt) - Math.min(...disconnectedAt);
  assert.ok(spread >= DRAIN_WINDOW_MS / 2, `closes spread over ${spread} ms`);
  assert.ok(drained.logs.some((entry) => entry.msg === 'stopped'));

  // Every client is connected again, none to the drained node.
  await waitFor(() => clients.every((client) => client.state === 'connected' && client.welcome?.nodeId !== drained.nodeId), {
    timeoutMs: 15_000,
    what: 'every client on a surviving node',
  });

  // More traffic after the move, then stop and let everything arrive.
  const afterMove = acked;
  await waitFor(() => acked >= afterMove + 100, { timeoutMs: 15_000, what: '100 more acked messages after the move' });
  stop = true;
  await Promise.all(publishers);
  assert.deepEqual(unacked, [], 'every publish was acknowledged within its retries');
  for (const [i, client] of clients.entries()) {
    const room = rooms[i % ROOMS]!;
    await waitFor(() => (client.position(room)?.offset ?? 0) >= checker.lastAcked(room), { timeoutMs: 15_000, what: `${client.user} caught up in ${room}` });
  }
  const report = checker.report();
  assert.deepEqual(
    { lost: report.lost, duplicated: report.duplicated, unexpected: report.unexpected, gaps: report.gaps },
    { lost: [], duplicated: [], unexpected: [], gaps: [] },
  );
  assert.equal(report.delivered, report.expected);
  assert.ok(report.expected > 200 * (CLIENTS / ROOMS), `expected ${report.expected} deliveries`);
});
