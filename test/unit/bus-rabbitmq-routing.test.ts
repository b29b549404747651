import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChannelNamer } from '../../src/bus/channels.js';
import { HASHED_KEY_PREFIX, MAX_ROUTING_KEY_BYTES, hotExchangeName, nodeQueuePrefix, routingKeyFor } from '../../src/bus/rabbitmq-routing.js';

describe('RabbitMQ routing keys', () => {
  it('keeps a channel of at most 255 bytes as its own key', () => {
    const namer = new ChannelNamer({ env: 'prod', service: 'nerve' });
    const channel = namer.room('acme', 'lobby');
    assert.equal(routingKeyFor(channel), channel);
    const exact = 'a'.repeat(MAX_ROUTING_KEY_BYTES);
    assert.equal(routingKeyFor(exact), exact);
  });

  it('hashes a channel over 255 bytes (counted in UTF-8 bytes, not characters) to #h: + hex SHA-256', () => {
    const over = 'a'.repeat(MAX_ROUTING_KEY_BYTES + 1);
    assert.equal(routingKeyFor(over), `${HASHED_KEY_PREFIX}${createHash('sha256').update(over).digest('hex')}`);
    // 128 characters, 384 bytes.
    const wide = '中'.repeat(128);
    assert.ok(wide.length <= MAX_ROUTING_KEY_BYTES);
    assert.ok(routingKeyFor(wide).startsWith(HASHED_KEY_PREFIX));
    const namer = new ChannelNamer({ env: 'prod', service: 'nerve' });
    const longest = namer.room('acme', '中'.repeat(128));
    assert.ok(Buffer.byteLength(longest) > MAX_ROUTING_KEY_BYTES);
    assert.equal(Buffer.byteLength(routingKeyFor(longest)), 3 + 64);
  });

  it('hashes a short name that starts with the marker, so it cannot equal a hashed key', () => {
    const forged = `${HASHED_KEY_PREFIX}${createHash('sha256').update('a'.repeat(300)).digest('hex')}`;
    assert.notEqual(routingKeyFor(forged), routingKeyFor('a'.repeat(300)));
    assert.ok(routingKeyFor(forged).startsWith(HASHED_KEY_PREFIX));
  });

  it('is injective on distinct channels and always fits in 255 bytes (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400, unit: 'grapheme' }), fc.string({ maxLength: 400, unit: 'grapheme' }), (a, b) => {
        const ka = routingKeyFor(a);
        assert.ok(Buffer.byteLength(ka) <= MAX_ROUTING_KEY_BYTES);
        if (a !== b) assert.notEqual(ka, routingKeyFor(b));
        assert.equal(routingKeyFor(a), ka, 'deterministic');
      }),
      { numRuns: 500 },
    );
  });

  it('names the exchange {env}.{service}.hot and node queues under {env}.{service}.hot.node.{nodeId}.', () => {
    assert.equal(hotExchangeName('prod', 'nerve'), 'prod.nerve.hot');
    assert.equal(nodeQueuePrefix('prod', 'nerve', 'n-1'), 'prod.nerve.hot.node.n-1.');
  });
});
