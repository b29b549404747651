import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import type { Channel } from 'rabbitmq-client';
import { AckBatcher } from '../../src/events/ack-batcher.js';

/** What the broker would settle: every `multiple` ack must name a tag still unacked, as RabbitMQ requires. */
function fakeBroker(delivered: number) {
  const unacked = new Set(Array.from({ length: delivered }, (_, i) => i + 1));
  const frames: string[] = [];
  const channel = { active: true } as unknown as Channel;
  const sendAck = ({ deliveryTag, multiple }: { deliveryTag: number; multiple?: boolean }) => {
    assert.ok(unacked.has(deliveryTag), `ack of unknown delivery tag ${deliveryTag} would close the channel`);
    frames.push(multiple ? `multiple ${deliveryTag}` : `single ${deliveryTag}`);
    if (multiple) for (const tag of unacked) if (tag <= deliveryTag) unacked.delete(tag);
    unacked.delete(deliveryTag);
  };
  return { unacked, frames, channel, sendAck };
}

describe('AckBatcher', () => {
  it('acks a run of settled tags with one multiple ack once half the prefetch has settled', () => {
    const broker = fakeBroker(8);
    const batcher = new AckBatcher(broker.channel, broker.sendAck, 8);
    for (const tag of [2, 1, 4]) batcher.ack(tag);
    assert.deepEqual(broker.frames, []);
    batcher.ack(3);
    assert.deepEqual(broker.frames, ['multiple 4']);
    assert.deepEqual([...broker.unacked], [5, 6, 7, 8]);
  });

  it('acks tags above one still in a handler singly, and never names a settled tag in a multiple ack', () => {
    const broker = fakeBroker(6);
    const batcher = new AckBatcher(broker.channel, broker.sendAck, 4);
    batcher.ack(2);
    batcher.ack(3); // 1 is still in its handler
    assert.deepEqual(broker.frames, ['single 2', 'single 3']);
    broker.unacked.delete(4); // nacked on the wire
    batcher.settledElsewhere(4);
    batcher.ack(1);
    batcher.flush();
    assert.deepEqual(broker.frames, ['single 2', 'single 3', 'multiple 1']);
    batcher.ack(5);
    batcher.ack(6);
    assert.deepEqual(broker.frames.at(-1), 'multiple 6');
    assert.equal(broker.unacked.size, 0);
  });

  it('flushes within a millisecond when fewer settle, and drops the acks of a closed channel', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const broker = fakeBroker(3);
      const batcher = new AckBatcher(broker.channel, broker.sendAck, 16);
      batcher.ack(1);
      assert.deepEqual(broker.frames, []);
      mock.timers.tick(1);
      assert.deepEqual(broker.frames, ['multiple 1']);
      batcher.ack(2);
      (broker.channel as { active: boolean }).active = false;
      mock.timers.tick(1);
      assert.deepEqual(broker.frames, ['multiple 1']);
    } finally {
      mock.timers.reset();
    }
  });
});
