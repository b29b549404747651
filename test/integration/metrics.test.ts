/**
 * Issue 8: every node metric in docs/operations.md's metrics reference exists
 * on /metrics (name and type), and the traffic-related ones move under traffic:
 * one node on the shared Redis (so the Redis bus counters are live), two
 * clients chatting and sending ephemeral messages.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { deleteNamespaceKeys } from '../helpers/cluster.js';
import { documentedMetrics } from '../helpers/metrics-docs.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

/** name → type, and sample → value (summed over series of one name+label filter), from the text format. */
function parse(text: string): { types: Map<string, string>; value: (name: string, labels?: Record<string, string>) => number } {
  const types = new Map<string, string>();
  const samples: Array<{ name: string; labels: string; value: number }> = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (sample) samples.push({ name: sample[1]!, labels: sample[2] ?? '', value: Number(sample[3]) });
  }
  const value = (name: string, labels: Record<string, string> = {}): number =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels.includes(`${k}="${v}"`))).reduce((sum, s) => sum + s.value, 0);
  return { types, value };
}

let node: NodeProcess | undefined;
const env = testNamespace('met');

before(async () => {
  if (skip) return;
  node = await startNode({ args: ['--redis-url', SHARED_REDIS_URL, '--env', env] });
});

after(async () => {
  await node?.stop();
  if (!skip) await deleteNamespaceKeys(SHARED_REDIS_URL, env);
});

test('docs/operations.md documents metrics that exist, and the traffic ones move', { skip, timeout: 60_000 }, async () => {
  // Node metrics only: the worker ones (### Worker metrics) are checked by workers-metrics.test.ts.
  const documented = documentedMetrics('node');
  assert.ok(documented.length >= 25, `parsed ${documented.length} documented metrics`);
  const scrape = async () => parse(await (await fetch(`${node!.url}/metrics`)).text());

  const before = await scrape();
  for (const { name, type } of documented) assert.equal(before.types.get(name), type, `${name} is exported as a ${type}`);

  const alice = await RawClient.connect(node!.wsUrl, 'met-alice');
  const bob = await RawClient.connect(node!.wsUrl, 'met-bob');
  await alice.request({ op: 'join', room: 'met' });
  await bob.request({ op: 'join', room: 'met' });
  // 16 chat + 16 ephemeral: the delivery latency histogram samples 1 in 8.
  for (let i = 0; i < 16; i++) {
    await alice.request({ op: 'publish', room: 'met', class: 'chat', data: i });
    alice.send({ op: 'publish', rid: alice.rid(), room: 'met', class: 'ephemeral', key: 'typing', data: i });
  }
  await waitFor(() => bob.frames.filter((f) => f.op === 'message').length >= 32, { timeoutMs: 5000, what: 'bob got every message' });
  await alice.request({ op: 'join', room: 'bad room' }); // one error frame
  const unauthorized = await fetch(`${node!.url}/api/admin/cluster`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(unauthorized.status, 404, 'the admin API is off without an API key');

  const after = await scrape();
  const moved = (name: string, labels?: Record<string, string>) =>
    assert.ok(
      after.value(name, labels) > before.value(name, labels),
      `${name} ${JSON.stringify(labels ?? {})} moved: ${before.value(name, labels)} → ${after.value(name, labels)}`,
    );
  assert.equal(after.value('nerve_connections'), 2);
  assert.equal(after.value('nerve_rooms'), 1);
  moved('nerve_connections_total');
  moved('nerve_joins_total');
  moved('nerve_frames_in_total', { op: 'publish' });
  moved('nerve_frames_out_total', { op: 'message' });
  moved('nerve_messages_total', { class: 'chat' });
  moved('nerve_messages_total', { class: 'ephemeral' });
  moved('nerve_deliveries_total', { class: 'chat' });
  moved('nerve_deliveries_total', { class: 'ephemeral' });
  moved('nerve_errors_total', { code: 'invalid_room' });
  moved('nerve_bus_publish_seconds_count');
  moved('nerve_delivery_latency_seconds_count', { class: 'chat' });
  moved('nerve_delivery_latency_seconds_count', { class: 'ephemeral' });
  moved('nerve_event_publish_seconds_count', { outcome: 'ok' }); // participant.joined, message.created...
  moved('nerve_bus_published_total');
  moved('nerve_bus_received_total');
  assert.equal(after.value('nerve_lane_up', { lane: 'bus', driver: 'redis' }), 1);
  assert.equal(after.value('nerve_draining'), 0);
  assert.equal(after.value('nerve_bus_canary_failures_total'), 0);
  alice.close();
  bob.close();
});
