/**
 * The lifecycle the Redis script lanes share (src/redis/script-lane.ts),
 * checked without a server: the connection is lazy and never opened.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { RedisMailbox } from '../../src/mailbox/redis.js';
import { RedisRoomSessions } from '../../src/sessions/redis.js';
import { NerveError } from '../../packages/protocol/src/errors.js';

const url = 'redis://127.0.0.1:1';

describe('RedisScriptLane', () => {
  it('refuses bad options before any connection exists', () => {
    assert.throws(() => new RedisMailbox({ url, prefix: 'a{b' }), ConfigError);
    assert.throws(() => new RedisMailbox({ url, ttlMs: 0 }), ConfigError);
    assert.throws(() => new RedisMailbox({}), ConfigError);
  });

  it('is not running before start, and says so in health and calls', async () => {
    const mailbox = new RedisMailbox({ url, probeIntervalMs: 0 });
    assert.deepEqual(mailbox.health(), { lane: 'mailbox', driver: 'redis', ok: false, detail: 'mailbox is idle' });
    await assert.rejects(mailbox.offer({ tenant: 't', user: 'u' }, 'x'), (error: unknown) => error instanceof NerveError && error.code === 'unavailable');
    await mailbox.close();
  });

  it('close() is idempotent: one memoized promise, and start afterwards is refused', async () => {
    const sessions = new RedisRoomSessions({ url, probeIntervalMs: 0 });
    const first = sessions.close();
    assert.equal(sessions.close(), first);
    await first;
    assert.equal(sessions.health().detail, 'room sessions are closed');
    await assert.rejects(sessions.open(), (error: unknown) => error instanceof NerveError && /room sessions are closed/.test(error.message));
  });
});
