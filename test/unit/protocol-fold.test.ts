/**
 * The folding rule (packages/protocol/src/fold.ts, docs/protocol.md
 * "Folding") and the validation of `edit`, `delete` and `react` frames.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeClientFrame } from '../../packages/protocol/src/codec.js';
import {
  applyEntry,
  byOffset,
  foldEntries,
  foldMessages,
  isActionEntry,
  keyOf,
  targetKeyOf,
  unfolded,
  type ActionEntry,
} from '../../packages/protocol/src/fold.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { chatMessage, EPOCH } from '../helpers/chat-fixtures.js';

/** Chat message `offset`, at ts 1000 + `offset`. */
function message(offset: number, data: unknown, from = 'alice'): ChatMessage {
  return chatMessage(offset, data, { from, ts: 1000 + offset });
}

function entry(offset: number, action: ActionEntry['action'], target: ChatMessage, data: unknown, from = 'alice'): ActionEntry {
  return { ...message(offset, data, from), id: `e${offset}`, action, target: { id: target.id, offset: target.offset } };
}

const react = (offset: number, target: ChatMessage, from: string, emoji: string, on = true) => entry(offset, 'react', target, { emoji, on }, from);

describe('fold rule', () => {
  const m1 = message(1, { text: 'hello' });

  it('an edit replaces data and sets editedAt to its ts', () => {
    const folded = applyEntry(m1, entry(2, 'edit', m1, { text: 'hello, fixed' }));
    assert.deepEqual(folded.data, { text: 'hello, fixed' });
    assert.equal(folded.editedAt, 1002);
    assert.equal(folded.id, 'm1');
    assert.equal(folded.offset, 1);
    assert.deepEqual(m1.data, { text: 'hello' }, 'the input is not changed');
  });

  it('a delete leaves a tombstone, and later edits and reactions of it are ignored', () => {
    const folded = foldEntries(m1, [
      react(2, m1, 'bob', '👍'),
      entry(3, 'delete', m1, null),
      entry(4, 'edit', m1, { text: 'back' }),
      react(5, m1, 'carol', '🎉'),
    ]);
    assert.deepEqual(folded, {
      op: 'message',
      class: 'chat',
      room: 'r',
      id: 'm1',
      from: 'alice',
      ts: 1001,
      offset: 1,
      epoch: EPOCH,
      data: null,
      deleted: true,
    });
  });

  it('reactions fold into per-emoji counts and user sets, in order of first use', () => {
    const folded = foldEntries(m1, [
      react(2, m1, 'bob', '👍'),
      react(3, m1, 'carol', '👍'),
      react(4, m1, 'bob', '🎉'),
      react(5, m1, 'bob', '👍'),
      react(6, m1, 'carol', '👍', false),
      react(7, m1, 'dave', '👍', false),
    ]);
    assert.deepEqual(folded.reactions, [
      { emoji: '👍', count: 1, users: ['bob'] },
      { emoji: '🎉', count: 1, users: ['bob'] },
    ]);
    const cleared = foldEntries(folded, [react(8, m1, 'bob', '👍', false), react(9, m1, 'bob', '🎉', false)]);
    assert.equal(cleared.reactions, undefined, 'no emoji left: no field');
  });

  it('applies entries in offset order whatever order they are given in', () => {
    const entries = [entry(4, 'edit', m1, 'third'), entry(2, 'edit', m1, 'first'), entry(3, 'edit', m1, 'second')];
    assert.equal(foldEntries(m1, entries).data, 'third');
    assert.equal(foldEntries(m1, entries).editedAt, 1004);
  });

  it('folding the same run again onto a folded message changes nothing (an archive row and its entries agree)', () => {
    const run = [
      entry(2, 'edit', m1, 'one'),
      react(3, m1, 'bob', '👍'),
      react(4, m1, 'bob', '👍', false),
      react(5, m1, 'carol', '🎉'),
      entry(6, 'edit', m1, 'two'),
    ];
    const once = foldEntries(m1, run);
    assert.deepEqual(foldEntries(once, run), once);
    // And the worker's recompute from the folded row: the same.
    assert.deepEqual(foldEntries(unfolded(once), run), once);
    const deleted = foldEntries(m1, [...run, entry(7, 'delete', m1, null)]);
    assert.deepEqual(foldEntries(unfolded(deleted), run), deleted, 'a tombstone stays one');
  });

  it('ignores entries of another target, another epoch, and malformed reactions', () => {
    const m2 = message(2, 'other');
    assert.equal(applyEntry(m1, entry(3, 'edit', m2, 'x')), m1);
    assert.equal(applyEntry(m1, { ...entry(3, 'edit', m1, 'x'), epoch: 'e2' }), m1);
    assert.equal(applyEntry(m1, entry(3, 'react', m1, { emoji: '', on: true })), m1);
    assert.equal(applyEntry(m1, entry(3, 'react', m1, { emoji: 'x'.repeat(33), on: true })), m1);
    assert.equal(applyEntry(m1, entry(3, 'react', m1, 'not an object')), m1);
    const e = entry(3, 'edit', m1, 'x');
    assert.equal(applyEntry(e, entry(4, 'edit', e, 'y')), e, 'an entry is no target');
  });

  it('foldMessages folds a run and keeps entries whose target is missing', () => {
    const m2 = message(2, 'two');
    const orphanTarget = message(0, 'not loaded');
    const run = [react(5, m2, 'bob', '👍'), m1, m2, entry(3, 'edit', m1, 'one!'), entry(4, 'delete', orphanTarget, null)];
    const { messages, pending } = foldMessages(run);
    assert.deepEqual(
      messages.map((m) => [m.offset, m.data, m.reactions?.length ?? 0]),
      [
        [1, 'one!', 0],
        [2, 'two', 1],
      ],
    );
    assert.deepEqual(
      pending.map((p) => p.offset),
      [4],
    );
    assert.ok(pending.every(isActionEntry));
  });

  it('targetKeyOf names the key of the message an entry applies to, and no other', () => {
    const m2 = message(2, 'two');
    const other = { ...m1, epoch: 'e2' };
    const edit = entry(3, 'edit', m1, 'x');
    assert.equal(targetKeyOf(edit), keyOf(m1));
    assert.notEqual(targetKeyOf(edit), keyOf(m2), 'another message');
    assert.notEqual(targetKeyOf(edit), keyOf(other), 'the same id and offset in another epoch');
    assert.notEqual(targetKeyOf(edit), keyOf(edit), 'the entry itself');
    for (const target of [m1, m2, other]) {
      assert.equal(targetKeyOf(edit) === keyOf(target), applyEntry(target, edit) !== target, `applyEntry agrees on ${target.id}@${target.epoch}`);
    }
  });

  it('byOffset sorts chat by offset and keeps equal offsets in their order', () => {
    const a = message(2, 'a');
    const b = { ...message(2, 'b'), id: 'b' };
    const sorted = [message(5, 'x'), a, message(1, 'y'), b].sort(byOffset);
    assert.deepEqual(
      sorted.map((m) => [m.offset, m.data]),
      [
        [1, 'y'],
        [2, 'a'],
        [2, 'b'],
        [5, 'x'],
      ],
    );
  });
});

describe('edit, delete and react frames', () => {
  const target = { id: 'm1', offset: 1 };
  const decode = (frame: Record<string, unknown>) => decodeClientFrame(JSON.stringify({ rid: 1, room: 'r', target, ...frame }));

  it('accepts the documented shapes and strips fields the server stamps', () => {
    const edit = decode({ op: 'edit', data: { text: 'x' }, cmid: 'c1', action: 'delete', from: 'mallory' });
    assert.ok(edit.ok);
    assert.deepEqual(edit.frame, { op: 'edit', rid: 1, room: 'r', target, data: { text: 'x' }, cmid: 'c1' });
    assert.ok(decode({ op: 'delete' }).ok);
    const reactFrame = decode({ op: 'react', emoji: '👍', on: false, target: { ...target, epoch: 'e1' } });
    assert.ok(reactFrame.ok);
    assert.deepEqual(reactFrame.frame, { op: 'react', rid: 1, room: 'r', target: { ...target, epoch: 'e1' }, emoji: '👍', on: false });
    assert.ok(decode({ op: 'react', emoji: '👨‍👩‍👧‍👦' }).ok, 'a ZWJ family fits');
  });

  const refused: Array<[string, Record<string, unknown>]> = [
    ['edit without data', { op: 'edit' }],
    ['no target', { op: 'delete', target: undefined }],
    ['target offset 0', { op: 'delete', target: { id: 'm1', offset: 0 } }],
    ['target without id', { op: 'delete', target: { offset: 3 } }],
    ['target id too long', { op: 'delete', target: { id: 'x'.repeat(129), offset: 3 } }],
    ['empty emoji', { op: 'react', emoji: '' }],
    ['emoji over 32 code units', { op: 'react', emoji: '👍'.repeat(17) }],
    ['emoji not a string', { op: 'react', emoji: 5 }],
    ['on not a boolean', { op: 'react', emoji: '👍', on: 'yes' }],
    ['cmid too long', { op: 'delete', cmid: 'c'.repeat(65) }],
  ];
  for (const [name, frame] of refused) {
    it(`refuses ${name} with invalid_frame and the rid`, () => {
      const result = decode(frame);
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.error.code, 'invalid_frame');
      assert.equal(result.rid, 1);
    });
  }
});
