/**
 * Issue 8 in a browser: the admin page of a 3-node cluster on the shared
 * Redis, in headless Chromium. It asks for the API key, then shows the three
 * nodes from the registry, and its counts (connections, rooms, messages)
 * move while clients on every node chat. Screenshot:
 * test-artifacts/admin.png.
 *
 * Chromium or Redis missing: the test fails in CI (CI=true) and is skipped
 * elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = `${ROOT}test-artifacts`;
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip = (!haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : undefined) ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
const API_KEY = 'admin-test-key-0123456789abcdef';

let cluster: Cluster | undefined;
let browser: Browser | undefined;
const clients: RawClient[] = [];

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  cluster = await startCluster({ count: 3, redisUrl: SHARED_REDIS_URL, args: ['--api-key', API_KEY, '--registry-interval-ms', '500', '--no-demo'] });
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
});

const number = async (page: Page, testId: string): Promise<number> => Number(((await page.getByTestId(testId).textContent()) ?? '').replace(/,/g, ''));

test('the admin page shows the 3 nodes and counts that move under traffic', { skip, timeout: 90_000 }, async () => {
  const c = cluster!;
  const context = await browser!.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${c.node(0).url}/admin`);

  // A wrong key is refused and the page says so.
  await page.getByTestId('admin-key').fill('wrong-key-wrong-key-wrong-key');
  await page.getByTestId('admin-login').click();
  await page
    .getByTestId('login-error')
    .filter({ hasText: /wrong API key/ })
    .waitFor({ timeout: 10_000 });

  await page.getByTestId('admin-key').fill(API_KEY);
  await page.getByTestId('admin-login').click();
  const rows = page.getByTestId('node-row');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="node-row"]').length === 3, undefined, { timeout: 15_000 });
  assert.deepEqual((await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-node')))).sort(), c.nodes.map((n) => n.nodeId).sort());
  assert.equal(await number(page, 'total-connections'), 0);

  // Traffic: two clients per node, all in one room per pair of nodes, chatting.
  const room = testNamespace('adm');
  for (const [i, node] of c.nodes.entries()) {
    for (const j of [0, 1]) {
      const client = await RawClient.connect(node.wsUrl, `adm-${i}-${j}`);
      clients.push(client);
      await client.request({ op: 'join', room: `${room}-${j}` });
    }
  }
  // Every node's row shows its 2 connections (remote rows follow the registry heartbeat).
  await page.waitForFunction(
    () => Array.from(document.querySelectorAll('[data-testid="node-row"] [data-testid="node-connections"]')).every((cell) => cell.textContent === '2'),
    undefined,
    { timeout: 15_000 },
  );
  assert.equal(await number(page, 'total-connections'), 6);
  assert.ok((await number(page, 'total-rooms')) >= 2);

  // Chat in bursts, one per poll of the page (it polls every second), until
  // the page shows message and delivery rates and the chart has 20 samples.
  const points = () => page.evaluate(() => Number(document.querySelector<HTMLElement>('#chart')?.dataset.samples ?? 0));
  let sawRate = false;
  for (let round = 0; round < 40 && !(sawRate && (await points()) >= 20); round++) {
    const before = await points();
    for (let m = 0; m < 1 + (round % 4); m++) {
      for (const [k, client] of clients.entries())
        if (k % 3 === 0) client.send({ op: 'publish', rid: client.rid(), room: `${room}-${k % 2}`, class: 'ephemeral', key: 'typing', data: round });
      await Promise.all(clients.map((client, k) => client.request({ op: 'publish', room: `${room}-${k % 2}`, class: 'chat', data: `m${round}.${m}` })));
    }
    await page
      .waitForFunction((n) => Number(document.querySelector<HTMLElement>('#chart')?.dataset.samples ?? 0) !== n || n >= 120, before, { timeout: 5000 })
      .catch(() => undefined);
    sawRate ||= (await number(page, 'total-in')) > 0 && (await number(page, 'total-out')) > 0;
  }
  assert.ok(sawRate, 'the page showed message and delivery rates');
  // The loop's goal, asserted: a round that timed out must not pass for a moving chart.
  assert.ok((await points()) >= 20, 'the chart drew a line of at least 20 samples');
  assert.ok(await page.evaluate(() => document.querySelector('#chart canvas') !== null), 'uPlot drew the chart on its canvas');
  await page.waitForFunction(() => (document.querySelector('[data-testid="lanes"]')?.textContent ?? '').includes('redis'), undefined, { timeout: 5000 });
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/admin.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
