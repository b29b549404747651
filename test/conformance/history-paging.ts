/**
 * History paging (`History.page`, src/history/paging.ts) as one suite every
 * driver runs: one offset cursor across the hot store and the archive, no
 * gap and no duplicate at the seam, `more` claimed only when known, the
 * epoch check, and tenants apart. A driver keeps `maxMessages` hot; with
 * `archive: true` its `store` hook puts each appended message where the
 * archive reads it (the chat-store worker's job in a deployment).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type pg from 'pg';
import { hashTag } from '../../src/bus/channels.js';
import { PostgresChatArchive } from '../../src/history/archive.js';
import { RedisStreamsHistory } from '../../src/history/redis-streams.js';
import type { RedisStreamsHistoryOptions } from '../../src/history/redis-streams-options.js';
import { ChatTables } from '../../src/postgres/chat-tables.js';
import type { AppendTarget, ChatDraft, History, HistoryPage, RoomRef } from '../../src/history/history.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { testNamespace } from '../helpers/wait.js';

export interface PagingSubject {
  history: History;
  /** Archive one appended message (absent: the driver archives by itself, or has no archive). */
  store?: (room: RoomRef, message: ChatMessage) => Promise<void>;
  close(): Promise<void>;
}

export interface PagingDriver {
  /** A started history keeping `maxMessages` messages per room in its hot store, reading an archive when `archive`. */
  create(options: { maxMessages: number; archive: boolean }): Promise<PagingSubject>;
  /** The driver's hot store is its archive (the PostgreSQL history): there is no archive-less case to run. */
  alwaysArchived?: boolean;
  skip?: string | false;
}

/** The room's channel carries the room's hash tag, so a Redis Cluster driver may SPUBLISH on it from the append script. */
const target = (room: RoomRef): AppendTarget => ({
  channel: `paging-suite:${hashTag(room.tenant, room.room)}`,
  envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'paging-suite', class: 'chat', payload: JSON.stringify(message) }),
});

function draft(room: RoomRef, n: number): ChatDraft {
  const base: ChatDraft = {
    op: 'message',
    class: 'chat',
    room: room.room,
    id: `${room.room}-${n}`,
    from: n % 2 ? 'alice' : 'bob',
    ts: 1_700_000_000_000 + n,
    data: { n },
  };
  return n % 3 === 0 ? { ...base, cmid: `c-${n}` } : base;
}

/** Every page from the newest down, following `more`; bounded so a page that always claims more fails instead of looping. */
async function walk(history: History, room: RoomRef, limit: number, epoch?: string): Promise<HistoryPage[]> {
  const pages: HistoryPage[] = [];
  let before: number | undefined;
  for (let i = 0; i < 200; i += 1) {
    const page = await history.page(room, { before, limit, epoch });
    pages.push(page);
    if (!page.more) return pages;
    const first = page.messages[0];
    assert.ok(first, 'a page that claims more holds a message to page before');
    before = first.offset;
  }
  assert.fail('paging did not end');
}

/** A `store` hook that writes the row as the chat-store worker does (ChatTables.insertEvent: no message_json). */
export function storeAsChatStore(pool: pg.Pool, schema: string): (room: RoomRef, message: ChatMessage) => Promise<void> {
  const tables = new ChatTables(schema);
  return (room, message) =>
    tables.insertEvent(pool, {
      tenant: room.tenant,
      id: message.id,
      room: room.room,
      session: null,
      from: message.from,
      sentAt: message.ts,
      offset: message.offset,
      epoch: message.epoch,
      body: message.data,
      cmid: message.cmid ?? null,
      eventId: message.id,
    });
}

/**
 * A Redis Streams subject on `redis` (a URL or cluster nodes, and the key
 * prefix), trimmed exactly, whose archive is the PostgreSQL chat tables of
 * `schema` filled as the chat-store worker fills them.
 */
export async function redisStreamsSubject(
  redis: Pick<RedisStreamsHistoryOptions, 'url' | 'nodes' | 'publishCommand' | 'prefix'>,
  pool: pg.Pool,
  schema: string,
  { maxMessages, archive }: { maxMessages: number; archive: boolean },
): Promise<PagingSubject> {
  const history = new RedisStreamsHistory({
    ...redis,
    maxMessages,
    // Exact trimming, so the stream holds exactly `maxMessages` and the seam is where the test says.
    approximateTrim: false,
    archive: archive ? new PostgresChatArchive(pool, schema) : undefined,
  });
  await history.start();
  return { history, ...(archive ? { store: storeAsChatStore(pool, schema) } : {}), close: () => history.close() };
}

const offsets = (messages: ChatMessage[]): number[] => messages.map((message) => message.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function historyPagingConformance(name: string, driver: PagingDriver): void {
  describe(`History.page conformance: ${name}`, { skip: driver.skip ?? false }, () => {
    const subjects: PagingSubject[] = [];
    after(async () => {
      for (const subject of subjects) await subject.close();
    });

    async function filled(count: number, options: { maxMessages: number; archive: boolean }, room: RoomRef = { tenant: 'acme', room: testNamespace('r') }) {
      const subject = await driver.create(options);
      subjects.push(subject);
      const appended: ChatMessage[] = [];
      for (let n = 1; n <= count; n += 1) {
        const { message } = await subject.history.append(room, draft(room, n), target(room));
        await subject.store?.(room, message);
        appended.push(message);
      }
      return { history: subject.history, room, appended };
    }

    it('pages every message once, in offset order, across the hot store and the archive', async () => {
      const { history, room, appended } = await filled(23, { maxMessages: 5, archive: true });
      const pages = await walk(history, room, 4);
      // 23 = 5 pages of 4 and one of 3; every page oldest first, each older than the one before.
      assert.deepEqual(
        pages.map((page) => page.messages.length),
        [4, 4, 4, 4, 4, 3],
      );
      assert.deepEqual(
        pages.map((page) => page.more),
        [true, true, true, true, true, false],
      );
      const all = [...pages].reverse().flatMap((page) => page.messages);
      assert.deepEqual(offsets(all), range(1, 23));
      assert.deepEqual(all, appended, 'the messages as they were delivered, whichever store answered');
      for (const page of pages) assert.equal(page.epoch, appended[0]!.epoch);
    });

    it('meets at the seam without a gap or a duplicate', async () => {
      const { history, room, appended } = await filled(12, { maxMessages: 5, archive: true });
      // The hot store holds 8..12: a page below 10 takes 8 and 9 from it and 4..7 from the archive.
      const page = await history.page(room, { before: 10, limit: 6 });
      assert.deepEqual(offsets(page.messages), range(4, 9));
      assert.deepEqual(page.messages, appended.slice(3, 9));
      assert.equal(page.more, true);
      // Right at the seam: the archive alone, up to offset 1.
      const below = await history.page(room, { before: 8, limit: 10 });
      assert.deepEqual(offsets(below.messages), range(1, 7));
      assert.equal(below.more, false);
    });

    it('claims more only when it knows: exactly a page of what is left says no more', async () => {
      const { history, room } = await filled(8, { maxMessages: 5, archive: true });
      const page = await history.page(room, { before: 5, limit: 4 });
      assert.deepEqual(offsets(page.messages), range(1, 4));
      assert.equal(page.more, false);
      const nothing = await history.page(room, { before: 1, limit: 4 });
      assert.deepEqual(nothing.messages, []);
      assert.equal(nothing.more, false);
    });

    it('reads the newest without before, and a before beyond the newest as the newest', async () => {
      const { history, room } = await filled(7, { maxMessages: 5, archive: true });
      assert.deepEqual(offsets((await history.page(room, { limit: 3 })).messages), [5, 6, 7]);
      assert.deepEqual(offsets((await history.page(room, { before: 1_000_000, limit: 3 })).messages), [5, 6, 7]);
      const whole = await history.page(room, { limit: 100 });
      assert.deepEqual(offsets(whole.messages), range(1, 7));
      assert.equal(whole.more, false);
    });

    it('answers an empty room with no messages, no more, and the epoch a join would report', async () => {
      const subject = await driver.create({ maxMessages: 5, archive: true });
      subjects.push(subject);
      const room = { tenant: 'acme', room: testNamespace('empty') };
      const page = await subject.history.page(room, { limit: 10 });
      assert.deepEqual(page, { messages: [], more: false, epoch: page.epoch });
      assert.ok(page.epoch.length > 0);
      assert.equal((await subject.history.recent(room, 1)).position.epoch, page.epoch);
    });

    it('refuses another epoch with epoch_mismatch, and pages with the current one', async () => {
      const { history, room, appended } = await filled(6, { maxMessages: 5, archive: true });
      await assert.rejects(history.page(room, { limit: 3, epoch: 'not-this-epoch' }), (error) => isNerveError(error) && error.code === 'epoch_mismatch');
      const page = await history.page(room, { before: 3, limit: 3, epoch: appended[0]!.epoch });
      assert.deepEqual(offsets(page.messages), [1, 2]);
    });

    it('keeps tenants apart: the same room id of another tenant is another log', async () => {
      const room = { tenant: 'acme', room: testNamespace('shared') };
      const { history } = await filled(9, { maxMessages: 5, archive: true }, room);
      const other = await history.page({ tenant: 'globex', room: room.room }, { limit: 100 });
      assert.deepEqual(other.messages, []);
      assert.equal(other.more, false);
      const below = await history.page({ tenant: 'globex', room: room.room }, { before: 5, limit: 100 });
      assert.deepEqual(below.messages, [], 'not from the archive either');
    });

    if (!driver.alwaysArchived) {
      it('without an archive, ends with the hot store: more is false once it is exhausted', async () => {
        const { history, room, appended } = await filled(12, { maxMessages: 5, archive: false });
        const pages = await walk(history, room, 3);
        assert.deepEqual(
          pages.map((page) => offsets(page.messages)),
          [
            [10, 11, 12],
            [8, 9],
          ],
        );
        assert.deepEqual(
          pages.map((page) => page.more),
          [true, false],
        );
        assert.deepEqual(pages[1]!.messages, appended.slice(7, 9));
        const older = await history.page(room, { before: 8, limit: 3 });
        assert.deepEqual(older, { messages: [], more: false, epoch: appended[0]!.epoch });
      });
    }
  });
}
