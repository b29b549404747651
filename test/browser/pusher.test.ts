/**
 * pusher-js's browser build (dist/web/pusher.min.js, from npm) in headless
 * Chromium against two nerve nodes on the shared Redis (docs/pusher.md):
 * two pages, one per node, in a presence channel. Auth is signed by the
 * official `pusher` library in the test process, reached through
 * `page.exposeFunction`, as a page reaches its backend's auth endpoint.
 *
 * Chromium or Redis missing: the test fails in CI (CI=true) and is skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import PusherServer from 'pusher';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
const skip = (!haveChromium && !inCi ? `no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)` : undefined) ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
const PUSHER_BROWSER_BUILD = readFileSync(createRequire(import.meta.url).resolve('pusher-js/dist/web/pusher.min.js'), 'utf8');

const APP = { id: '2001', key: 'browser-key', secret: 'browser-secret-0123456789', enableClientMessages: true };

let cluster: Cluster | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  if (!haveChromium) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
  [cluster, browser] = await Promise.all([
    startCluster({ count: 2, redisUrl: SHARED_REDIS_URL, args: ['--pusher-apps', JSON.stringify([APP])] }),
    chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'], timeout: 30_000 }),
  ]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** A page running pusher-js against node `node`, subscribed to `channel` as `user`; what it hears is in `window.heard`. */
async function openPage(node: number, user: string, channel: string): Promise<Page> {
  const signer = new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: '127.0.0.1',
    port: String(cluster!.node(node).port),
    useTLS: false,
  });
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.exposeFunction('authorize', (socketId: string, name: string) =>
    signer.authorizeChannel(socketId, name, { user_id: user, user_info: { name: user } }),
  );
  await page.setContent('<!doctype html><title>pusher-js</title>');
  await page.addScriptTag({ content: PUSHER_BROWSER_BUILD });
  // Plain JavaScript text, as a page would ship it (a function passed to page.evaluate would carry tsx's helpers).
  await page.addScriptTag({
    content: `
      window.heard = [];
      window.pusher = new Pusher(${JSON.stringify(APP.key)}, {
        cluster: 'nerve',
        wsHost: '127.0.0.1',
        wsPort: ${cluster!.node(node).port},
        forceTLS: false,
        enabledTransports: ['ws'],
        disableStats: true,
        channelAuthorization: {
          endpoint: '/unused',
          transport: 'ajax',
          customHandler: function (params, callback) {
            window.authorize(params.socketId, params.channelName).then(function (data) { callback(null, data); }, function (error) { callback(error, null); });
          },
        },
      });
      window.channel = window.pusher.subscribe(${JSON.stringify(channel)});
      window.channel.bind_global(function (event, data) { window.heard.push({ event: event, data: data }); });
    `,
  });
  assert.deepEqual(errors, []);
  return page;
}

function heard(page: Page, event: string): Promise<unknown> {
  return page
    .waitForFunction(
      `(window.heard || []).map(function (item) { return item.event === ${JSON.stringify(event)} ? item.data : null; }).filter(Boolean)[0] || null`,
      undefined,
      { timeout: 10_000 },
    )
    .then((handle) => handle.jsonValue());
}

test('pusher-js in Chromium: presence across two nodes, a server event and a client event', { skip, timeout: 60_000 }, async () => {
  const channel = `presence-${testNamespace('web')}`;
  const ann = await openPage(0, 'ann', channel);
  await heard(ann, 'pusher:subscription_succeeded');
  const ben = await openPage(1, 'ben', channel);
  const members = (await heard(ben, 'pusher:subscription_succeeded')) as { count: number; members: Record<string, unknown> };
  assert.equal(members.count, 2);
  assert.deepEqual(members.members.ann, { name: 'ann' });
  assert.deepEqual(await heard(ann, 'pusher:member_added'), { id: 'ben', info: { name: 'ben' } });

  const server = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(cluster!.node(1).port), useTLS: false });
  await server.trigger(channel, 'announcement', { text: 'to both' });
  assert.deepEqual(await heard(ann, 'announcement'), { text: 'to both' });
  assert.deepEqual(await heard(ben, 'announcement'), { text: 'to both' });

  assert.equal(await ben.evaluate("window.channel.trigger('client-wave', { from: 'ben' })"), true);
  assert.deepEqual(await heard(ann, 'client-wave'), { from: 'ben' });

  await ben.close();
  assert.deepEqual(await heard(ann, 'pusher:member_removed'), { id: 'ben', info: { name: 'ben' } });
});
