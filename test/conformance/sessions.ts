/**
 * The RoomSessions contract (src/sessions/sessions.ts), as one suite every
 * driver runs: `sessionsConformance('memory', (options) => new MemoryRoomSessions(options))`.
 * Time comes from an injected clock (`now` arguments and the `now` option), never from sleeping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ParticipantTime } from '../../src/events/events.js';
import type { RoomRef } from '../../src/history/history.js';
import { START_SKEW_MS, type RoomSessions, type RoomSessionsOptions } from '../../src/sessions/sessions.js';
import { testNamespace } from '../helpers/wait.js';

export type CreateSessions = (options: Required<RoomSessionsOptions>) => Promise<RoomSessions> | RoomSessions;

export interface SessionsConformanceOptions {
  /** Set when the driver's service is missing: every test is skipped with this reason. */
  skip?: string | false;
}

interface Fixture {
  /** An open store; `second()` gives another instance sharing its store (a second node). */
  sessions: RoomSessions;
  second: () => Promise<RoomSessions>;
  clock: { t: number };
  room: RoomRef;
}

const T0 = 1_700_000_000_000;

function byUser(participants: ParticipantTime[]): ParticipantTime[] {
  return [...participants].sort((a, b) => a.user.localeCompare(b.user));
}

export function sessionsConformance(
  name: string,
  createSessions: CreateSessions,
  cleanup?: (sessions: RoomSessions, room: RoomRef) => Promise<void> | void,
  options: SessionsConformanceOptions = {},
): void {
  const namespace = testNamespace('rs');
  let rooms = 0;

  function test(title: string, body: (f: Fixture) => Promise<void>): void {
    it(title, { skip: options.skip || false }, async () => {
      const clock = { t: T0 };
      const settings = { now: () => clock.t };
      const sessions = await createSessions(settings);
      await sessions.open();
      const opened: RoomSessions[] = [sessions];
      const room: RoomRef = { tenant: `${namespace}-t`, room: `room-${++rooms}` };
      try {
        await body({
          sessions,
          clock,
          room,
          second: async () => {
            const other = await createSessions(settings);
            await other.open();
            opened.push(other);
            return other;
          },
        });
      } finally {
        await cleanup?.(sessions, room);
        for (const store of opened) await store.close();
      }
    });
  }

  describe(`RoomSessions conformance: ${name}`, () => {
    test('one id from start to end, with the start time and duration', async ({ sessions, room }) => {
      const id = await sessions.start(room, T0);
      assert.equal(typeof id, 'string');
      assert.ok(id.length > 0);
      assert.equal(await sessions.current(room), id);
      assert.equal(await sessions.joined(room, 'alice', T0), id);
      const ended = await sessions.end(room, T0 + 5000);
      assert.deepEqual(ended, { id, startedAt: T0, durationMs: 5000, participants: [{ user: 'alice', ms: 5000 }], peakParticipants: 1 });
    });

    test("adds up a user's stays and counts time only while present", async ({ sessions, room }) => {
      await sessions.start(room, T0);
      await sessions.joined(room, 'alice', T0);
      assert.equal(await sessions.left(room, 'alice', T0 + 1000), 1000);
      assert.equal(await sessions.left(room, 'alice', T0 + 2000), 1000, 'leaving twice adds nothing');
      await sessions.joined(room, 'alice', T0 + 3000);
      await sessions.joined(room, 'alice', T0 + 3500); // already present: the stay started at 3000
      assert.equal(await sessions.left(room, 'alice', T0 + 4000), 2000);
      assert.equal(await sessions.left(room, 'nobody', T0 + 4000), undefined, 'an unknown user');
      const ended = await sessions.end(room, T0 + 9000);
      assert.deepEqual(ended.participants, [{ user: 'alice', ms: 2000 }]);
      assert.equal(ended.peakParticipants, 1);
    });

    test('peakParticipants is the most users present at once; open stays count up to the end', async ({ sessions, room }) => {
      await sessions.start(room, T0);
      await sessions.joined(room, 'a', T0);
      await sessions.joined(room, 'b', T0 + 100);
      await sessions.left(room, 'a', T0 + 200);
      await sessions.joined(room, 'c', T0 + 300);
      await sessions.joined(room, 'a', T0 + 400);
      await sessions.left(room, 'b', T0 + 500);
      const ended = await sessions.end(room, T0 + 1000);
      assert.equal(ended.peakParticipants, 3);
      assert.deepEqual(byUser(ended.participants), [
        { user: 'a', ms: 200 + 600 },
        { user: 'b', ms: 400 },
        { user: 'c', ms: 700 },
      ]);
    });

    test('end forgets the session: the next one has a new id', async ({ sessions, room }) => {
      const first = await sessions.start(room, T0);
      await sessions.joined(room, 'alice', T0);
      await sessions.end(room, T0 + 1000);
      assert.equal(await sessions.left(room, 'alice', T0 + 1000), undefined, 'no session any more');
      const second = await sessions.start(room, T0 + 60_000);
      assert.notEqual(second, first);
      const ended = await sessions.end(room, T0 + 61_000);
      assert.deepEqual(ended, { id: second, startedAt: T0 + 60_000, durationMs: 1000, participants: [], peakParticipants: 0 });
    });

    test('current and joined create a session when there is none', async ({ sessions, room, clock }) => {
      clock.t = T0 + 42;
      const id = await sessions.current(room);
      assert.equal(await sessions.current(room), id);
      assert.equal(await sessions.joined(room, 'bob', T0 + 50), id);
      const ended = await sessions.end(room, T0 + 100);
      assert.equal(ended.id, id);
      assert.equal(ended.startedAt, T0 + 42);
    });

    test('end without a session ends an empty one', async ({ sessions, room }) => {
      const ended = await sessions.end(room, T0);
      assert.equal(typeof ended.id, 'string');
      assert.deepEqual({ ...ended, id: '' }, { id: '', startedAt: T0, durationMs: 0, participants: [], peakParticipants: 0 });
    });

    test('start keeps a session a join opened a moment before, and replaces a leftover', async ({ sessions, room }) => {
      // A join on another node reached the store before the start that presence ordered first.
      const early = await sessions.joined(room, 'bob', T0 + 30);
      assert.equal(await sessions.start(room, T0), early);
      await sessions.joined(room, 'alice', T0 + 10);
      const ended = await sessions.end(room, T0 + 1030);
      assert.equal(ended.id, early);
      assert.equal(ended.startedAt, T0, 'the start time is the earlier one');
      assert.deepEqual(byUser(ended.participants), [
        { user: 'alice', ms: 1020 },
        { user: 'bob', ms: 1000 },
      ]);
      // A session whose end never ran is not continued by the next start.
      const leftover = await sessions.joined(room, 'carol', T0 + 2000);
      const fresh = await sessions.start(room, T0 + 2000 + START_SKEW_MS + 1);
      assert.notEqual(fresh, leftover);
      const next = await sessions.end(room, T0 + 2000 + START_SKEW_MS + 1);
      assert.deepEqual(next.participants, [], 'nothing of the leftover');
    });

    test('two nodes share one session', async ({ sessions, second, room }) => {
      const other = await second();
      const id = await sessions.start(room, T0);
      assert.equal(await other.current(room), id);
      assert.equal(await other.joined(room, 'alice', T0), id);
      assert.equal(await sessions.joined(room, 'bob', T0 + 100), id);
      assert.equal(await sessions.left(room, 'alice', T0 + 1000), 1000);
      const ended = await other.end(room, T0 + 2000);
      assert.equal(ended.id, id);
      assert.deepEqual(byUser(ended.participants), [
        { user: 'alice', ms: 1000 },
        { user: 'bob', ms: 1900 },
      ]);
      assert.equal(ended.peakParticipants, 2);
      assert.notEqual(await sessions.current(room), id, 'ended for both nodes');
      await sessions.end(room, T0 + 3000);
    });

    test('concurrent joins and leaves from two nodes are each counted once', async ({ sessions, second, room }) => {
      const other = await second();
      await sessions.start(room, T0);
      const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
      await Promise.all(users.map((user, i) => (i % 2 ? other : sessions).joined(room, user, T0)));
      await Promise.all(users.map((user, i) => (i % 2 ? sessions : other).joined(room, user, T0 + 1)));
      const times = await Promise.all(users.map((user, i) => (i % 2 ? sessions : other).left(room, user, T0 + 500)));
      assert.deepEqual(
        times,
        users.map(() => 500),
      );
      const ended = await sessions.end(room, T0 + 1000);
      assert.equal(ended.peakParticipants, 20);
      assert.equal(ended.participants.length, 20);
      assert.ok(ended.participants.every((p) => p.ms === 500));
    });

    test('refuses calls before open and after close', async ({ room }) => {
      const store = await createSessions({ now: () => T0 });
      await assert.rejects(store.current(room), { name: 'NerveError', code: 'unavailable' });
      assert.equal(store.health().ok, false);
      await store.open();
      assert.equal(store.health().ok, true);
      await store.close();
      await store.close();
      await assert.rejects(store.joined(room, 'a', T0), { name: 'NerveError', code: 'unavailable' });
      assert.equal(store.health().ok, false);
    });
  });
}
