/** Chat gap recovery on one node: the cursor's rule, and a gap filled from history before the held live messages. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatRecovery } from '../../src/gateway/chat-recovery.js';
import type { Connection } from '../../src/gateway/connection.js';
import { LocalRooms, type ChannelTarget } from '../../src/gateway/local-rooms.js';
import { createLogger } from '../../src/logger.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { ChatMessage, MessageClass } from '../../packages/protocol/src/frames.js';

const counter = { inc: () => {} };
const metrics = { chatGaps: counter, chatGapRecoveries: counter, chatGapMessages: counter, drops: counter } as never;

function message(offset: number, epoch = 'e1'): ChatMessage {
  return { op: 'message', class: 'chat', room: 'r', id: `m${offset}`, from: 'u', ts: 1, data: offset, offset, epoch };
}

function setup(stored: ChatMessage[]) {
  const local = new LocalRooms();
  local.add('ch', 'room', 't', 'r', { id: 'c1' } as Connection);
  const target = local.get('ch')!;
  const delivered: Array<[MessageClass, string]> = [];
  let done: () => void = () => {};
  const recovery = new ChatRecovery({
    local,
    history: {
      since: async (_ref, from) => {
        setImmediate(() => done());
        return {
          messages: stored.filter((m) => m.epoch === from.epoch && m.offset > from.offset),
          position: { offset: stored.length, epoch: 'e1' },
          recovered: true,
        };
      },
    },
    metrics,
    log: createLogger('silent'),
    recoveryLimit: 100,
    fanOut: (_target: ChannelTarget, payload, messageClass) => void delivered.push([messageClass, payload]),
    stopped: () => false,
  });
  const read = new Promise<void>((resolve) => (done = resolve));
  return { recovery, target, delivered, read };
}

test('admit: in order passes, a repeat is skipped, a new epoch after nothing seen passes', () => {
  const { recovery, target } = setup([]);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(1))), true);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(2))), true);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(2))), false);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(1))), false);
  target.chat!.set('old', 0);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(1, 'e2'))), true);
  assert.equal(target.chat!.epoch, 'e2');
  assert.equal(recovery.admit('ch', target, encodeFrame({ op: 'message', class: 'ephemeral', room: 'r', id: 'x', from: 'u', ts: 1, data: 1 } as never)), true);
});

test('a gap holds live chat, delivers the missed messages from history, then the held ones', async () => {
  const stored = [1, 2, 3, 4].map((offset) => message(offset));
  const { recovery, target, delivered, read } = setup(stored);
  recovery.noteJoinPosition('ch', 'e1', 1);
  assert.equal(recovery.admit('ch', target, encodeFrame(message(4))), false);
  await read;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    delivered.map(([klass, payload]) => [klass, (JSON.parse(payload) as ChatMessage).offset]),
    [
      ['chat', 2],
      ['chat', 3],
      ['chat', 4],
    ],
  );
  assert.equal(target.chat!.offset, 4);
  assert.equal(target.chat!.held, undefined);
});
