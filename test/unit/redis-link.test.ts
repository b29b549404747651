/**
 * RedisLink's decisions on a fake ioredis client (no server, no timing):
 * which failures are "not sent", "answered" or "outcome unknown", when a
 * connection is cut, and when its owner is told it is back.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ReplyError, type Redis } from 'ioredis';
import { OutcomeUnknownError } from '../../src/lane-errors.js';
import { RedisLink } from '../../src/redis/link.js';

/** The part of an ioredis client the link touches. */
class FakeClient extends EventEmitter {
  status = 'ready';
  destroyed = 0;
  pingReply: () => Promise<unknown> = () => Promise.resolve('PONG');
  readonly stream = {
    destroy: (): void => {
      this.destroyed += 1;
      this.status = 'reconnecting';
      this.emit('close');
    },
  };
  ping(): Promise<unknown> {
    return this.pingReply();
  }
  disconnect(): void {}
  /** The connection is back (ioredis' `ready`). */
  ready(): void {
    this.status = 'ready';
    this.emit('ready');
  }
}

function link(options: { owned?: boolean; onRestored?: () => void } = {}): { client: FakeClient; link: RedisLink } {
  const client = new FakeClient();
  const made = new RedisLink({ client: client as unknown as Redis, lane: 'history', intervalMs: 1000, ...options });
  return { client, link: made };
}

const timedOut = (): Error => new Error('Command timed out');

describe('RedisLink', () => {
  it('a command that was never sent (connection not ready) fails as it is: nothing happened', async () => {
    const { client, link: l } = link();
    client.status = 'reconnecting';
    const refused = new Error("Stream isn't writeable and enableOfflineQueue options is false");
    await assert.rejects(
      l.run('append', () => Promise.reject(refused)),
      (error: unknown) => error === refused,
    );
    assert.equal(client.destroyed, 0);
  });

  it('a reply error is an answer: passed through, the connection kept', async () => {
    const { client, link: l } = link();
    // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call -- ioredis types its ReplyError as any
    const reply: Error = new ReplyError('ERR something');
    await assert.rejects(
      l.run('append', () => Promise.reject(reply)),
      (error: unknown) => error === reply,
    );
    assert.equal(client.destroyed, 0);
    assert.equal(l.problem(), undefined);
  });

  it('a timed-out command is an unknown outcome and replaces the connection', async () => {
    const { client, link: l } = link();
    await assert.rejects(
      l.run('history.append', () => Promise.reject(timedOut())),
      (error: unknown) => error instanceof OutcomeUnknownError && error.code === 'outcome_unknown' && /history\.append/.test(error.message),
    );
    assert.equal(client.destroyed, 1);
    assert.equal(l.stats.replacements, 1);
    assert.match(l.problem() ?? '', /command timed out \(history\.append\); connection replaced/);
    client.ready();
    assert.equal(l.problem(), undefined, 'trusted again once the fresh connection is ready');
  });

  it('a command lost with its connection (not a timeout) is an unknown outcome without another cut', async () => {
    const { client, link: l } = link();
    await assert.rejects(
      l.run('mailbox.take', () => Promise.reject(new Error('Connection is closed.'))),
      OutcomeUnknownError,
    );
    assert.equal(client.destroyed, 0);
  });

  it('a timeout of a command sent on a connection already replaced does not cut the new one', async () => {
    const { client, link: l } = link();
    let fail: (error: Error) => void = () => {};
    const pending = l.run('append', () => new Promise((_, reject) => (fail = reject)));
    client.stream.destroy(); // lost meanwhile (network), reconnected
    client.ready();
    const destroyedBefore = client.destroyed;
    fail(timedOut());
    await assert.rejects(pending, OutcomeUnknownError);
    assert.equal(client.destroyed, destroyedBefore);
  });

  it('a probe not answered cuts the connection; one answered clears the problem', async () => {
    const { client, link: l } = link();
    l.start();
    try {
      assert.equal(await l.probe(), true);
      client.pingReply = () => Promise.reject(new Error('Command timed out'));
      assert.equal(await l.probe(), false);
      assert.equal(client.destroyed, 1);
      assert.equal(l.stats.probeFailures, 1);
      assert.match(l.problem() ?? '', /PING not answered within 1000 ms; connection replaced/);
      client.pingReply = () => Promise.resolve('PONG');
      client.ready();
      assert.equal(await l.probe(), true);
      assert.equal(l.problem(), undefined);
    } finally {
      l.stop();
    }
  });

  it('tells its owner once the connection is ready after a loss, not at the first ready', () => {
    let restored = 0;
    const client = new FakeClient();
    client.status = 'connecting';
    const l = new RedisLink({ client: client as unknown as Redis, lane: 'presence', intervalMs: 1000, onRestored: () => (restored += 1) });
    client.ready();
    assert.equal(restored, 0);
    l.cut('test');
    client.ready();
    assert.equal(restored, 1);
    assert.equal(l.stats.reconnects, 1);
    l.stop();
  });

  it('never cuts a connection it does not own, but reports it', async () => {
    const { client, link: l } = link({ owned: false });
    await assert.rejects(
      l.run('append', () => Promise.reject(timedOut())),
      OutcomeUnknownError,
    );
    assert.equal(client.destroyed, 0);
    assert.equal(l.stats.replacements, 0);
    assert.match(l.problem() ?? '', /command timed out/);
  });

  it('is found by its client, and forgotten when stopped', () => {
    const { client, link: l } = link();
    assert.equal(RedisLink.of(client as unknown as Redis), l);
    l.stop();
    assert.equal(RedisLink.of(client as unknown as Redis), undefined);
  });
});
