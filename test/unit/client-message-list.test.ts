/**
 * `room.messages` (packages/client/src/message-list.ts): the SDK's folded
 * view of a room's chat. Entries never show as messages; one whose target
 * is not loaded waits for the page that brings it, and is then applied in
 * offset order with the page's own entries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageList, type HistoryPage } from '../../packages/client/src/index.js';
import type { ActionEntry } from '../../packages/protocol/src/fold.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

const EPOCH = 'ep';

function message(offset: number, data: unknown, from = 'alice'): ChatMessage {
  return { op: 'message', class: 'chat', room: 'r', id: `m${offset}`, from, ts: offset, offset, epoch: EPOCH, data };
}

function entry(offset: number, action: ActionEntry['action'], target: number, data: unknown, from = 'alice'): ChatMessage {
  return { ...message(offset, data, from), id: `e${offset}`, action, target: { id: `m${target}`, offset: target } };
}

/** A list over a fake log: `history` pages `log` like the server (newest `limit` below `before`). */
function listOver(log: ChatMessage[]): { list: MessageList; asked: Array<{ before?: number; epoch?: string }> } {
  const asked: Array<{ before?: number; epoch?: string }> = [];
  const list = new MessageList({
    history(options): Promise<HistoryPage> {
      asked.push(options);
      const below = log.filter((m) => options.before === undefined || m.offset < options.before);
      const messages = below.slice(-(options.limit ?? 50));
      return Promise.resolve({ messages, more: below.length > messages.length, epoch: EPOCH });
    },
  });
  return { list, asked };
}

const view = (list: MessageList) =>
  list.items.map((m) => [m.offset, m.data, m.deleted === true, (m.reactions ?? []).map((r) => `${r.emoji}${r.count}`).join()]);

describe('MessageList', () => {
  it('folds live entries into the messages and never lists them', () => {
    const { list } = listOver([]);
    const changes: number[] = [];
    list.on('change', (items) => changes.push(items.length));
    list.reset([message(1, 'a'), message(2, 'b')]);
    list.add([entry(3, 'edit', 1, 'a!')]);
    list.add([entry(4, 'react', 2, { emoji: '👍', on: true }, 'bob')]);
    list.add([entry(5, 'delete', 2, null)]);
    list.add([message(6, 'c')]);
    assert.deepEqual(view(list), [
      [1, 'a!', false, ''],
      [2, null, true, ''],
      [6, 'c', false, ''],
    ]);
    assert.equal(list.items[0]!.editedAt, 3);
    assert.deepEqual(changes, [2, 2, 2, 2, 3]);
  });

  it('ignores what it has taken in already (a resume overlap) and messages of another epoch', () => {
    const { list } = listOver([]);
    list.reset([message(1, 'a')]);
    const react = entry(2, 'react', 1, { emoji: '👍', on: true }, 'bob');
    list.add([react]);
    list.add([react, message(1, 'a')]);
    list.add([{ ...message(3, 'other log'), epoch: 'another' }]);
    assert.deepEqual(view(list), [[1, 'a', false, '👍1']]);
  });

  it('keeps an entry whose target is not loaded until loadOlder brings the target, then applies all in offset order', async () => {
    const log = [
      message(1, 'one'),
      message(2, 'two'),
      entry(3, 'edit', 1, 'one, first edit'),
      message(4, 'four'),
      entry(5, 'react', 1, { emoji: '🎉', on: true }, 'bob'),
    ];
    const { list, asked } = listOver(log);
    // Joined with the newest two only: the edit of 1 at 6 waits.
    list.reset([message(4, 'four'), log[4]!]);
    list.add([entry(6, 'edit', 1, 'one, second edit')]);
    assert.deepEqual(view(list), [[4, 'four', false, '']]);
    assert.equal(list.pendingCount, 2);
    const more = await list.loadOlder(10);
    assert.deepEqual(asked, [{ before: 4, epoch: EPOCH, limit: 10 }]);
    assert.equal(more, false);
    assert.deepEqual(view(list), [
      [1, 'one, second edit', false, '🎉1'],
      [2, 'two', false, ''],
      [4, 'four', false, ''],
    ]);
    assert.equal(list.pendingCount, 0);
    assert.equal(await list.loadOlder(), false, 'nothing below offset 1');
  });

  it('an archive row folded already and the entries after it give the same message', async () => {
    // The PostgreSQL archive answers the target folded through offset 4; the entries come along.
    const folded: ChatMessage = { ...message(1, 'edited'), editedAt: 3, reactions: [{ emoji: '👍', count: 1, users: ['bob'] }] };
    const log = [folded, message(2, 'two'), entry(3, 'edit', 1, 'edited'), entry(4, 'react', 1, { emoji: '👍', on: true }, 'bob')];
    const { list } = listOver(log);
    list.reset([]);
    await list.loadOlder();
    assert.deepEqual(list.items[0], folded);
  });

  it('starts again on reset (a resync), dropping waiting entries', () => {
    const { list } = listOver([]);
    list.reset([message(5, 'x')]);
    list.add([entry(6, 'edit', 2, 'y')]);
    assert.equal(list.pendingCount, 1);
    list.reset([{ ...message(1, 'new log'), epoch: 'ep2' }]);
    assert.equal(list.pendingCount, 0);
    assert.deepEqual(view(list), [[1, 'new log', false, '']]);
  });
});
