/**
 * History paging without servers: the `history` frame's schema, the memory
 * history through the paging suite (its archive a map, as the chat-store
 * worker would fill it), and the seam rule of pageAcross on its own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import type { RoomRef } from '../../src/history/history.js';
import { MemoryHistory } from '../../src/history/memory.js';
import { pageAcross, type ChatArchive } from '../../src/history/paging.js';
import { decodeClientFrame } from '../../packages/protocol/src/codec.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { historyPagingConformance } from '../conformance/history-paging.js';

/** The chat tables as a map: what the chat-store worker stored, read as PostgresChatArchive reads it. */
class MapArchive implements ChatArchive {
  readonly rows = new Map<string, ChatMessage[]>();
  reads = 0;
  store(room: RoomRef, message: ChatMessage): void {
    const key = JSON.stringify([room.tenant, room.room]);
    this.rows.set(key, [...(this.rows.get(key) ?? []), message]);
  }
  async older(room: RoomRef, epoch: string, before: number, limit: number): Promise<ChatMessage[]> {
    this.reads += 1;
    const rows = (this.rows.get(JSON.stringify([room.tenant, room.room])) ?? []).filter((m) => m.epoch === epoch && m.offset < before);
    return rows.sort((a, b) => a.offset - b.offset).slice(Math.max(0, rows.length - limit));
  }
}

historyPagingConformance('memory', {
  async create({ maxMessages, archive }) {
    const bus = new MemoryBus();
    await bus.start(() => {});
    const archived = archive ? new MapArchive() : undefined;
    const history = new MemoryHistory({ bus, maxMessages, archive: archived });
    await history.start();
    return {
      history,
      ...(archived ? { store: async (room: RoomRef, message: ChatMessage) => archived.store(room, message) } : {}),
      async close() {
        await history.close();
        await bus.close();
      },
    };
  },
});

const room: RoomRef = { tenant: 'acme', room: 'lobby' };
const message = (offset: number): ChatMessage => ({
  op: 'message',
  class: 'chat',
  room: 'lobby',
  id: `m${offset}`,
  from: 'alice',
  ts: offset,
  data: offset,
  offset,
  epoch: 'e1',
});
const messages = (from: number, to: number): ChatMessage[] => Array.from({ length: to - from + 1 }, (_, i) => message(from + i));

describe('pageAcross', () => {
  function archiveOf(from: number, to: number): MapArchive {
    const archive = new MapArchive();
    for (const m of messages(from, to)) archive.store(room, m);
    return archive;
  }

  it('does not read the archive while the hot store has older messages', async () => {
    const archive = archiveOf(1, 20);
    const page = await pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: messages(16, 20) }, { limit: 5 }, archive);
    assert.deepEqual(page, { messages: messages(16, 20), more: true, epoch: 'e1' });
    assert.equal(archive.reads, 0);
  });

  it('tops a short hot run up from below its first offset, and asks one row more to know of more', async () => {
    const archive = archiveOf(1, 20);
    const page = await pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: messages(11, 13) }, { before: 14, limit: 5 }, archive);
    assert.deepEqual(page.messages, messages(9, 13));
    assert.equal(page.more, true);
    const last = await pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: messages(11, 12) }, { before: 13, limit: 12 }, archive);
    assert.deepEqual(last.messages, messages(1, 12));
    assert.equal(last.more, false);
  });

  it('with an empty hot page, reads below before or below the oldest held, whichever is lower', async () => {
    const archive = archiveOf(1, 20);
    const below = await pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: [] }, { before: 6, limit: 3 }, archive);
    assert.deepEqual(below.messages, messages(3, 5));
    // Nothing held hot (history size 0): the newest come from the archive, never above `last`.
    const none = await pageAcross(room, { epoch: 'e1', last: 18, oldest: 19, messages: [] }, { limit: 3 }, archive);
    assert.deepEqual(none.messages, messages(16, 18));
  });

  it('refuses another epoch before reading the archive', async () => {
    const archive = archiveOf(1, 20);
    await assert.rejects(
      pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: [] }, { limit: 3, epoch: 'e0' }, archive),
      (error) => isNerveError(error) && error.code === 'epoch_mismatch',
    );
    assert.equal(archive.reads, 0);
  });

  it('passes an archive failure on', async () => {
    const failing: ChatArchive = { older: () => Promise.reject(new Error('down')) };
    await assert.rejects(pageAcross(room, { epoch: 'e1', last: 20, oldest: 11, messages: messages(11, 12) }, { before: 13, limit: 5 }, failing), /down/);
  });
});

describe('the history frame', () => {
  it('decodes with every optional field absent, and strips what the server stamps', () => {
    const result = decodeClientFrame(JSON.stringify({ op: 'history', rid: 'h1', room: 'lobby', messages: [], more: true, tenant: 'other' }));
    assert.deepEqual(result, { ok: true, frame: { op: 'history', rid: 'h1', room: 'lobby' } });
  });

  it('takes the largest offset and limit, and refuses one beyond', () => {
    const ok = decodeClientFrame(JSON.stringify({ op: 'history', rid: 1, room: 'lobby', before: Number.MAX_SAFE_INTEGER, limit: 100 }));
    assert.equal(ok.ok, true);
    const over = decodeClientFrame(JSON.stringify({ op: 'history', rid: 1, room: 'lobby', limit: 101 }));
    assert.equal(over.ok, false);
    if (!over.ok) {
      assert.equal(over.error.code, 'invalid_frame');
      assert.equal(over.rid, 1);
      assert.equal(over.error.message, 'invalid field: limit');
    }
  });
});
