/**
 * Issue 15: the shipped load balancer samples, for real.
 *
 * For each of nginx (deploy/nginx.conf) and HAProxy (deploy/haproxy.cfg),
 * run as a real process with only its addresses replaced
 * (test/helpers/balancer.ts), in front of 3 nerve nodes on the shared Redis
 * (random namespace):
 *
 * - WebSockets upgrade through the balancer, and `X-Forwarded-For` with
 *   `--trusted-proxies` gives per-IP caps by the client's address: clients
 *   connect from their own loopback addresses (127.0.0.2, 127.0.0.3…), the
 *   balancer from 127.0.0.1; one address is capped (2 per node, so 6 through
 *   3 nodes), another is not, even when it claims the capped address in its
 *   own X-Forwarded-For header.
 * - A draining node (SIGTERM) leaves rotation: HAProxy's /readyz check marks
 *   it DOWN, nginx (no active checks) retries its 503 on the next node;
 *   no upgrade through the balancer lands on it or sees a 503, its clients
 *   move to the others, and every chat message acked before, during and
 *   after the drain is received by every member once, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as pace } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { NerveClient } from '../../packages/client/src/index.js';
import type { WebSocketConstructor } from '../../packages/client/src/socket.js';
import type { AckFrame } from '../../packages/protocol/src/frames.js';
import { balancerSkipReason, startBalancer, type Balancer, type BalancerKind } from '../helpers/balancer.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { DeliveryChecker } from '../helpers/delivery-checker.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const redisSkip = await redisSkipReason(SHARED_REDIS_URL);
const PER_IP = 2;
const DRAIN_WINDOW_MS = 2000;
const SHUTDOWN_TIMEOUT_MS = 5000;
const CLIENTS = 9;
const ROOMS = 3;

/** Open a WebSocket through the balancer from `localAddress`; resolve with its welcome, or reject with `HTTP <status>`. */
async function openFrom(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<{ client: RawClient; nodeId: string }> {
  const client = await RawClient.open(url, { localAddress, headers });
  const welcome = await client.request({ op: 'connect', v: 1, user: `u-${localAddress}-${client.rid()}` });
  if (welcome.op !== 'welcome' || typeof welcome.nodeId !== 'string') throw new Error(`connect failed: ${JSON.stringify(welcome)}`);
  return { client, nodeId: welcome.nodeId };
}

/** `ws`'s WebSocket bound to `localAddress`, recording every HTTP status that refused an upgrade. */
function recordingWebSocket(localAddress: string, refused: string[]): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { localAddress });
      this.on('error', (error: Error) => {
        const status = /Unexpected server response: (\d+)/.exec(error.message);
        if (status) refused.push(`${localAddress}: ${status[1]}`);
      });
    }
  };
}

for (const kind of ['nginx', 'haproxy'] as const satisfies readonly BalancerKind[]) {
  const skip = redisSkip ?? (await balancerSkipReason(kind)) ?? false;

  describe(`${kind} with the shipped sample in front of 3 nodes`, { skip }, () => {
    let cluster: Cluster | undefined;
    let balancer: Balancer | undefined;
    const open: RawClient[] = [];
    const clients: NerveClient[] = [];

    before(async () => {
      cluster = await startCluster({
        count: 3,
        redisUrl: SHARED_REDIS_URL,
        // Flags and their values in pairs.
        // prettier-ignore
        args: [
          '--trusted-proxies', '127.0.0.1',
          '--max-connections-per-ip', String(PER_IP),
          '--drain-window-ms', String(DRAIN_WINDOW_MS),
          '--shutdown-timeout-ms', String(SHUTDOWN_TIMEOUT_MS),
          // The chat load below is above the per-connection defaults; rate limits are not what this test is about.
          '--rate-per-second', '1000', '--rate-burst', '1000', '--room-rate-per-second', '100000', '--room-rate-burst', '100000',
        ],
      });
      balancer = await startBalancer(kind, cluster.nodes);
    });

    after(async () => {
      for (const client of open) client.close();
      await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
      await balancer?.stop();
      await cluster?.stop();
    });

    test('WebSockets upgrade through it; X-Forwarded-For gives per-IP caps by the client address', { timeout: 20_000 }, async () => {
      const lb = balancer!;
      const c = cluster!;
      // Address A opens connections until refused: the cap is per node, so 2 on each of 3 nodes.
      const nodesOfA: string[] = [];
      let refusedA: unknown;
      for (let attempt = 0; attempt < 3 * PER_IP + 1 && refusedA === undefined; attempt++) {
        try {
          const { client, nodeId } = await openFrom(lb.wsUrl, '127.0.0.2');
          open.push(client);
          nodesOfA.push(nodeId);
        } catch (error) {
          refusedA = error;
        }
      }
      assert.match(String(refusedA), /HTTP 429/, 'address A is refused with 429 once every node holds its cap');
      assert.equal(nodesOfA.length, 3 * PER_IP, `A got ${PER_IP} per node: ${nodesOfA.join(', ')}`);
      for (const node of c.nodes) assert.equal(nodesOfA.filter((id) => id === node.nodeId).length, PER_IP, `${node.nodeId} holds ${PER_IP} of A`);
      // The node counted A by the address the balancer appended, not by the balancer's own address.
      const refusal = await waitFor(() => c.nodes.flatMap((node) => node.logs).find((entry) => entry.msg === 'upgrade refused' && entry.status === 429), {
        what: 'the log line of the 429',
      });
      assert.equal(refusal.remoteAddress, '127.0.0.2');

      // Address B is not capped, even when it names A in its own X-Forwarded-For: the nodes take the
      // hop their trusted balancer appended (the right-most untrusted one), not what the client claims.
      for (let i = 0; i < PER_IP; i++) {
        const { client } = await openFrom(lb.wsUrl, '127.0.0.3', { 'x-forwarded-for': '127.0.0.2' });
        open.push(client);
      }
      // The connections work end to end: a ping through the balancer is answered.
      const pong = await open[0]!.request({ op: 'ping' });
      assert.equal(pong.op, 'pong');
      for (const client of open.splice(0)) client.close();
    });

    test('SIGTERM: the draining node leaves rotation; its clients move with nothing lost and no 503 seen', { timeout: 40_000 }, async () => {
      const lb = balancer!;
      const c = cluster!;
      const ns = testNamespace(`lb${kind}`);
      const rooms = Array.from({ length: ROOMS }, (_, r) => `${ns}-r${r}`);
      const checker = new DeliveryChecker();
      const refused: string[] = [];

      // Every client through the balancer, each from its own loopback address (the per-IP cap is 2).
      for (let i = 0; i < CLIENTS; i++) {
        const user = `${ns}-u${i}`;
        const client = new NerveClient({
          url: lb.wsUrl,
          user,
          WebSocket: recordingWebSocket(`127.0.1.${10 + i}`, refused),
          requestTimeoutMs: 10_000,
          reconnect: { minDelayMs: 50, maxDelayMs: 500 },
        });
        clients.push(client);
        client.on('message', (message) => {
          if (message.class === 'chat') checker.receive(user, message);
        });
        await client.connect();
        const room = rooms[i % ROOMS]!;
        const joined = await client.join(room, { history: 0 });
        checker.started(user, room, joined.position);
      }
      // The balancer spread them; drain the node holding the most.
      const count = (nodeId: string): number => clients.filter((client) => client.welcome?.nodeId === nodeId).length;
      const drained = [...c.nodes].sort((a, b) => count(b.nodeId) - count(a.nodeId))[0]!;
      const movers = count(drained.nodeId);
      assert.ok(movers >= 1, `some clients on ${drained.nodeId}`);

      let stop = false;
      let acked = 0;
      const unacked: string[] = [];
      const publishers = clients.map(async (client, i) => {
        const room = rooms[i % ROOMS]!;
        for (let n = 0; !stop && n < 5000; n++) {
          const cmid = `${client.user}-${n}`;
          checker.sent(room, cmid);
          let ack: AckFrame | undefined;
          for (let attempt = 0; attempt < 20 && ack === undefined; attempt++) {
            try {
              ack = await client.publish(room, { n }, { cmid });
            } catch {
              // not acknowledged around the move: the same cmid again is stored once
              await waitFor(() => client.state === 'connected', { timeoutMs: 10_000, what: `${client.user} connected` });
            }
          }
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

      try {
        await drainAndCheck();
      } finally {
        // On a failure too: no publisher outlives the test.
        stop = true;
        await Promise.allSettled(publishers);
      }

      async function drainAndCheck(): Promise<void> {
        await waitFor(() => acked >= 60, { timeoutMs: 10_000, what: '60 acked messages before the drain' });
        const signalledAt = Date.now();
        const exit = drained.stop(SHUTDOWN_TIMEOUT_MS + 5000);

        // While it drains, fresh upgrades through the balancer keep opening, none on the draining node.
        let exitedAt: number | undefined;
        void exit.then(() => (exitedAt = Date.now()));
        // HAProxy: its /readyz check takes the node out while it is still draining (not once it is gone).
        const name = `n${c.nodes.indexOf(drained) + 1}`;
        const markedDown =
          kind === 'haproxy'
            ? waitFor(
                async () => {
                  const server = (await lb.serverStatus()).get(name);
                  return server?.status === 'DOWN' ? { ...server, afterMs: Date.now() - signalledAt, nodeAlive: exitedAt === undefined } : undefined;
                },
                { timeoutMs: 5000, intervalMs: 50, what: `${name} DOWN on the HAProxy stats page` },
              )
            : undefined;
        const probes: string[] = [];
        for (let i = 0; exitedAt === undefined && i < 200; i++) {
          const { client, nodeId } = await openFrom(lb.wsUrl, `127.0.2.${i % 250}`);
          client.close();
          probes.push(nodeId);
          await pace(20); // spacing the probes over the drain, not a synchronization
        }
        assert.equal(await exit, 0, 'the drained node exits 0');
        assert.ok(probes.length >= 5, `${probes.length} probes during the drain`);
        assert.ok(!probes.includes(drained.nodeId), 'no upgrade through the balancer reached the draining node');
        const down = await markedDown;
        if (down) {
          assert.equal(down.check, 'L7STS/503', 'marked down because /readyz answered 503');
          assert.ok(down.nodeAlive, `marked down while the node was still draining (after ${down.afterMs} ms)`);
          console.log(`${kind}: ${name} marked DOWN by the /readyz check ${down.afterMs} ms after SIGTERM`);
        }
        const refusedByNode = drained.logs.filter((entry) => entry.msg === 'upgrade refused' && entry.code === 'draining').length;
        console.log(
          `${kind}: drain took ${exitedAt! - signalledAt} ms; ${probes.length} probe upgrades, none on the draining node; ` +
            `the node refused ${refusedByNode} upgrade(s) with 503 (retried by ${kind}, unseen by clients)`,
        );

        await waitFor(() => clients.every((client) => client.state === 'connected' && client.welcome?.nodeId !== drained.nodeId), {
          timeoutMs: 10_000,
          what: 'every client on a surviving node',
        });
        const afterMove = acked;
        await waitFor(() => acked >= afterMove + 60, { timeoutMs: 10_000, what: '60 more acked messages after the move' });
        stop = true;
        await Promise.all(publishers);
        assert.deepEqual(unacked, [], 'every publish was acknowledged within its retries');
        for (const [i, client] of clients.entries()) {
          const room = rooms[i % ROOMS]!;
          await waitFor(() => (client.position(room)?.offset ?? 0) >= checker.lastAcked(room), {
            timeoutMs: 10_000,
            what: `${client.user} caught up in ${room}`,
          });
        }
        const report = checker.report();
        assert.deepEqual(
          { lost: report.lost, duplicated: report.duplicated, unexpected: report.unexpected, gaps: report.gaps },
          { lost: [], duplicated: [], unexpected: [], gaps: [] },
        );
        assert.equal(report.delivered, report.expected);
        assert.ok(report.expected > 100 * (CLIENTS / ROOMS), `expected ${report.expected} deliveries`);
        assert.deepEqual(refused, [], 'no client saw an upgrade refused');
      }
    });
  });
}
