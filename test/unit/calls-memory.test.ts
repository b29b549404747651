import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryCallStore } from '../../src/calls/memory.js';
import { callsConformance } from '../conformance/calls.js';

// A second node is the same instance: the memory driver shares nothing across processes.
callsConformance('memory', (ttlMs, peer) => peer ?? new MemoryCallStore({ ttlMs }));

describe('MemoryCallStore', () => {
  it('forgets a call at its end', async () => {
    const store = new MemoryCallStore();
    await store.open();
    const ref = { tenant: 't', room: 'r', call: 'c' };
    await store.join(ref, { user: 'u', conn: 'c1' }, 0);
    assert.equal(store.size(), 1);
    await store.leave(ref, 'c1', 10);
    assert.equal(store.size(), 0);
    await store.close();
  });

  it('refuses a TTL below 100 ms at construction', () => {
    assert.throws(() => new MemoryCallStore({ ttlMs: 10 }), { name: 'ConfigError' });
  });
});
