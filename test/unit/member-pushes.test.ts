/**
 * Member frames to a node's members (src/gateway/member-pushes.ts): passed
 * through in a small room, counted in a large one (docs/protocol.md, "Large
 * rooms"): a storm of joins costs one `member_count` fan-out per interval,
 * not one fan-out per join, and the room is listed again once the store
 * says it is small.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { MemberPushes } from '../../src/gateway/member-pushes.js';
import type { ChannelTarget, LocalRooms } from '../../src/gateway/local-rooms.js';
import { createLogger } from '../../src/logger.js';
import { MemoryPresence } from '../../src/presence/memory.js';
import { waitFor } from '../helpers/wait.js';

function setup(listMax: number, clusterWide?: boolean) {
  const target = { kind: 'room', tenant: 't', id: 'r' } as ChannelTarget;
  const sent: Array<{ frame: Record<string, unknown>; conflate: string | undefined }> = [];
  const store = { count: 0 };
  const pushes = new MemberPushes({
    local: { get: () => target } as unknown as LocalRooms,
    presence: { list: async () => ({ members: [], count: store.count }), ...(clusterWide === undefined ? {} : { clusterWide }) },
    log: createLogger('silent'),
    listMax,
    intervalMs: 20,
    fanOut: (_target, payload, _class, _except, conflate) => sent.push({ frame: JSON.parse(payload) as Record<string, unknown>, conflate }),
  });
  const push = (frame: Record<string, unknown>, fromHere = true) =>
    pushes.push('ch', target, JSON.stringify({ room: 'r', ts: 1, ...frame }), 'presence', undefined, fromHere);
  return { pushes, sent, store, push };
}

test('a small room gets every member frame, member_updated conflated per member', () => {
  const { sent, push } = setup(3);
  push({ op: 'member_joined', user: 'a', count: 1 });
  push({ op: 'member_updated', user: 'a', state: { s: 1 } });
  push({ op: 'member_left', user: 'a', count: 0 });
  assert.deepEqual(
    sent.map((s) => [s.frame.op, s.conflate]),
    [
      ['member_joined', undefined],
      ['member_updated', '\u0001state\u0000r\u0000a'],
      ['member_left', undefined],
    ],
  );
});

test('a join storm in a large room costs one member_count per interval, with the store count', async () => {
  const { pushes, sent, store, push } = setup(3);
  pushes.noteCount('ch', 3);
  store.count = 1003;
  for (let i = 0; i < 1000; i++) push({ op: 'member_joined', user: `u${i}`, count: 4 + i });
  push({ op: 'member_updated', user: 'u1', state: {} });
  assert.equal(sent.length, 0, 'nothing one by one');
  await waitFor(() => sent.length > 0, { what: 'the member_count' });
  assert.equal(sent.length, 1);
  const { ts, ...counted } = sent[0]!.frame as { ts: unknown };
  assert.equal(typeof ts, 'number');
  assert.deepEqual(counted, { op: 'member_count', room: 'r', count: 1003, joined: 1000, left: 0, listed: false });
  assert.equal(sent[0]?.conflate, '\u0001count\u0000r');

  // Back to 2 members: counted until the store confirms, then listed, then frames again.
  store.count = 2;
  push({ op: 'member_left', user: 'u0', count: 2 });
  assert.equal(sent.length, 1);
  await waitFor(() => sent.length > 1, { what: 'the listed count' });
  assert.deepEqual([sent[1]?.frame.count, sent[1]?.frame.left, sent[1]?.frame.listed], [2, 1, true]);
  push({ op: 'member_joined', user: 'z', count: 3 });
  assert.equal(sent[2]?.frame.op, 'member_joined');
  pushes.forget('ch');
});

test("with per-node presence another node's count does not make the room large here", () => {
  const { sent, push } = setup(3, false);
  push({ op: 'member_joined', user: 'a', count: 1 });
  // Node B holds 5 members of the room; this node holds one: its members still get member frames.
  push({ op: 'member_joined', user: 'b5', count: 5 }, false);
  push({ op: 'member_left', user: 'b5', count: 4 }, false);
  assert.deepEqual(
    sent.map((s) => [s.frame.op, s.frame.user]),
    [
      ['member_joined', 'a'],
      ['member_joined', 'b5'],
      ['member_left', 'b5'],
    ],
  );
});

test("with shared presence another node's count is the room's", () => {
  const { sent, push, pushes } = setup(3, true);
  push({ op: 'member_joined', user: 'b5', count: 5 }, false);
  assert.equal(sent.length, 0, 'counted, not told one by one');
  assert.equal(pushes.isLargeRoom('ch'), true, "the other node's count made the room large here");
  pushes.forget('ch');
});

test("the room's count is the frame's own, not one in a member's state; a join without one keeps it", () => {
  // A large count is taken from the top level, not from the state.
  const { pushes } = setup(3);
  const target = { kind: 'room', tenant: 't', id: 'r' } as ChannelTarget;
  pushes.push('ch', target, encodeFrame({ op: 'member_joined', room: 'r', user: 'u', ts: 5, count: 2, state: { count: 500 } }), 'presence', undefined);
  assert.equal(pushes.isLargeRoom('ch'), false);
  pushes.push('ch', target, encodeFrame({ op: 'member_left', room: 'r', user: 'u', ts: 5, count: 40 }), 'presence', undefined);
  assert.equal(pushes.isLargeRoom('ch'), true);
  pushes.push('ch', target, JSON.stringify({ op: 'member_joined', room: 'r', user: 'u', ts: 5, info: '{}' }), 'presence', undefined);
  assert.equal(pushes.isLargeRoom('ch'), true, 'a Pusher join (no count) keeps the count');
  pushes.forget('ch');
});

test("per-node presence says so: the gateway takes no other node's count with it", () => {
  assert.equal(new MemoryPresence().clusterWide, false);
});
