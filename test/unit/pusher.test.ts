/**
 * The pure parts of the Pusher side (src/pusher): signatures checked
 * against what the official `pusher` library produces, channel rules, and
 * the translation of nerve frames for Pusher subscribers (docs/pusher.md).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import PusherServer from 'pusher';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { normalizePusherApps, type PusherApp } from '../../src/config/pusher-apps.js';
import { handlePusherHttp, type PusherHttpDeps } from '../../src/pusher/http-api.js';
import { channelKind, isCacheChannel, isValidChannelName } from '../../src/pusher/protocol.js';
import { channelAuthValid, signinValid, verifyRequest } from '../../src/pusher/signature.js';
import { pusherFrameOf } from '../../src/pusher/translate.js';

const require = createRequire(import.meta.url);
// The library's own request signing, as its HTTP client uses it (no typings for its internals).
const { createSignedQueryString } = require('pusher/lib/requests') as {
  createSignedQueryString: (token: unknown, request: { method: string; path: string; params?: Record<string, string>; body?: string }) => string;
};
const Token = require('pusher/lib/token') as new (key: string, secret: string) => unknown;

const [app] = normalizePusherApps([{ id: '42', key: 'unit-key', secret: 'unit-secret-0123456789' }]);
if (!app) throw new Error('no app');
const token = new Token(app.key, app.secret);
const library = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });

function signed(method: string, path: string, params?: Record<string, string>, body?: string): URLSearchParams {
  return new URLSearchParams(createSignedQueryString(token, { method, path, ...(params ? { params } : {}), ...(body ? { body } : {}) }));
}

describe('Pusher request signing', () => {
  it('accepts what the official library signs, GET and POST', () => {
    const now = Date.now();
    assert.equal(
      verifyRequest(
        app,
        'GET',
        '/apps/42/channels',
        signed('GET', '/apps/42/channels', { filter_by_prefix: 'presence-', info: 'user_count' }),
        Buffer.alloc(0),
        now,
      ),
      undefined,
    );
    const body = JSON.stringify({ name: 'e', data: '{}', channels: ['a'] });
    assert.equal(verifyRequest(app, 'POST', '/apps/42/events', signed('POST', '/apps/42/events', undefined, body), Buffer.from(body), now), undefined);
  });

  it('refuses a changed parameter, another method or path, a changed body, a stale timestamp, another key', () => {
    const now = Date.now();
    const query = signed('GET', '/apps/42/channels', { info: 'user_count' });
    const changed = new URLSearchParams(query);
    changed.set('info', 'subscription_count');
    assert.match(verifyRequest(app, 'GET', '/apps/42/channels', changed, Buffer.alloc(0), now)?.message ?? '', /Invalid signature/);
    assert.match(verifyRequest(app, 'POST', '/apps/42/channels', query, Buffer.alloc(0), now)?.message ?? '', /Invalid signature/);
    assert.match(verifyRequest(app, 'GET', '/apps/42/channels/x', query, Buffer.alloc(0), now)?.message ?? '', /Invalid signature/);
    const body = '{"name":"e","data":"{}","channel":"a"}';
    assert.match(
      verifyRequest(app, 'POST', '/apps/42/events', signed('POST', '/apps/42/events', undefined, body), Buffer.from(`${body} `), now)?.message ?? '',
      /body_md5/,
    );
    assert.match(verifyRequest(app, 'GET', '/apps/42/channels', query, Buffer.alloc(0), now + 601_000)?.message ?? '', /Timestamp expired/);
    const otherKey = new URLSearchParams(query);
    otherKey.set('auth_key', 'someone-else');
    assert.match(verifyRequest(app, 'GET', '/apps/42/channels', otherKey, Buffer.alloc(0), now)?.message ?? '', /Unknown auth_key/);
  });

  it('checks channel auth and sign-in as the library makes them', () => {
    const socketId = '123.456';
    const privateAuth = library.authorizeChannel(socketId, 'private-room');
    assert.ok(channelAuthValid(app, privateAuth.auth, socketId, 'private-room', undefined));
    assert.ok(!channelAuthValid(app, privateAuth.auth, '123.457', 'private-room', undefined));
    const presenceAuth = library.authorizeChannel(socketId, 'presence-room', { user_id: 'u1', user_info: { name: 'U' } });
    assert.ok(channelAuthValid(app, presenceAuth.auth, socketId, 'presence-room', presenceAuth.channel_data));
    assert.ok(!channelAuthValid(app, presenceAuth.auth, socketId, 'presence-room', JSON.stringify({ user_id: 'u2' })));
    const user = library.authenticateUser(socketId, { id: 'u1' });
    assert.ok(signinValid(app, user.auth, socketId, user.user_data));
    assert.ok(!signinValid(app, user.auth, socketId, JSON.stringify({ id: 'admin' })));
  });
});

describe('Pusher channels', () => {
  it('knows channel kinds, cache channels and the name rule', () => {
    assert.equal(channelKind('news'), 'public');
    assert.equal(channelKind('private-a'), 'private');
    assert.equal(channelKind('private-encrypted-a'), 'encrypted');
    assert.equal(channelKind('presence-a'), 'presence');
    for (const name of ['cache-a', 'private-cache-a', 'private-encrypted-cache-a', 'presence-cache-a']) assert.ok(isCacheChannel(name), name);
    assert.ok(!isCacheChannel('news-cache-a'));
    assert.ok(isValidChannelName('a-b_c=d@e,f.g;h'));
    assert.ok(!isValidChannelName('a b'));
    assert.ok(!isValidChannelName('x'.repeat(165)));
  });

  it('translates nerve frames for Pusher subscribers', () => {
    const event = JSON.stringify({
      op: 'message',
      class: 'ephemeral',
      room: 'presence-r',
      id: 'i',
      from: 'alice',
      ts: 1,
      data: { event: 'client-typing', data: { on: true } },
    });
    assert.deepEqual(JSON.parse(pusherFrameOf('presence-r', 'presence', 'ephemeral', event) ?? ''), {
      event: 'client-typing',
      channel: 'presence-r',
      data: { on: true },
      user_id: 'alice',
    });
    const plain = JSON.stringify({ op: 'message', class: 'ephemeral', room: 'r', id: 'i', from: 'bob', ts: 2, data: [1, 2] });
    const wrapped = JSON.parse(pusherFrameOf('r', 'public', 'ephemeral', plain) ?? '') as { event: string; data: string };
    assert.equal(wrapped.event, 'nerve-message');
    assert.deepEqual(JSON.parse(wrapped.data), { from: 'bob', id: 'i', ts: 2, data: [1, 2] });
    const joined = JSON.stringify({ op: 'member_joined', room: 'presence-r', user: 'carol', ts: 3, info: '{"name":"C"}' });
    assert.deepEqual(JSON.parse(pusherFrameOf('presence-r', 'presence', 'presence', joined) ?? ''), {
      event: 'pusher_internal:member_added',
      channel: 'presence-r',
      data: JSON.stringify({ user_id: 'carol', user_info: { name: 'C' } }),
    });
    assert.equal(pusherFrameOf('r', 'public', 'presence', joined), undefined, 'member events only on presence channels');
    assert.equal(pusherFrameOf('r', 'public', 'ephemeral', 'not json'), undefined);
  });

  it('gives edit, delete and react entries their own event names, not nerve-chat', () => {
    const base = { op: 'message', class: 'chat', room: 'r', from: 'alice', ts: 5, epoch: 'e1' };
    const chat = JSON.parse(pusherFrameOf('r', 'public', 'chat', JSON.stringify({ ...base, id: 'm', offset: 1, data: { text: 'hi' } })) ?? '') as {
      event: string;
    };
    assert.equal(chat.event, 'nerve-chat');
    const target = { id: 'm', offset: 1 };
    const entries = [
      { action: 'edit', data: { text: 'hello' } },
      { action: 'delete', data: null },
      { action: 'react', data: { emoji: '👍', on: true } },
    ];
    for (const [at, { action, data }] of entries.entries()) {
      const entry = JSON.stringify({ ...base, id: `e${at}`, offset: 2 + at, data, action, target });
      const frame = JSON.parse(pusherFrameOf('r', 'public', 'chat', entry) ?? '') as { event: string; channel: string; data: string };
      assert.equal(frame.event, `nerve-chat-${action}`);
      assert.equal(frame.channel, 'r');
      assert.deepEqual(JSON.parse(frame.data), { from: 'alice', id: `e${at}`, ts: 5, offset: 2 + at, epoch: 'e1', data, target });
    }
  });
});

/** A promise and its resolver, for calls that must all be in flight before any finishes. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Rejects after `ms`, so a call that waits for a sibling that never comes fails instead of hanging. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not in flight together within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** handlePusherHttp on a loopback server with stand-in lanes (the request is signed by the official library). */
async function withApi(
  deps: Pick<PusherHttpDeps, 'pusher' | 'presence' | 'store'>,
  run: (api: PusherServer, errors: string[]) => Promise<void>,
): Promise<void> {
  const errors: string[] = [];
  const full: PusherHttpDeps = { ...deps, apps: [app as PusherApp], onError: (code) => errors.push(code) };
  const server = createServer((request, response) => void handlePusherHttp(full, request, response, new URL(request.url ?? '/', 'http://localhost')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const api = new PusherServer({
      appId: app!.id,
      key: app!.key,
      secret: app!.secret,
      host: '127.0.0.1',
      port: String((server.address() as AddressInfo).port),
      useTLS: false,
    });
    await run(api, errors);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('Pusher HTTP API fan-out', () => {
  it('publishes an event to its channels at once and asks presence for every channel at once', async () => {
    const published = gate();
    const asked = gate();
    const channels = ['presence-a', 'presence-b', 'presence-c'];
    const publishing = new Set<string>();
    const asking = new Set<string>();
    const pusher = {
      // Each publish waits until all three are in flight: run one after another, the first would time out.
      publish: async (_app: PusherApp, channel: string) => {
        publishing.add(channel);
        if (publishing.size === channels.length) published.open();
        await within(published.opened, 2000, 'publishes');
      },
    } as unknown as PusherHttpDeps['pusher'];
    const presence = {
      members: async ({ room }: { room: string }) => {
        asking.add(room);
        if (asking.size === channels.length) asked.open();
        await within(asked.opened, 2000, 'presence look-ups');
        return [{ user: `${room}-u1` }, { user: `${room}-u2` }];
      },
    } as unknown as PusherHttpDeps['presence'];
    const store = { counts: async () => new Map([['presence-b', 3]]) } as unknown as PusherHttpDeps['store'];
    await withApi({ pusher, presence, store }, async (api, errors) => {
      const response = await api.trigger(channels, 'e', 'd', { info: 'user_count,subscription_count' });
      assert.deepEqual(await response.json(), {
        channels: {
          'presence-a': { user_count: 2, subscription_count: 0 },
          'presence-b': { user_count: 2, subscription_count: 3 },
          'presence-c': { user_count: 2, subscription_count: 0 },
        },
      });
      assert.deepEqual(errors, []);
    });
  });

  it('answers with the first failing channel in the request order, whichever failed first; the other channels are still published', async () => {
    const tried: string[] = [];
    const pusher = {
      publish: async (_app: PusherApp, channel: string) => {
        tried.push(channel);
        // 'a' fails last (after 'b' failed), 'b' at once, 'c' succeeds.
        if (channel === 'b') throw new NerveError(ErrorCode.BusUnavailable, 'bus down');
        if (channel === 'a') {
          await new Promise<void>((resolve) => setImmediate(resolve));
          throw new NerveError(ErrorCode.RateLimited, 'too many');
        }
      },
    } as unknown as PusherHttpDeps['pusher'];
    await withApi({ pusher, presence: {} as PusherHttpDeps['presence'], store: {} as PusherHttpDeps['store'] }, async (api, errors) => {
      await assert.rejects(
        api.trigger(['a', 'b', 'c'], 'e', 'd'),
        (error: { status: number; body: string }) => error.status === 429 && /Too many messages/.test(error.body),
      );
      assert.deepEqual(tried.sort(), ['a', 'b', 'c']);
      assert.deepEqual(errors, ['pusher_http_429']);
    });
  });
});
