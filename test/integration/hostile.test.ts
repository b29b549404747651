/**
 * Hostile input against real node processes. Each case checks its
 * documented outcome (docs/protocol.md, docs/api.md), and after every case
 * a well-behaved client's chat still flows and the node is still up.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SignJWT, exportJWK, importPKCS8 } from 'jose';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';

const ORIGIN = 'https://app.example';
const API_KEY = 'hostile-api-key-'.padEnd(32, 'k');

/** A raw upgrade request: status and JSON body of a refusal (101 when accepted). */
function upgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url.replace('ws:', 'http:'), {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode ?? 0, body: {} });
    });
    req.on('response', (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(node: NodeProcess, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function closedWithin(socket: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

describe('hostile input (dev auth node, deflate on)', () => {
  let node: NodeProcess;
  let good: RawClient;
  let goodPeer: RawClient;
  let sent = 0;
  before(async () => {
    node = await startNode({
      // Flags and their values in pairs.
      // prettier-ignore
      args: [
        '--per-message-deflate', '--headers-timeout-ms', '1000', '--max-connections-per-user', '2',
        '--send-buffer-soft-bytes', '16384', '--send-buffer-hard-bytes', '65536',
        '--allowed-origins', ORIGIN, '--allow-missing-origin', '--rate-burst', '60', '--api-key', API_KEY,
      ],
    });
    good = await RawClient.connect(node.wsUrl, 'good');
    goodPeer = await RawClient.connect(node.wsUrl, 'good-peer');
    await good.request({ op: 'join', room: 'good-room' });
    await goodPeer.request({ op: 'join', room: 'good-room' });
  });
  afterEach(async () => {
    // The well-behaved pair keeps chatting, and the node is up.
    sent += 1;
    const ack = await good.request({ op: 'publish', room: 'good-room', class: 'chat', data: { n: sent } });
    assert.equal(ack.op, 'ack');
    await goodPeer.waitFor((f) => f.op === 'message' && (f.data as { n: number }).n === sent);
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200);
  });
  after(async () => {
    good.close();
    goodPeer.close();
    await node.stop();
  });

  it('malformed JSON and wrong types get bad_json / invalid_frame', async () => {
    const client = await RawClient.connect(node.wsUrl, 'h-json');
    client.sendRaw('{"op":');
    assert.equal((await client.waitFor((f) => f.op === 'error')).code, 'bad_json');
    assert.equal((await client.request({ op: 'publish', room: ['x'], class: 7, data: 1 })).code, 'invalid_frame');
    assert.equal((await client.request({ op: 'join', room: 'r', since: 'yesterday' })).code, 'invalid_frame');
    client.close();
  });

  it('an oversize frame closes with 1009', async () => {
    const client = await RawClient.connect(node.wsUrl, 'h-big');
    client.send({ op: 'ping', rid: 1, pad: 'x'.repeat(70 * 1024) });
    assert.equal(await client.waitClose(), 1009);
  });

  it('a 50 MiB deflate bomb closes with 1009 and memory stays bounded', async () => {
    const before = await metric(node, 'nerve_process_process_resident_memory_bytes');
    const client = await RawClient.open(node.wsUrl, { perMessageDeflate: { threshold: 0 } });
    assert.ok(client.socket.extensions.includes('permessage-deflate'), 'deflate negotiated');
    assert.equal((await client.request({ op: 'connect', v: 1, user: 'h-bomb' })).op, 'welcome');
    client.sendRaw(' '.repeat(50 * 1024 * 1024));
    assert.equal(await client.waitClose(15_000), 1009);
    const rss = await metric(node, 'nerve_process_process_resident_memory_bytes');
    assert.ok(before > 0 && rss > 0);
    assert.ok(rss - before < 32 * 1024 * 1024, `RSS grew by ${rss - before} bytes`);
  });

  it('invalid UTF-8 closes with 1007', async () => {
    const client = await RawClient.connect(node.wsUrl, 'h-utf8');
    client.sendRaw(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x7d]));
    assert.equal(await client.waitClose(), 1007);
  });

  it('a flood of tiny fragments closes with 1008 (more than 1024 fragments in one message)', async () => {
    const client = await RawClient.open(node.wsUrl, { perMessageDeflate: false });
    await client.request({ op: 'connect', v: 1, user: 'h-frag' });
    for (let i = 0; i < 20_000; i++) client.socket.send('x', { fin: false });
    client.socket.send('x', { fin: true });
    assert.equal(await client.waitClose(15_000), 1008);
  });

  it('never lets a client spoof sender, id, offset or time (property)', async () => {
    const sender = await RawClient.connect(node.wsUrl, 'h-spoof');
    const peer = await RawClient.connect(node.wsUrl, 'h-spoof-peer');
    await sender.request({ op: 'join', room: 'spoof' });
    await peer.request({ op: 'join', room: 'spoof' });
    let offset = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({ from: fc.jsonValue(), id: fc.jsonValue(), offset: fc.jsonValue(), epoch: fc.jsonValue(), ts: fc.jsonValue(), fromConn: fc.jsonValue() }),
        fc.jsonValue({ maxDepth: 3 }),
        async (spoofed, data) => {
          const ack = await sender.request({ op: 'publish', room: 'spoof', class: 'chat', ...spoofed, data });
          assert.equal(ack.op, 'ack', JSON.stringify(ack));
          const message = await peer.waitFor((f) => f.op === 'message' && f.id === ack.id);
          assert.equal(message.from, 'h-spoof');
          assert.equal(message.offset, ++offset);
          assert.notEqual(message.epoch, spoofed.epoch);
          assert.equal(typeof message.ts, 'number');
        },
      ),
      { numRuns: 30 },
    );
    sender.close();
    peer.close();
  });

  it('refuses hostile room names: invalid_room, or invalid_frame beyond 512 characters', async () => {
    const client = await RawClient.connect(node.wsUrl, 'h-rooms');
    for (const room of ['a*b', 'a?b', 'a[b]', 'a\\b', 'a:b', 'a\rb', 'a\nb', '', 'r'.repeat(129)]) {
      assert.equal((await client.request({ op: 'join', room })).code, 'invalid_room', JSON.stringify(room));
    }
    assert.equal((await client.request({ op: 'join', room: 'r'.repeat(10_000) })).code, 'invalid_frame');
    client.close();
  });

  it('checks Origin: listed passes, others get 403 with a JSON body', async () => {
    const bad = await upgrade(node.wsUrl, { Origin: 'https://evil.example' });
    assert.equal(bad.status, 403);
    assert.equal(bad.body.code, 'origin_not_allowed');
    assert.equal((await upgrade(node.wsUrl, { Origin: 'not a url' })).status, 403);
    assert.equal((await upgrade(node.wsUrl, { Origin: ORIGIN })).status, 101);
    assert.equal((await upgrade(node.wsUrl, {})).status, 101, '--allow-missing-origin');
  });

  it('cuts slowloris sockets: silent, and trickling headers', async () => {
    const silent = tcpConnect(node.port, '127.0.0.1');
    silent.on('error', () => {});
    const trickle = tcpConnect(node.port, '127.0.0.1');
    trickle.on('error', () => {});
    trickle.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => trickle.writable && trickle.write('X-A: b\r\n'), 100);
    try {
      assert.equal(await closedWithin(silent, 5000), true);
      assert.equal(await closedWithin(trickle, 5000), true);
    } finally {
      clearInterval(drip);
    }
  });

  it('caps connections per user (4011)', async () => {
    const a = await RawClient.connect(node.wsUrl, 'h-capped');
    const b = await RawClient.connect(node.wsUrl, 'h-capped');
    const c = await RawClient.open(node.wsUrl);
    assert.equal((await c.request({ op: 'connect', v: 1, user: 'h-capped' })).code, 'too_many_connections');
    assert.equal(await c.waitClose(), 4011);
    a.close();
    b.close();
  });

  it('rate limits a flooding connection (rate_limited with retryAfterMs)', async () => {
    const client = await RawClient.connect(node.wsUrl, 'h-flood');
    for (let i = 0; i < 100; i++) client.send({ op: 'ping', rid: i + 1000 });
    const limited = await client.waitFor((f) => f.op === 'error' && f.code === 'rate_limited');
    assert.ok((limited.retryAfterMs as number) > 0);
    client.close();
  });

  it('closes a slow consumer (stopped reading) with 4009; ephemeral drops first', async () => {
    // No compression, so the flood's bytes really pile up in the socket.
    const slow = await RawClient.open(node.wsUrl, { perMessageDeflate: false });
    await slow.request({ op: 'connect', v: 1, user: 'h-slow' });
    await slow.request({ op: 'join', room: 'slow-room' });
    (slow.socket as unknown as { _socket: Socket })._socket.pause();
    const closesBefore = await metric(node, 'nerve_closes_total', 'code="4009"');
    const dropsBefore = await metric(node, 'nerve_drops_total', 'reason="backpressure"');
    // Published through the server API, so no other socket has to read the flood.
    const post = (body: unknown) =>
      fetch(`${node.url}/api/rooms/slow-room/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((response) => response.status);
    const payload = 'p'.repeat(50_000);
    // Ephemeral first: over the soft limit they are dropped, and the socket stays.
    await waitFor(
      async () => {
        assert.equal(await post({ class: 'ephemeral', data: payload }), 200);
        return (await metric(node, 'nerve_drops_total', 'reason="backpressure"')) > dropsBefore;
      },
      { timeoutMs: 30_000, intervalMs: 1, what: 'an ephemeral drop' },
    );
    assert.equal(await metric(node, 'nerve_closes_total', 'code="4009"'), closesBefore);
    // Chat is never dropped: over the hard limit the socket is closed with 4009.
    await waitFor(
      async () => {
        assert.equal(await post({ class: 'chat', data: payload }), 200);
        return (await metric(node, 'nerve_closes_total', 'code="4009"')) > closesBefore;
      },
      { timeoutMs: 30_000, intervalMs: 1, what: 'a 4009 close' },
    );
    slow.socket.terminate();
  });
});

describe('hostile input (caps and origin node)', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNode({ args: ['--max-connections-per-ip', '3', '--room-rate-per-second', '5', '--room-rate-burst', '10', '--allowed-origins', ORIGIN] });
  });
  after(() => node.stop());

  it('refuses a missing Origin when an allowlist is set and missing is not allowed', async () => {
    const missing = await upgrade(node.wsUrl, {});
    assert.equal(missing.status, 403);
    assert.equal(missing.body.code, 'origin_not_allowed');
  });

  it('caps connections per IP (429) and publishes per room (rate_limited)', async () => {
    const clients: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await RawClient.open(node.wsUrl, { origin: ORIGIN });
      await client.request({ op: 'connect', v: 1, user: `ip${i}` });
      await client.request({ op: 'join', room: 'hot-room' });
      clients.push(client);
    }
    const fourth = await upgrade(node.wsUrl, { Origin: ORIGIN });
    assert.equal(fourth.status, 429);
    assert.equal(fourth.body.code, 'too_many_connections');
    const answers = await Promise.all(
      clients.flatMap((client) => Array.from({ length: 5 }, () => client.request({ op: 'publish', room: 'hot-room', class: 'chat', data: 1 }))),
    );
    const limited = answers.filter((f) => f.code === 'rate_limited');
    assert.ok(limited.length >= 5, `room burst is 10 of 15: ${limited.length} limited`);
    assert.ok(limited.every((f) => (f.retryAfterMs as number) > 0));
    assert.ok(answers.filter((f) => f.op === 'ack').length >= 1);
    for (const client of clients) client.close();
    await Promise.all(clients.map((client) => client.closed));
    // Slots free again once the sockets are gone.
    await waitFor(async () => (await upgrade(node.wsUrl, { Origin: ORIGIN })).status === 101, { what: 'a free slot' });
  });
});

describe('hostile input (behind a trusted proxy)', () => {
  let node: NodeProcess;
  before(async () => {
    // The test client is the "load balancer": its X-Forwarded-For names the clients.
    node = await startNode({ args: ['--max-connections-per-ip', '1', '--trusted-proxies', '127.0.0.1,::1'] });
  });
  after(() => node.stop());

  const from = (forwardedFor: string) => RawClient.open(node.wsUrl, { headers: { 'X-Forwarded-For': forwardedFor } });

  it('caps per client address from X-Forwarded-For, and never believes what a client wrote left of the proxy', async () => {
    const first = await from('203.0.113.5');
    // Another client behind the same proxy has its own slot.
    const second = await from('198.51.100.7, 127.0.0.1');
    // The same client again, with a forged address prepended: the proxy's entry (rightmost) counts.
    const forged = await upgrade(node.wsUrl, { 'X-Forwarded-For': '192.0.2.99, 203.0.113.5' });
    assert.equal(forged.status, 429);
    assert.equal(forged.body.code, 'too_many_connections');
    assert.equal((await upgrade(node.wsUrl, { 'X-Forwarded-For': '198.51.100.7' })).status, 429);
    // Without the header the peer itself (the proxy) is the client, with a slot of its own.
    assert.equal((await upgrade(node.wsUrl, {})).status, 101);
    for (const client of [first, second]) client.close();
    await Promise.all([first.closed, second.closed]);
    await waitFor(async () => (await upgrade(node.wsUrl, { 'X-Forwarded-For': '203.0.113.5' })).status === 101, { what: 'the slot freed' });
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const plain = await startNode({ args: ['--max-connections-per-ip', '1'] });
    try {
      const first = await RawClient.open(plain.wsUrl, { headers: { 'X-Forwarded-For': '203.0.113.5' } });
      assert.equal((await upgrade(plain.wsUrl, { 'X-Forwarded-For': '198.51.100.7' })).status, 429, 'a forged header does not buy a new slot');
      first.close();
      await first.closed;
    } finally {
      await plain.stop();
    }
  });
});

describe('hostile input (JWT node with a JWKS)', () => {
  let node: NodeProcess;
  let jwks: Server;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let key: CryptoKey;
  const good = { sub: 'jwt-user', aud: 'nerve', iss: 'https://issuer.test' };
  const sign = (claims: Record<string, unknown>, kid = 'k1', expiresIn = 600) =>
    new SignJWT({ exp: Math.floor(Date.now() / 1000) + expiresIn, ...claims }).setProtectedHeader({ alg: 'RS256', kid }).sign(key);

  before(async () => {
    key = await importPKCS8(String(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })), 'RS256');
    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
    node = await startNode({
      args: ['--auth-jwks-url', jwksUrl, '--auth-algorithms', 'RS256', '--auth-audience', 'nerve', '--auth-issuer', 'https://issuer.test'],
    });
  });
  after(async () => {
    await node.stop();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  });

  async function refused(token: string): Promise<void> {
    const client = await RawClient.open(node.wsUrl);
    const answer = await client.request({ op: 'connect', v: 1, token });
    assert.equal(answer.code, 'auth_failed', JSON.stringify(answer));
    assert.equal(await client.waitClose(), 4001);
  }

  it('refuses the JWT matrix with auth_failed and 4001', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    await refused(`${b64({ alg: 'none' })}.${b64({ ...good, exp: now + 60 })}.`);
    const publicPem = String(rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    await refused(await new SignJWT({ ...good, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new TextEncoder().encode(publicPem)));
    await refused(await sign({ ...good, exp: now - 60 }));
    await refused(await sign({ ...good, nbf: now + 600 }));
    await refused(await sign({ ...good, aud: 'someone-else' }));
    await refused(await sign({ ...good, iss: 'https://evil.test' }));
    await refused(await sign(good, 'unknown-kid'));
    const ok = await RawClient.open(node.wsUrl);
    assert.equal((await ok.request({ op: 'connect', v: 1, token: await sign(good) })).op, 'welcome');
    ok.close();
  });

  it('closes on expiry mid-session with 4010', async () => {
    const client = await RawClient.open(node.wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, token: await sign({ ...good, sub: 'short-lived' }, 'k1', 2) });
    assert.equal(welcome.op, 'welcome');
    assert.equal(await client.waitClose(8000), 4010);
  });

  it("never lets a tenant reach another tenant's room or user", async () => {
    const a = await RawClient.open(node.wsUrl);
    await a.request({ op: 'connect', v: 1, token: await sign({ ...good, sub: 'ta-user', tenant: 'ta' }) });
    const b = await RawClient.open(node.wsUrl);
    await b.request({ op: 'connect', v: 1, token: await sign({ ...good, sub: 'tb-user', tenant: 'tb' }) });
    await b.request({ op: 'join', room: 'shared' });
    const joined = await a.request({ op: 'join', room: 'shared' });
    assert.deepEqual(
      (joined.members as Array<{ user: string }>).map((m) => m.user),
      ['ta-user'],
    );
    await a.request({ op: 'publish', room: 'shared', class: 'chat', data: 'a only' });
    assert.equal((await a.request({ op: 'signal', to: 'tb-user', kind: 'offer', data: {} })).code, 'peer_offline');
    assert.equal((await b.request({ op: 'presence', room: 'shared' })).members && true, true);
    const presence = await b.request({ op: 'presence', room: 'shared' });
    assert.deepEqual(
      (presence.members as Array<{ user: string }>).map((m) => m.user),
      ['tb-user'],
    );
    assert.equal(
      b.frames.some((f) => f.op === 'message' || f.op === 'member_joined' || f.op === 'signal'),
      false,
    );
    a.close();
    b.close();
  });
});
