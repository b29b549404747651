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
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = `${ROOT}test-artifacts`;
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip = (!haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : undefined) ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Camera and microphone: synthetic devices, permission granted without a prompt.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  // Both peers run on this machine. With camera permission Chromium already
  // announces real host addresses, and any non-loopback interface lets ICE
  // connect (verified: the test passes here without the next two flags). They
  // keep it working in loopback-only sandboxes: allow candidates on 127.0.0.1,
  // and never fall back to mDNS names that nothing here resolves.
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

let cluster: Cluster | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  // The page loads /nerve-client.js from dist/web: build it (a fraction of a second).
  await promisify(execFile)(process.execPath, ['scripts/bundle-client.mjs'], { cwd: ROOT });
  cluster = await startCluster({ count: 3, redisUrl: SHARED_REDIS_URL });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await cluster?.stop();
});

async function openDemo(nodeUrl: string, name: string, room: string): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${nodeUrl}/`);
  await page.getByTestId('join-name').fill(name);
  await page.getByTestId('join-room').fill(room);
  await page.getByTestId('join-submit').click();
  await page.getByTestId('chat-input').waitFor({ state: 'visible', timeout: 10_000 });
  assert.deepEqual(errors, [], `page errors on ${name}'s page`);
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-send').click();
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

  for (const page of [alice, bob]) {
    await page.waitForFunction(
      () => (window as unknown as { nerveDemo: { pc?: RTCPeerConnection } }).nerveDemo.pc?.connectionState === 'connected',
      undefined,
      { timeout: 30_000 },
    );
    // Media flows: the remote <video> has decoded frames.
    await page.waitForFunction(
      () => {
        const video = document.querySelector<HTMLVideoElement>('[data-testid="remote-video"]');
        return video !== null && video.videoWidth > 0 && video.readyState >= 2;
      },
      undefined,
      { timeout: 20_000 },
    );
  }
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
