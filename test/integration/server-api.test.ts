/**
 * The server HTTP API (docs/api.md) on an in-process node: every endpoint
 * with a good key, a wrong key, and a key without the scope; room end
 * across two nodes on the memory bus is covered by the cluster-free case
 * (one node, members told and removed).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'api-test-secret-'.padEnd(40, 'x');
const ALL = 'all-scopes-key-'.padEnd(32, 'a');
const NONE = 'no-scope-key-'.padEnd(32, 'n');
const ACME = 'acme-only-key-'.padEnd(32, 'c');
const TURN_SECRET = 'coturn-secret';

describe('server API', () => {
  let node: NerveNode;
  let base: string;
  let wsUrl: string;
  let token: (user: string) => Promise<string>;

  before(async () => {
    node = new NerveNode({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      demo: false,
      authSecret: SECRET,
      apiKey: ALL,
      apiKeys: [
        { key: NONE, scopes: [] },
        { key: ACME, scopes: ['publish', 'presence:read', 'tokens:mint', 'turn:mint'], tenants: ['acme'] },
      ],
      turnSecret: TURN_SECRET,
      turnUrls: ['turn:127.0.0.1:3478'],
    });
    const address = await node.start();
    base = `http://127.0.0.1:${address.port}`;
    wsUrl = `ws://127.0.0.1:${address.port}/ws`;
    const { SignJWT } = await import('jose');
    token = (user) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
  });
  after(() => node.stop());

  async function call(method: string, path: string, key: string | null, body?: unknown, contentType = 'application/json') {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body === undefined ? {} : { 'content-type': contentType }) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function member(user: string, room: string): Promise<RawClient> {
    const client = await RawClient.open(wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token(user) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    return client;
  }

  const endpoints: Array<{ method: string; path: string; body?: unknown; scope: string }> = [
    { method: 'POST', path: '/api/rooms/api-room/messages', body: { data: { text: 'from backend' } }, scope: 'publish' },
    { method: 'POST', path: '/api/users/api-user/signal', body: { kind: 'custom', data: 1 }, scope: 'signal' },
    { method: 'POST', path: '/api/rooms/api-end/end', body: { reason: 'meeting over' }, scope: 'rooms:end' },
    { method: 'GET', path: '/api/rooms/api-room/presence', scope: 'presence:read' },
    { method: 'GET', path: '/api/rooms/api-room/history', scope: 'history:read' },
    { method: 'GET', path: '/api/rooms/api-room/messages', scope: 'history:read' },
    { method: 'GET', path: '/api/users/api-user/unread', scope: 'history:read' },
    { method: 'POST', path: '/api/tokens/join', body: { user: 'alice', room: 'api-room' }, scope: 'tokens:mint' },
    { method: 'POST', path: '/api/turn', body: { user: 'alice' }, scope: 'turn:mint' },
  ];
  for (const endpoint of endpoints) {
    it(`${endpoint.method} ${endpoint.path}: 401 without or with a wrong key, 403 without ${endpoint.scope}`, async () => {
      const missing = await call(endpoint.method, endpoint.path, null, endpoint.body);
      assert.equal(missing.status, 401);
      assert.equal(missing.body.code, 'unauthorized');
      const wrong = await call(endpoint.method, endpoint.path, 'w'.repeat(32), endpoint.body);
      assert.equal(wrong.status, 401);
      const unscoped = await call(endpoint.method, endpoint.path, NONE, endpoint.body);
      assert.equal(unscoped.status, 403);
      assert.equal(unscoped.body.code, 'forbidden');
      assert.match(String(unscoped.body.message), new RegExp(endpoint.scope));
    });
  }

  it('a key limited to a tenant acts for it (by default too) and gets 403 for any other', async () => {
    const published = await call('POST', '/api/rooms/acme-room/messages', ACME, { data: 1 });
    assert.equal(published.status, 200, JSON.stringify(published.body));
    const minted = await call('POST', '/api/tokens/join', ACME, { user: 'alice', room: 'acme-room' });
    assert.equal(minted.body.tenant, 'acme', "no tenant named: the key's only tenant");
    assert.equal((await call('POST', '/api/turn', ACME, { user: 'alice' })).status, 200, 'TURN for its own tenant');
    for (const [method, path, body] of [
      ['POST', '/api/rooms/acme-room/messages?tenant=default', { data: 1 }],
      ['POST', '/api/rooms/acme-room/messages', { data: 1, tenant: 'other' }],
      ['GET', '/api/rooms/acme-room/presence?tenant=other', undefined],
      ['POST', '/api/tokens/join', { user: 'alice', room: 'acme-room', tenant: 'other' }],
      ['POST', '/api/turn?tenant=other', { user: 'alice' }],
      ['POST', '/api/turn', { user: 'alice', tenant: 'other' }],
    ] as const) {
      const refused = await call(method, path, ACME, body);
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.code, 'forbidden');
      assert.match(String(refused.body.message), /tenant/);
    }
    // An operator key without tenants still reaches every tenant.
    assert.equal((await call('GET', '/api/rooms/acme-room/presence?tenant=other', ALL)).status, 200);
  });

  it('publishes into a room: members receive it, history has it', async () => {
    const bob = await member('bob', 'api-room');
    const published = await call('POST', '/api/rooms/api-room/messages', ALL, { data: { text: 'hello' }, from: 'bot', cmid: 'c-1' });
    assert.equal(published.status, 200, JSON.stringify(published.body));
    assert.equal(typeof published.body.offset, 'number');
    const message = await bob.waitFor((f) => f.op === 'message');
    assert.equal(message.from, 'bot');
    assert.deepEqual(message.data, { text: 'hello' });
    const history = await call('GET', '/api/rooms/api-room/history?limit=5', ALL);
    assert.equal(history.status, 200);
    assert.equal((history.body.messages as unknown[]).length, 1);
    const presence = await call('GET', '/api/rooms/api-room/presence', ALL);
    assert.deepEqual(
      (presence.body.members as Array<{ user: string }>).map((m) => m.user),
      ['bob'],
    );
    bob.close();
  });

  it('signals a user, and answers peer_offline for a user connected nowhere', async () => {
    const carol = await member('carol', 'carol-room');
    const sent = await call('POST', '/api/users/carol/signal', ALL, { kind: 'offer', data: { sdp: 'v=0' } });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.delivered, true);
    const signal = await carol.waitFor((f) => f.op === 'signal');
    assert.equal(signal.from, 'server');
    assert.equal(signal.kind, 'offer');
    const offline = await call('POST', '/api/users/nobody-anywhere/signal', ALL, { kind: 'offer', data: {} });
    assert.equal(offline.status, 404);
    assert.equal(offline.body.code, 'peer_offline');
    carol.close();
  });

  it('ends a room: members get room_ended and are out of it; lifecycle events go out', async () => {
    const dave = await member('dave', 'api-end');
    const erin = await member('erin', 'api-end');
    const ended = await call('POST', '/api/rooms/api-end/end', ALL, { reason: 'meeting over' });
    assert.equal(ended.status, 200);
    assert.equal(ended.body.nodes, 1);
    for (const client of [dave, erin]) {
      const frame = await client.waitFor((f) => f.op === 'room_ended');
      assert.equal(frame.reason, 'meeting over');
      assert.equal((await client.request({ op: 'publish', room: 'api-end', class: 'chat', data: 1 })).code, 'not_joined');
    }
    const presence = await call('GET', '/api/rooms/api-end/presence', ALL);
    assert.deepEqual(presence.body.members, []);
    dave.close();
    erin.close();
  });

  it('mints a join token the gateway accepts for that user and room only', async () => {
    const minted = await call('POST', '/api/tokens/join', ALL, { user: 'frank', room: 'vip', rights: ['join'] });
    assert.equal(minted.status, 200);
    const frank = await RawClient.open(wsUrl);
    await frank.request({ op: 'connect', v: 1, token: await token('frank') });
    assert.equal((await frank.request({ op: 'join', room: 'vip', token: minted.body.token })).op, 'joined');
    assert.equal((await frank.request({ op: 'publish', room: 'vip', class: 'chat', data: 1 })).op, 'ack', 'the connection token allows publish anyway');
    assert.equal((await frank.request({ op: 'join', room: 'other', token: minted.body.token })).code, 'forbidden');
    frank.close();
  });

  it('mints TURN credentials (coturn use-auth-secret)', async () => {
    const minted = await call('POST', '/api/turn', ALL, { user: 'alice', ttlSeconds: 600 });
    assert.equal(minted.status, 200);
    const username = String(minted.body.username);
    assert.match(username, /^\d+:alice$/);
    assert.equal(minted.body.credential, createHmac('sha1', TURN_SECRET).update(username).digest('base64'));
  });

  it('refuses bad bodies and paths with JSON errors', async () => {
    assert.equal((await call('POST', '/api/rooms/api-room/messages', ALL, '{"data":')).body.code, 'bad_json');
    assert.equal((await call('POST', '/api/rooms/api-room/messages', ALL, { nodata: 1 })).body.code, 'invalid_body');
    assert.equal((await call('POST', '/api/rooms/api-room/messages', ALL, { data: 1 }, 'text/plain')).status, 415);
    const big = await call('POST', '/api/rooms/api-room/messages', ALL, { data: 'x'.repeat(70 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(big.body.code, 'body_too_large');
    assert.equal((await call('GET', '/api/rooms/bad%3Aroom/presence', ALL)).body.code, 'invalid_room');
    assert.equal((await call('GET', '/api/rooms/r/presence?tenant=a%3Ab', ALL)).body.code, 'invalid_tenant');
    assert.equal((await call('DELETE', '/api/rooms/r/presence', ALL)).status, 405);
    assert.equal((await call('GET', '/api/nothing', ALL)).status, 404);
    assert.equal((await call('POST', '/api/tokens/join', ALL, { user: 'x', room: 'a b' })).body.code, 'invalid_body');
    const stored = await call('GET', '/api/rooms/api-room/messages', ALL);
    assert.equal(stored.status, 503, 'no PostgreSQL configured');
  });
});
