/**
 * Issue 3 in a browser: the demo page in two headless Chromium pages loaded
 * from two different nodes of a 3-node cluster on the shared Redis. They
 * see each other, chat both ways, one calls the other, and both
 * RTCPeerConnections reach `connected`: every offer, answer and candidate
 * crossed nodes through the hot lane. Screenshots go to
 * test-artifacts/call-two-nodes*.png.
 *
 * Chromium or Redis missing: the test fails in CI (CI=true) and is skipped
 * elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';
import { chromiumSkipReason, joinDemo, launchForDemo, say, waitForConnectedCall } from '../helpers/demo-browser.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = `${ROOT}test-artifacts`;
const skip = chromiumSkipReason() ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

let cluster: Cluster | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  browser = await launchForDemo();
  cluster = await startCluster({ count: 3, redisUrl: SHARED_REDIS_URL });
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await cluster?.stop();
});

async function openDemo(nodeUrl: string, name: string, room: string): Promise<Page> {
  const demo = await joinDemo(browser!, nodeUrl, name, room);
  contexts.push(demo.context);
  return demo.page;
}

function connectionState(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (window as unknown as { nerveDemo: { pc?: RTCPeerConnection } }).nerveDemo.pc?.connectionState);
}

test('two browsers on two nodes of a cluster chat and set up a video call', { skip, timeout: 90_000 }, async () => {
  const room = testNamespace('call');
  // Alice on node 1, Bob on node 3: nothing they exchange stays on one node.
  const alice = await openDemo(cluster!.node(0).url, 'alice', room);
  const bob = await openDemo(cluster!.node(2).url, 'bob', room);
  // The node each page's client is connected to, from its welcome frame.
  const nodeOf = (page: Page) =>
    page.evaluate(() => (window as unknown as { nerveDemo: { client?: { welcome?: { nodeId: string } } } }).nerveDemo.client?.welcome?.nodeId);
  assert.equal(await nodeOf(alice), cluster!.node(0).nodeId);
  assert.equal(await nodeOf(bob), cluster!.node(2).nodeId);

  // Presence: each sees the other in the member list.
  await alice.getByTestId('member-bob').waitFor({ timeout: 10_000 });
  await bob.getByTestId('member-alice').waitFor({ timeout: 10_000 });

  // Chat both ways; each sees the other's message.
  await say(alice, 'hello from alice');
  await bob.getByTestId('chat-log').getByText('hello from alice').waitFor({ timeout: 10_000 });
  await say(bob, 'hi alice, bob here');
  await alice.getByTestId('chat-log').getByText('hi alice, bob here').waitFor({ timeout: 10_000 });

  // Alice calls, Bob accepts.
  await alice.getByTestId('call-bob').click();
  await bob.getByTestId('incoming-call').waitFor({ state: 'visible', timeout: 10_000 });
  await bob.getByTestId('accept-call').click();

  // Both connected, and media flows: the remote <video> has decoded frames.
  for (const page of [alice, bob]) await waitForConnectedCall(page);
  assert.equal(await connectionState(alice), 'connected');
  assert.equal(await connectionState(bob), 'connected');
  assert.equal(await alice.getByTestId('call-state').textContent(), 'connected');

  await mkdir(ARTIFACTS, { recursive: true });
  await alice.screenshot({ path: `${ARTIFACTS}/call-two-nodes.png` });
  await bob.screenshot({ path: `${ARTIFACTS}/call-two-nodes-callee.png` });

  // Hang up: the other side's call ends too.
  await alice.getByTestId('hangup').click();
  await bob.getByTestId('call-panel').waitFor({ state: 'hidden', timeout: 10_000 });
});
