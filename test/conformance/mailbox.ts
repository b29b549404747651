/**
 * The Mailbox contract (src/mailbox/mailbox.ts), as one suite every driver
 * runs: `mailboxConformance('memory', (options) => new MemoryMailbox(options))`.
 * Time comes from an injected clock, never from sleeping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Mailbox, MailboxOptions, UserRef } from '../../src/mailbox/mailbox.js';
import { testNamespace } from '../helpers/wait.js';

export type CreateMailbox = (options: Required<Pick<MailboxOptions, 'now' | 'ttlMs' | 'maxEntries'>>) => Promise<Mailbox> | Mailbox;

export interface MailboxConformanceOptions {
  /** Set when the driver's service is missing: every test is skipped with this reason. */
  skip?: string | false;
}

interface Fixture {
  /** A started mailbox; `second()` gives another instance sharing its store (a second node). */
  mailbox: Mailbox;
  second: () => Promise<Mailbox>;
  clock: { t: number };
  user: UserRef;
}

const TTL = 30_000;
const MAX = 5;

export function mailboxConformance(
  name: string,
  createMailbox: CreateMailbox,
  cleanup?: (mailbox: Mailbox) => Promise<void> | void,
  options: MailboxConformanceOptions = {},
): void {
  const namespace = testNamespace('mb');
  let users = 0;

  function test(title: string, body: (f: Fixture) => Promise<void>): void {
    it(title, { skip: options.skip || false }, async () => {
      const clock = { t: 1_700_000_000_000 };
      const settings = { now: () => clock.t, ttlMs: TTL, maxEntries: MAX };
      const mailbox = await createMailbox(settings);
      await mailbox.start();
      const opened: Mailbox[] = [mailbox];
      const user: UserRef = { tenant: `${namespace}-t`, user: `user-${++users}` };
      try {
        await body({
          mailbox,
          clock,
          user,
          second: async () => {
            const other = await createMailbox(settings);
            await other.start();
            opened.push(other);
            return other;
          },
        });
      } finally {
        for (const box of opened) await box.close();
        await cleanup?.(mailbox);
      }
    });
  }

  describe(`Mailbox conformance: ${name}`, () => {
    test('a user never seen is not queued for', async ({ mailbox, user }) => {
      assert.deepEqual(await mailbox.offer(user, 'offer-1'), { queued: false, dropped: 0 });
      assert.deepEqual(await mailbox.take(user), { payloads: [], expired: 0 });
    });

    test('a recently seen user gets every signal once, oldest first', async ({ mailbox, user }) => {
      await mailbox.markSeen(user);
      for (const payload of ['a', 'b', 'c']) assert.deepEqual(await mailbox.offer(user, payload), { queued: true, dropped: 0 });
      assert.deepEqual(await mailbox.take(user), { payloads: ['a', 'b', 'c'], expired: 0 });
      assert.deepEqual(await mailbox.take(user), { payloads: [], expired: 0 }, 'taken once');
    });

    test('the mark lasts ttlMs', async ({ mailbox, user, clock }) => {
      await mailbox.markSeen(user);
      clock.t += TTL - 1;
      assert.equal((await mailbox.offer(user, 'in time')).queued, true);
      clock.t += 1;
      assert.equal((await mailbox.offer(user, 'too late')).queued, false);
      assert.deepEqual((await mailbox.take(user)).payloads, ['in time']);
    });

    test('an entry older than ttlMs is discarded and counted, a newer one kept', async ({ mailbox, user, clock }) => {
      await mailbox.markSeen(user);
      await mailbox.offer(user, 'old');
      clock.t += TTL / 2;
      await mailbox.markSeen(user);
      await mailbox.offer(user, 'new');
      clock.t += TTL / 2 + 1;
      assert.deepEqual(await mailbox.take(user), { payloads: ['new'], expired: 1 });
    });

    test(`keeps at most maxEntries (${MAX}), dropping the oldest`, async ({ mailbox, user }) => {
      await mailbox.markSeen(user);
      let dropped = 0;
      for (let i = 1; i <= MAX + 2; i += 1) dropped += (await mailbox.offer(user, `s${i}`)).dropped;
      assert.equal(dropped, 2);
      assert.deepEqual(
        (await mailbox.take(user)).payloads,
        Array.from({ length: MAX }, (_, i) => `s${i + 3}`),
      );
    });

    test('users and tenants are separate', async ({ mailbox, user }) => {
      const other: UserRef = { tenant: user.tenant, user: `${user.user}-b` };
      const otherTenant: UserRef = { tenant: `${user.tenant}x`, user: user.user };
      await mailbox.markSeen(user);
      await mailbox.markSeen(other);
      await mailbox.offer(user, 'mine');
      await mailbox.offer(other, 'theirs');
      assert.equal((await mailbox.offer(otherTenant, 'nobody')).queued, false);
      assert.deepEqual((await mailbox.take(other)).payloads, ['theirs']);
      assert.deepEqual((await mailbox.take(user)).payloads, ['mine']);
    });

    test('payloads are opaque: any text comes back byte for byte', async ({ mailbox, user }) => {
      const payloads = ['{"op":"signal","data":"a|b|c"}', '|', 'ünïcødé ☎ \u0000 end', 'x'.repeat(10_000)];
      await mailbox.markSeen(user);
      for (const payload of payloads) await mailbox.offer(user, payload);
      assert.deepEqual((await mailbox.take(user)).payloads, payloads);
    });

    test('concurrent takes (two nodes) get each entry exactly once', async ({ mailbox, user, second }) => {
      const other = await second();
      await mailbox.markSeen(user);
      for (let i = 0; i < MAX; i += 1) await other.offer(user, `s${i}`);
      const takes = await Promise.all([mailbox.take(user), other.take(user), mailbox.take(user), other.take(user)]);
      const all = takes.flatMap((take) => take.payloads);
      assert.deepEqual(
        all.sort(),
        Array.from({ length: MAX }, (_, i) => `s${i}`),
      );
      assert.equal(takes.filter((take) => take.payloads.length > 0).length, 1, 'one taker gets them all');
    });

    test('refuses calls after close with unavailable; close is idempotent', async ({ mailbox, user }) => {
      await mailbox.close();
      await mailbox.close();
      await assert.rejects(mailbox.offer(user, 'x'), { name: 'NerveError', code: 'unavailable' });
      await assert.rejects(mailbox.take(user), { name: 'NerveError', code: 'unavailable' });
      assert.equal(mailbox.health().ok, false);
    });
  });
}
