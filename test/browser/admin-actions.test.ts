/**
 * Issue 20's admin actions in a browser: on the /admin page of a 2-node
 * cluster (shared Redis, RabbitMQ cold lane), an operator disconnects a user
 * connected to the other node, publishes into a room and ends it, sets a
 * tenant's quotas and reads its live usage. The clients see each action, and
 * every action arrives on the cold lane as an `admin.*` audit event.
 * Screenshot: test-artifacts/admin-actions.png.
 *
 * Chromium, Redis or RabbitMQ missing: the test fails in CI (CI=true) and is
 * skipped elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Connection } from 'rabbitmq-client';
import { chromium, type Browser } from 'playwright-core';
import type { ConsumerHandle, LifecycleEvent } from '../../src/events/event-log.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { listQueues } from '../helpers/rabbitmq.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = `${ROOT}test-artifacts`;
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip =
  (!haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : undefined) ??
  (await redisSkipReason(SHARED_REDIS_URL)) ??
  (await serviceSkip('RabbitMQ', 5672)) ??
  false;
const API_KEY = 'admin-actions-browser-key-0123456789';

const env = testNamespace('admact');
let cluster: Cluster | undefined;
let browser: Browser | undefined;
let events: RabbitEventLog | undefined;
let consumer: ConsumerHandle | undefined;
const audit: LifecycleEvent[] = [];
const clients: RawClient[] = [];

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  // The audit consumer's queue exists before the first action.
  events = new RabbitEventLog({ url: AMQP_URL, env });
  await events.start();
  consumer = await events.consume({ queue: 'audit', bindings: ['admin.*'] }, async (event) => {
    audit.push(event);
    return 'ack';
  });
  cluster = await startCluster({
    count: 2,
    redisUrl: SHARED_REDIS_URL,
    env,
    args: ['--api-key', API_KEY, '--amqp-url', AMQP_URL, '--no-demo', '--quota-refresh-ms', '200'],
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  });
});

after(async () => {
  for (const client of clients) client.close();
  await browser?.close();
  await cluster?.stop();
  await consumer?.close();
  await events?.close();
  if (!skip) {
    const admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    const queues = (await listQueues(`${env}.`)) ?? [`${env}.nerve.audit`, `${env}.nerve.audit.dlq`];
    for (const queue of queues) await admin.queueDelete({ queue }).catch(() => undefined);
    await admin.exchangeDelete({ exchange: `${env}.nerve.events` }).catch(() => undefined);
    await admin.close();
  }
});

test('the admin page disconnects, publishes, ends a room and sets quotas, each audited', { skip, timeout: 120_000 }, async () => {
  const c = cluster!;
  const context = await browser!.newContext({ viewport: { width: 1400, height: 1100 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${c.node(0).url}/admin`);
  await page.getByTestId('admin-key').fill(API_KEY);
  await page.getByTestId('admin-login').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="node-row"]').length === 2, undefined, { timeout: 15_000 });
  const result = page.getByTestId('action-result');
  const ok = async (pattern: RegExp) => {
    await page.waitForFunction(
      (source) => {
        const el = document.querySelector('[data-testid="action-result"]');
        return el?.getAttribute('data-ok') === 'true' && new RegExp(source).test(el.textContent ?? '');
      },
      pattern.source,
      { timeout: 10_000 },
    );
  };

  // Members on node 1 (the page talks to node 0).
  const mallory = await RawClient.connect(c.node(1).wsUrl, 'mallory');
  const bob = await RawClient.connect(c.node(1).wsUrl, 'bob');
  clients.push(mallory, bob);
  assert.equal((await bob.request({ op: 'join', room: 'lobby' })).op, 'joined');

  // Disconnect mallory: her socket on the other node closes with 4012 and the reason.
  await page.getByTestId('act-user').fill('mallory');
  await page.getByTestId('act-disconnect-reason').fill('abuse report 1234');
  await page.getByTestId('act-disconnect').click();
  await ok(/disconnect mallory: sent to 1 node/);
  assert.equal(await mallory.waitClose(10_000), 4012);
  assert.equal(mallory.closeReason, 'abuse report 1234');

  // Publish into the lobby: bob gets it from "ops".
  await page.getByTestId('act-pub-room').fill('lobby');
  await page.getByTestId('act-pub-from').fill('ops');
  await page.getByTestId('act-pub-data').fill('{"text":"maintenance at 5"}');
  await page.getByTestId('act-publish').click();
  await ok(/published into lobby: id .*, offset \d+/);
  const message = await bob.waitFor((frame) => frame.op === 'message', 10_000);
  assert.equal(message.from, 'ops');
  assert.deepEqual(message.data, { text: 'maintenance at 5' });

  // End the lobby: bob is told.
  await page.getByTestId('act-end-room').fill('lobby');
  await page.getByTestId('act-end-reason').fill('closing time');
  await page.getByTestId('act-end').click();
  await ok(/room lobby ended: 1 node/);
  assert.equal((await bob.waitFor((frame) => frame.op === 'room_ended', 10_000)).reason, 'closing time');

  // Quotas of tenant acme: set, then read back on load.
  await page.getByTestId('act-tenant').fill('acme');
  await page.getByTestId('act-quotas-load').click();
  await ok(/quotas of acme loaded \(none\)/);
  await page.getByTestId('quota-connections').fill('25');
  await page.getByTestId('quota-publishesPerSecond').fill('100');
  await page.getByTestId('act-quotas-save').click();
  await ok(/quotas of acme saved/);
  await page.getByTestId('quota-connections').fill('');
  await page.getByTestId('act-quotas-load').click();
  await ok(/quotas of acme loaded \(api\)/);
  assert.equal(await page.getByTestId('quota-connections').inputValue(), '25');
  assert.equal(await page.getByTestId('quota-source').textContent(), '(api)');

  // Live usage of the default tenant on this node: a connection of ours counts.
  clients.push(await RawClient.connect(c.node(0).wsUrl, 'carol'));
  await page.getByTestId('act-tenant').fill('default');
  await page.getByTestId('act-usage').click();
  await ok(/usage of default loaded/);
  assert.ok(Number(await page.getByTestId('usage-connections').textContent()) >= 1);

  // A refusal is shown as one.
  await page.getByTestId('act-end-room').fill('bad room');
  await page.getByTestId('act-end').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="action-result"]')?.getAttribute('data-ok') === 'false', undefined, {
    timeout: 10_000,
  });
  assert.match((await result.textContent()) ?? '', /refused: 400 invalid_room/);

  // Every action, and nothing else, on the cold lane.
  await waitFor(() => audit.length >= 4, { timeoutMs: 10_000, what: 'four audit events' });
  assert.deepEqual(audit.map((event) => event.type).sort(), ['admin.disconnect', 'admin.end_room', 'admin.publish', 'admin.set_quotas']);
  for (const event of audit) {
    assert.equal(event.data.actor, 'api-key');
    assert.equal(event.node, c.node(0).nodeId);
  }
  assert.equal(audit.find((event) => event.type === 'admin.set_quotas')?.tenant, 'acme');

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/admin-actions.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
