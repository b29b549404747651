/**
 * The cluster's chat order, as the RabbitMQ cluster tests check it: every
 * member, on whichever node, ends with offsets 1..count of a room, in order,
 * each once.
 */
import assert from 'node:assert/strict';
import type { Frame, RawClient } from './raw-client.js';
import { waitFor } from './wait.js';

/** Wait until every member holds `count` chat messages of `room`, then assert their offsets are 1..count in order. */
export async function assertChatOrder(members: readonly RawClient[], room: string, count: number, timeoutMs: number): Promise<void> {
  const isChat = (f: Frame) => f.op === 'message' && f.class === 'chat' && f.room === room;
  for (const member of members)
    await waitFor(() => member.frames.filter(isChat).length >= count, { timeoutMs, what: `${count} chat messages on every member` });
  for (const member of members) {
    assert.deepEqual(
      member.frames.filter(isChat).map((f) => f.offset),
      Array.from({ length: count }, (_, i) => i + 1),
      'offset order on every member of every node, each once',
    );
  }
}
