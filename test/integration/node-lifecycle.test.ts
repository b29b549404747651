/**
 * A node as operators see it: health, readiness, metrics that move under
 * traffic, the demo page, and graceful shutdown on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) {
      total += Number(match[3]);
      found = true;
    }
  }
  if (!found) throw new Error(`metric ${name} ${JSON.stringify(labels)} not found`);
  return total;
}

describe('node endpoints', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNode();
  });
  after(async () => {
    await node.stop();
  });

  it('logs the URL to open on its listening line (JSON lines when stdout is not a terminal)', () => {
    const listening = node.logs.find((entry) => entry.msg === 'listening');
    assert.equal(listening?.url, `http://127.0.0.1:${node.port}/`);
  });

  it('answers /healthz and /readyz with the lanes in use', async () => {
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${node.url}/readyz`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { status: string; lanes: Array<{ lane: string; driver: string; ok: boolean }> };
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.lanes.map((lane) => lane.lane).sort(), ['bus', 'events', 'history', 'mailbox', 'presence']);
    assert.ok(body.lanes.every((lane) => lane.ok && lane.driver === 'memory'));
  });

  it('serves the demo page and the SDK bundle', async () => {
    const page = await fetch(`${node.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const bundle = await fetch(`${node.url}/nerve-client.js`);
    assert.equal(bundle.status, 200, 'run `npm run build` first');
    assert.match(await bundle.text(), /NerveClient/);
    const escape = await fetch(`${node.url}/..%2Fpackage.json`);
    assert.equal(escape.status, 404);
  });

  it('exports metrics that move under traffic', async () => {
    const before = await (await fetch(`${node.url}/metrics`)).text();
    const alice = await RawClient.connect(node.wsUrl, 'm-alice');
    const bob = await RawClient.connect(node.wsUrl, 'm-bob');
    await alice.request({ op: 'join', room: 'metrics' });
    await bob.request({ op: 'join', room: 'metrics' });
    await alice.request({ op: 'publish', room: 'metrics', class: 'chat', data: 'x' });
    await bob.waitFor((f) => f.op === 'message');
    await alice.request({ op: 'join', room: 'bad room' });
    const after = await (await fetch(`${node.url}/metrics`)).text();
    assert.equal(metricValue(after, 'nerve_connections'), 2);
    assert.equal(metricValue(after, 'nerve_rooms'), 1);
    assert.ok(metricValue(after, 'nerve_frames_in_total', { op: 'publish' }) > 0);
    assert.ok(metricValue(after, 'nerve_frames_out_total', { op: 'message' }) >= 2);
    assert.equal(metricValue(after, 'nerve_messages_total', { class: 'chat' }), 1);
    assert.equal(metricValue(after, 'nerve_deliveries_total', { class: 'chat' }), 2);
    assert.equal(metricValue(after, 'nerve_errors_total', { code: 'invalid_room' }), 1);
    assert.equal(metricValue(after, 'nerve_joins_total') - metricValue(before, 'nerve_joins_total'), 2);
    assert.ok(metricValue(after, 'nerve_bus_publish_seconds_count') > 0);
    assert.equal(metricValue(after, 'nerve_lane_up', { lane: 'bus' }), 1);
    alice.close();
    bob.close();
  });
});

describe('--log-format pretty', () => {
  it('prints one human-readable listening line with a URL that answers', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--host', '127.0.0.1', '--log-format', 'pretty'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const pattern = /listening (http:\/\/127\.0\.0\.1:\d+\/)/;
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no listening line within 15 s')), 15_000);
        createInterface({ input: child.stdout }).on('line', (text) => {
          if (!pattern.test(text)) return;
          clearTimeout(timer);
          resolve(text);
        });
      });
      assert.doesNotMatch(line, /^\{/, 'a pretty line, not JSON');
      assert.match(line, /INFO/);
      const url = pattern.exec(line)?.[1];
      assert.equal((await fetch(`${url}healthz`)).status, 200);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('graceful shutdown', () => {
  it('closes clients with 1001 on SIGTERM and exits 0 in bounded time', async () => {
    const node = await startNode({ args: ['--shutdown-timeout-ms', '3000'] });
    const clients = await Promise.all([1, 2, 3].map((i) => RawClient.connect(node.wsUrl, `bye${i}`)));
    await clients[0]!.request({ op: 'join', room: 'bye' });
    await clients[1]!.request({ op: 'join', room: 'bye' });
    const started = Date.now();
    const code = await node.stop(8000);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 8000);
    for (const client of clients) assert.equal(await client.waitClose(), 1001);
    assert.ok(node.logs.some((entry) => entry.msg === 'stopped'));
  });
});
