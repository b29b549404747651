/**
 * The Presence contract (src/presence/presence.ts), as one suite every driver
 * runs: `presenceConformance('memory', () => new MemoryPresence())`.
 * Expiry of a crashed node's entries is driver-specific and tested beside
 * the driver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoomRef } from '../../src/history/history.js';
import type { Presence, PresenceEntry } from '../../src/presence/presence.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { testNamespace } from '../helpers/wait.js';

export interface PresenceTestOptions {
  /** Clock, ms since epoch; drivers with a TTL read time from it. */
  now: () => number;
}

export type CreatePresence = (options: PresenceTestOptions) => Promise<Presence> | Presence;

export interface PresenceConformanceOptions {
  /** Set when the driver's service is missing: every test is skipped with this reason. */
  skip?: string | false;
}

interface Fixture {
  presence: Presence;
  room: RoomRef;
  entry: (user: string, conn: string, ts: number, node?: string) => PresenceEntry;
}

export function presenceConformance(
  name: string,
  createPresence: CreatePresence,
  cleanup?: (presence: Presence) => Promise<void> | void,
  options: PresenceConformanceOptions = {},
): void {
  const namespace = testNamespace('p');
  let rooms = 0;

  function test(title: string, body: (f: Fixture) => Promise<void>): void {
    it(title, { skip: options.skip || false }, async () => {
      const clock = { t: 1_700_000_000_000 };
      const presence = await createPresence({ now: () => clock.t });
      await presence.start();
      const room: RoomRef = { tenant: `${namespace}-t`, room: `room-${++rooms}` };
      const entry = (user: string, conn: string, ts: number, node = 'node-a'): PresenceEntry => ({ user, conn, node, ts });
      try {
        await body({ presence, room, entry });
      } finally {
        await presence.close();
        await cleanup?.(presence);
      }
    });
  }

  describe(`Presence conformance: ${name}`, () => {
    test('an empty room has no members', async ({ presence, room }) => {
      assert.deepEqual(await presence.members(room), []);
    });

    test('add reports the first connection of the room and of each user', async ({ presence, room, entry }) => {
      assert.deepEqual(await presence.add(room, entry('alice', 'c1', 100)), { userJoined: true, roomStarted: true, count: 1 });
      assert.deepEqual(await presence.add(room, entry('bob', 'c2', 200)), { userJoined: true, roomStarted: false, count: 2 });
      assert.deepEqual(await presence.add(room, entry('alice', 'c3', 300, 'node-b')), { userJoined: false, roomStarted: false, count: 2 });
      assert.deepEqual(await presence.members(room), [
        { user: 'alice', since: 100 },
        { user: 'bob', since: 200 },
      ]);
    });

    test('add is idempotent per connection', async ({ presence, room, entry }) => {
      await presence.add(room, entry('alice', 'c1', 100));
      assert.deepEqual(await presence.add(room, entry('alice', 'c1', 100)), { userJoined: false, roomStarted: false, count: 1 });
      assert.deepEqual(await presence.add(room, entry('alice', 'c1', 500)), { userJoined: false, roomStarted: false, count: 1 });
      assert.deepEqual(await presence.members(room), [{ user: 'alice', since: 100 }]);
      // One remove undoes it: the repeated adds did not count as more connections.
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'c1' }), { userLeft: true, roomEmpty: true, count: 0 });
    });

    test('members are listed once each, ordered by since, ties by user id', async ({ presence, room, entry }) => {
      await presence.add(room, entry('carol', 'c1', 300));
      await presence.add(room, entry('bob', 'c2', 100));
      await presence.add(room, entry('dave', 'c3', 200));
      await presence.add(room, entry('bob', 'c4', 50));
      await presence.add(room, entry('abe', 'c5', 200));
      assert.deepEqual(await presence.members(room), [
        { user: 'bob', since: 100 },
        { user: 'abe', since: 200 },
        { user: 'dave', since: 200 },
        { user: 'carol', since: 300 },
      ]);
    });

    test('a user leaves with the last connection; the room empties with the last member', async ({ presence, room, entry }) => {
      await presence.add(room, entry('alice', 'c1', 100));
      await presence.add(room, entry('alice', 'c2', 150));
      await presence.add(room, entry('bob', 'c3', 200));
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'c1' }), { userLeft: false, roomEmpty: false, count: 2 });
      // Still a member since her first connection: she never left.
      assert.deepEqual(await presence.members(room), [
        { user: 'alice', since: 100 },
        { user: 'bob', since: 200 },
      ]);
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'c2' }), { userLeft: true, roomEmpty: false, count: 1 });
      assert.deepEqual(await presence.members(room), [{ user: 'bob', since: 200 }]);
      assert.deepEqual(await presence.remove(room, { user: 'bob', conn: 'c3' }), { userLeft: true, roomEmpty: true, count: 0 });
      assert.deepEqual(await presence.members(room), []);
    });

    test('has: a user is in the room from the first connection to the last', async ({ presence, room, entry }) => {
      assert.equal(await presence.has(room, 'alice'), false);
      await presence.add(room, entry('alice', 'c1', 100));
      await presence.add(room, entry('alice', 'c2', 150, 'node-b'));
      await presence.add(room, entry('bob', 'c3', 200));
      assert.equal(await presence.has(room, 'alice'), true);
      assert.equal(await presence.has(room, 'carol'), false);
      assert.equal(await presence.has({ tenant: `${room.tenant}-other`, room: room.room }, 'alice'), false, 'another tenant');
      await presence.remove(room, { user: 'alice', conn: 'c1' });
      assert.equal(await presence.has(room, 'alice'), true, 'one connection left');
      await presence.remove(room, { user: 'alice', conn: 'c2' });
      assert.equal(await presence.has(room, 'alice'), false);
      assert.equal(await presence.has(room, 'bob'), true);
    });

    test('remove is idempotent and ignores unknown connections', async ({ presence, room, entry }) => {
      const nothing = (count: number) => ({ userLeft: false, roomEmpty: false, count });
      assert.deepEqual(await presence.remove(room, { user: 'ghost', conn: 'c0' }), nothing(0));
      await presence.add(room, entry('alice', 'c1', 100));
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'other' }), nothing(1));
      assert.deepEqual(await presence.remove(room, { user: 'bob', conn: 'c1' }), nothing(1));
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'c1' }), { userLeft: true, roomEmpty: true, count: 0 });
      assert.deepEqual(await presence.remove(room, { user: 'alice', conn: 'c1' }), nothing(0));
    });

    test('a room that emptied starts again, with new since values', async ({ presence, room, entry }) => {
      await presence.add(room, entry('alice', 'c1', 100));
      await presence.remove(room, { user: 'alice', conn: 'c1' });
      assert.deepEqual(await presence.add(room, entry('alice', 'c2', 900)), { userJoined: true, roomStarted: true, count: 1 });
      assert.deepEqual(await presence.members(room), [{ user: 'alice', since: 900 }]);
    });

    test('rooms are separate, also across tenants', async ({ presence, room, entry }) => {
      const sameIdOtherTenant: RoomRef = { tenant: `${room.tenant}-2`, room: room.room };
      const otherRoom: RoomRef = { tenant: room.tenant, room: `${room.room}-b` };
      await presence.add(room, entry('alice', 'c1', 100));
      assert.deepEqual(await presence.add(sameIdOtherTenant, entry('alice', 'c1', 100)), { userJoined: true, roomStarted: true, count: 1 });
      assert.deepEqual(await presence.add(otherRoom, entry('bob', 'c2', 100)), { userJoined: true, roomStarted: true, count: 1 });
      assert.deepEqual(await presence.members(otherRoom), [{ user: 'bob', since: 100 }]);
      assert.deepEqual(await presence.remove(sameIdOtherTenant, { user: 'alice', conn: 'c1' }), { userLeft: true, roomEmpty: true, count: 0 });
      assert.deepEqual(await presence.members(room), [{ user: 'alice', since: 100 }]);
      await presence.remove(room, { user: 'alice', conn: 'c1' });
      await presence.remove(otherRoom, { user: 'bob', conn: 'c2' });
    });

    test('concurrent adds and removes of one user keep one consistent answer', async ({ presence, room, entry }) => {
      const conns = Array.from({ length: 20 }, (_, i) => `c${i}`);
      const added = await Promise.all(conns.map((conn, i) => presence.add(room, entry('alice', conn, 100 + i))));
      assert.equal(added.filter((result) => result.userJoined).length, 1);
      assert.equal(added.filter((result) => result.roomStarted).length, 1);
      const removed = await Promise.all(conns.map((conn) => presence.remove(room, { user: 'alice', conn })));
      assert.equal(removed.filter((result) => result.userLeft).length, 1);
      assert.equal(removed.filter((result) => result.roomEmpty).length, 1);
      assert.deepEqual(await presence.members(room), []);
    });

    test('health is ok while running; close is idempotent; calls after close reject with a NerveError', async ({ presence, room, entry }) => {
      assert.equal(presence.health().ok, true);
      assert.equal(presence.health().lane, 'presence');
      await Promise.all([presence.close(), presence.close()]);
      await presence.close();
      assert.equal(presence.health().ok, false);
      await assert.rejects(presence.add(room, entry('alice', 'c1', 1)), (error) => isNerveError(error));
      await assert.rejects(presence.members(room), (error) => isNerveError(error));
      await assert.rejects(presence.setState(room, { user: 'alice', conn: 'c1' }, '{}'), (error) => isNerveError(error));
    });

    test('a member carries the last state any of their connections set, until the user leaves', async ({ presence, room, entry }) => {
      await presence.add(room, { ...entry('alice', 'c1', 100), state: '{"status":"here"}' });
      await presence.add(room, entry('bob', 'c2', 200));
      assert.deepEqual(await presence.members(room), [
        { user: 'alice', since: 100, state: { status: 'here' } },
        { user: 'bob', since: 200 },
      ]);
      // A second connection without a state keeps hers; one with a state replaces it.
      await presence.add(room, entry('alice', 'c3', 300));
      assert.deepEqual((await presence.list(room)).members[0], { user: 'alice', since: 100, state: { status: 'here' } });
      assert.equal(await presence.setState(room, { user: 'alice', conn: 'c3' }, '{"status":"away"}'), true);
      assert.deepEqual((await presence.list(room)).members[0]?.state, { status: 'away' });
      // Her first connection leaving does not take the state; her last does.
      await presence.remove(room, { user: 'alice', conn: 'c1' });
      assert.deepEqual((await presence.list(room)).members[0]?.state, { status: 'away' });
      await presence.remove(room, { user: 'alice', conn: 'c3' });
      await presence.add(room, entry('alice', 'c4', 400));
      assert.deepEqual(await presence.members(room), [
        { user: 'bob', since: 200 },
        { user: 'alice', since: 400 },
      ]);
      await presence.remove(room, { user: 'alice', conn: 'c4' });
      await presence.remove(room, { user: 'bob', conn: 'c2' });
    });

    test('setState is refused for a connection that is not in the room', async ({ presence, room, entry }) => {
      assert.equal(await presence.setState(room, { user: 'alice', conn: 'c1' }, '{"a":1}'), false);
      await presence.add(room, entry('alice', 'c1', 100));
      assert.equal(await presence.setState(room, { user: 'alice', conn: 'other' }, '{"a":1}'), false);
      assert.deepEqual(await presence.members(room), [{ user: 'alice', since: 100 }]);
      await presence.remove(room, { user: 'alice', conn: 'c1' });
      assert.equal(await presence.setState(room, { user: 'alice', conn: 'c1' }, '{"a":1}'), false);
      assert.deepEqual(await presence.list(room), { members: [], count: 0 });
    });

    test('list reads the first members and the count: a large room costs its count, not its list', async ({ presence, room, entry }) => {
      for (let i = 0; i < 7; i++) await presence.add(room, { ...entry(`u${i}`, `c${i}`, 100 + i), ...(i === 1 ? { state: '{"n":1}' } : {}) });
      assert.deepEqual(await presence.list(room, 2), {
        members: [
          { user: 'u0', since: 100 },
          { user: 'u1', since: 101, state: { n: 1 } },
        ],
        count: 7,
      });
      assert.deepEqual(await presence.list(room, 0), { members: [], count: 7 });
      assert.equal((await presence.list(room)).members.length, 7);
      for (let i = 0; i < 7; i++) await presence.remove(room, { user: `u${i}`, conn: `c${i}` });
    });
  });
}
