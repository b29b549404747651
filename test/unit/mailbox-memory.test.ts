import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Mailbox } from '../../src/mailbox/mailbox.js';
import { MemoryMailbox } from '../../src/mailbox/memory.js';
import { mailboxConformance } from '../conformance/mailbox.js';

// Instances of the memory driver share nothing, so "a second node" is the same instance.
const shared = new WeakMap<object, MemoryMailbox>();
mailboxConformance('memory', (options) => {
  const key = options.now;
  const existing = shared.get(key);
  if (existing) return new SharedHandle(existing);
  const box = new MemoryMailbox(options);
  shared.set(key, box);
  return box;
});

/** A second handle on one MemoryMailbox: start/close do not affect the owner. */
class SharedHandle implements Mailbox {
  readonly driver = 'memory';
  constructor(private readonly inner: MemoryMailbox) {}
  async start(): Promise<void> {}
  markSeen: Mailbox['markSeen'] = (user) => this.inner.markSeen(user);
  offer: Mailbox['offer'] = (user, payload) => this.inner.offer(user, payload);
  take: Mailbox['take'] = (user) => this.inner.take(user);
  health: Mailbox['health'] = () => this.inner.health();
  async close(): Promise<void> {}
}

describe('MemoryMailbox', () => {
  it('forgets users whose mark and signals are all past', async () => {
    const clock = { t: 0 };
    const mailbox = new MemoryMailbox({ ttlMs: 1000, now: () => clock.t });
    await mailbox.start();
    for (let i = 0; i < 2000; i += 1) await mailbox.markSeen({ tenant: 't', user: `u${i}` });
    clock.t += 1001;
    await mailbox.markSeen({ tenant: 't', user: 'late' });
    for (let i = 0; i < 2000; i += 1) await mailbox.markSeen({ tenant: 't', user: `v${i}` });
    assert.ok(mailbox.size() <= 2001, `kept ${mailbox.size()}`);
    await mailbox.close();
  });

  it('rejects bad options at construction', () => {
    assert.throws(() => new MemoryMailbox({ ttlMs: 0 }), { name: 'ConfigError' });
    assert.throws(() => new MemoryMailbox({ maxEntries: 0 }), { name: 'ConfigError' });
  });

  it('rejects calls before start', async () => {
    await assert.rejects(new MemoryMailbox().take({ tenant: 't', user: 'u' }), { name: 'NerveError', code: 'unavailable' });
  });
});
