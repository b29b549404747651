import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChannelNamer, escapeComponent, hashTag } from '../../src/bus/channels.js';
import { keySlot } from '../../src/redis/key-slot.js';

const anyText = fc.string({ unit: 'binary', maxLength: 40 });
const FORBIDDEN = /[:*?[\]\\{}\s%]/;

describe('escapeComponent', () => {
  it('keeps unreserved characters as they are', () => {
    assert.equal(escapeComponent('Room-1.a_b~c'), 'Room-1.a_b~c');
  });

  it('escapes separators, glob characters and hash-tag braces', () => {
    assert.equal(escapeComponent('a:b'), 'a%3Ab');
    assert.equal(escapeComponent('*?[]\\'), '%2A%3F%5B%5D%5C');
    assert.equal(escapeComponent('{x}'), '%7Bx%7D');
    assert.equal(escapeComponent('%3A'), '%253A');
    assert.equal(escapeComponent("!'()"), '%21%27%28%29');
  });

  it('escapes a NUL followed by `u` as itself, not as a surrogate marker', () => {
    assert.equal(decodeURIComponent(escapeComponent('\u0000u')), '\u0000u');
    assert.notEqual(escapeComponent('\u0000uD800'), escapeComponent('\uD800'));
    assert.equal(escapeComponent('a\uD800b'), 'a%uD800b');
  });

  it('is injective: decoding gives the input back', () => {
    fc.assert(
      fc.property(anyText, (text) => decodeURIComponent(escapeComponent(text)) === text),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(anyText, anyText, (a, b) => a === b || escapeComponent(a) !== escapeComponent(b)),
      { numRuns: 1000 },
    );
  });

  it('never outputs `:`, glob characters, braces or whitespace, and `%` only as an escape', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const escaped = escapeComponent(text);
        const withoutEscapes = escaped.replace(/%[0-9A-F]{2}/g, '');
        return !FORBIDDEN.test(withoutEscapes) && /^[A-Za-z0-9._~%-]*$/.test(escaped);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('ChannelNamer', () => {
  const tuple = fc.record({ env: anyText, service: anyText, tenant: anyText, id: anyText, kind: fc.constantFrom('room', 'user') });
  const name = (t: { env: string; service: string; tenant: string; id: string; kind: string }): string => {
    const namer = new ChannelNamer({ env: t.env, service: t.service });
    return t.kind === 'room' ? namer.room(t.tenant, t.id) : namer.user(t.tenant, t.id);
  };

  it('builds {env}:{service}:{tenant}:room|user:{id}', () => {
    const namer = new ChannelNamer({ env: 'prod', service: 'nerve' });
    assert.equal(namer.room('acme', 'lobby'), 'prod:nerve:acme:room:lobby');
    assert.equal(namer.user('acme', 'a@b.c'), 'prod:nerve:acme:user:a%40b.c');
    assert.equal(namer.node('n-1'), 'prod:nerve:_node:n-1');
    assert.equal(namer.room('a:room:b', 'c'), 'prod:nerve:a%3Aroom%3Ab:room:c');
  });

  it('gives distinct names to distinct (env, service, tenant, kind, id) tuples', () => {
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        const same = a.env === b.env && a.service === b.service && a.tenant === b.tenant && a.id === b.id && a.kind === b.kind;
        return same === (name(a) === name(b));
      }),
      { numRuns: 1000 },
    );
  });

  it('always has exactly five components, with no glob characters', () => {
    fc.assert(
      fc.property(tuple, (t) => {
        const channel = name(t);
        return channel.split(':').length === 5 && !/[*?[\]\\]/.test(channel);
      }),
      { numRuns: 500 },
    );
  });

  it('never confuses a node channel with a room or user channel', () => {
    fc.assert(
      fc.property(tuple, anyText, (t, nodeId) => {
        const node = new ChannelNamer({ env: t.env, service: t.service }).node(nodeId);
        return node.split(':').length === 4 && node !== name(t);
      }),
      { numRuns: 500 },
    );
  });
});

describe('ChannelNamer with hashTags (sharded Pub/Sub on Redis Cluster)', () => {
  const tuple = fc.record({ env: anyText, service: anyText, tenant: anyText, id: anyText, kind: fc.constantFrom('room', 'user') });
  const name = (t: { env: string; service: string; tenant: string; id: string; kind: string }): string => {
    const namer = new ChannelNamer({ env: t.env, service: t.service, hashTags: true });
    return t.kind === 'room' ? namer.room(t.tenant, t.id) : namer.user(t.tenant, t.id);
  };

  it('ends room and user names in the {tenant:id} tag; the default stays untagged', () => {
    const namer = new ChannelNamer({ env: 'prod', service: 'nerve', hashTags: true });
    assert.equal(namer.hashTags, true);
    assert.equal(namer.room('acme', 'lobby'), 'prod:nerve:acme:room:{acme:lobby}');
    assert.equal(namer.user('acme', 'a@b.c'), 'prod:nerve:acme:user:{acme:a%40b.c}');
    assert.equal(namer.node('n-1'), 'prod:nerve:_node:n-1');
    assert.equal(namer.room('a:{b}', 'c'), 'prod:nerve:a%3A%7Bb%7D:room:{a%3A%7Bb%7D:c}');
    assert.equal(new ChannelNamer({ env: 'prod', service: 'nerve' }).hashTags, false);
    assert.equal(hashTag('acme', 'lobby'), '{acme:lobby}');
  });

  it('hashes a room channel to the slot of its history and presence keys', () => {
    // The key layout of src/history/redis-streams.ts and src/presence/redis.ts.
    fc.assert(
      fc.property(anyText, anyText, (tenant, room) => {
        const namer = new ChannelNamer({ env: 'e', service: 's', hashTags: true });
        const history = `${namer.prefix}:${escapeComponent(tenant)}:room:${hashTag(tenant, room)}:history:meta`;
        const presence = `${namer.prefix}:${escapeComponent(tenant)}:room:${hashTag(tenant, room)}:presence:conns`;
        const slot = keySlot(namer.room(tenant, room));
        return slot === keySlot(history) && slot === keySlot(presence);
      }),
      { numRuns: 500 },
    );
  });

  it('has exactly one {...}: the whole tag, at the end', () => {
    fc.assert(
      fc.property(tuple, (t) => {
        const channel = name(t);
        const open = channel.indexOf('{');
        const close = channel.indexOf('}', open);
        const tag = hashTag(t.tenant, t.id);
        return (
          channel.endsWith(tag) &&
          open === channel.length - tag.length &&
          close === channel.length - 1 &&
          channel.lastIndexOf('{') === open &&
          !/[*?[\]\\]/.test(channel)
        );
      }),
      { numRuns: 500 },
    );
  });

  it('gives distinct names to distinct (env, service, tenant, kind, id) tuples', () => {
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        const same = a.env === b.env && a.service === b.service && a.tenant === b.tenant && a.id === b.id && a.kind === b.kind;
        return same === (name(a) === name(b));
      }),
      { numRuns: 1000 },
    );
  });

  it('never confuses a node channel with a room or user channel', () => {
    fc.assert(
      fc.property(tuple, anyText, (t, nodeId) => new ChannelNamer({ env: t.env, service: t.service, hashTags: true }).node(nodeId) !== name(t)),
      { numRuns: 500 },
    );
  });

  it('spreads rooms over the slots of every master of a 3-master cluster', () => {
    const namer = new ChannelNamer({ env: 'prod', service: 'nerve', hashTags: true });
    const slots = Array.from({ length: 30 }, (_, i) => keySlot(namer.room('acme', `room-${i}`)));
    // redis-cli --cluster create splits 16384 slots into three ranges.
    const masters = new Set(slots.map((slot) => (slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2)));
    assert.equal(masters.size, 3, `slots ${slots.join(', ')}`);
    assert.ok(new Set(slots).size >= 28, 'rooms land on (nearly) distinct slots');
  });
});
