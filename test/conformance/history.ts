/**
 * The History contract (src/history/history.ts), as one suite every driver
 * runs: `historyConformance('memory', (bus, options) => new MemoryHistory({ bus, ...options }))`.
 *
 * Publishes are observed through a Bus the suite acquires the room channel
 * on. By default that is a MemoryBus handed to the driver; a driver that
 * publishes by itself (Redis: XADD + PUBLISH in one script) passes
 * `createBus` returning a bus that can hear its publishes.
 *
 * "Exactly once" is checked without sleeping: after the appends under test
 * the suite appends a sentinel and waits for it; channels are ordered, so
 * every earlier publish has arrived by then.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import type { Bus, BusEnvelope } from '../../src/bus/bus.js';
import type { AppendTarget, ChatDraft, History, RoomRef } from '../../src/history/history.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

export interface HistoryTestOptions {
  maxMessages: number;
  recoveryLimit: number;
  idempotencyWindowMs: number;
  now: () => number;
}

export type CreateHistory = (bus: Bus, options: HistoryTestOptions) => Promise<History> | History;

export interface HistoryConformanceOptions {
  /** A started-on-demand bus on which the driver's publishes are observable. Default: a new MemoryBus. */
  createBus?: () => Promise<Bus> | Bus;
  /** Set when the driver's service is missing: every test is skipped with this reason. */
  skip?: string | false;
}

const DEFAULTS: Omit<HistoryTestOptions, 'now'> = { maxMessages: 10, recoveryLimit: 100, idempotencyWindowMs: 1000 };

interface Fixture {
  history: History;
  room: RoomRef;
  target: AppendTarget;
  clock: { t: number };
  /** Every envelope received on the room channel, in arrival order. */
  envelopes: BusEnvelope[];
  /** The messages carried by `envelopes`. */
  published(): ChatMessage[];
  draft(n: number, extra?: Partial<ChatDraft>): ChatDraft;
  /** Append `count` messages numbered from `first`. */
  fill(count: number, first?: number): Promise<ChatMessage[]>;
  /** Append a sentinel and wait until it is published: every earlier publish has then arrived. */
  settle(): Promise<void>;
  /** `settle`, then the published messages other than sentinels. */
  settledPublished(): Promise<ChatMessage[]>;
  done(): Promise<void>;
}

export function historyConformance(
  name: string,
  createHistory: CreateHistory,
  cleanup?: (history: History) => Promise<void> | void,
  options: HistoryConformanceOptions = {},
): void {
  const createBus = options.createBus ?? (() => new MemoryBus());
  const namespace = testNamespace('h');
  let rooms = 0;

  async function setup(overrides: Partial<HistoryTestOptions> = {}): Promise<Fixture> {
    const clock = { t: 1_700_000_000_000 };
    const envelopes: BusEnvelope[] = [];
    const room: RoomRef = { tenant: `${namespace}-t`, room: `room-${++rooms}` };
    const channel = `${namespace}:room:${room.room}`;
    const bus = await createBus();
    await bus.start((received, envelope) => {
      if (received === channel) envelopes.push(envelope);
    });
    await bus.acquire(channel);
    const history = await createHistory(bus, { ...DEFAULTS, now: () => clock.t, ...overrides });
    await history.start();
    const target: AppendTarget = {
      channel,
      envelope: (message) => ({
        v: 1,
        type: 'deliver',
        id: message.id,
        origin: 'node-a',
        class: 'chat',
        payload: JSON.stringify(message),
      }),
    };
    let sentinels = 0;
    const draft = (n: number, extra: Partial<ChatDraft> = {}): ChatDraft => ({
      op: 'message',
      class: 'chat',
      room: room.room,
      id: `m${n}-${testNamespace('')}`,
      from: 'alice',
      ts: clock.t,
      data: { n, text: `message ${n} "quoted" \\ ünïcode` },
      ...extra,
    });
    const published = (): ChatMessage[] => envelopes.map((envelope) => JSON.parse(envelope.payload) as ChatMessage);
    const fixture: Fixture = {
      history,
      room,
      target,
      clock,
      envelopes,
      published,
      draft,
      async fill(count, first = 1) {
        const stored: ChatMessage[] = [];
        for (let n = first; n < first + count; n += 1) stored.push((await history.append(room, draft(n), target)).message);
        return stored;
      },
      async settle() {
        // Unique across rooms too: message ids are unique per message (a PostgreSQL history keys rows by tenant and id).
        const id = `sentinel-${room.room}-${++sentinels}`;
        await history.append(room, { ...draft(-1), id, from: 'sentinel' }, target);
        await waitFor(() => published().some((message) => message.id === id), { what: `sentinel ${id} published` });
      },
      async settledPublished() {
        await fixture.settle();
        return published().filter((message) => message.from !== 'sentinel');
      },
      async done() {
        await history.close();
        await cleanup?.(history);
        await bus.release(channel);
        await bus.close();
      },
    };
    return fixture;
  }

  /** Run `body` on a fresh fixture and always tear it down. */
  function test(title: string, body: (f: Fixture) => Promise<void>, overrides?: Partial<HistoryTestOptions>): void {
    it(title, { skip: options.skip || false }, async () => {
      const fixture = await setup(overrides);
      try {
        await body(fixture);
      } finally {
        await fixture.done();
      }
    });
  }

  const offsets = (messages: ChatMessage[]): number[] => messages.map((message) => message.offset);
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  describe(`History conformance: ${name}`, () => {
    describe('append', () => {
      test('stores the draft with offsets from 1 and one epoch', async (f) => {
        const draft = f.draft(1, { cmid: 'c1' });
        const result = await f.history.append(f.room, draft, f.target);
        assert.equal(result.duplicate, false);
        assert.deepEqual(result.message, { ...draft, offset: 1, epoch: result.message.epoch });
        assert.equal(typeof result.message.epoch, 'string');
        assert.ok(result.message.epoch.length > 0 && result.message.epoch.length <= 64);
        const more = await f.fill(3, 2);
        assert.deepEqual(offsets(more), [2, 3, 4]);
        assert.ok(more.every((message) => message.epoch === result.message.epoch));
        const recent = await f.history.recent(f.room, 10);
        assert.deepEqual(recent.messages, [result.message, ...more]);
        assert.deepEqual(recent.position, { offset: 4, epoch: result.message.epoch });
      });

      test('publishes exactly once per stored message, with its offset, in offset order', async (f) => {
        const stored = await f.fill(5);
        const published = await f.settledPublished();
        assert.deepEqual(published, stored);
        assert.equal(f.envelopes.length, 6);
        assert.deepEqual(
          f.envelopes.slice(0, 5).map((envelope) => envelope.id),
          stored.map((message) => message.id),
        );
        for (const envelope of f.envelopes) {
          assert.equal(envelope.v, 1);
          assert.equal(envelope.type, 'deliver');
          assert.equal(envelope.class, 'chat');
          assert.equal(envelope.origin, 'node-a');
        }
      });

      test(
        'keeps offsets contiguous and publish order equal to offset order under concurrent appends',
        async (f) => {
          const results = await Promise.all(range(1, 40).map((n) => f.history.append(f.room, f.draft(n), f.target)));
          const stored = results.map((result) => result.message);
          assert.deepEqual(
            [...offsets(stored)].sort((a, b) => a - b),
            range(1, 40),
          );
          const byOffset = [...stored].sort((a, b) => a.offset - b.offset);
          assert.deepEqual((await f.history.recent(f.room, 40)).messages, byOffset);
          const published = await f.settledPublished();
          assert.deepEqual(offsets(published), range(1, 40));
          assert.deepEqual(published, byOffset);
        },
        { maxMessages: 100 },
      );

      test('a repeated cmid from the same sender returns the original and stores and publishes nothing', async (f) => {
        const first = await f.history.append(f.room, f.draft(1, { cmid: 'abc' }), f.target);
        await f.fill(2, 2);
        const again = await f.history.append(f.room, f.draft(9, { cmid: 'abc' }), f.target);
        assert.equal(again.duplicate, true);
        assert.deepEqual(again.message, first.message);
        const retried = await Promise.all([1, 2, 3].map(() => f.history.append(f.room, f.draft(9, { cmid: 'abc' }), f.target)));
        assert.ok(retried.every((result) => result.duplicate && result.message.offset === 1));
        const published = await f.settledPublished();
        assert.deepEqual(offsets(published), [1, 2, 3]);
        assert.deepEqual(offsets((await f.history.recent(f.room, 10)).messages), [1, 2, 3, 4]);
      });

      test('concurrent appends with one new cmid store it once', async (f) => {
        const results = await Promise.all(range(1, 10).map(() => f.history.append(f.room, f.draft(1, { cmid: 'race' }), f.target)));
        assert.equal(results.filter((result) => !result.duplicate).length, 1);
        assert.ok(results.every((result) => result.message.offset === 1));
        assert.deepEqual(offsets(await f.settledPublished()), [1]);
      });

      test('cmid is scoped by sender and room', async (f) => {
        const a = await f.history.append(f.room, f.draft(1, { cmid: 'same' }), f.target);
        const b = await f.history.append(f.room, f.draft(2, { cmid: 'same', from: 'bob' }), f.target);
        const otherRoom: RoomRef = { tenant: f.room.tenant, room: `${f.room.room}-other` };
        const c = await f.history.append(otherRoom, f.draft(3, { cmid: 'same', room: otherRoom.room }), f.target);
        assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, false, false]);
        assert.deepEqual([a.message.offset, b.message.offset, c.message.offset], [1, 2, 1]);
      });

      test('a cmid is new again once the idempotency window has passed', async (f) => {
        const first = await f.history.append(f.room, f.draft(1, { cmid: 'late' }), f.target);
        f.clock.t += 999;
        assert.equal((await f.history.append(f.room, f.draft(1, { cmid: 'late' }), f.target)).duplicate, true);
        f.clock.t += 2;
        const later = await f.history.append(f.room, f.draft(2, { cmid: 'late' }), f.target);
        assert.equal(later.duplicate, false);
        assert.equal(later.message.offset, first.message.offset + 1);
      });

      test('rooms of different tenants are separate logs', async (f) => {
        const other: RoomRef = { tenant: `${f.room.tenant}-2`, room: f.room.room };
        await f.fill(3);
        const result = await f.history.append(other, f.draft(1), f.target);
        assert.equal(result.message.offset, 1);
        assert.deepEqual(offsets((await f.history.recent(other, 10)).messages), [1]);
        assert.deepEqual(offsets((await f.history.recent(f.room, 10)).messages), [1, 2, 3]);
      });
    });

    describe('recent', () => {
      test('returns the newest `limit` messages, oldest first, and the position', async (f) => {
        const stored = await f.fill(15);
        const recent = await f.history.recent(f.room, 4);
        assert.deepEqual(recent.messages, stored.slice(11));
        assert.deepEqual(recent.position, { offset: 15, epoch: stored[0]?.epoch });
        assert.deepEqual((await f.history.recent(f.room, 0)).messages, []);
        // Never more than kept.
        assert.deepEqual(offsets((await f.history.recent(f.room, 1000)).messages), range(6, 15));
      });

      test('on an empty log returns nothing at offset 0 with a stable epoch', async (f) => {
        const first = await f.history.recent(f.room, 10);
        assert.deepEqual(first.messages, []);
        assert.equal(first.position.offset, 0);
        assert.ok(first.position.epoch.length > 0 && first.position.epoch.length <= 64);
        const second = await f.history.recent(f.room, 10);
        assert.deepEqual(second.position, first.position);
        const stored = await f.history.append(f.room, f.draft(1), f.target);
        assert.equal(stored.message.epoch, first.position.epoch);
      });
    });

    describe('since: the recovery table', () => {
      test('empty log, offset 0 (any epoch): recovered, nothing missed', async (f) => {
        const result = await f.history.since(f.room, { offset: 0, epoch: 'never-seen' }, 50);
        assert.equal(result.recovered, true);
        assert.deepEqual(result.messages, []);
        assert.equal(result.position.offset, 0);
      });

      test('empty log, offset > 0: in the future, not recovered', async (f) => {
        const { position } = await f.history.recent(f.room, 1);
        const result = await f.history.since(f.room, { offset: 3, epoch: position.epoch }, 50);
        assert.equal(result.recovered, false);
        assert.deepEqual(result.messages, []);
        assert.deepEqual(result.position, position);
      });

      test('offset 0 with every message kept and within the limit: recovered, all of them', async (f) => {
        const stored = await f.fill(4);
        const result = await f.history.since(f.room, { offset: 0, epoch: 'old-epoch' }, 50);
        assert.equal(result.recovered, true);
        assert.deepEqual(result.messages, stored);
        assert.deepEqual(result.position, { offset: 4, epoch: stored[0]?.epoch });
      });

      test('a position in the current epoch: recovered, exactly the messages after it', async (f) => {
        const stored = await f.fill(6);
        const epoch = stored[0]?.epoch ?? '';
        const result = await f.history.since(f.room, { offset: 2, epoch }, 50);
        assert.equal(result.recovered, true);
        assert.deepEqual(result.messages, stored.slice(2));
        assert.deepEqual(result.position, { offset: 6, epoch });
      });

      test('a position at the newest offset: recovered, nothing missed', async (f) => {
        const stored = await f.fill(3);
        const result = await f.history.since(f.room, { offset: 3, epoch: stored[0]?.epoch ?? '' }, 50);
        assert.equal(result.recovered, true);
        assert.deepEqual(result.messages, []);
      });

      test('a position trimmed away: not recovered, the most recent `limit` messages', async (f) => {
        const stored = await f.fill(15); // keeps 6..15
        const epoch = stored[0]?.epoch ?? '';
        const trimmed = await f.history.since(f.room, { offset: 4, epoch }, 50);
        assert.equal(trimmed.recovered, false);
        assert.deepEqual(trimmed.messages, stored.slice(5));
        assert.deepEqual(trimmed.position, { offset: 15, epoch });
        const limited = await f.history.since(f.room, { offset: 4, epoch }, 3);
        assert.equal(limited.recovered, false);
        assert.deepEqual(limited.messages, stored.slice(12));
        // The oldest kept message is 6: a client at 5 misses nothing that is gone.
        const edge = await f.history.since(f.room, { offset: 5, epoch }, 50);
        assert.equal(edge.recovered, true);
        assert.deepEqual(edge.messages, stored.slice(5));
      });

      test('offset 0 after trimming: not recovered', async (f) => {
        const stored = await f.fill(12);
        const result = await f.history.since(f.room, { offset: 0, epoch: stored[0]?.epoch ?? '' }, 50);
        assert.equal(result.recovered, false);
        assert.deepEqual(result.messages, stored.slice(2));
      });

      test('a position in the future: not recovered, the most recent `limit` messages', async (f) => {
        const stored = await f.fill(5);
        const epoch = stored[0]?.epoch ?? '';
        const result = await f.history.since(f.room, { offset: 6, epoch }, 2);
        assert.equal(result.recovered, false);
        assert.deepEqual(result.messages, stored.slice(3));
        assert.deepEqual(result.position, { offset: 5, epoch });
      });

      test('a position from another epoch: not recovered, the most recent `limit` messages', async (f) => {
        const stored = await f.fill(5);
        const result = await f.history.since(f.room, { offset: 2, epoch: 'another-epoch' }, 50);
        assert.equal(result.recovered, false);
        assert.deepEqual(result.messages, stored);
        assert.deepEqual(result.position, { offset: 5, epoch: stored[0]?.epoch });
      });

      test('more missed than `limit`: not recovered, the most recent `limit` messages', async (f) => {
        const stored = await f.fill(10);
        const epoch = stored[0]?.epoch ?? '';
        const over = await f.history.since(f.room, { offset: 2, epoch }, 7);
        assert.equal(over.recovered, false);
        assert.deepEqual(over.messages, stored.slice(3));
        const exact = await f.history.since(f.room, { offset: 2, epoch }, 8);
        assert.equal(exact.recovered, true);
        assert.deepEqual(exact.messages, stored.slice(2));
        const fromZero = await f.history.since(f.room, { offset: 0, epoch }, 9);
        assert.equal(fromZero.recovered, false);
        assert.deepEqual(fromZero.messages, stored.slice(1));
      });

      test(
        'more missed than `recoveryLimit`: not recovered, at most `recoveryLimit` messages',
        async (f) => {
          const stored = await f.fill(10);
          const epoch = stored[0]?.epoch ?? '';
          const over = await f.history.since(f.room, { offset: 5, epoch }, 50);
          assert.equal(over.recovered, false);
          assert.deepEqual(over.messages, stored.slice(6));
          const exact = await f.history.since(f.room, { offset: 6, epoch }, 50);
          assert.equal(exact.recovered, true);
          assert.deepEqual(exact.messages, stored.slice(6));
        },
        { recoveryLimit: 4 },
      );

      test('`limit` 0 recovers only a client that missed nothing', async (f) => {
        const stored = await f.fill(3);
        const epoch = stored[0]?.epoch ?? '';
        assert.equal((await f.history.since(f.room, { offset: 3, epoch }, 0)).recovered, true);
        const behind = await f.history.since(f.room, { offset: 2, epoch }, 0);
        assert.equal(behind.recovered, false);
        assert.deepEqual(behind.messages, []);
      });
    });

    describe('lifecycle', () => {
      test('health is ok while running; close is idempotent; calls after close reject with a NerveError', async (f) => {
        assert.equal(f.history.health().ok, true);
        assert.equal(f.history.health().lane, 'history');
        await Promise.all([f.history.close(), f.history.close()]);
        await f.history.close();
        assert.equal(f.history.health().ok, false);
        await assert.rejects(f.history.append(f.room, f.draft(1), f.target), (error) => isNerveError(error));
        await assert.rejects(f.history.recent(f.room, 1), (error) => isNerveError(error));
      });
    });
  });
}
