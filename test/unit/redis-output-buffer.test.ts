/**
 * The pubsub output-buffer check (src/redis/output-buffer.ts): parsing
 * `CONFIG GET client-output-buffer-limit` and deciding when to warn.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../../src/config/options.js';
import { parseOutputBufferLimits, pubsubBufferNeed, pubsubLimitWarning, readPubsubLimit } from '../../src/redis/output-buffer.js';

const MIB = 2 ** 20;

describe('client-output-buffer-limit check', () => {
  it('parses every class of the value Redis prints, in bytes', () => {
    const limits = parseOutputBufferLimits('normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60');
    assert.deepEqual(limits.get('pubsub'), { hardBytes: 32 * MIB, softBytes: 8 * MIB, softSeconds: 60 });
    assert.deepEqual(limits.get('slave'), { hardBytes: 256 * MIB, softBytes: 64 * MIB, softSeconds: 60 });
    assert.deepEqual(limits.get('normal'), { hardBytes: 0, softBytes: 0, softSeconds: 0 });
  });

  it("reads redis.conf's units (k = 1000, kb = 1024, any case) and skips a malformed class", () => {
    const limits = parseOutputBufferLimits('  pubsub 1MB 512kb 60 replica 2g 1k 10 normal x 0 0 ');
    assert.deepEqual(limits.get('pubsub'), { hardBytes: MIB, softBytes: 512 * 1024, softSeconds: 60 });
    assert.deepEqual(limits.get('replica'), { hardBytes: 2_000_000_000, softBytes: 1000, softSeconds: 10 });
    assert.equal(limits.has('normal'), false);
    assert.equal(parseOutputBufferLimits('').size, 0);
    assert.equal(parseOutputBufferLimits('pubsub 1 2').size, 0, 'a class needs three numbers');
  });

  it('needs one room burst of the largest frames; the defaults fit under the default 32 MiB', () => {
    const need = pubsubBufferNeed(DEFAULT_LIMITS);
    assert.equal(need, DEFAULT_LIMITS.roomRateBurst * DEFAULT_LIMITS.maxFrameBytes);
    assert.equal(pubsubLimitWarning({ hardBytes: 32 * MIB, softBytes: 8 * MIB, softSeconds: 60 }, need), undefined);
  });

  it('warns below the need, never with no hard limit (0), never without a pubsub class', () => {
    const need = 25 * MIB;
    const warning = pubsubLimitWarning({ hardBytes: MIB, softBytes: 0, softSeconds: 0 }, need);
    assert.match(warning ?? '', /pubsub hard limit is 1\.0 MiB, below the 25\.0 MiB/);
    assert.equal(pubsubLimitWarning({ hardBytes: need, softBytes: 0, softSeconds: 0 }, need), undefined, 'equal is enough');
    assert.equal(pubsubLimitWarning({ hardBytes: 0, softBytes: MIB, softSeconds: 60 }, need), undefined);
    assert.equal(pubsubLimitWarning(undefined, need), undefined);
  });

  it('reads the pubsub class from the CONFIG GET reply; an unexpected reply reads as none', async () => {
    const reply = (value: unknown) => ({ config: async () => value });
    assert.deepEqual(await readPubsubLimit(reply(['client-output-buffer-limit', 'pubsub 1mb 0 0'])), { hardBytes: MIB, softBytes: 0, softSeconds: 0 });
    assert.equal(await readPubsubLimit(reply([])), undefined);
    assert.equal(await readPubsubLimit(reply('OK')), undefined);
    await assert.rejects(readPubsubLimit({ config: async () => Promise.reject(new Error("ERR unknown command 'CONFIG'")) }), /unknown command/);
  });
});
