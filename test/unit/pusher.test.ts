/**
 * The pure parts of the Pusher side (src/pusher): signatures checked
 * against what the official `pusher` library produces, channel rules, and
 * the translation of nerve frames for Pusher subscribers (docs/pusher.md).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import PusherServer from 'pusher';
import { normalizePusherApps } from '../../src/pusher/apps.js';
import { channelKind, isCacheChannel, isValidChannelName } from '../../src/pusher/protocol.js';
import { channelAuthValid, signinValid, verifyRequest } from '../../src/pusher/signature.js';
import { pusherFrameOf } from '../../src/pusher/translate.js';

const require = createRequire(import.meta.url);
// The library's own request signing, as its HTTP client uses it (no typings for its internals).
const { createSignedQueryString } = require('pusher/lib/requests') as {
  createSignedQueryString(token: unknown, request: { method: string; path: string; params?: Record<string, string>; body?: string }): string;
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
    assert.equal(verifyRequest(app, 'GET', '/apps/42/channels', signed('GET', '/apps/42/channels', { filter_by_prefix: 'presence-', info: 'user_count' }), Buffer.alloc(0), now), undefined);
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
    assert.match(verifyRequest(app, 'POST', '/apps/42/events', signed('POST', '/apps/42/events', undefined, body), Buffer.from(`${body} `), now)?.message ?? '', /body_md5/);
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
    const event = JSON.stringify({ op: 'message', class: 'ephemeral', room: 'presence-r', id: 'i', from: 'alice', ts: 1, data: { event: 'client-typing', data: { on: true } } });
    assert.deepEqual(JSON.parse(pusherFrameOf('presence-r', 'presence', 'ephemeral', event) ?? ''), { event: 'client-typing', channel: 'presence-r', data: { on: true }, user_id: 'alice' });
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
});
