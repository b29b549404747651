import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Connection } from '../../src/gateway/connection.js';
import { LocalRooms, Members } from '../../src/gateway/local-rooms.js';

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
    assert.deepEqual(
      [...(rooms.get('user:alice')?.connections ?? [])].map((c) => c.id),
      ['a', 'a2'],
    );
  });

  it('keeps members in arrival order whether it holds one or several', () => {
    const members = new Members();
    const [a, b, c] = [conn('a'), conn('b'), conn('c')];
    assert.equal(members.size, 0);
    assert.deepEqual([...members], []);
    members.add(a);
    members.add(a);
    assert.equal(members.size, 1);
    assert.equal(members.has(a), true);
    assert.equal(members.has(b), false);
    assert.deepEqual(
      [...members].map((m) => m.id),
      ['a'],
    );
    members.add(b);
    members.add(c);
    assert.deepEqual(
      [...members].map((m) => m.id),
      ['a', 'b', 'c'],
    );
    members.delete(b);
    members.delete(conn('stranger'));
    assert.equal(members.size, 2);
    assert.equal(members.has(b), false);
    assert.deepEqual(
      [...members].map((m) => m.id),
      ['a', 'c'],
    );
    members.delete(a);
    members.delete(c);
    assert.equal(members.size, 0);
    const one = new Members();
    one.add(a);
    one.delete(a);
    assert.equal(one.size, 0);
    assert.deepEqual([...one], []);
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
