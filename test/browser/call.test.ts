/**
 * The demo page in two headless Chromium pages against a real node: both
 * join one room, chat both ways, one calls the other, and both
 * RTCPeerConnections reach `connected`. Camera and microphone are Chromium's
 * fake devices. A screenshot of the call goes to test-artifacts/call.png.
 *
 * Chromium missing: the test fails in CI (CI=true) and is skipped elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { testNamespace } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = `${ROOT}test-artifacts`;
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip = !haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : false;

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

let node: NodeProcess | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  // The page loads /nerve-client.js from dist/web: build it (a fraction of a second).
  await promisify(execFile)(process.execPath, ['scripts/bundle-client.mjs'], { cwd: ROOT });
  node = await startNode();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await node?.stop();
});

async function openDemo(name: string, room: string): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${node!.url}/`);
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

test('two browsers chat and set up a video call through nerve', { skip, timeout: 90_000 }, async () => {
  const room = testNamespace('call');
  const alice = await openDemo('alice', room);
  const bob = await openDemo('bob', room);

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
  await alice.screenshot({ path: `${ARTIFACTS}/call.png` });
  await bob.screenshot({ path: `${ARTIFACTS}/call-callee.png` });

  // Hang up: the other side's call ends too.
  await alice.getByTestId('hangup').click();
  await bob.getByTestId('call-panel').waitFor({ state: 'hidden', timeout: 10_000 });
});
