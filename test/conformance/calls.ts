/**
 * The CallStore contract (src/calls/calls.ts), as one suite every driver
 * runs: `callsConformance('memory', (ttlMs, peer) => ...)`. `peer` asks for
 * a second instance on the same store (another node). Time comes from the
 * `now` arguments, never from sleeping.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { CallRef, CallStore, EndedCall } from '../../src/calls/calls.js';
import { testNamespace } from '../helpers/wait.js';

export type CreateCalls = (ttlMs: number, peer?: CallStore) => Promise<CallStore> | CallStore;

const T0 = 1_700_000_000_000;
const TTL = 1000;

function byUser(ended: EndedCall | undefined): Record<string, number> {
  assert.ok(ended, 'the call ended');
  return Object.fromEntries(ended.participants.map((p) => [p.user, p.ms]));
}

export function callsConformance(name: string, createCalls: CreateCalls, options: { skip?: string | false } = {}): void {
  const namespace = testNamespace('cl');
  let calls = 0;

  function test(title: string, body: (store: CallStore, ref: CallRef, peer: () => Promise<CallStore>) => Promise<void>): void {
    it(`${name}: ${title}`, { skip: options.skip || false }, async () => {
      const store = await createCalls(TTL);
      await store.open();
      const opened = [store];
      const ref: CallRef = { tenant: `${namespace}-t`, room: 'room.1', call: `call-${++calls}` };
      try {
        await body(store, ref, async () => {
          const other = await createCalls(TTL, store);
          await other.open();
          opened.push(other);
          return other;
        });
      } finally {
        for (const each of opened) await each.close();
      }
    });
  }

  test('the first join starts the call, once', async (store, ref, peer) => {
    const first = await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    assert.equal(first.joined, true);
    assert.equal(first.started?.startedAt, T0);
    assert.equal(first.started?.startedBy, 'alice');
    assert.equal(first.ended, undefined);
    const other = await peer();
    const second = await other.join(ref, { user: 'bob', conn: 'c2' }, T0 + 10);
    assert.deepEqual(second, { joined: true });
    assert.deepEqual(await store.join(ref, { user: 'alice', conn: 'c1' }, T0 + 20), { joined: false }, 'a known connection is only refreshed');
  });

  test('the last leave ends it with each user’s time and the peak', async (store, ref, peer) => {
    const other = await peer();
    const started = await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    await other.join(ref, { user: 'bob', conn: 'c2' }, T0 + 100);
    assert.deepEqual(await store.leave(ref, 'c2', T0 + 400), { left: true });
    // Within the TTL of alice's join: she leaves, she does not expire.
    const last = await other.leave(ref, 'c1', T0 + 900);
    assert.equal(last.left, true);
    assert.equal(last.ended?.id, started.started?.id);
    assert.equal(last.ended?.startedAt, T0);
    assert.equal(last.ended?.endedAt, T0 + 900);
    assert.equal(last.ended?.peakParticipants, 2);
    assert.deepEqual(byUser(last.ended), { alice: 900, bob: 300 });
    assert.deepEqual(await store.leave(ref, 'c1', T0 + 2000), { left: false }, 'an ended call is gone');
  });

  test('a user with two connections is one participant, timed by the union of their stays', async (store, ref) => {
    await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    await store.join(ref, { user: 'alice', conn: 'c2' }, T0 + 100);
    await store.join(ref, { user: 'bob', conn: 'c3' }, T0 + 100);
    await store.leave(ref, 'c1', T0 + 200);
    await store.leave(ref, 'c2', T0 + 500);
    const ended = await store.leave(ref, 'c3', T0 + 600);
    assert.equal(ended.ended?.peakParticipants, 2);
    assert.deepEqual(byUser(ended.ended), { alice: 500, bob: 500 });
  });

  test('a connection nobody refreshes leaves at its last-seen time', async (store, ref, peer) => {
    const other = await peer();
    await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    await other.join(ref, { user: 'bob', conn: 'c2' }, T0);
    // bob's node refreshes; alice's node died after its refresh at T0 + 300.
    await store.refresh(ref, ['c1'], T0 + 300);
    assert.deepEqual(await other.refresh(ref, ['c2'], T0 + 900), { missing: [] });
    assert.deepEqual(await other.refresh(ref, ['c2'], T0 + 1800), { missing: [] });
    const ended = await other.leave(ref, 'c2', T0 + 2000);
    assert.equal(ended.ended?.endedAt, T0 + 2000);
    assert.deepEqual(byUser(ended.ended), { alice: 300, bob: 2000 });
  });

  test('a call whose nodes all died is swept once, ended at the last-seen time', async (store, ref, peer) => {
    const other = await peer();
    await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    await store.join(ref, { user: 'bob', conn: 'c2' }, T0 + 100);
    await store.refresh(ref, ['c1', 'c2'], T0 + 500);
    assert.deepEqual(await other.sweep(T0 + 500 + TTL - 1), [], 'not expired yet');
    const [swept, again] = await Promise.all([other.sweep(T0 + 500 + TTL), store.sweep(T0 + 500 + TTL)]);
    const all = [...swept, ...again];
    assert.equal(all.length, 1, 'one sweeper reports it');
    assert.deepEqual(all[0]?.ref, ref);
    assert.equal(all[0]?.ended.endedAt, T0 + 500);
    assert.deepEqual(byUser(all[0]?.ended), { alice: 500, bob: 400 });
    assert.deepEqual(await store.sweep(T0 + 10 * TTL), []);
  });

  test('refresh reports connections that expired; joining them again starts a new life', async (store, ref) => {
    const first = await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    // This node was cut off longer than the TTL: its own refresh finds the call over.
    const refreshed = await store.refresh(ref, ['c1'], T0 + 2 * TTL);
    assert.deepEqual(refreshed.missing, ['c1']);
    assert.equal(refreshed.ended?.id, first.started?.id);
    assert.equal(refreshed.ended?.endedAt, T0);
    const again = await store.join(ref, { user: 'alice', conn: 'c1' }, T0 + 2 * TTL);
    assert.ok(again.started && again.started.id !== first.started?.id, 'a new life of the call');
  });

  test('a join after every participant expired ends the old life and starts a new one', async (store, ref) => {
    const first = await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    const second = await store.join(ref, { user: 'bob', conn: 'c2' }, T0 + 5 * TTL);
    assert.equal(second.ended?.id, first.started?.id);
    assert.deepEqual(byUser(second.ended), { alice: 0 });
    assert.equal(second.started?.startedBy, 'bob');
  });

  test('concurrent last leaves report the end once', async (store, ref, peer) => {
    const other = await peer();
    await Promise.all(['a', 'b', 'c', 'd'].map((user, i) => (i % 2 ? other : store).join(ref, { user, conn: `c-${user}` }, T0)));
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((user, i) => (i % 2 ? store : other).leave(ref, `c-${user}`, T0 + 100)));
    assert.equal(results.filter((result) => result.ended).length, 1);
    assert.ok(results.every((result) => result.left));
  });

  test('calls of other rooms and tenants are apart', async (store, ref) => {
    const a = await store.join(ref, { user: 'alice', conn: 'c1' }, T0);
    const b = await store.join({ ...ref, room: 'room.2' }, { user: 'alice', conn: 'c1' }, T0);
    const c = await store.join({ ...ref, tenant: `${ref.tenant}-2` }, { user: 'alice', conn: 'c1' }, T0);
    assert.ok(a.started && b.started && c.started);
    assert.equal(new Set([a.started.id, b.started.id, c.started.id]).size, 3);
    for (const each of [ref, { ...ref, room: 'room.2' }, { ...ref, tenant: `${ref.tenant}-2` }]) assert.ok((await store.leave(each, 'c1', T0 + 1)).ended);
  });

  test('calls fail with unavailable before open and after close', async (store, ref) => {
    const fresh = await createCalls(TTL);
    await assert.rejects(fresh.join(ref, { user: 'alice', conn: 'c1' }, T0), { code: 'unavailable' });
    await fresh.close();
    await store.close();
    await assert.rejects(store.join(ref, { user: 'alice', conn: 'c1' }, T0), { code: 'unavailable' });
    assert.equal(store.health().ok, false);
  });
}
