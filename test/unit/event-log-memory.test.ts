import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryEventLog } from '../../src/events/memory.js';
import { topicMatches, isValidPattern } from '../../src/events/topic.js';
import { eventLogConformance, sampleEvent } from '../conformance/event-log.js';
import { waitFor } from '../helpers/wait.js';

eventLogConformance('memory', async () => {
  const log = new MemoryEventLog();
  return {
    log,
    deadLetterIds: async (queue) => log.deadLetters(queue).map((d) => d.event.id),
    cleanup: async () => undefined,
  };
});

describe('topic patterns', () => {
  const cases: Array<[string, string, boolean]> = [
    ['room.*', 'room.created', true],
    ['room.*', 'room', false],
    ['room.*', 'room.created.x', false],
    ['room.#', 'room', true],
    ['room.#', 'room.a.b', true],
    ['#', 'anything.at.all', true],
    ['#.ended', 'room.ended', true],
    ['#.ended', 'ended', true],
    ['*.ended', 'ended', false],
    ['a.#.z', 'a.z', true],
    ['a.#.z', 'a.b.c.z', true],
    ['a.#.#.z', 'a.b.z', true],
    ['a.*.#', 'a', false],
    ['participant.joined', 'participant.left', false],
  ];
  for (const [pattern, key, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${key}`, () => assert.equal(topicMatches(pattern, key), expected));
  }
  it('validates patterns', () => {
    assert.ok(isValidPattern('room.*'));
    assert.ok(!isValidPattern('room..x'));
    assert.ok(!isValidPattern('room.a*'));
    assert.ok(!isValidPattern(''));
  });
});

describe('MemoryEventLog specifics', () => {
  it('records why and after how many attempts an event was dead-lettered', async () => {
    const log = new MemoryEventLog();
    await log.start();
    await log.consume({ queue: 'q', bindings: ['#'], maxAttempts: 2, retryDelayMs: 1 }, async () => {
      throw new Error('boom');
    });
    const event = sampleEvent('room.created');
    await log.publish(event);
    await waitFor(() => log.deadLetters('q').length === 1, { what: 'dead letter' });
    const [dead] = log.deadLetters('q');
    assert.equal(dead?.reason, 'max_attempts');
    assert.equal(dead?.attempts, 2);
    assert.equal(dead?.error, 'boom');
    assert.deepEqual(dead?.event, event);
    await log.close();
  });

  it('keeps a closed consumer queue collecting, like a durable queue', async () => {
    const log = new MemoryEventLog();
    const handle = await log.consume({ queue: 'q', bindings: ['room.*'] }, async () => 'ack');
    await handle.close();
    await log.publish(sampleEvent('room.created'));
    assert.equal(log.queueDepth('q'), 1);
    const got: string[] = [];
    await log.consume({ queue: 'q', bindings: ['room.*'] }, async (e) => {
      got.push(e.type);
      return 'ack';
    });
    await waitFor(() => got.length === 1, { what: 'backlog delivered' });
    await log.close();
  });

  it('rejects bad consumer specs at consume time', async () => {
    const log = new MemoryEventLog();
    await assert.rejects(
      log.consume({ queue: 'bad name', bindings: ['#'] }, async () => 'ack'),
      { name: 'ConfigError', code: 'config_invalid' },
    );
    await assert.rejects(
      log.consume({ queue: 'q', bindings: ['a..b'] }, async () => 'ack'),
      { name: 'ConfigError' },
    );
    await assert.rejects(
      log.consume({ queue: 'q', bindings: ['#'], prefetch: 0 }, async () => 'ack'),
      { name: 'ConfigError' },
    );
    await log.close();
  });
});
