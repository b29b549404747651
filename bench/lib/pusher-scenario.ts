/**
 * Scenario 7 of the comparison (project issue 19): nerve's Pusher endpoint
 * against its native protocol on one cluster, in the same run. Its own
 * module because it alone drives pusher-js clients and the Pusher HTTP API;
 * scenarios 1 to 5 are in scenarios.ts, what they share in scenario-kit.ts.
 */
import PusherServer from 'pusher';
import { BENCH_PUSHER_APP, PUSHER_API_EVENT, type ConnKind, type System } from './clients.js';
import type { Worker } from './cluster.js';
import { nowMs, sum } from './stats.js';
import type { PublishResult } from '../worker.js';
import {
  burstPublish,
  distribute,
  errorsSeen,
  fanoutBurst,
  openAll,
  user,
  withCluster,
  type ConnSpec,
  type Figures,
  type Progress,
  type Sizes,
} from './scenario-kit.js';

/** Which protocol goes first in scenario 7; alternates run by run so drifting background load hits both. */
let pusherRuns = 0;

/**
 * 7. nerve's Pusher endpoint (docs/pusher.md) against its native protocol,
 * on ONE 3-node cluster with a Pusher app, in the same run (project issue 19):
 *
 * - fan-out: one publisher, N receivers in one room spread over the 3 nodes;
 *   pusher-js receivers subscribed to `private-<room>` with a pusher-js
 *   publisher sending client events (nerve relays them as ephemeral room
 *   messages), against native receivers with a native ephemeral publisher.
 *   Same warm-up, window and ping flow control as scenario 1. Then the
 *   pusher-js receivers once more, with the HTTP API as the publisher.
 * - connects: n connections, each then in a room of its own — pusher-js
 *   `connection_established` + private-channel `subscribe`, against native
 *   `connect` + `join`. A room per connection because a shared native room
 *   would push `member_joined` to every member (n²/2 deliveries), which a
 *   private channel does not: the figure is the connect, not presence.
 *
 * The server CPU is the 3 nodes' user + system time over each measured phase;
 * the receivers and publishers are pusher-js or raw `ws` in the load workers.
 */
export function pusherEndpoint(_system: System, sizes: Sizes, progress: Progress): Promise<Figures> {
  const order: ConnKind[] = pusherRuns++ % 2 === 0 ? ['nerve', 'pusher'] : ['pusher', 'nerve'];
  return withCluster(
    'nerve',
    sizes.workers,
    progress,
    async (cluster, workers) => {
      const urlsOf = (kind: ConnKind) => cluster.servers.map((server) => (kind === 'pusher' ? `ws://127.0.0.1:${server.port}` : server.url));
      const labelOf = (kind: ConnKind) => (kind === 'pusher' ? 'pusher-js' : 'native');
      const closeAll = async () => {
        await Promise.all(workers.map((worker) => worker.run({ cmd: 'close' }, 30_000)));
        // Let the nodes finish tearing the connections down before the next phase's CPU reading.
        await new Promise((resolve) => setTimeout(resolve, 1000));
      };

      /**
       * The HTTP API as the publisher (`pusher` from npm, as an app's backend would use it): batches of 10
       * events (`batch_events`, Pusher's largest), 4 requests in flight, all to node 1.
       */
      const api = new PusherServer({
        appId: BENCH_PUSHER_APP.id,
        key: BENCH_PUSHER_APP.key,
        secret: BENCH_PUSHER_APP.secret,
        host: '127.0.0.1',
        port: String(cluster.servers[0]?.port),
        useTLS: false,
      });
      const trigger = async (channel: string, tag: string, count: number): Promise<PublishResult> => {
        const pad = 'x'.repeat(sizes.payloadBytes);
        const deadline = nowMs() + 60_000;
        const startMs = nowMs();
        let sent = 0;
        const lane = async () => {
          while (sent < count && nowMs() < deadline) {
            const batch = Array.from({ length: Math.min(10, count - sent) }, () => ({
              channel,
              name: PUSHER_API_EVENT,
              data: { tag, seq: sent++, t: nowMs(), pad },
            }));
            await api.triggerBatch(batch);
          }
        };
        await Promise.all(Array.from({ length: 4 }, lane));
        return { sent, startMs, endMs: nowMs() };
      };

      const fanoutOf = async (kind: ConnKind, viaApi = false): Promise<Figures> => {
        const label = viaApi ? 'pusher-js via HTTP API' : labelOf(kind);
        const urls = urlsOf(kind);
        const room = viaApi ? 'fan-api' : `fan-${kind}`;
        const specs: ConnSpec[] = Array.from({ length: sizes.pusherReceivers + 1 }, (_, i) => ({
          url: urls[i % urls.length] as string,
          user: user(`p${kind}`, i),
        }));
        progress(`${label}: opening ${specs.length} connections`);
        await openAll(workers, kind, distribute(specs, workers.length));
        await Promise.all(workers.map((worker) => worker.run({ cmd: 'join', room, concurrency: 32 }, 120_000)));
        const publisher = workers[0] as Worker;
        // Via the API, connection 0 only listens (and, armed from 1, is not counted): the same N receivers.
        const burst = (tag: string, count: number) =>
          fanoutBurst(workers, tag, count, () =>
            viaApi ? trigger(`private-${room}`, tag, count) : burstPublish(publisher, room, 'ephemeral', tag, count, sizes.payloadBytes),
          );
        if (sizes.fanoutWarmup > 0) {
          progress(`${label}: warm-up, ${sizes.pusherMessages} messages`);
          await burst(`pfan-${room}-warm`, sizes.pusherMessages);
        }
        progress(`${label}: ${sizes.pusherMessages} messages to ${sizes.pusherReceivers} receivers`);
        const cpu0 = cluster.cpuSeconds();
        const [published, ...collected] = await burst(`pfan-${room}`, sizes.pusherMessages);
        const cpu = cluster.cpuSeconds() - cpu0;
        const delivered = sum(collected.map((result) => result.received));
        const seconds = (Math.max(...collected.map((result) => result.lastMs)) - published.startMs) / 1000;
        await errorsSeen(workers, progress);
        await closeAll();
        return {
          [`fan-out ${label}: deliveries/s`]: { value: delivered / seconds, unit: 'msg/s', better: 'higher' },
          [`fan-out ${label}: delivered`]: { value: (100 * delivered) / (sizes.pusherMessages * sizes.pusherReceivers), unit: '%', better: 'higher' },
          [`fan-out ${label}: server CPU / delivery`]: { value: (cpu / Math.max(1, delivered)) * 1e6, unit: 'µs', better: 'lower' },
        };
      };

      const connectsOf = async (kind: ConnKind): Promise<Figures> => {
        const label = labelOf(kind);
        const urls = urlsOf(kind);
        const n = sizes.pusherConnects;
        const specs: ConnSpec[] = Array.from({ length: n }, (_, i) => ({ url: urls[i % urls.length] as string, user: user(`c${kind}`, i) }));
        progress(`${label}: ${n} connects + ${kind === 'pusher' ? 'subscribes' : 'joins'}`);
        const cpu0 = cluster.cpuSeconds();
        const t0 = nowMs();
        await openAll(workers, kind, distribute(specs, workers.length), 32);
        // Worker i's rooms are `conn-<kind>-<i>-<index>`: one room per connection across the run.
        await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'join', room: `conn-${kind}-${i}`, roomPerConn: true, concurrency: 32 }, 120_000)));
        const seconds = (nowMs() - t0) / 1000;
        const cpu = cluster.cpuSeconds() - cpu0;
        await errorsSeen(workers, progress);
        await closeAll();
        return {
          [`connects ${label}: connects/s`]: { value: n / seconds, unit: 'conn/s', better: 'higher' },
          [`connects ${label}: server CPU / connect`]: { value: (cpu / n) * 1e6, unit: 'µs', better: 'lower' },
        };
      };

      const fanouts = new Map<ConnKind, Figures>();
      const connects = new Map<ConnKind, Figures>();
      for (const kind of order) fanouts.set(kind, await fanoutOf(kind));
      const viaApi = await fanoutOf('pusher', true);
      for (const kind of order) connects.set(kind, await connectsOf(kind));
      // Always native first in the table, whichever ran first.
      return { ...fanouts.get('nerve'), ...fanouts.get('pusher'), ...viaApi, ...connects.get('nerve'), ...connects.get('pusher') };
    },
    { nerveArgs: ['--pusher-apps', JSON.stringify([BENCH_PUSHER_APP])] },
  );
}
