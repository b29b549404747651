/**
 * JWT authentication and authorization over real sockets (in-process node):
 * room grants (`forbidden`), tenant isolation, refresh over the open
 * connection, expiry without refresh (close 4010), per-user connection cap
 * (4011), TURN credentials in welcome, and the SDK refreshing on its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { NerveClient } from '../../packages/client/src/client.js';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';
import type { RefreshedFrame } from '../../packages/protocol/src/frames.js';

const SECRET = 'jwt-integration-secret-'.padEnd(40, 'z');

function token(claims: Record<string, unknown>, expiresInSeconds = 600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

describe('JWT auth on a node', () => {
  let node: NerveNode;
  let wsUrl: string;
  before(async () => {
    node = new NerveNode({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      demo: false,
      authSecret: SECRET,
      turnSecret: 'turn-secret',
      turnUrls: ['turn:127.0.0.1:3478?transport=udp'],
      limits: { maxConnectionsPerUser: 2 },
    });
    wsUrl = `ws://127.0.0.1:${(await node.start()).port}/ws`;
  });
  after(() => node.stop());

  async function connect(claims: Record<string, unknown>, expiresInSeconds?: number): Promise<RawClient> {
    const client = await RawClient.open(wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token(claims, expiresInSeconds) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    return client;
  }

  it('puts TURN REST credentials and expiresAt in the welcome', async () => {
    const client = await RawClient.open(wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token({ sub: 'turner' }) });
    const ice = welcome.iceServers as Array<{ urls: string[]; username: string; credential: string }>;
    assert.equal(ice.length, 1);
    assert.match(ice[0]!.username, /^\d+:turner$/);
    assert.equal(typeof welcome.expiresAt, 'number');
    client.close();
  });

  it('enforces room grants with forbidden', async () => {
    const client = await connect({
      sub: 'granted',
      rooms: [
        { prefix: 'team-', rights: ['join', 'presence'] },
        { room: 'news', rights: ['join', 'publish'] },
      ],
    });
    assert.equal((await client.request({ op: 'join', room: 'elsewhere' })).code, 'forbidden');
    const joined = await client.request({ op: 'join', room: 'team-a' });
    assert.equal(joined.op, 'joined');
    assert.equal((await client.request({ op: 'publish', room: 'team-a', class: 'chat', data: 1 })).code, 'forbidden');
    assert.equal((await client.request({ op: 'presence', room: 'team-a' })).op, 'presence');
    await client.request({ op: 'join', room: 'news' });
    assert.equal((await client.request({ op: 'publish', room: 'news', class: 'chat', data: 1 })).op, 'ack');
    assert.equal((await client.request({ op: 'presence', room: 'news' })).code, 'forbidden');
    assert.equal((await client.request({ op: 'signal', to: 'someone', kind: 'offer', data: {} })).code, 'forbidden');
    client.close();
  });

  it('allows room-scoped signals only to members of a room granting signal', async () => {
    const target = await connect({ sub: 'sig-target' });
    await target.request({ op: 'join', room: 'call-1' });
    const caller = await connect({ sub: 'sig-caller', rooms: [{ room: 'call-1', rights: ['join', 'signal'] }] });
    await caller.request({ op: 'join', room: 'call-1' });
    assert.equal((await caller.request({ op: 'signal', to: 'sig-target', kind: 'offer', data: {} })).op, 'ack');
    assert.equal((await caller.request({ op: 'signal', to: 'granted', kind: 'offer', data: {} })).code, 'forbidden');
    target.close();
    caller.close();
  });

  it('keeps tenants apart: same room and user names never meet', async () => {
    const a = await connect({ sub: 'same-user', tenant: 'tenant-a' });
    const b = await connect({ sub: 'other-user', tenant: 'tenant-b' });
    await a.request({ op: 'join', room: 'shared' });
    const joinedB = await b.request({ op: 'join', room: 'shared' });
    assert.deepEqual(
      (joinedB.members as Array<{ user: string }>).map((m) => m.user),
      ['other-user'],
    );
    await a.request({ op: 'publish', room: 'shared', class: 'chat', data: 'secret of a' });
    // B's own message arrives; A's never does (B sees exactly its own).
    await b.request({ op: 'publish', room: 'shared', class: 'chat', data: 'from b' });
    const seen = await b.waitFor((f) => f.op === 'message');
    assert.equal(seen.data, 'from b');
    assert.equal(
      b.frames.some((f) => f.op === 'message' || f.op === 'member_joined'),
      false,
    );
    // A signal across tenants reaches nobody.
    const signal = await a.request({ op: 'signal', to: 'other-user', kind: 'offer', data: {} });
    assert.equal(signal.code, 'peer_offline');
    a.close();
    b.close();
  });

  it('refreshes the token over the open connection; another user is forbidden', async () => {
    const client = await connect({ sub: 'refresher' }, 60);
    const refreshed = await client.request({ op: 'refresh', token: await token({ sub: 'refresher' }, 3600) });
    assert.equal(refreshed.op, 'refreshed');
    assert.ok((refreshed.expiresAt as number) > Date.now() + 3000 * 1000);
    assert.equal((await client.request({ op: 'refresh', token: await token({ sub: 'mallory' }) })).code, 'forbidden');
    assert.equal((await client.request({ op: 'refresh', token: 'garbage' })).code, 'refresh_failed');
    assert.equal((await client.request({ op: 'ping' })).op, 'pong');
    client.close();
  });

  it('closes a connection whose token expires without refresh with 4010', async () => {
    const client = await connect({ sub: 'expiring' }, 2);
    assert.equal(await client.waitClose(8000), 4010);
  });

  it('caps connections per user with too_many_connections and 4011', async () => {
    const first = await connect({ sub: 'capped' });
    const second = await connect({ sub: 'capped' });
    const third = await RawClient.open(wsUrl);
    const refused = await third.request({ op: 'connect', v: 1, token: await token({ sub: 'capped' }) });
    assert.equal(refused.code, 'too_many_connections');
    assert.equal(await third.waitClose(), 4011);
    first.close();
    await first.closed;
    // A slot freed: connecting works again.
    const again = await connect({ sub: 'capped' });
    again.close();
    second.close();
  });

  it('the SDK refreshes the token before it expires and the connection survives', async () => {
    let calls = 0;
    const client = new NerveClient({
      url: wsUrl,
      WebSocket: WebSocket,
      getToken: async () => {
        calls += 1;
        return token({ sub: 'sdk-user' }, calls === 1 ? 3 : 3600);
      },
      refreshLeadMs: 1500,
    });
    const disconnected: number[] = [];
    client.on('disconnected', (info) => disconnected.push(info.code));
    await client.connect();
    const refreshed = await new Promise<RefreshedFrame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no refreshed event within 8 s')), 8000);
      const off = client.on('refreshed', (frame) => {
        clearTimeout(timer);
        off();
        resolve(frame);
      });
    });
    assert.ok((refreshed.expiresAt ?? 0) > Date.now() + 60_000);
    assert.equal(calls, 2);
    await client.join('after-refresh');
    assert.deepEqual(disconnected, []);
    await client.close();
  });
});
