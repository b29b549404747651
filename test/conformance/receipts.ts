/**
 * The ReadPositions contract (src/receipts/receipts.ts), as one suite every
 * driver runs: `receiptsConformance('memory', () => new MemoryReadPositions())`.
 * `create()` returns a store to open; `create(first)` another that shares
 * `first`'s data (a second node), as two Redis clients on one server do.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { RoomRef } from '../../src/history/history.js';
import type { ReadPositions } from '../../src/receipts/receipts.js';
import { testNamespace } from '../helpers/wait.js';

export function receiptsConformance(name: string, create: (shareWith?: ReadPositions) => ReadPositions, options: { skip?: string | false } = {}): void {
  const namespace = testNamespace('rp');
  let rooms = 0;

  function test(title: string, body: (store: ReadPositions, second: ReadPositions, room: RoomRef) => Promise<void>): void {
    it(`${name}: ${title}`, { skip: options.skip || false }, async () => {
      const store = create();
      const second = create(store);
      await Promise.all([store.open(), second.open()]);
      try {
        await body(store, second, { tenant: `${namespace}-t`, room: `room-${++rooms}` });
      } finally {
        await Promise.all([store.close(), second.close()]);
      }
    });
  }

  test('moves a position forward only, and answers the stored one', async (store, _second, room) => {
    assert.deepEqual(await store.advance(room, 'ann', { offset: 5, epoch: 'e1' }), { position: { offset: 5, epoch: 'e1' }, advanced: true });
    assert.deepEqual(await store.advance(room, 'ann', { offset: 3, epoch: 'e1' }), { position: { offset: 5, epoch: 'e1' }, advanced: false });
    assert.deepEqual(await store.advance(room, 'ann', { offset: 5, epoch: 'e1' }), { position: { offset: 5, epoch: 'e1' }, advanced: false });
    assert.deepEqual(await store.advance(room, 'ann', { offset: 9, epoch: 'e1' }), { position: { offset: 9, epoch: 'e1' }, advanced: true });
  });

  test('a position of another epoch replaces the stored one, even a lower offset', async (store, _second, room) => {
    await store.advance(room, 'ann', { offset: 50, epoch: 'old' });
    assert.deepEqual(await store.advance(room, 'ann', { offset: 2, epoch: 'new|with bar' }), {
      position: { offset: 2, epoch: 'new|with bar' },
      advanced: true,
    });
    assert.deepEqual((await store.read(room, 'ann', 0)).own, { offset: 2, epoch: 'new|with bar' });
  });

  test('is shared between instances (nodes), per user, room and tenant', async (store, second, room) => {
    await store.advance(room, 'ann', { offset: 4, epoch: 'e' });
    assert.deepEqual(await second.advance(room, 'ann', { offset: 2, epoch: 'e' }), { position: { offset: 4, epoch: 'e' }, advanced: false });
    assert.equal((await second.read(room, 'bob', 0)).own, undefined);
    assert.equal((await second.read({ tenant: `${room.tenant}-other`, room: room.room }, 'ann', 0)).own, undefined);
    assert.equal((await second.read({ tenant: room.tenant, room: `${room.room}-other` }, 'ann', 0)).own, undefined);
  });

  test('lists every position while the room has at most listMax of them', async (store, second, room) => {
    const empty = await store.read(room, 'ann', 2);
    assert.equal(empty.own, undefined);
    assert.deepEqual(empty.all, new Map());
    await store.advance(room, 'ann', { offset: 1, epoch: 'e' });
    await second.advance(room, 'bob', { offset: 7, epoch: 'e' });
    const two = await store.read(room, 'ann', 2);
    assert.deepEqual(two.own, { offset: 1, epoch: 'e' });
    assert.deepEqual(
      two.all,
      new Map([
        ['ann', { offset: 1, epoch: 'e' }],
        ['bob', { offset: 7, epoch: 'e' }],
      ]),
    );
    await store.advance(room, 'cat', { offset: 3, epoch: 'e' });
    const over = await store.read(room, 'bob', 2);
    assert.deepEqual(over, { own: { offset: 7, epoch: 'e' }, all: undefined });
    assert.equal((await store.read(room, 'bob', 0)).all, undefined, '0: never listed');
  });

  test('refuses calls before open and after close with unavailable', async (store, _second, room) => {
    const closed = create();
    await assert.rejects(closed.advance(room, 'ann', { offset: 1, epoch: 'e' }), { code: 'unavailable' });
    await closed.close();
    await closed.close();
    assert.equal(closed.health().ok, false);
    assert.equal(store.health().ok, true);
  });
}
