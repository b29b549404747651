/** The gateway's chat gap helpers: reading a chat payload's position without parsing it, and the recovery limiter. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, RoomChatCursor, MAX_HELD_DURING_RECOVERY, scanChatTail, tailEpoch, tailHasEpoch } from '../../src/gateway/chat-gap.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { frameTs } from '../../src/instrument.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

function encoded(data: unknown, offset: number, epoch: string, cmid?: string): string {
  // The shape both histories build: the draft, then offset and epoch.
  const draft = { op: 'message', class: 'chat', room: 'r', id: 'i', from: 'u', ts: 1, data, ...(cmid === undefined ? {} : { cmid }) };
  return encodeFrame({ ...draft, offset, epoch } as ChatMessage);
}

test('scanChatTail reads offset and epoch from the end, whatever the data holds', () => {
  const cases: Array<[unknown, string | undefined]> = [
    ['hi', undefined],
    [{ offset: 99, epoch: 'fake' }, undefined],
    ['"offset":7,"epoch":"x"}', '"offset":1,"epoch":"y"}'],
    [null, 'c-1'],
    [{ nested: { a: [1, 2, { offset: 5 }] } }, undefined],
  ];
  for (const [data, cmid] of cases) {
    const payload = encoded(data, 1234, 'abcdef0123456789', cmid);
    const tail = scanChatTail(payload);
    assert.ok(tail, payload);
    assert.equal(tail.offset, 1234, payload);
    assert.equal(tailEpoch(payload, tail), 'abcdef0123456789');
    assert.equal(tailHasEpoch(payload, tail, 'abcdef0123456789'), true);
    assert.equal(tailHasEpoch(payload, tail, 'abcdef012345678'), false);
    assert.equal(tailHasEpoch(payload, tail, 'bbcdef0123456789'), false);
    assert.equal(tail.offset, (JSON.parse(payload) as { offset: number }).offset);
  }
});

test('scanChatTail falls back to JSON for other shapes, and refuses what has no position', () => {
  const reordered = JSON.stringify({ offset: 3, epoch: 'e', op: 'message', class: 'chat', data: 1 });
  const tail = scanChatTail(reordered);
  assert.equal(tail?.offset, 3);
  assert.equal(tailEpoch(reordered, tail), 'e');
  assert.equal(tailHasEpoch(reordered, tail, 'e'), true);
  assert.equal(scanChatTail('{"op":"message","class":"ephemeral","data":1}'), undefined);
  assert.equal(scanChatTail('not json'), undefined);
  assert.equal(scanChatTail('{"offset":"7","epoch":"e"}'), undefined);
});

test('RoomChatCursor holds at most MAX_HELD_DURING_RECOVERY payloads, then reports the overflow', () => {
  const cursor = new RoomChatCursor();
  for (let i = 0; i < MAX_HELD_DURING_RECOVERY; i += 1) assert.equal(cursor.hold('x'), true);
  assert.equal(cursor.hold('x'), false);
  assert.equal(cursor.overflowed, true);
  assert.equal(cursor.held?.length, MAX_HELD_DURING_RECOVERY);
});

test('Limiter runs at most max tasks at once and runs every task', async () => {
  const limiter = new Limiter(2);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      limiter
        .run(async () => {
          running += 1;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setImmediate(resolve));
          running -= 1;
          if (i === 3) throw new Error('boom');
          return i;
        })
        .catch(() => -1),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(results, [0, 1, 2, -1, 4, 5, 6, 7, 8, 9]);
});

test('frameTs (delivery latency sampling) reads the stamped ts, not one inside data', () => {
  {
    const chat = encodeFrame({
      op: 'message',
      class: 'chat',
      room: 'r',
      id: 'i',
      from: 'u',
      ts: 1234567,
      data: { ts: 99, nested: ',"ts":1' },
      offset: 3,
      epoch: 'e',
    });
    const ephemeral = encodeFrame({ op: 'message', class: 'ephemeral', room: 'r', id: 'i', from: 'u', ts: 42, data: 'x', key: 'k' });
    assert.equal(frameTs(chat), 1234567);
    assert.equal(frameTs(ephemeral), 42);
    assert.equal(frameTs('{"op":"message","data":1}'), undefined);
    assert.equal(frameTs('{"x":1,"ts":"soon"}'), undefined);
  }
});
