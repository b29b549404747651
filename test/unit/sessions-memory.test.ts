import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryRoomSessions } from '../../src/sessions/memory.js';
import type { RoomSessions } from '../../src/sessions/sessions.js';
import { sessionsConformance } from '../conformance/sessions.js';

// Instances of the memory driver share nothing, so "a second node" is a second handle on the same instance.
const shared = new WeakMap<object, MemoryRoomSessions>();
sessionsConformance('memory', (options) => {
  const existing = shared.get(options.now);
  if (existing) return new SharedHandle(existing);
  const sessions = new MemoryRoomSessions(options);
  shared.set(options.now, sessions);
  return sessions;
});

/** A second handle on one MemoryRoomSessions: open/close do not affect the owner. */
class SharedHandle implements RoomSessions {
  readonly driver = 'memory';
  constructor(private readonly inner: MemoryRoomSessions) {}
  async open(): Promise<void> {}
  start: RoomSessions['start'] = (room, now) => this.inner.start(room, now);
  current: RoomSessions['current'] = (room) => this.inner.current(room);
  joined: RoomSessions['joined'] = (room, user, now) => this.inner.joined(room, user, now);
  left: RoomSessions['left'] = (room, user, now) => this.inner.left(room, user, now);
  end: RoomSessions['end'] = (room, now) => this.inner.end(room, now);
  health: RoomSessions['health'] = () => this.inner.health();
  async close(): Promise<void> {}
}

describe('MemoryRoomSessions', () => {
  it('forgets a session at its end', async () => {
    const sessions = new MemoryRoomSessions();
    await sessions.open();
    const room = { tenant: 't', room: 'r' };
    await sessions.start(room, 0);
    await sessions.joined(room, 'u', 0);
    assert.equal(sessions.size(), 1);
    await sessions.end(room, 10);
    assert.equal(sessions.size(), 0);
    await sessions.close();
  });

  it('keeps rooms of different tenants apart', async () => {
    const sessions = new MemoryRoomSessions();
    await sessions.open();
    const a = await sessions.start({ tenant: 'a', room: 'r' }, 0);
    const b = await sessions.start({ tenant: 'b', room: 'r' }, 0);
    assert.notEqual(a, b);
    await sessions.close();
  });
});
