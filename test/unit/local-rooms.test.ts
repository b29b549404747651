import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Connection } from '../../src/gateway/connection.js';
import { LocalRooms } from '../../src/gateway/local-rooms.js';

const conn = (id: string) => ({ id }) as unknown as Connection;

describe('LocalRooms (the local room manager)', () => {
  it('reports the first local listener and the last one to leave', () => {
    const rooms = new LocalRooms();
    const a = conn('a');
    const b = conn('b');
    assert.equal(rooms.add('room:r', 'room', 't', 'r', a), true);
    assert.equal(rooms.add('room:r', 'room', 't', 'r', b), false);
    assert.equal(rooms.rooms(), 1);
    assert.equal(rooms.remove('room:r', a), false);
    assert.equal(rooms.remove('room:r', b), true);
    assert.equal(rooms.rooms(), 0);
    assert.equal(rooms.get('room:r'), undefined);
  });

  it('counts only room channels as rooms, and user channels per connection', () => {
    const rooms = new LocalRooms();
    const a = conn('a');
    const a2 = conn('a2');
    rooms.add('user:alice', 'user', 't', 'alice', a);
    rooms.add('user:alice', 'user', 't', 'alice', a2);
    rooms.add('room:x', 'room', 't', 'x', a);
    assert.equal(rooms.rooms(), 1);
    assert.deepEqual([...(rooms.get('user:alice')?.connections ?? [])].map((c) => c.id), ['a', 'a2']);
  });

  it('treats a duplicate add and an unknown remove as no-ops', () => {
    const rooms = new LocalRooms();
    const a = conn('a');
    assert.equal(rooms.add('room:r', 'room', 't', 'r', a), true);
    assert.equal(rooms.add('room:r', 'room', 't', 'r', a), false);
    assert.equal(rooms.get('room:r')?.connections.size, 1);
    assert.equal(rooms.remove('room:other', a), false);
    assert.equal(rooms.remove('room:r', conn('stranger')), false);
    assert.equal(rooms.remove('room:r', a), true);
  });
});
