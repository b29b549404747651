/**
 * Headless Chromium (Debian's, through playwright-core) driving the demo
 * page, for the browser tests: launch flags with fake camera and
 * microphone, the SDK bundle build, and a person's steps (open the page,
 * join a room, say something, wait for a call to connect).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The test's skip reason: no Chromium outside CI (under CI=true the test fails instead). */
export function chromiumSkipReason(): string | undefined {
  if (existsSync(CHROMIUM) || process.env.CI === 'true') return undefined;
  return `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`;
}

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
  // Every peer runs on this machine: allow candidates on 127.0.0.1 and never
  // fall back to mDNS names that nothing here resolves (loopback-only sandboxes).
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** Build /nerve-client.js (dist/web) from the SDK source, then launch Chromium. */
export async function launchForDemo(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  await promisify(execFile)(process.execPath, ['scripts/bundle-client.mjs'], { cwd: ROOT });
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export interface DemoPage {
  page: Page;
  context: BrowserContext;
  /** Uncaught errors of the page so far. */
  errors: string[];
}

/** A new browser context (its own storage, like another person) on the demo page, not joined yet. */
export async function openPage(browser: Browser, url: string, viewport = DESKTOP): Promise<DemoPage> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${url}/`);
  return { page, context, errors };
}

/** Fill the join form and submit it. */
export async function submitJoin(page: Page, fields: { name?: string; room: string; token?: string; joinToken?: string }): Promise<void> {
  await page.getByTestId('join-name').fill(fields.name ?? '');
  await page.getByTestId('join-room').fill(fields.room);
  if (fields.token !== undefined || fields.joinToken !== undefined) {
    await page.locator('#auth').evaluate((details) => ((details as HTMLDetailsElement).open = true));
    await page.getByTestId('join-token').fill(fields.token ?? '');
    await page.getByTestId('room-token').fill(fields.joinToken ?? '');
  }
  await page.getByTestId('join-submit').click();
}

/** Open the demo and join `room` as `name`. */
export async function joinDemo(browser: Browser, url: string, name: string, room: string, viewport = DESKTOP): Promise<DemoPage> {
  const demo = await openPage(browser, url, viewport);
  await submitJoin(demo.page, { name, room });
  await demo.page.getByTestId('chat-input').waitFor({ state: 'visible', timeout: 15_000 });
  assert.deepEqual(demo.errors, [], `page errors on ${name}'s page`);
  return demo;
}

export async function say(page: Page, text: string): Promise<void> {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-send').click();
}

type DemoWindow = { nerveDemo: { pc?: RTCPeerConnection } };

/** Wait until the page's call is connected and the remote video shows frames. */
export async function waitForConnectedCall(page: Page): Promise<void> {
  await page.waitForFunction(() => (window as unknown as DemoWindow).nerveDemo.pc?.connectionState === 'connected', undefined, { timeout: 30_000 });
  await page.waitForFunction(
    () => {
      const video = document.querySelector<HTMLVideoElement>('[data-testid="remote-video"]');
      return video !== null && video.videoWidth > 0 && video.readyState >= 2;
    },
    undefined,
    { timeout: 20_000 },
  );
}

/** The element's box lies inside the viewport (what a person sees without scrolling). */
export async function inViewport(page: Page, testId: string): Promise<{ inside: boolean; box: string }> {
  const box = await page.getByTestId(testId).boundingBox();
  const viewport = page.viewportSize();
  if (!box || !viewport) return { inside: false, box: 'not laid out' };
  const inside = box.x >= 0 && box.y >= 0 && box.x + box.width <= viewport.width + 0.5 && box.y + box.height <= viewport.height + 0.5;
  return { inside, box: `${box.x},${box.y} ${box.width}x${box.height} in ${viewport.width}x${viewport.height}` };
}
