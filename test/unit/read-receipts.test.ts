/**
 * The gateway's read receipts (src/gateway/read-receipts.ts) on the memory
 * lanes, with a stub connection: the `read` rules (forward only, clamped to
 * the log, epoch check), the conflated push (the first at once, then only
 * the latest per interval: the interval here is long and ended by `flush`,
 * so nothing depends on timing), and the unread rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelNamer } from '../../src/bus/channels.js';
import { chatEnvelope } from '../../src/bus/envelope.js';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { MemoryHistory } from '../../src/history/memory.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { createLogger } from '../../src/logger.js';
import { NodeMetrics } from '../../src/metrics.js';
import { MemoryReadPositions } from '../../src/receipts/memory.js';
import type { Connection } from '../../src/gateway/connection.js';
import { LocalRooms } from '../../src/gateway/local-rooms.js';
import { countUnread, ReadReceipts } from '../../src/gateway/read-receipts.js';
import { MemberPushes } from '../../src/gateway/member-pushes.js';
import type { ChannelTarget } from '../../src/gateway/local-rooms.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

const namer = new ChannelNamer({ env: 'test', service: 'nerve' });

function chat(offset: number, from: string, action?: 'edit'): ChatMessage {
  return {
    op: 'message',
    class: 'chat',
    room: 'r',
    id: `m${offset}`,
    from,
    ts: 0,
    offset,
    epoch: 'e',
    data: null,
    ...(action ? { action, target: { id: 'm1', offset: 1 } } : {}),
  };
}

async function setup(largeRoom?: (channel: string) => boolean) {
  const bus = new MemoryBus();
  await bus.start(() => {});
  const history = new MemoryHistory({ bus });
  await history.start();
  const receipts = new MemoryReadPositions();
  await receipts.open();
  const published: LifecycleEvent[] = [];
  const events = {
    publish: async (event: LifecycleEvent) => {
      published.push(event);
    },
  };
  const pushes: Array<Record<string, unknown>> = [];
  const gateway = new ReadReceipts({
    receipts,
    history,
    local: new LocalRooms(),
    namer,
    events,
    metrics: new NodeMetrics({ nodeId: 'test', processMetrics: false }),
    log: createLogger('silent'),
    maxRoomIdLength: 64,
    announce: async (_channel, payload) => {
      pushes.push(JSON.parse(payload) as Record<string, unknown>);
    },
    source: async (ref) => ({ ...ref, node: 'n1', session: 's1' }),
    fanoutMs: 3_600_000,
    ...(largeRoom ? { largeRoom } : {}),
  });
  const ref = { tenant: 'default', room: 'r' };
  const channel = namer.room(ref.tenant, ref.room);
  for (let i = 1; i <= 5; i += 1)
    await history.append(
      ref,
      { op: 'message', class: 'chat', room: 'r', id: `m${i}`, from: 'bob', ts: i, data: i },
      { channel, envelope: (m) => chatEnvelope(m, 'n1') },
    );
  const answers: Array<Record<string, unknown>> = [];
  const conn = {
    tenant: 'default',
    user: 'ann',
    rooms: new Set(['r']),
    hasRight: () => true,
    answer: (frame: Record<string, unknown>) => answers.push(frame),
  } as unknown as Connection;
  const epoch = (await history.recent(ref, 0)).position.epoch;
  return { gateway, conn, answers, pushes, published, epoch, history, receipts, ref };
}

describe('ReadReceipts', () => {
  it('moves forward only, answers the stored position, and never past the newest message', async () => {
    const { gateway, conn, answers, epoch } = await setup();
    await gateway.read(conn, { op: 'read', rid: 1, room: 'r', offset: 3 });
    await gateway.read(conn, { op: 'read', rid: 2, room: 'r', offset: 1, epoch });
    await gateway.read(conn, { op: 'read', rid: 3, room: 'r', offset: 99 });
    assert.deepEqual(
      answers.map((a) => [a.rid, a.offset, a.epoch]),
      [
        [1, 3, epoch],
        [2, 3, epoch],
        [3, 5, epoch],
      ],
    );
    gateway.flush();
  });

  it('refuses another epoch, a room not joined and a flood, with typed codes', async () => {
    const { gateway, conn } = await setup();
    await assert.rejects(gateway.read(conn, { op: 'read', rid: 1, room: 'r', offset: 1, epoch: 'old' }), { code: 'epoch_mismatch' });
    await assert.rejects(gateway.read(conn, { op: 'read', rid: 2, room: 'other', offset: 1 }), { code: 'not_joined' });
    await assert.rejects(gateway.read(conn, { op: 'read', rid: 3, room: 'bad room', offset: 1 }), { code: 'invalid_room' });
    let refused: unknown;
    for (let i = 0; i < 40 && refused === undefined; i += 1) {
      await gateway.read(conn, { op: 'read', rid: 10 + i, room: 'r', offset: 1 }).catch((error: unknown) => (refused = error));
    }
    assert.equal((refused as { code?: string } | undefined)?.code, 'rate_limited');
    gateway.flush();
  });

  it('pushes the first move at once and then only the latest of the interval, with its event', async () => {
    const { gateway, conn, pushes, published, epoch } = await setup();
    await gateway.read(conn, { op: 'read', rid: 1, room: 'r', offset: 2 });
    await gateway.read(conn, { op: 'read', rid: 2, room: 'r', offset: 3 });
    await gateway.read(conn, { op: 'read', rid: 3, room: 'r', offset: 4 });
    await gateway.read(conn, { op: 'read', rid: 4, room: 'r', offset: 1 });
    assert.deepEqual(
      pushes.map((p) => [p.op, p.room, p.user, p.offset, p.epoch]),
      [['read', 'r', 'ann', 2, epoch]],
    );
    gateway.flush();
    assert.deepEqual(
      pushes.map((p) => p.offset),
      [2, 4],
    );
    gateway.flush();
    assert.equal(pushes.length, 2, 'nothing more to send');
    // The events go out once the room's session is known (an await): wait for both.
    for (let i = 0; i < 100 && published.length < 2; i += 1) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      published.filter((e) => e.type === 'read.updated').map((e) => e.data),
      [
        { user: 'ann', offset: 2, epoch },
        { user: 'ann', offset: 4, epoch },
      ],
    );
  });

  it('times a held event at its read, not at the push that sends it later', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const { gateway, conn, published } = await setup();
    await gateway.read(conn, { op: 'read', rid: 1, room: 'r', offset: 2 });
    t.mock.timers.tick(100);
    await gateway.read(conn, { op: 'read', rid: 2, room: 'r', offset: 3 });
    // The held push goes out later.
    t.mock.timers.tick(400);
    gateway.flush();
    for (let i = 0; i < 100 && published.length < 2; i += 1) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      published.filter((e) => e.type === 'read.updated').map((e) => [(e.data as { offset: number }).offset, e.ts]),
      [
        [2, 1_000_000],
        [3, 1_000_100],
      ],
    );
  });

  it("gives a join the user's position, the unread count and the others' positions of this epoch", async () => {
    const { gateway, receipts, ref, history, epoch } = await setup();
    await receipts.advance(ref, 'ann', { offset: 2, epoch });
    await receipts.advance(ref, 'bob', { offset: 5, epoch });
    await receipts.advance(ref, 'cat', { offset: 9, epoch: 'old' });
    const snapshot = await gateway.snapshot(ref, 'ann');
    const recent = await history.recent(ref, 1);
    // The join's history holds only offset 5: the count reads the rest.
    assert.deepEqual(await gateway.joined(ref, 'ann', snapshot, recent.position, recent.messages, true), { read: 2, unread: 3, reads: { bob: 5 } });
    assert.deepEqual(await gateway.joined(ref, 'ann', snapshot, recent.position, recent.messages, false), { read: 2, unread: 3 });
    assert.deepEqual(await gateway.joined(ref, 'ann', undefined, recent.position, recent.messages, true), {}, 'store down: nothing claimed');
    const fresh = await gateway.joined(ref, 'dan', await gateway.snapshot(ref, 'dan'), recent.position, recent.messages, true);
    assert.deepEqual([fresh.read, fresh.unread], [0, 5]);
  });
});

describe('the unread count of a join far behind', () => {
  it('reads no more history when the answer already holds the cap', async () => {
    let sinceCalls = 0;
    const receipts = new ReadReceipts({
      receipts: new MemoryReadPositions(),
      history: {
        recent: () => Promise.reject(new Error('not used')),
        since: () => {
          sinceCalls += 1;
          return Promise.reject(new Error('not expected'));
        },
      },
      local: new LocalRooms(),
      namer,
      events: { publish: async () => {} },
      metrics: new NodeMetrics({ nodeId: 'test', processMetrics: false }),
      log: createLogger('silent'),
      maxRoomIdLength: 64,
      announce: async () => {},
      source: async (ref) => ({ ...ref, node: 'n1', session: 's1' }),
    });
    const ref = { tenant: 'default', room: 'r' };
    const history = Array.from({ length: 120 }, (_, i) => chat(1000 + i, 'bob'));
    const snapshot = { own: { offset: 3, epoch: 'e' }, all: undefined };
    assert.deepEqual(await receipts.joined(ref, 'ann', snapshot, { offset: 1119, epoch: 'e' }, history, true), { read: 3, unread: 100 });
    assert.equal(sinceCalls, 0);
    // Short of the cap and not reaching back: one more read, whose failure leaves the count from the answer.
    assert.deepEqual(await receipts.joined(ref, 'ann', snapshot, { offset: 1119, epoch: 'e' }, history.slice(100), true), { read: 3, unread: 20 });
    assert.equal(sinceCalls, 1);
  });
});

describe('read pushes in a large room', () => {
  it('are not published at all, while the read.updated event still is', async () => {
    const asked: string[] = [];
    const { gateway, conn, pushes, published } = await setup((channel) => {
      asked.push(channel);
      return true;
    });
    await gateway.read(conn, { op: 'read', rid: 1, room: 'r', offset: 3 });
    for (let i = 0; i < 100 && published.length < 1; i += 1) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(asked, [namer.room('default', 'r')], 'the room was asked about');
    assert.equal(pushes.length, 0, 'no read push on the bus');
    assert.deepEqual(
      published.filter((e) => e.type === 'read.updated').map((e) => (e.data as { offset: number }).offset),
      [3],
    );
    gateway.flush();
  });
});

describe('read pushes on the way out (member-pushes.ts)', () => {
  it('go out conflated per user in a small room, and not at all in a large one', () => {
    const target = { kind: 'room', tenant: 't', id: 'r' } as ChannelTarget;
    const sent: Array<[string, string | undefined]> = [];
    const pushes = new MemberPushes({
      local: { get: () => target } as unknown as LocalRooms,
      presence: { list: async () => ({ members: [], count: 0 }) },
      log: createLogger('silent'),
      listMax: 3,
      intervalMs: 3_600_000,
      fanOut: (_target, payload, _class, _except, conflate) => sent.push([(JSON.parse(payload) as { op: string }).op, conflate]),
    });
    const read = JSON.stringify({ op: 'read', room: 'r', user: 'ann', offset: 4, epoch: 'e', ts: 1 });
    pushes.noteCount('ch', 2);
    pushes.push('ch', target, read, 'presence', undefined);
    assert.deepEqual(sent, [['read', '\u0001read\u0000r\u0000ann']]);
    pushes.noteCount('ch', 4);
    pushes.push('ch', target, read, 'presence', undefined);
    assert.equal(sent.length, 1, 'a large room: not sent');
    pushes.forget('ch');
  });
});

describe('countUnread', () => {
  it("counts others' chat after the position, not entries nor your own, up to 100", () => {
    const messages = [chat(1, 'bob'), chat(2, 'ann'), chat(3, 'bob', 'edit'), chat(4, 'cat'), chat(5, 'bob')];
    assert.equal(countUnread(messages, 0, 5, 'ann'), 3);
    assert.equal(countUnread(messages, 3, 5, 'ann'), 2);
    assert.equal(countUnread(messages, 3, 4, 'ann'), 1, 'nothing past the newest');
    const many = Array.from({ length: 150 }, (_, i) => chat(i + 1, 'bob'));
    assert.equal(countUnread(many, 0, 150, 'ann'), 100);
  });
});
