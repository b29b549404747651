/**
 * Bad input and authorization found while testing faults (project issue 14),
 * on an in-process node with memory lanes:
 * - malformed request targets (`GET /%`, `GET //`) answer 400 with a body, never 500;
 * - the admin API is for operator keys: a tenant-limited key holding every scope gets 403;
 * - a member without the `presence` right gets no `member_joined` / `member_left`;
 * - chat `data` nested past the documented depth is `invalid_frame`, and
 *   every error a connection causes counts in its error window.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'input-guards-secret-'.padEnd(40, 'g');
const OPERATOR = 'operator-key-'.padEnd(32, 'o');
const TENANT_ALL_SCOPES = 'tenant-all-scopes-'.padEnd(32, 't');

function token(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

/** Send raw request bytes and resolve with the status code and body (the path is sent exactly as given). */
function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

describe('input guards', () => {
  let node: NerveNode;
  let port: number;
  let wsUrl: string;

  before(async () => {
    node = new NerveNode({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      demo: true,
      authSecret: SECRET,
      apiKey: OPERATOR,
      apiKeys: [
        {
          key: TENANT_ALL_SCOPES,
          scopes: ['publish', 'signal', 'rooms:end', 'presence:read', 'history:read', 'tokens:mint', 'turn:mint'],
          tenants: ['acme'],
        },
      ],
      limits: { maxErrorsPer10s: 5 },
    });
    port = (await node.start()).port;
    wsUrl = `ws://127.0.0.1:${port}/ws`;
  });
  after(() => node.stop());

  async function member(claims: Record<string, unknown>, room: string): Promise<RawClient> {
    const client = await RawClient.open(wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token(claims) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    return client;
  }

  it('answers malformed request targets with 400 and a JSON body', async () => {
    for (const target of ['/%', '/%zz', '/a%E0%A4%A', '/api/%', '/api/admin/%', '/admin%', '*']) {
      const answer = await rawGet(port, target);
      assert.equal(answer.status, 400, `GET ${target}: ${answer.status} ${answer.body}`);
      assert.equal((JSON.parse(answer.body) as { code: string }).code, 'invalid_path', target);
    }
    // Odd but well-formed targets name nothing: 404 (before, `//` was resolved as a URL with a host and answered 500).
    for (const target of ['//', '//[', '//healthz', '/..%2F..%2Fetc%2Fpasswd', '/%00']) {
      const answer = await rawGet(port, target);
      assert.equal(answer.status, 404, `GET ${target}: ${answer.status} ${answer.body}`);
      assert.equal((JSON.parse(answer.body) as { code: string }).code, 'not_found', target);
    }
    assert.equal((await rawGet(port, '/healthz')).status, 200);
  });

  it('refuses the admin API to a tenant-limited key, even with every scope', async () => {
    const limited = await fetch(`http://127.0.0.1:${port}/api/admin/cluster`, { headers: { authorization: `Bearer ${TENANT_ALL_SCOPES}` } });
    assert.equal(limited.status, 403);
    const body = (await limited.json()) as { code: string; message: string };
    assert.equal(body.code, 'forbidden');
    assert.match(body.message, /operator/);
    const operator = await fetch(`http://127.0.0.1:${port}/api/admin/cluster`, { headers: { authorization: `Bearer ${OPERATOR}` } });
    assert.equal(operator.status, 200);
    assert.ok(Array.isArray(((await operator.json()) as { nodes: unknown[] }).nodes));
  });

  it('sends member_joined and member_left only to members with the presence right', async () => {
    const room = 'presence-gated';
    const watcher = await member({ sub: 'watcher', rooms: [{ room, rights: ['join', 'publish', 'presence'] }] }, room);
    const blind = await member({ sub: 'blind', rooms: [{ room, rights: ['join', 'publish'] }] }, room);
    const comer = await member({ sub: 'comer' }, room);
    await watcher.waitFor((f) => f.op === 'member_joined' && f.user === 'comer', 5000, 'member_joined at the watcher');
    comer.close();
    await watcher.waitFor((f) => f.op === 'member_left' && f.user === 'comer', 5000, 'member_left at the watcher');
    // The blind member is still in the room and gets chat; a ping answered after the leave shows nothing is in flight.
    await blind.request({ op: 'ping' });
    assert.deepEqual(
      blind.frames.filter((f) => f.op === 'member_joined' || f.op === 'member_left'),
      [],
      'no presence pushes without the presence right',
    );
    assert.equal((await blind.request({ op: 'publish', room, class: 'chat', data: 'still here' })).op, 'ack');
    watcher.close();
    blind.close();
  });

  it('refuses data nested past the depth limit with invalid_frame, and counts it', async () => {
    const room = 'deep';
    const client = await member({ sub: 'nester' }, room);
    // 31 levels of data below the frame object: 32 in all, the limit, accepted.
    const atLimit = JSON.parse('['.repeat(31) + ']'.repeat(31)) as unknown;
    assert.equal((await client.request({ op: 'publish', room, class: 'chat', data: atLimit })).op, 'ack');
    const deep = `{"op":"publish","rid":"deep","room":"${room}","class":"chat","data":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    client.sendRaw(deep);
    const refused = await client.waitFor((f) => f.rid === 'deep', 5000, 'the answer to the deep frame');
    assert.equal(refused.code, 'invalid_frame', JSON.stringify(refused));
    // Brackets inside strings are not nesting.
    assert.equal((await client.request({ op: 'publish', room, class: 'chat', data: '['.repeat(5000) })).op, 'ack');
    // The server API refuses the same depth in a body (before, the encoder threw and it answered 500).
    const api = await fetch(`http://127.0.0.1:${port}/api/rooms/${room}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: `{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    });
    assert.equal(api.status, 400);
    assert.equal(((await api.json()) as { code: string }).code, 'invalid_body');
    // Deep frames keep counting in the error window (limit 5 here): the sixth error closes with 4008.
    for (let i = 0; i < 5; i += 1) client.sendRaw(deep.replace('"rid":"deep"', `"rid":"deep-${i}"`));
    assert.equal(await client.closed, 4008);
  });
});
