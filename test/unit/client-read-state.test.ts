/**
 * The SDK's read state of a room (packages/client/src/read-state.ts): reset
 * by every `joined` (a rejoin on another node included), counted forward
 * from live chat, moved by `markRead` answers and pushes, never backwards.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChatMessage, JoinedFrame } from '../../packages/protocol/src/frames.js';
import { RoomReads } from '../../packages/client/src/read-state.js';
import { chatMessage, EPOCH } from '../helpers/chat-fixtures.js';

/** Chat message `offset` from `from`, no payload; `action` makes it an entry on m1. */
function chat(offset: number, from = 'bob', action?: 'react'): ChatMessage {
  return chatMessage(offset, null, { from, ...(action ? { action, target: { id: 'm1', offset: 1 } } : {}) });
}

function joined(fields: Partial<JoinedFrame>): JoinedFrame {
  return { op: 'joined', rid: 1, room: 'r', members: [], count: 0, history: [], position: { offset: 0, epoch: EPOCH }, ...fields };
}

describe('RoomReads', () => {
  it('takes read, unread and reads from joined, and counts the history it can see', () => {
    const reads = new RoomReads();
    // The server counted 12; the join's history holds the last 3 of them.
    reads.reset(
      joined({ history: [chat(18), chat(19, 'ann'), chat(20), chat(21)], position: { offset: 21, epoch: EPOCH }, read: 8, unread: 12, reads: { bob: 21 } }),
      'ann',
    );
    assert.deepEqual([reads.read, reads.unread, [...reads.positions]], [8, 12, [['bob', 21]]]);
    reads.moveTo(17, EPOCH);
    assert.equal(reads.unread, 3, 'past the untracked ones: only the history after 17 is left');
    reads.moveTo(20, EPOCH);
    assert.equal(reads.unread, 1);
    reads.moveTo(3, EPOCH);
    assert.equal(reads.read, 20, 'never backwards');
  });

  it('counts live chat of others, not entries, not yours, not repeats, not another epoch', () => {
    const reads = new RoomReads();
    reads.reset(joined({ position: { offset: 2, epoch: EPOCH }, read: 2, unread: 0 }), 'ann');
    for (const message of [chat(3), chat(4, 'ann'), chat(5, 'bob', 'react'), chat(6), chat(6), { ...chat(7), epoch: 'other' }]) reads.onMessage(message, 'ann');
    assert.equal(reads.unread, 2);
    reads.onMessage({ op: 'message', class: 'ephemeral', room: 'r', id: 'x', from: 'bob', ts: 1, data: null }, 'ann');
    assert.equal(reads.unread, 2);
  });

  it("applies pushes: others' positions only forward, yours as a move, other epochs ignored", () => {
    const reads = new RoomReads();
    reads.reset(joined({ history: [chat(1), chat(2)], position: { offset: 2, epoch: EPOCH }, read: 0, unread: 2 }), 'ann');
    assert.equal(reads.onPush({ op: 'read', room: 'r', user: 'bob', offset: 2, epoch: EPOCH, ts: 1 }, 'ann'), true);
    reads.onPush({ op: 'read', room: 'r', user: 'bob', offset: 1, epoch: EPOCH, ts: 2 }, 'ann');
    assert.equal(reads.positions.get('bob'), 2, 'crossed pushes never move a position back');
    assert.equal(reads.onPush({ op: 'read', room: 'r', user: 'bob', offset: 9, epoch: 'old', ts: 3 }, 'ann'), false);
    reads.onPush({ op: 'read', room: 'r', user: 'ann', offset: 2, epoch: EPOCH, ts: 4 }, 'ann');
    assert.deepEqual([reads.read, reads.unread], [2, 0], 'read on another device');
  });

  it('starts over at every join, as after a resume on another node', () => {
    const reads = new RoomReads();
    reads.reset(joined({ position: { offset: 5, epoch: EPOCH }, read: 1, unread: 4, reads: { bob: 5 } }), 'ann');
    reads.reset(joined({ position: { offset: 6, epoch: 'e2' }, read: 6, unread: 0 }), 'ann');
    assert.deepEqual([reads.read, reads.unread, reads.positions.size], [6, 0, 0]);
    // An older server without read positions: nothing claimed.
    reads.reset(joined({ position: { offset: 6, epoch: 'e2' } }), 'ann');
    assert.deepEqual([reads.read, reads.unread], [0, 0]);
  });
});
