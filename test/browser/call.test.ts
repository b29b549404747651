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
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { testNamespace } from '../helpers/wait.js';
import { chromiumSkipReason, joinDemo, launchForDemo, say, waitForConnectedCall } from '../helpers/demo-browser.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = `${ROOT}test-artifacts`;
const skip = chromiumSkipReason() ?? false;

let node: NodeProcess | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  browser = await launchForDemo();
  node = await startNode();
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await node?.stop();
});

async function openDemo(name: string, room: string): Promise<Page> {
  const demo = await joinDemo(browser!, node!.url, name, room);
  contexts.push(demo.context);
  return demo.page;
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

  // Both connected, and media flows: the remote <video> has decoded frames.
  for (const page of [alice, bob]) await waitForConnectedCall(page);
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
