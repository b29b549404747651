/**
 * The demo page as a person sees it, in headless Chromium at phone
 * (390×844) and desktop (1280×800) sizes: a room with history opens at the
 * newest message; typed text is ink, not placeholder grey; a call rings
 * (and can be declined) before it connects, its panel is on screen on the
 * phone, and mute and camera-off show at the peer, whose status says "in
 * a call"; edits, deletes and reactions show folded into their message
 * (also after a reload); with JWT auth each refusal says what happened. Screenshots of each step go to a temp
 * directory (printed as a test diagnostic).
 *
 * Chromium missing: the test fails in CI (CI=true) and is skipped elsewhere.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { hs256Token } from '../helpers/jwt.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { testNamespace } from '../helpers/wait.js';
import {
  DESKTOP,
  PHONE,
  chromiumSkipReason,
  inViewport,
  joinDemo,
  launchForDemo,
  openPage,
  say,
  submitJoin,
  waitForConnectedCall,
  type DemoPage,
} from '../helpers/demo-browser.js';

const skip = chromiumSkipReason() ?? false;
/** What the receipts test reaches of the page's `window.nerveDemo`. */
type DemoWindow = { nerveDemo: { roomHandle: { readPositions: ReadonlyMap<string, number>; markRead(offset?: number): Promise<number> } } };
const SECRET = 'demo-browser-test-secret-'.padEnd(40, 'x');

let node: NodeProcess | undefined;
let jwtNode: NodeProcess | undefined;
let browser: Browser | undefined;
let shots = '';
const contexts: BrowserContext[] = [];

before(async () => {
  if (skip) return;
  shots = await mkdtemp(join(tmpdir(), 'nerve-demo-'));
  browser = await launchForDemo();
  node = await startNode();
  jwtNode = await startNode({ args: ['--auth-secret', SECRET] });
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await node?.stop();
  await jwtNode?.stop();
});

async function enter(url: string, name: string, room: string, viewport = DESKTOP): Promise<DemoPage> {
  const demo = await joinDemo(browser!, url, name, room, viewport);
  contexts.push(demo.context);
  return demo;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

/** Where the newest and the oldest chat lines are, relative to the log's visible area and the viewport. */
async function logView(page: Page, newest: string, oldest: string): Promise<{ newest: string; oldest: string; scrollTop: number }> {
  // No named functions inside: the page does not have the test runner's helpers for them.
  const [newState = '', oldState = '', scrollTop = 0] = await page.evaluate(
    (texts: string[]) => {
      const log = document.querySelector<HTMLOListElement>('[data-testid="chat-log"]')!;
      const area = log.getBoundingClientRect();
      const states = texts.map((text) => {
        const item = Array.from(log.querySelectorAll<HTMLLIElement>('li')).find((li) => li.textContent?.includes(text));
        if (!item) return 'missing';
        const box = item.getBoundingClientRect();
        const inLog = box.top >= area.top - 1 && box.bottom <= area.bottom + 1;
        const inWindow = box.top >= 0 && box.bottom <= window.innerHeight;
        return inLog && inWindow ? 'visible' : 'hidden';
      });
      return [...states, log.scrollTop] as [string, string, number];
    },
    [newest, oldest],
  );
  return { newest: newState, oldest: oldState, scrollTop };
}

test('phone: a room with history opens at the newest message; typed text is not placeholder grey', { skip, timeout: 120_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const room = testNamespace('hist');
  const alice = await enter(node!.url, 'alice', room);
  // 60 messages: far more than the log shows at once, and 10 more than a join returns (historyOnJoin 50).
  await alice.page.evaluate(async (r) => {
    const client = (window as unknown as { nerveDemo: { client: { publish(room: string, data: unknown): Promise<unknown> } } }).nerveDemo.client;
    for (let i = 0; i < 60; i += 1) await client.publish(r, { text: `history ${i}` });
  }, room);
  await alice.page.getByTestId('chat-log').getByText('history 59').waitFor({ timeout: 15_000 });
  // The writer follows her own messages down.
  assert.equal((await logView(alice.page, 'history 59', 'history 0')).newest, 'visible');
  await shot(alice.page, 'desktop-history');

  const bob = await openPage(browser!, node!.url, PHONE);
  contexts.push(bob.context);
  // Typed text is the ink colour; only the placeholder is grey.
  await bob.page.getByTestId('join-name').fill('bob');
  const colours = await bob.page.evaluate(() => {
    const input = document.querySelector('[data-testid="join-name"]')!;
    return {
      typed: getComputedStyle(input).color,
      placeholder: getComputedStyle(input, '::placeholder').color,
      label: getComputedStyle(input.parentElement!).color,
    };
  });
  assert.equal(colours.typed, 'rgb(29, 36, 51)', 'typed text in --ink');
  assert.notEqual(colours.typed, colours.label, 'not the grey of the label');
  assert.notEqual(colours.typed, colours.placeholder, 'not the placeholder colour');
  await shot(bob.page, 'phone-join-form');

  await submitJoin(bob.page, { name: 'bob', room });
  await bob.page.getByTestId('chat-input').waitFor({ state: 'visible', timeout: 15_000 });
  const view = await logView(bob.page, 'history 59', 'history 10');
  assert.equal(view.newest, 'visible', 'the newest message is in view on join');
  assert.equal(view.oldest, 'hidden', 'the log is scrolled, not at the oldest message');
  assert.ok(view.scrollTop > 0);
  await shot(bob.page, 'phone-history');
  assert.equal(await bob.page.getByTestId('chat-log').getByText('history 9', { exact: true }).count(), 0, 'the join returned the newest 50');

  // Scrolling to the top loads the older page (the history op) above what was there.
  await bob.page.getByTestId('chat-log').evaluate((log) => (log.scrollTop = 0));
  await bob.page.getByTestId('chat-log').getByText('history 0', { exact: true }).waitFor({ timeout: 15_000 });
  const offsets = await bob.page.$$eval('[data-testid="chat-log"] li[data-offset]', (items) =>
    items.map((item) => Number((item as HTMLElement).dataset.offset)),
  );
  assert.equal(offsets.length, 60, 'every message once');
  assert.deepEqual(
    offsets,
    [...offsets].sort((a, b) => a - b),
    'oldest first',
  );
  await bob.page.getByTestId('load-older').waitFor({ state: 'hidden', timeout: 15_000 });
  await shot(bob.page, 'phone-history-older');
  assert.deepEqual(bob.errors, []);
});

/**
 * The chat log as the reader sees it, one string: each message's text, "(edited)", its
 * reaction chips ("*" on your own). Run in the page: no named functions inside.
 */
const FOLDED_LOG = () =>
  Array.from(document.querySelectorAll('[data-testid="chat-log"] li[data-offset]'))
    .map((li) => {
      const text = li.querySelector('.text')?.textContent ?? '';
      const edited = li.querySelector('[data-testid="edited"]') ? ' (edited)' : '';
      const chips = Array.from(li.querySelectorAll('[data-testid="reaction"]'))
        .map((chip) => `[${chip.textContent}${chip.getAttribute('aria-pressed') === 'true' ? '*' : ''}]`)
        .join('');
      return `${text}${edited}${chips}`;
    })
    .join(' | ');

async function waitForLog(page: Page, expected: string): Promise<void> {
  try {
    await page.waitForFunction(`(${FOLDED_LOG.toString()})() === ${JSON.stringify(expected)}`, undefined, { timeout: 10_000 });
  } catch (error) {
    assert.equal(await page.evaluate(FOLDED_LOG), expected, String(error));
  }
}

/** Open the menu of the message that says `text` and pick `testId` in it. */
async function fromMenu(page: Page, text: string, pick: string): Promise<void> {
  await page.locator('[data-testid="chat-log"] li[data-offset]', { hasText: text }).getByTestId('message-actions').click();
  await page.getByTestId('message-menu').locator(pick).click();
}

test('chat: an edit, a delete and a reaction show folded in the other tab, and after a reload', { skip, timeout: 90_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const room = testNamespace('fold');
  const alice = await enter(node!.url, 'alice', room, DESKTOP);
  const bob = await enter(node!.url, 'bob', room, PHONE);
  await alice.page.getByTestId('member-bob').waitFor({ timeout: 10_000 });
  assert.equal(await alice.page.getByTestId('member-count').textContent(), '2');
  for (const text of ['first draft', 'to be deleted', 'react to me']) await say(alice.page, text);
  await waitForLog(bob.page, 'first draft | to be deleted | react to me');

  // Alice edits and deletes her own messages from the menu; Bob reacts (phone), then Alice adds hers and takes it back.
  await fromMenu(alice.page, 'first draft', '[data-testid="edit-message"]');
  await alice.page.getByTestId('edit-bar').waitFor({ state: 'visible' });
  await alice.page.getByTestId('chat-input').fill('final text');
  await alice.page.getByTestId('chat-send').click();
  await fromMenu(alice.page, 'to be deleted', '[data-testid="delete-message"]');
  await fromMenu(bob.page, 'react to me', '[data-emoji="👍"]');
  await waitForLog(alice.page, 'final text (edited) | message deleted | react to me[👍 1]');
  const chip = alice.page.locator('li[data-offset]', { hasText: 'react to me' }).getByTestId('reaction');
  await chip.click();
  await waitForLog(bob.page, 'final text (edited) | message deleted | react to me[👍 2*]');
  await waitForLog(alice.page, 'final text (edited) | message deleted | react to me[👍 2*]');
  await alice.page.locator('li[data-offset]', { hasText: 'react to me' }).getByTestId('message-actions').click();
  await shot(alice.page, 'desktop-folded-menu');
  await alice.page.keyboard.press('Escape');
  await shot(bob.page, 'phone-folded');
  await chip.click();
  const folded = 'final text (edited) | message deleted | react to me[👍 1*]';
  await waitForLog(bob.page, folded);
  await waitForLog(alice.page, 'final text (edited) | message deleted | react to me[👍 1]');
  assert.equal(await alice.page.getByTestId('edit-message').count(), 0, 'the menu closed');

  // A reload joins afresh: the history replays the entries, and the SDK folds them again.
  for (const [demo, name] of [
    [bob, 'bob'],
    [alice, 'alice'],
  ] as const) {
    await demo.page.reload();
    await submitJoin(demo.page, { name, room });
    await demo.page.getByTestId('chat-input').waitFor({ state: 'visible', timeout: 15_000 });
  }
  await waitForLog(bob.page, folded);
  await waitForLog(alice.page, 'final text (edited) | message deleted | react to me[👍 1]');
  // Only Bob's own messages get Edit and Delete: Alice's offer reactions only.
  await bob.page.locator('li[data-offset]', { hasText: 'final text' }).getByTestId('message-actions').click();
  assert.equal(await bob.page.getByTestId('message-menu').getByTestId('edit-message').count(), 0);
  await shot(bob.page, 'phone-folded-reloaded');
  await shot(alice.page, 'desktop-folded-reloaded');
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('receipts: unread while scrolled up, read once the newest message is in view, "Seen by" at the writer', { skip, timeout: 60_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const room = testNamespace('read');
  const alice = await enter(node!.url, 'alice', room, DESKTOP);
  const bob = await enter(node!.url, 'bob', room, PHONE);
  await alice.page.evaluate(async (r) => {
    const client = (window as unknown as { nerveDemo: { client: { publish(room: string, data: unknown): Promise<unknown> } } }).nerveDemo.client;
    for (let i = 0; i < 30; i += 1) await client.publish(r, { text: `filler ${i}` });
  }, room);
  await bob.page.getByTestId('chat-log').getByText('filler 29').waitFor({ timeout: 10_000 });
  // Bob followed them down, so he read them: Alice's newest message says so.
  await alice.page.locator('li[data-offset]', { hasText: 'filler 29' }).getByTestId('seen').getByText('Seen by bob').waitFor({ timeout: 10_000 });

  // Bob scrolls up; what Alice writes now is unread, and the pill says how much.
  await bob.page.getByTestId('chat-log').evaluate((log) => (log.scrollTop = 0));
  await say(alice.page, 'unseen 1');
  await say(alice.page, 'unseen 2');
  await bob.page.getByTestId('unread').getByText('↓ 2 unread').waitFor({ timeout: 10_000 });
  assert.match(await bob.page.title(), /^\(2\) /);
  await shot(bob.page, 'phone-unread');
  // Fence: Bob's page marks read 300 ms after the last thing that moved (demo-reads.js), the last one here
  // Alice's read of her own messages reaching him. A timer of the same delay set after that fires after the
  // page's, and sends a read of what Bob had already read: requests of one connection run in order, so its
  // answer is his stored position after any read the page sent. Pushes carry stored positions only.
  const offsetOf = async (text: string) => Number(await alice.page.locator('li[data-offset]', { hasText: text }).getAttribute('data-offset'));
  const [read, unseen1, unseen2] = [await offsetOf('filler 29'), await offsetOf('unseen 1'), await offsetOf('unseen 2')];
  await bob.page.waitForFunction((at) => ((window as unknown as DemoWindow).nerveDemo.roomHandle.readPositions.get('alice') ?? 0) >= at, unseen2, {
    timeout: 10_000,
  });
  const stored = await bob.page.evaluate(
    (at) =>
      new Promise<number>((resolve, reject) =>
        setTimeout(() => (window as unknown as DemoWindow).nerveDemo.roomHandle.markRead(at).then(resolve, reject), 300),
      ),
    read,
  );
  assert.ok(stored < unseen1, `Bob's stored read position (${stored}) is before "unseen 1" (${unseen1})`);
  assert.equal(await alice.page.getByTestId('seen').count(), 0, 'not seen while Bob looks elsewhere');
  // The pill scrolls to the newest message, which marks the room read.
  await bob.page.getByTestId('unread').click();
  await bob.page.getByTestId('unread').waitFor({ state: 'hidden', timeout: 10_000 });
  await alice.page.locator('li[data-offset]', { hasText: 'unseen 2' }).getByTestId('seen').waitFor({ timeout: 10_000 });
  await shot(alice.page, 'desktop-seen');
  assert.equal(await bob.page.evaluate(() => (window as unknown as { nerveDemo: { roomHandle: { unread: number } } }).nerveDemo.roomHandle.unread), 0);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('large room: the member count, and how many more than the list shows', { skip, timeout: 60_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const large = await startNode({ args: ['--presence-list-max', '2', '--presence-count-interval-ms', '100'] });
  let page: DemoPage | undefined;
  try {
    const room = testNamespace('big');
    const alice = await enter(large.url, 'alice', room, PHONE);
    page = alice;
    // Three more members, from the page itself (the SDK bundle is there): the room goes over the list's size.
    await alice.page.evaluate(async (r) => {
      const { NerveClient } = (
        window as unknown as { Nerve: { NerveClient: new (o: object) => { connect(): Promise<unknown>; join(room: string): Promise<unknown> } } }
      ).Nerve;
      for (const user of ['m1', 'm2', 'm3']) {
        const extra = new NerveClient({ url: `ws://${location.host}/ws`, user });
        await extra.connect();
        await extra.join(r);
      }
    }, room);
    await alice.page.getByTestId('member-count').getByText('4', { exact: true }).waitFor({ timeout: 10_000 });
    const listed = await alice.page.locator('[data-testid="members"] li[data-testid^="member-"]').count();
    assert.ok(listed < 4, `a large room lists fewer than all (${listed})`);
    assert.equal(await alice.page.getByTestId('members-more').textContent(), `and ${4 - listed} more`);
    await shot(alice.page, 'phone-large-room');
    assert.deepEqual(alice.errors, []);
  } finally {
    // The page first: a node stopping with clients still on it drains them (slowly).
    await page?.context.close();
    await large.stop();
  }
});

test('call: rings, can be declined, connects; on a phone the panel is on screen; mute and camera show at the peer', { skip, timeout: 180_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const room = testNamespace('call');
  const alice = await enter(node!.url, 'alice', room, DESKTOP);
  const bob = await enter(node!.url, 'bob', room, PHONE);
  await bob.page.getByTestId('member-alice').waitFor({ timeout: 10_000 });

  // Bob (phone) calls; Alice's side rings and Bob's says so, not "connecting".
  await bob.page.getByTestId('call-alice').click();
  await alice.page.getByTestId('incoming-call').waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await bob.page.getByTestId('call-state').textContent(), 'ringing…');
  const ringing = await inViewport(bob.page, 'call-panel');
  assert.ok(ringing.inside, `the ringing call panel is on the phone's screen: ${ringing.box}`);
  await shot(bob.page, 'phone-ringing');
  await shot(alice.page, 'desktop-incoming');

  // Alice declines: Bob is told, and his panel goes away.
  await alice.page.getByTestId('decline-call').click();
  await bob.page.getByTestId('chat-log').getByText('alice declined the call.').waitFor({ timeout: 10_000 });
  await bob.page.getByTestId('call-panel').waitFor({ state: 'hidden', timeout: 10_000 });

  // Again; this time Alice accepts.
  await bob.page.getByTestId('call-alice').click();
  await alice.page.getByTestId('incoming-call').waitFor({ state: 'visible', timeout: 10_000 });
  await alice.page.getByTestId('accept-call').click();
  for (const demo of [alice, bob]) await waitForConnectedCall(demo.page);
  for (const demo of [alice, bob]) assert.equal(await demo.page.getByTestId('call-state').textContent(), 'connected');
  const phone = await inViewport(bob.page, 'call-panel');
  assert.ok(phone.inside, `the call panel is on the phone's screen: ${phone.box}`);
  const desktop = await inViewport(alice.page, 'call-panel');
  assert.ok(desktop.inside, `the call panel is on the desktop's screen: ${desktop.box}`);
  // Desktop: beside the chat, not under it.
  const chatBox = await alice.page.locator('.chat').boundingBox();
  const panelBox = await alice.page.getByTestId('call-panel').boundingBox();
  assert.ok(chatBox && panelBox && panelBox.x >= chatBox.x + chatBox.width, 'the call is to the right of the chat');
  // Each side's presence says so, for everyone in the room.
  await alice.page.getByTestId('status-bob').getByText('in a call').waitFor({ timeout: 10_000 });
  await bob.page.getByTestId('status-alice').getByText('in a call').waitFor({ timeout: 10_000 });
  await shot(bob.page, 'phone-call');
  await shot(alice.page, 'desktop-call');

  // Bob mutes: his microphone track stops, and Alice sees "muted".
  await bob.page.getByTestId('toggle-mic').click();
  await alice.page.getByTestId('remote-muted').waitFor({ state: 'visible', timeout: 10_000 });
  // The peer is told before replaceTrack(null) settles, so wait for the senders to match.
  const sendersBecome = async (expected: string[]) => {
    await bob.page.waitForFunction(
      (want) => {
        const now = (window as unknown as { nerveDemo: { pc: RTCPeerConnection } }).nerveDemo.pc
          .getSenders()
          .map((sender) => `${sender.track?.kind ?? 'none'}:${sender.track?.readyState ?? '-'}`)
          .sort();
        return JSON.stringify(now) === JSON.stringify(want);
      },
      expected,
      { timeout: 10_000 },
    );
  };
  await sendersBecome(['none:-', 'video:live']);
  assert.equal(await bob.page.getByTestId('toggle-mic').textContent(), 'Unmute');

  // Camera off, then on again: Alice sees it go and come back; a new live track sends.
  await bob.page.getByTestId('toggle-camera').click();
  await alice.page.getByTestId('remote-camera-off').waitFor({ state: 'visible', timeout: 10_000 });
  await sendersBecome(['none:-', 'none:-']);
  await shot(alice.page, 'desktop-peer-muted-camera-off');
  await shot(bob.page, 'phone-muted-camera-off');
  await bob.page.getByTestId('toggle-camera').click();
  await alice.page.getByTestId('remote-camera-off').waitFor({ state: 'hidden', timeout: 10_000 });
  await bob.page.waitForFunction(() =>
    (window as unknown as { nerveDemo: { pc: RTCPeerConnection } }).nerveDemo.pc
      .getSenders()
      .some((s) => s.track?.kind === 'video' && s.track.readyState === 'live'),
  );
  await bob.page.getByTestId('toggle-mic').click();
  await alice.page.getByTestId('remote-muted').waitFor({ state: 'hidden', timeout: 10_000 });

  await alice.page.getByTestId('hangup').click();
  await bob.page.getByTestId('call-panel').waitFor({ state: 'hidden', timeout: 10_000 });
  await bob.page.getByTestId('status-alice').waitFor({ state: 'detached', timeout: 10_000 });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('JWT auth: each refusal says what happened', { skip, timeout: 90_000 }, async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const token = (claims: Record<string, unknown>, expiresIn = 600) => hs256Token(SECRET, 'carol', { claims, expiresIn, issuedAgo: 600 });
  const room = testNamespace('team-');
  const demo = await openPage(browser!, jwtNode!.url, PHONE);
  contexts.push(demo.context);
  const error = demo.page.getByTestId('join-error');
  const refusal = async (fields: { name?: string; token?: string; joinToken?: string }, expected: RegExp) => {
    await submitJoin(demo.page, { room, ...fields });
    await demo.page.waitForFunction(
      (pattern) => new RegExp(pattern).test(document.querySelector('[data-testid="join-error"]')?.textContent ?? ''),
      expected.source,
      {
        timeout: 15_000,
      },
    );
    assert.doesNotMatch((await error.textContent()) ?? '', /name was refused/);
  };

  // A name alone, where the server wants a token.
  await refusal({ name: 'carol' }, /asks for a sign-in token.*\(auth_failed\)/);
  await shot(demo.page, 'phone-jwt-no-token');
  // An expired token.
  await refusal({ token: await token({}, -120) }, /refused your sign-in token.*\(auth_failed\)/);
  // A token whose grants do not cover the room.
  const elsewhere = await token({ rooms: [{ prefix: 'other-', rights: ['join', 'publish', 'presence'] }] });
  await refusal({ token: elsewhere }, /does not allow joining.*\(forbidden\)/);
  await shot(demo.page, 'phone-jwt-forbidden');
  // The same with a join token for another room.
  const joinToken = await token({ room: 'somewhere-else' });
  await refusal({ token: elsewhere, joinToken }, /join token for .* was refused.*\(forbidden\)/);

  // A token that grants the room gets in, as the token's user.
  await submitJoin(demo.page, { room, token: await token({ rooms: [{ prefix: 'team-', rights: ['join', 'publish', 'presence'] }] }) });
  await demo.page.getByTestId('chat-log').getByText(`You joined ${room} as carol.`).waitFor({ timeout: 15_000 });
  assert.deepEqual(demo.errors, []);
});
