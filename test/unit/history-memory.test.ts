import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import type { AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { MemoryHistory, type MemoryHistoryOptions } from '../../src/history/memory.js';
import { ConfigError } from '../../src/config/errors.js';
import { historyConformance } from '../conformance/history.js';

historyConformance('memory', (bus, options) => new MemoryHistory({ bus, ...options }));

const target: AppendTarget = {
  channel: 'test:room',
  envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'n', class: 'chat', payload: JSON.stringify(message) }),
};

function draft(room: RoomRef, n: number, cmid?: string): ChatDraft {
  const base: ChatDraft = { op: 'message', class: 'chat', room: room.room, id: `m${n}`, from: 'alice', ts: n, data: n };
  return cmid === undefined ? base : { ...base, cmid };
}

async function setup(options: Omit<MemoryHistoryOptions, 'bus' | 'now'> = {}) {
  const clock = { t: 0 };
  const bus = new MemoryBus();
  await bus.start(() => {});
  const history = new MemoryHistory({ bus, now: () => clock.t, ...options });
  await history.start();
  return { clock, bus, history };
}

describe('MemoryHistory', () => {
  it('evicts a room log idle for roomIdleMs; its next use starts a new epoch', async () => {
    const { clock, history, bus } = await setup({ roomIdleMs: 1000 });
    const room = { tenant: 't', room: 'a' };
    const first = await history.append(room, draft(room, 1), target);
    clock.t = 999;
    assert.equal((await history.recent(room, 10)).messages.length, 1);
    clock.t = 1000;
    const after = await history.recent(room, 10);
    assert.deepEqual(after.messages, []);
    assert.equal(after.position.offset, 0);
    assert.notEqual(after.position.epoch, first.message.epoch);
    const resumed = await history.since(room, { offset: 1, epoch: first.message.epoch }, 10);
    assert.equal(resumed.recovered, false);
    await history.close();
    await bus.close();
  });

  it('keeps at most maxRooms logs, evicting the least recently appended', async () => {
    const { history, bus } = await setup({ maxRooms: 3 });
    const rooms = ['a', 'b', 'c', 'd'].map((room) => ({ tenant: 't', room }));
    for (const room of rooms.slice(0, 3)) await history.append(room, draft(room, 1), target);
    await history.append(rooms[0]!, draft(rooms[0]!, 2), target); // a is now the most recent
    await history.append(rooms[3]!, draft(rooms[3]!, 1), target); // evicts b
    assert.equal(history.stats().rooms, 3);
    assert.equal((await history.recent(rooms[0]!, 10)).position.offset, 2);
    // Reading b recreates it empty (evicting c, now the least recent).
    assert.equal((await history.recent(rooms[1]!, 10)).position.offset, 0);
    assert.equal(history.stats().rooms, 3);
    await history.close();
    await bus.close();
  });

  it('expires idempotency entries, so their number stays bounded by the window', async () => {
    const { clock, history, bus } = await setup({ idempotencyWindowMs: 100 });
    const room = { tenant: 't', room: 'a' };
    for (let n = 0; n < 50; n += 1) {
      clock.t = n * 10;
      await history.append(room, draft(room, n, `c${n}`), target);
    }
    // Entries older than 100 ms were dropped as later appends came in.
    assert.ok(history.stats().idempotencyEntries <= 11, `kept ${history.stats().idempotencyEntries}`);
    await history.close();
    await bus.close();
  });

  it('keeps at most maxMessages messages per room', async () => {
    const { history, bus } = await setup({ maxMessages: 5 });
    const room = { tenant: 't', room: 'a' };
    for (let n = 1; n <= 20; n += 1) await history.append(room, draft(room, n), target);
    assert.deepEqual(history.stats(), { rooms: 1, messages: 5, idempotencyEntries: 0 });
    await history.close();
    await bus.close();
  });

  it('with maxMessages 0 keeps nothing but still numbers and publishes', async () => {
    const { history, bus } = await setup({ maxMessages: 0 });
    const seen: number[] = [];
    await bus.start((_channel, envelope) => seen.push((JSON.parse(envelope.payload) as { offset: number }).offset));
    await bus.acquire(target.channel);
    const room = { tenant: 't', room: 'a' };
    await history.append(room, draft(room, 1), target);
    const second = await history.append(room, draft(room, 2), target);
    assert.equal(second.message.offset, 2);
    assert.deepEqual(seen, [1, 2]);
    const resume = await history.since(room, { offset: 1, epoch: second.message.epoch }, 10);
    assert.deepEqual(resume, { messages: [], position: { offset: 2, epoch: second.message.epoch }, recovered: false });
    await history.close();
    await bus.close();
  });

  it('stores nothing when the envelope builder throws', async () => {
    const { history, bus } = await setup();
    const room = { tenant: 't', room: 'a' };
    const failing: AppendTarget = {
      channel: 'x',
      envelope: () => {
        throw new Error('boom');
      },
    };
    await assert.rejects(history.append(room, draft(room, 1), failing), /boom/);
    assert.equal((await history.append(room, draft(room, 2), target)).message.offset, 1);
    await history.close();
    await bus.close();
  });

  it('refuses to append while the bus is down, storing nothing', async () => {
    const { history, bus } = await setup();
    const room = { tenant: 't', room: 'a' };
    await bus.close();
    await assert.rejects(history.append(room, draft(room, 1), target), { name: 'NerveError', code: 'bus_unavailable' });
    assert.equal((await history.recent(room, 10)).position.offset, 0);
    await history.close();
  });

  it('rejects bad options at construction', () => {
    const bus = new MemoryBus();
    assert.throws(() => new MemoryHistory({ bus, maxMessages: -1 }), ConfigError);
    assert.throws(() => new MemoryHistory({ bus, recoveryLimit: 0 }), ConfigError);
    assert.throws(() => new MemoryHistory({ bus, idempotencyWindowMs: 1.5 }), ConfigError);
  });
});
