/**
 * A group call in the demo page: four headless Chromium tabs on two nodes
 * of a cluster on the shared Redis (two tabs per node), one starts a group
 * call, the three others accept, and every one of the six pairs reaches
 * `connected` with each tab's RoomCall; a mute shows at the three others,
 * and one who leaves is dropped by the rest. Screenshots (desktop and
 * phone) go to a temp directory, printed as a test diagnostic.
 *
 * Chromium or Redis missing: the test fails in CI (CI=true) and is skipped
 * elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';
import { DESKTOP, PHONE, chromiumSkipReason, joinDemo, launchForDemo, type DemoPage } from '../helpers/demo-browser.js';

const skip = chromiumSkipReason() ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

let cluster: Cluster | undefined;
let browser: Browser | undefined;
let shots = '';
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  shots = await mkdtemp(join(tmpdir(), 'nerve-group-call-'));
  browser = await launchForDemo();
  cluster = await startCluster({ count: 2, redisUrl: SHARED_REDIS_URL });
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await cluster?.stop();
});

type GroupWindow = { nerveDemo: { group?: { peers: Map<string, { pc: RTCPeerConnection }> } } };

/** The users this tab's group call is connected with, sorted. */
function connectedPeers(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const group = (window as unknown as GroupWindow).nerveDemo.group;
    if (!group) return [];
    return [...group.peers.entries()]
      .filter(([, call]) => call.pc.connectionState === 'connected')
      .map(([user]) => user)
      .sort();
  });
}

test('a group call of four tabs on two nodes: every pair connects, mute shows at everyone', { skip, timeout: 240_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const room = testNamespace('group');
  const names = ['ann', 'ben', 'cat', 'dan'];
  const tabs: Record<string, DemoPage> = {};
  for (const [index, name] of names.entries()) {
    // ann and cat on the first node, ben and dan on the second; dan on a phone.
    const demo = await joinDemo(browser!, cluster!.node(index % 2).url, name, room, name === 'dan' ? PHONE : DESKTOP);
    contexts.push(demo.context);
    tabs[name] = demo;
  }
  const page = (name: string) => tabs[name]!.page;
  for (const name of ['ben', 'cat', 'dan']) await page('ann').getByTestId(`member-${name}`).waitFor({ timeout: 15_000 });

  await page('ann').getByTestId('group-call').click();
  for (const name of ['ben', 'cat', 'dan']) {
    await page(name).getByTestId('incoming-call').getByText('invites you to a group call').waitFor({ timeout: 15_000 });
    await page(name).getByTestId('accept-call').click();
  }

  for (const name of names) {
    await page(name).waitForFunction(
      () => {
        const group = (window as unknown as GroupWindow).nerveDemo.group;
        return group !== undefined && group.peers.size === 3 && [...group.peers.values()].every((call) => call.pc.connectionState === 'connected');
      },
      undefined,
      { timeout: 90_000 },
    );
  }
  for (const name of names) {
    assert.deepEqual(
      await connectedPeers(page(name)),
      names.filter((other) => other !== name),
      `${name} is connected with the three others`,
    );
  }
  await page('ann').getByTestId('call-state').getByText('3 of 3 connected').waitFor({ timeout: 15_000 });
  const phonePanel = await page('dan').getByTestId('call-panel').boundingBox();
  assert.ok(phonePanel && phonePanel.y >= 0 && phonePanel.x + phonePanel.width <= PHONE.width, 'the call panel is on the phone screen');

  // Ben mutes: the three others see it on his tile.
  await page('ben').getByTestId('toggle-mic').click();
  for (const name of ['ann', 'cat', 'dan']) await page(name).getByTestId('peer-muted-ben').waitFor({ state: 'visible', timeout: 15_000 });
  await page('ann').screenshot({ path: join(shots, 'desktop-group-call.png') });
  await page('dan').screenshot({ path: join(shots, 'phone-group-call.png') });

  // Dan leaves: the others keep their two other pairs.
  await page('dan').getByTestId('hangup').click();
  for (const name of ['ann', 'ben', 'cat']) {
    await page(name).getByTestId('peer-dan').waitFor({ state: 'detached', timeout: 15_000 });
    assert.deepEqual(
      await connectedPeers(page(name)),
      names.filter((other) => other !== name && other !== 'dan'),
    );
  }
  for (const name of names) assert.deepEqual(tabs[name]!.errors, [], `page errors on ${name}'s page`);
});
