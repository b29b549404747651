/**
 * `@nerve-rt/client` as built for the registry (packages/client/dist/index.js,
 * the file its `exports` names), in headless Chromium: imported as an ES
 * module by a page and by a module web worker, each connects to a real node
 * with the browser's own WebSocket and chats with the other. This is the
 * package a bundler or a CDN hands to an app, not the IIFE the node serves.
 *
 * Chromium missing: the test fails in CI (CI=true) and is skipped elsewhere.
 * Needs `npm run build` (npm test builds first).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { testNamespace } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLIENT_MODULE = `${ROOT}packages/client/dist/index.js`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip = !haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : false;

/** A module worker: connects as `user`, joins `room`, and answers the page's chat message with its own. */
const WORKER = `
import { NerveClient } from './nerve-client.js';
self.onmessage = async ({ data: { url, user, room } }) => {
  try {
    const client = new NerveClient({ url, user });
    await client.connect();
    client.on('message', (message) => {
      if (message.from === user) return;
      self.postMessage({ type: 'message', from: message.from, data: message.data });
      client.publish(room, { text: 'back' }).catch((error) => self.postMessage({ type: 'error', message: String(error) }));
    });
    await client.join(room);
    self.postMessage({ type: 'joined' });
  } catch (error) {
    self.postMessage({ type: 'error', message: String(error) });
  }
};
`;

const PAGE = `<!doctype html><meta charset="utf-8"><title>client package</title>
<script type="module">
import { NerveClient, PROTOCOL_VERSION } from './nerve-client.js';
window.runClientPackage = async ({ url, room }) => {
  const worker = new Worker('./worker.js', { type: 'module' });
  const fromWorker = (type) => new Promise((resolve, reject) => {
    worker.addEventListener('message', ({ data }) => {
      if (data.type === 'error') reject(new Error('worker: ' + data.message));
      if (data.type === type) resolve(data);
    });
  });
  const workerJoined = fromWorker('joined');
  const workerGot = fromWorker('message');
  worker.postMessage({ url, user: 'worker-user', room });
  await workerJoined;
  const client = new NerveClient({ url, user: 'page-user' });
  const welcome = await client.connect();
  const pageGot = new Promise((resolve) => client.on('message', (message) => message.from === 'worker-user' && resolve(message)));
  await client.join(room);
  await client.publish(room, { text: 'from the page' });
  const received = await workerGot;
  const answer = await pageGot;
  await client.close();
  worker.terminate();
  return { v: welcome.v, protocol: PROTOCOL_VERSION, workerReceived: { from: received.from, data: received.data }, pageReceived: { from: answer.from, data: answer.data } };
};
window.clientPackageReady = true;
</script>`;

let node: NodeProcess | undefined;
let browser: Browser | undefined;
let server: Server | undefined;

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  assert.ok(existsSync(CLIENT_MODULE), `${CLIENT_MODULE} is missing: run \`npm run build\` first`);
  const clientModule = await readFile(CLIENT_MODULE, 'utf8');
  const files: Record<string, [string, string]> = {
    '/': ['text/html', PAGE],
    '/nerve-client.js': ['text/javascript', clientModule],
    '/worker.js': ['text/javascript', WORKER],
  };
  server = createServer((request, response) => {
    const file = files[request.url ?? ''];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  node = await startNode();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  });
});

after(async () => {
  await browser?.close();
  await node?.stop();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

test('the packaged client runs in a page and in a module web worker', { skip, timeout: 60_000 }, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`http://127.0.0.1:${(server!.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => (window as unknown as { clientPackageReady?: boolean }).clientPackageReady === true, undefined, { timeout: 10_000 });
  const result = await page.evaluate(
    (args) => (window as unknown as { runClientPackage: (a: { url: string; room: string }) => Promise<unknown> }).runClientPackage(args),
    { url: node!.wsUrl, room: testNamespace('pkg') },
  );
  assert.deepEqual(result, {
    v: 1,
    protocol: 1,
    workerReceived: { from: 'page-user', data: { text: 'from the page' } },
    pageReceived: { from: 'worker-user', data: { text: 'back' } },
  });
  assert.deepEqual(errors, []);
  await page.close();
});
