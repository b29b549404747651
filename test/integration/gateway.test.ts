/**
 * The gateway over real sockets against a real node process: every
 * documented error and close code from the input that should produce it,
 * stamping of server fields, ordering, and a malformed-frame flood.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';

describe('gateway (single node)', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNode({ args: ['--max-rooms', '2', '--handshake-timeout-ms', '400'] });
  });
  after(async () => {
    await node.stop();
  });

  it('welcomes a client with connection id, node id and limits', async () => {
    const client = await RawClient.open(node.wsUrl);
    const welcome = await client.request({ op: 'connect', v: 1, user: 'alice' });
    assert.equal(welcome.op, 'welcome');
    assert.equal(welcome.user, 'alice');
    assert.equal(welcome.nodeId, node.nodeId);
    assert.equal(typeof welcome.connId, 'string');
    assert.deepEqual(Object.keys(welcome.limits as object).sort(), [
      'heartbeatMs',
      'maxFrameBytes',
      'maxRoomIdLength',
      'maxRoomsPerConnection',
      'rateBurst',
      'ratePerSecond',
    ]);
    client.close();
  });

  const errorCases: Array<{ name: string; code: string; act: (c: RawClient) => Promise<Frame> }> = [
    { name: 'not valid JSON', code: 'bad_json', act: async (c) => (c.sendRaw('{"op":"ping",'), c.waitFor((f) => f.op === 'error')) },
    { name: 'a JSON array', code: 'invalid_frame', act: async (c) => (c.sendRaw('[1,2]'), c.waitFor((f) => f.op === 'error')) },
    { name: 'a wrong field type', code: 'invalid_frame', act: (c) => c.request({ op: 'join', room: 42 }) },
    { name: 'a missing field', code: 'invalid_frame', act: (c) => c.request({ op: 'publish', room: 'r', class: 'chat' }) },
    { name: 'an unknown class', code: 'invalid_frame', act: (c) => c.request({ op: 'publish', room: 'r', class: 'shout', data: 1 }) },
    { name: 'an unknown op', code: 'unknown_op', act: (c) => c.request({ op: 'teleport' }) },
    { name: 'a second connect', code: 'already_connected', act: (c) => c.request({ op: 'connect', v: 1, user: 'again' }) },
    { name: 'a room id with a colon', code: 'invalid_room', act: (c) => c.request({ op: 'join', room: 'a:b' }) },
    { name: 'a room id with glob characters', code: 'invalid_room', act: (c) => c.request({ op: 'join', room: 'r*?[x]\\' }) },
    { name: 'a room id with CR LF', code: 'invalid_room', act: (c) => c.request({ op: 'join', room: 'r\r\nx' }) },
    { name: 'a room id of 200 characters', code: 'invalid_room', act: (c) => c.request({ op: 'join', room: 'r'.repeat(200) }) },
    { name: 'a signal to a malformed user id', code: 'invalid_user', act: (c) => c.request({ op: 'signal', to: 'bad user', kind: 'offer', data: {} }) },
    { name: 'a publish to a room not joined', code: 'not_joined', act: (c) => c.request({ op: 'publish', room: 'elsewhere', class: 'chat', data: 'x' }) },
    { name: 'a presence query for a room not joined', code: 'not_joined', act: (c) => c.request({ op: 'presence', room: 'elsewhere' }) },
    { name: 'a leave of a room not joined', code: 'not_joined', act: (c) => c.request({ op: 'leave', room: 'elsewhere' }) },
    { name: 'a signal to a user connected nowhere', code: 'peer_offline', act: (c) => c.request({ op: 'signal', to: 'nobody-here', kind: 'offer', data: {} }) },
  ];
  for (const { name, code, act } of errorCases) {
    it(`answers ${name} with ${code}`, async () => {
      const client = await RawClient.connect(node.wsUrl, 'errors');
      const frame = await act(client);
      assert.equal(frame.op, 'error', JSON.stringify(frame));
      assert.equal(frame.code, code, JSON.stringify(frame));
      assert.equal(typeof frame.message, 'string');
      // The connection stays usable after an error.
      const pong = await client.request({ op: 'ping' });
      assert.equal(pong.op, 'pong');
      client.close();
    });
  }

  it('carries the request id on errors when it could be read', async () => {
    const client = await RawClient.connect(node.wsUrl, 'rid');
    const frame = await client.request({ op: 'join', rid: 'abc-1', room: 'no spaces' });
    assert.equal(frame.rid, 'abc-1');
    client.close();
  });

  it('answers requests before connect with not_connected', async () => {
    const client = await RawClient.open(node.wsUrl);
    const frame = await client.request({ op: 'join', room: 'r' });
    assert.equal(frame.code, 'not_connected');
    client.close();
  });

  it('refuses a join beyond the room limit with too_many_rooms', async () => {
    const client = await RawClient.connect(node.wsUrl, 'roomy');
    assert.equal((await client.request({ op: 'join', room: 'one' })).op, 'joined');
    assert.equal((await client.request({ op: 'join', room: 'two' })).op, 'joined');
    assert.equal((await client.request({ op: 'join', room: 'three' })).code, 'too_many_rooms');
    client.close();
  });

  it('refuses bad credentials with auth_failed and close 4001', async () => {
    const client = await RawClient.open(node.wsUrl);
    const frame = await client.request({ op: 'connect', v: 1, user: 'not a valid id' });
    assert.equal(frame.code, 'auth_failed');
    assert.equal(await client.waitClose(), 4001);
  });

  it('refuses another protocol version with unsupported_version and close 4003', async () => {
    const client = await RawClient.open(node.wsUrl);
    const frame = await client.request({ op: 'connect', v: 2, user: 'future' });
    assert.equal(frame.code, 'unsupported_version');
    assert.equal(await client.waitClose(), 4003);
  });

  it('closes a socket that never sends connect with 4002', async () => {
    const client = await RawClient.open(node.wsUrl);
    assert.equal(await client.waitClose(3000), 4002);
  });

  it('closes on a binary frame with 1003', async () => {
    const client = await RawClient.connect(node.wsUrl, 'binary');
    client.sendRaw(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal(await client.waitClose(), 1003);
  });

  it('closes on invalid UTF-8 with 1007', async () => {
    const client = await RawClient.connect(node.wsUrl, 'utf8');
    client.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    assert.equal(await client.waitClose(), 1007);
  });

  it('closes on a frame over the size limit with 1009', async () => {
    const client = await RawClient.connect(node.wsUrl, 'big');
    client.send({ op: 'ping', rid: 1, pad: 'x'.repeat(70 * 1024) });
    assert.equal(await client.waitClose(), 1009);
  });

  it('refuses upgrades on other paths with 404', async () => {
    await assert.rejects(RawClient.open(node.wsUrl.replace('/ws', '/nope')), /HTTP 404/);
  });

  it('stamps sender, id, offset and time, ignoring what the client sent', async () => {
    const alice = await RawClient.connect(node.wsUrl, 'stamp-alice');
    const bob = await RawClient.connect(node.wsUrl, 'stamp-bob');
    await alice.request({ op: 'join', room: 'stamps' });
    await bob.request({ op: 'join', room: 'stamps' });
    const before = Date.now();
    const ack = await alice.request({
      op: 'publish',
      room: 'stamps',
      class: 'chat',
      data: { text: 'hi' },
      from: 'mallory',
      id: 'forged',
      offset: 999,
      epoch: 'forged',
      ts: 1,
    });
    assert.equal(ack.op, 'ack');
    const message = await bob.waitFor((f) => f.op === 'message');
    assert.equal(message.from, 'stamp-alice');
    assert.notEqual(message.id, 'forged');
    assert.equal(message.id, ack.id);
    assert.equal(message.offset, 1);
    assert.notEqual(message.epoch, 'forged');
    assert.ok((message.ts as number) >= before);
    assert.deepEqual(message.data, { text: 'hi' });
    alice.close();
    bob.close();
  });

  it('delivers chat to every member, in one order, with increasing offsets', async () => {
    const clients = await Promise.all(['o1', 'o2', 'o3'].map((user) => RawClient.connect(node.wsUrl, user)));
    for (const client of clients) await client.request({ op: 'join', room: 'order' });
    const perClient = 20;
    await Promise.all(
      clients.map(async (client, index) => {
        for (let i = 0; i < perClient; i++) client.send({ op: 'publish', rid: `p${i}`, room: 'order', class: 'chat', data: `${index}:${i}` });
      }),
    );
    const total = perClient * clients.length;
    const sequences = await Promise.all(
      clients.map(async (client) => {
        const seen: Frame[] = [];
        while (seen.length < total) seen.push(await client.waitFor((f) => f.op === 'message'));
        return seen;
      }),
    );
    const reference = sequences[0]!.map((m) => m.id);
    for (const sequence of sequences) {
      assert.deepEqual(
        sequence.map((m) => m.id),
        reference,
      );
      assert.deepEqual(
        sequence.map((m) => m.offset),
        Array.from({ length: total }, (_, i) => i + 1),
      );
    }
    for (const client of clients) client.close();
  });

  it('does not echo ephemeral messages to the sender', async () => {
    const alice = await RawClient.connect(node.wsUrl, 'eph-alice');
    const bob = await RawClient.connect(node.wsUrl, 'eph-bob');
    await alice.request({ op: 'join', room: 'eph' });
    await bob.request({ op: 'join', room: 'eph' });
    alice.send({ op: 'publish', rid: 1, room: 'eph', class: 'ephemeral', key: 'typing', data: true });
    const got = await bob.waitFor((f) => f.op === 'message');
    assert.equal(got.class, 'ephemeral');
    assert.equal(got.key, 'typing');
    // A ping after the publish is answered after it: had alice been sent the message, it would be here.
    await alice.request({ op: 'ping' });
    assert.equal(alice.frames.filter((f) => f.op === 'message').length, 0);
    alice.close();
    bob.close();
  });

  it('sends presence join and leave events to the other members', async () => {
    const alice = await RawClient.connect(node.wsUrl, 'pres-alice');
    const bob = await RawClient.connect(node.wsUrl, 'pres-bob');
    await alice.request({ op: 'join', room: 'pres' });
    const joined = await bob.request({ op: 'join', room: 'pres' });
    assert.deepEqual(
      (joined.members as Array<{ user: string }>).map((m) => m.user),
      ['pres-alice', 'pres-bob'],
    );
    const event = await alice.waitFor((f) => f.op === 'member_joined');
    assert.equal(event.user, 'pres-bob');
    bob.close();
    const left = await alice.waitFor((f) => f.op === 'member_left');
    assert.equal(left.user, 'pres-bob');
    const presence = await alice.request({ op: 'presence', room: 'pres' });
    assert.deepEqual(
      (presence.members as Array<{ user: string }>).map((m) => m.user),
      ['pres-alice'],
    );
    alice.close();
  });

  it('routes a signal to every connection of its target and nobody else', async () => {
    const caller = await RawClient.connect(node.wsUrl, 'sig-caller');
    const tab1 = await RawClient.connect(node.wsUrl, 'sig-callee');
    const tab2 = await RawClient.connect(node.wsUrl, 'sig-callee');
    const bystander = await RawClient.connect(node.wsUrl, 'sig-bystander');
    const ack = await caller.request({ op: 'signal', to: 'sig-callee', kind: 'offer', data: { sdp: 'v=0' } });
    assert.equal(ack.op, 'ack');
    for (const tab of [tab1, tab2]) {
      const signal = await tab.waitFor((f) => f.op === 'signal');
      assert.equal(signal.from, 'sig-caller');
      assert.equal(signal.kind, 'offer');
      assert.deepEqual(signal.data, { sdp: 'v=0' });
    }
    await bystander.request({ op: 'ping' });
    await caller.request({ op: 'ping' });
    assert.equal(bystander.frames.filter((f) => f.op === 'signal').length, 0);
    assert.equal(caller.frames.filter((f) => f.op === 'signal').length, 0);
    for (const c of [caller, tab1, tab2, bystander]) c.close();
  });

  it('sends recent history on join', async () => {
    const alice = await RawClient.connect(node.wsUrl, 'hist-alice');
    await alice.request({ op: 'join', room: 'hist' });
    for (let i = 0; i < 5; i++) await alice.request({ op: 'publish', room: 'hist', class: 'chat', data: i });
    const bob = await RawClient.connect(node.wsUrl, 'hist-bob');
    const joined = await bob.request({ op: 'join', room: 'hist', history: 3 });
    assert.deepEqual(
      (joined.history as Frame[]).map((m) => m.data),
      [2, 3, 4],
    );
    assert.equal((joined.position as { offset: number }).offset, 5);
    alice.close();
    bob.close();
  });
});

describe('gateway limits', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNode({ args: ['--rate-per-second', '2', '--rate-burst', '5', '--max-errors-per-10s', '20'] });
  });
  after(async () => {
    await node.stop();
  });

  it('answers frames over the rate with rate_limited and a retry hint', async () => {
    const client = await RawClient.connect(node.wsUrl, 'fast');
    for (let i = 0; i < 8; i++) client.send({ op: 'ping', rid: `r${i}` });
    const limited = await client.waitFor((f) => f.op === 'error' && f.code === 'rate_limited');
    assert.ok((limited.retryAfterMs as number) > 0);
    client.close();
  });

  it('closes a connection that keeps causing errors with 4008', async () => {
    const client = await RawClient.connect(node.wsUrl, 'abuser');
    for (let i = 0; i < 60; i++) client.sendRaw('garbage');
    assert.equal(await client.waitClose(), 4008);
  });
});

describe('gateway under a flood of malformed frames', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNode({ args: ['--rate-per-second', '1000000', '--rate-burst', '1000000', '--max-errors-per-10s', '1000000'] });
  });
  after(async () => {
    await node.stop();
  });

  it("keeps another client's chat working while one client sends 10,000 random frames", async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const values: unknown[] = [null, true, 0, -1, 1e308, 'x', '', 'r'.repeat(300), [], {}, { a: { b: [1] } }, 'a:b', '*', 'r\n', '\u0000'];
    const ops = ['connect', 'join', 'leave', 'publish', 'signal', 'presence', 'ping', 'nope', 42, null];
    const fields = ['rid', 'room', 'class', 'data', 'to', 'kind', 'v', 'user', 'since', 'history', 'cmid', 'key', 'from', 'offset'];
    const frame = (): string => {
      const roll = random();
      if (roll < 0.1) return pick(['', '{', '}', 'null', '[]', '"x"', '{"op":', '\u0000\u0001', '{{{{']);
      const object: Record<string, unknown> = { op: pick(ops) };
      const count = Math.floor(random() * 6);
      for (let i = 0; i < count; i++) object[pick(fields)] = pick(values);
      if (roll < 0.3) object.rid = Math.floor(random() * 1000);
      return JSON.stringify(object);
    };

    const flooder = await RawClient.connect(node.wsUrl, 'flooder');
    const alice = await RawClient.connect(node.wsUrl, 'calm-alice');
    const bob = await RawClient.connect(node.wsUrl, 'calm-bob');
    await alice.request({ op: 'join', room: 'calm' });
    await bob.request({ op: 'join', room: 'calm' });

    let sent = 0;
    const flood = (async () => {
      for (let i = 0; i < 10_000; i++) {
        if (flooder.closeCode !== undefined) break;
        flooder.sendRaw(frame());
        sent += 1;
        if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 50; i++) {
      const ack = await alice.request({ op: 'publish', room: 'calm', class: 'chat', data: i }, 10_000);
      assert.equal(ack.op, 'ack');
    }
    await flood;
    // The whole flood went out on an open socket: a flooder cut early would make this test vacuous.
    assert.equal(sent, 10_000);
    assert.equal(flooder.closeCode, undefined);
    const received: unknown[] = [];
    while (received.length < 50) received.push((await bob.waitFor((f) => f.op === 'message', 10_000)).data);
    assert.deepEqual(
      received,
      Array.from({ length: 50 }, (_, i) => i),
    );
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    // The flooder got typed errors, not silence.
    assert.ok(flooder.frames.some((f) => f.op === 'error'));
    for (const c of [flooder, alice, bob]) c.close();
  });
});
