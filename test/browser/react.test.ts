/**
 * The React example (examples/react-chat) as a person uses it: built with
 * Vite in development mode (so React's StrictMode runs every effect twice)
 * into a temp folder, served for a two-node cluster on the shared Redis
 * (one address per node, whose /ws goes to that node, as Vite's dev server
 * forwards it) and opened in headless Chromium. The newest 20 of 25 stored
 * messages show and "load older" brings the rest; chat goes both ways;
 * each sees the other in the member list; read receipts show ("seen by" the
 * other; an unread badge while scrolled up, gone once the newest is in
 * view); a 1:1 call rings, is accepted and connects with media, and each
 * shows the other "in a call" (presence state); a third person comes
 * through the other node and a group call (RoomCall) of the three connects
 * every pair and shows a mute at both others; a page that switches rooms
 * (useRoom's `name`) leaves the old one and joins the new on the same
 * socket; the nodes counted one connection and one join per page
 * (StrictMode did not double them), and a page that leaves closes its
 * socket.
 *
 * Needs `npm run build` (the example imports the built @nerve-rt/react and
 * @nerve-rt/client, as an app would). Chromium or Redis missing: the test
 * fails in CI (CI=true) and is skipped elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { WebSocket } from 'ws';
import { NerveClient } from '../../packages/client/src/index.js';
import { chromiumSkipReason, launchForDemo } from '../helpers/demo-browser.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import type { NodeProcess } from '../helpers/node-process.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = join(ROOT, 'examples', 'react-chat');
const skip = chromiumSkipReason() ?? (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

let cluster: Cluster | undefined;
let browser: Browser | undefined;
let outDir: string | undefined;
/** One address of the app per node: its static files, and `/ws` forwarded to that node. */
let appUrls: string[] = [];
const servers: Server[] = [];
const sockets = new Set<Socket>();
const contexts: BrowserContext[] = [];

/**
 * Serve the built app from `root` and forward WebSocket upgrades of `/ws`
 * to `node`, as the example's Vite dev server does: the page connects to
 * its own host, so one build runs against either node.
 */
async function serveApp(root: string, node: NodeProcess): Promise<string> {
  const server = createServer((request, response) => {
    const path = normalize(new URL(request.url ?? '/', 'http://x').pathname).replace(/^(\.\.[/\\])+/, '');
    const file = join(root, path === '/' ? 'index.html' : path);
    readFile(file).then(
      (body) => response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => response.writeHead(404).end(),
    );
  });
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const upstream = connect(node.port, '127.0.0.1', () => {
      const headers = request.rawHeaders.map((value, index) => (index % 2 === 0 ? `${value}: ` : `${value}\r\n`)).join('');
      upstream.write(`${request.method ?? 'GET'} ${request.url ?? '/ws'} HTTP/1.1\r\n${headers}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    for (const end of [socket, upstream]) {
      sockets.add(end);
      end.on('close', () => sockets.delete(end));
    }
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

before(async () => {
  if (skip) return;
  for (const built of ['packages/client/dist/index.js', 'packages/react/dist/index.js']) {
    assert.ok(existsSync(join(ROOT, built)), `${built} is missing: run \`npm run build\` first`);
  }
  cluster = await startCluster({ count: 2, redisUrl: SHARED_REDIS_URL });
  outDir = await mkdtemp(join(tmpdir(), 'nerve-react-chat-'));
  await build({
    root: EXAMPLE,
    configFile: join(EXAMPLE, 'vite.config.ts'),
    mode: 'development',
    logLevel: 'warn',
    // React's development build, where StrictMode runs effects twice: a Vite build's `mode` leaves NODE_ENV at production.
    // No VITE_NERVE_URL: the page connects to its own host's /ws, which serveApp forwards to a node.
    define: { 'import.meta.env.VITE_NERVE_URL': JSON.stringify(''), 'process.env.NODE_ENV': JSON.stringify('development') },
    build: { outDir, emptyOutDir: true, minify: false },
  });
  const root = outDir;
  appUrls = await Promise.all(cluster.nodes.map((node) => serveApp(root, node)));
  browser = await launchForDemo();
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  await cluster?.stop();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

/** The sum of a counter or gauge on the nodes' /metrics (both, or `nodes`), over the label sets (`filter` picks some). */
async function metric(name: string, filter = '', nodes: NodeProcess[] = cluster!.nodes): Promise<number> {
  let sum = 0;
  for (const node of nodes) {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    for (const line of text.split('\n')) {
      if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(filter)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

/** Store `count` chat messages in `room` before anyone opens the page, as another client would have. */
async function seed(room: string, count: number): Promise<void> {
  const client = new NerveClient({ url: cluster!.node(0).wsUrl, user: 'seed', WebSocket, reconnect: false });
  await client.connect();
  await client.join(room);
  for (let index = 1; index <= count; index += 1) await client.publish(room, { text: `seed ${index}` });
  await client.close();
}

/** Open the app as `user` through node `node`'s address and join `room`. */
async function enter(user: string, room: string, node = 0): Promise<{ page: Page; errors: string[] }> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  // Every text frame the page sends, kept in the page itself: read there, it is complete up to that moment.
  await context.addInitScript(() => {
    const sent: string[] = [];
    (window as unknown as { nerveSent: string[] }).nerveSent = sent;
    type Send = (this: WebSocket, data: Parameters<WebSocket['send']>[0]) => void;
    const send = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'send')!.value as Send;
    WebSocket.prototype.send = function (this: WebSocket, data) {
      if (typeof data === 'string') sent.push(data);
      send.call(this, data);
    };
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(appUrls[node] ?? '');
  await page.getByTestId('join-name').fill(user);
  await page.getByTestId('join-room').fill(room);
  await page.getByTestId('join-submit').click();
  await page.getByTestId('connection-state').getByText('connected').waitFor({ timeout: 10_000 });
  return { page, errors };
}

/** How many `read` frames the page has sent so far. */
function readsSent(page: Page): Promise<number> {
  return page.evaluate(
    () => (window as unknown as { nerveSent: string[] }).nerveSent.filter((frame) => (JSON.parse(frame) as { op?: string }).op === 'read').length,
  );
}

function logLines(page: Page): Promise<string[]> {
  return page.getByTestId('chat-log').locator('li[data-offset]').allTextContents();
}

test(
  'the React example: paging, chat, receipts, presence, 1:1 and group calls, a room switch, one socket and join per page',
  { skip, timeout: 60_000 },
  async () => {
    const room = testNamespace('react');
    await seed(room, 25);
    const baseline = { connections: await metric('nerve_connections_total'), joins: await metric('nerve_joins_total') };

    const alice = await enter('alice', room);
    await waitFor(async () => (await logLines(alice.page)).length === 20, { timeoutMs: 10_000, what: "alice's 20 newest messages" });
    let lines = await logLines(alice.page);
    assert.equal(lines[0], 'seed seed 6');
    assert.equal(lines[19], 'seed seed 25');
    await alice.page.getByTestId('load-older').click();
    await waitFor(async () => (await logLines(alice.page)).length === 25, { timeoutMs: 10_000, what: 'the older page' });
    lines = await logLines(alice.page);
    assert.equal(lines[0], 'seed seed 1');
    await alice.page.getByTestId('load-older').waitFor({ state: 'detached', timeout: 5_000 });

    const bob = await enter('bob', room);
    await alice.page.getByTestId('member-bob').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('member-alice').waitFor({ timeout: 10_000 });

    await alice.page.getByTestId('chat-input').fill('hello from alice');
    await alice.page.getByTestId('chat-send').click();
    await bob.page.getByTestId('chat-log').getByText('hello from alice').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('chat-input').fill('hi alice, bob here');
    await bob.page.getByTestId('chat-send').click();
    await alice.page.getByTestId('chat-log').getByText('hi alice, bob here').waitFor({ timeout: 10_000 });

    // Read receipts: each page marks what it shows as read, so each sees the other under its own newest message.
    await alice.page.getByTestId('seen-by').getByText('bob').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('seen-by').getByText('alice').waitFor({ timeout: 10_000 });
    // Alice scrolls up (a short window, so the log scrolls): bob's next message is unread, a badge says so.
    await alice.page.setViewportSize({ width: 1280, height: 420 });
    await alice.page.getByTestId('chat-log').evaluate((log) => log.scrollTo({ top: 0 }));
    await alice.page.locator('[data-testid="chat-log"][data-at-bottom="false"]').waitFor({ timeout: 5_000 });
    const readsBefore = await readsSent(alice.page);
    await bob.page.getByTestId('chat-input').fill('are you there?');
    await bob.page.getByTestId('chat-send').click();
    await alice.page.getByTestId('unread-badge').getByText('1 new').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('chat-log').getByText('are you there?').waitFor({ timeout: 10_000 });
    assert.equal(await alice.page.title(), `(1) #${room}`);
    // Fence: the page marks read one 300 ms debounce after its unread count moved (Chat.tsx), and the badge shows
    // that it moved; a timer of the same delay set now fires after the page's. By then any read the page would
    // send while scrolled up is in its sent frames, and what was never sent cannot reach bob.
    await alice.page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 300)));
    assert.equal(await readsSent(alice.page), readsBefore, 'no read sent while alice is scrolled up');
    assert.equal(await bob.page.getByTestId('seen-by').count(), 0, 'not seen while alice is scrolled up');
    // The badge scrolls to the newest: read, the badge goes, bob sees it seen.
    await alice.page.getByTestId('unread-badge').click();
    await alice.page.getByTestId('unread-badge').waitFor({ state: 'detached', timeout: 10_000 });
    await bob.page.getByTestId('seen-by').getByText('alice').waitFor({ timeout: 10_000 });
    await alice.page.setViewportSize({ width: 1280, height: 800 });

    // StrictMode ran every effect twice; the node still saw one socket and one join per page.
    assert.equal((await metric('nerve_connections_total')) - baseline.connections, 2, 'connections opened by the two pages');
    assert.equal((await metric('nerve_joins_total')) - baseline.joins, 2, 'joins by the two pages');
    assert.equal(await metric('nerve_frames_in_total', 'op="leave"'), 0, 'no page left the room on a remount');

    // A 1:1 call: rings at bob, accepted, connected both ways with media.
    await alice.page.getByTestId('call-bob').click();
    await bob.page.getByTestId('incoming-call').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('accept-call').click();
    for (const [page, peer] of [
      [alice.page, 'bob'],
      [bob.page, 'alice'],
    ] as const) {
      await page.getByTestId('call-state').getByText('connected', { exact: true }).waitFor({ timeout: 20_000 });
      await page.waitForFunction(
        (testId) => {
          const video = document.querySelector<HTMLVideoElement>(`[data-testid="${testId}"]`);
          return video !== null && video.videoWidth > 0;
        },
        `remote-video-${peer}`,
        { timeout: 15_000 },
      );
    }
    // useCall({ room }): both sides told the server they joined the call, which times it for billing.
    await waitFor(async () => (await metric('nerve_frames_in_total', 'op="call"')) === 2, { timeoutMs: 10_000, what: 'two call joins' });
    // Presence state: each shows the other "in a call" (setPresence from the example, member_updated at the peer).
    await alice.page.getByTestId('in-call-bob').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('in-call-alice').waitFor({ timeout: 10_000 });
    await alice.page.getByTestId('toggle-mic').click();
    await bob.page.getByTestId('peer-muted-alice').waitFor({ timeout: 10_000 });
    await alice.page.getByTestId('hangup').click();
    await bob.page.getByTestId('call-ended').waitFor({ timeout: 10_000 });

    // A group call of three (RoomCall, a mesh) on two nodes: carol comes through the other node, alice calls both, both join, every pair connects.
    const carol = await enter('carol', room, 1);
    assert.equal(await metric('nerve_connections', '', [cluster!.node(1)]), 1, "carol's socket is on the other node");
    await alice.page.getByTestId('member-carol').waitFor({ timeout: 10_000 });
    await alice.page.getByTestId('group-call').click();
    for (const invited of [bob, carol]) {
      await invited.page.getByTestId('incoming-call').getByText('invites you to a group call').waitFor({ timeout: 10_000 });
      await invited.page.getByTestId('accept-call').click();
    }
    const people = { alice, bob, carol };
    for (const [name, person] of Object.entries(people)) {
      for (const other of Object.keys(people).filter((each) => each !== name)) {
        await person.page.getByTestId(`peer-state-${other}`).getByText('connected', { exact: true }).waitFor({ timeout: 20_000 });
      }
    }
    await carol.page.getByTestId('toggle-mic').click();
    await alice.page.getByTestId('peer-muted-carol').waitFor({ timeout: 10_000 });
    await bob.page.getByTestId('peer-muted-carol').waitFor({ timeout: 10_000 });
    for (const person of [alice, bob, carol]) await person.page.getByTestId('hangup').click();
    await carol.page.getByTestId('call-ended').waitFor({ timeout: 10_000 });

    // Bob switches rooms on the same socket: the old room is left (alice sees him go), the new one joined, empty.
    const elsewhere = `${room}-elsewhere`;
    const before = { connections: await metric('nerve_connections_total'), leaves: await metric('nerve_frames_in_total', 'op="leave"') };
    await bob.page.getByTestId('switch-room').fill(elsewhere);
    await bob.page.getByTestId('switch-room').press('Enter');
    await bob.page.getByRole('heading', { name: `#${elsewhere}` }).waitFor({ timeout: 10_000 });
    await alice.page.getByTestId('member-bob').waitFor({ state: 'detached', timeout: 10_000 });
    await bob.page.getByTestId('member-bob').waitFor({ timeout: 10_000 });
    assert.equal(await bob.page.getByTestId('member-alice').count(), 0);
    assert.deepEqual(await logLines(bob.page), []);
    await bob.page.getByTestId('chat-input').fill('first in the new room');
    await bob.page.getByTestId('chat-send').click();
    await bob.page.getByTestId('chat-log').getByText('first in the new room').waitFor({ timeout: 10_000 });
    assert.equal((await metric('nerve_connections_total')) - before.connections, 0, 'the switch kept the socket');
    assert.equal((await metric('nerve_frames_in_total', 'op="leave"')) - before.leaves, 1, 'one leave of the old room');
    // Fence: bob's message is stored (it came back to him with its offset); had it gone to the old room, a message
    // sent there now comes after it, and alice gets that room's chat in offset order.
    await alice.page.getByTestId('chat-input').fill('still here');
    await alice.page.getByTestId('chat-send').click();
    await alice.page.getByTestId('chat-log').getByText('still here').waitFor({ timeout: 10_000 });
    assert.equal(await alice.page.getByTestId('chat-log').getByText('first in the new room').count(), 0);

    // Bob leaves: the provider unmounts, the room is left and the socket closed.
    await bob.page.getByTestId('leave').click();
    await waitFor(async () => (await metric('nerve_connections')) === 2, { timeoutMs: 10_000, what: "bob's socket closed" });

    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    assert.deepEqual(carol.errors, []);
  },
);
