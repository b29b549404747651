/**
 * RedisPresence against the real Redis (REDIS_URL, default
 * redis://127.0.0.1:6379), under a random key prefix deleted afterwards.
 * Expiry is driven by an injected clock, never by sleeping.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { RoomRef } from '../../src/history/history.js';
import { RedisPresence } from '../../src/presence/redis.js';
import { KEY_TTL_FACTOR, type PresenceExpiry, type PresenceRejoin } from '../../src/presence/redis-options.js';
import { removeScript } from '../../src/presence/redis-scripts.js';
import { presenceConformance } from '../conformance/presence.js';
import { testNamespace } from '../helpers/wait.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisAvailable(): Promise<string | false> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return false;
  } catch (error) {
    const reason = `Redis not reachable at ${REDIS_URL}: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI === 'true') throw new Error(reason, { cause: error });
    return reason;
  } finally {
    probe.disconnect();
  }
}

const skip = await redisAvailable();
const namespace = testNamespace('np');
const admin = skip ? undefined : new Redis(REDIS_URL);

after(async () => {
  if (!admin) return;
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${namespace}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await admin.unlink(...keys);
  } while (cursor !== '0');
  admin.disconnect();
});

presenceConformance('redis', (options) => new RedisPresence({ url: REDIS_URL, prefix: `${namespace}:c`, heartbeatMs: 0, ...options }), undefined, { skip });

describe('RedisPresence expiry', { skip }, () => {
  const room: RoomRef = { tenant: 'acme', room: 'call' };

  async function cluster(prefix: string) {
    const clock = { t: 1_000_000 };
    const expired: PresenceExpiry[] = [];
    const make = () =>
      new RedisPresence({ url: REDIS_URL, prefix, ttlMs: 30_000, heartbeatMs: 0, now: () => clock.t, onExpire: (_room, expiry) => expired.push(expiry) });
    const a = make();
    const b = make();
    await Promise.all([a.start(), b.start()]);
    return { clock, expired, a, b };
  }

  it('counts a user connected through two nodes once', async () => {
    const { a, b } = await cluster(`${namespace}:two`);
    assert.deepEqual(await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 }), { userJoined: true, roomStarted: true, count: 1 });
    assert.deepEqual(await b.add(room, { user: 'alice', conn: 'b1', node: 'b', ts: 20 }), { userJoined: false, roomStarted: false, count: 1 });
    assert.deepEqual(await b.members(room), [{ user: 'alice', since: 10 }]);
    assert.deepEqual(await a.remove(room, { user: 'alice', conn: 'a1' }), { userLeft: false, roomEmpty: false, count: 1 });
    assert.deepEqual(await b.remove(room, { user: 'alice', conn: 'b1' }), { userLeft: true, roomEmpty: true, count: 0 });
    await Promise.all([a.close(), b.close()]);
  });

  it("drops a crashed node's members after the TTL and reports their leave once", async () => {
    const { clock, expired, a, b } = await cluster(`${namespace}:crash`);
    await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
    await a.add(room, { user: 'carol', conn: 'a2', node: 'a', ts: 11 });
    await b.add(room, { user: 'bob', conn: 'b1', node: 'b', ts: 20 });
    await b.add(room, { user: 'carol', conn: 'b2', node: 'b', ts: 21 });
    await a.close(); // node a "crashes": its entries are no longer refreshed
    clock.t += 20_000;
    await b.heartbeat();
    assert.equal((await b.members(room)).length, 3, 'nothing expires before the TTL');
    clock.t += 10_001;
    assert.deepEqual(await b.members(room), [
      { user: 'carol', since: 11 },
      { user: 'bob', since: 20 },
    ]);
    assert.deepEqual(expired, [{ users: ['alice'], roomEmpty: false }]);
    assert.deepEqual(await b.members(room), [
      { user: 'carol', since: 11 },
      { user: 'bob', since: 20 },
    ]);
    assert.equal(expired.length, 1, 'reported once');
    await b.close();
  });

  it('reports the room empty when its last members expire', async () => {
    const { clock, expired, a, b } = await cluster(`${namespace}:empty`);
    await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
    await a.close();
    clock.t += 30_001;
    assert.deepEqual(await b.add(room, { user: 'bob', conn: 'b1', node: 'b', ts: 20 }), { userJoined: true, roomStarted: true, count: 1 });
    assert.deepEqual(expired, [{ users: ['alice'], roomEmpty: true }]);
    await b.close();
  });

  it('keeps members whose node heartbeats, and re-adds entries that expired while cut off', async () => {
    const { clock, a, b } = await cluster(`${namespace}:beat`);
    await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
    for (let i = 0; i < 5; i += 1) {
      clock.t += 20_000;
      await a.heartbeat();
    }
    assert.deepEqual(await b.members(room), [{ user: 'alice', since: 10 }]);
    clock.t += 40_000;
    assert.deepEqual(await b.members(room), []);
    await a.heartbeat();
    assert.deepEqual(await b.members(room), [{ user: 'alice', since: 10 }]);
    await Promise.all([a.close(), b.close()]);
  });

  it('reports a failing heartbeat in health while the connection stays up, until a beat succeeds', async () => {
    const { a, b } = await cluster(`${namespace}:beat`);
    try {
      await a.add(room, { user: 'ann', conn: 'c1', node: 'a', ts: 1 });
      const client = (a as unknown as { client: { evalsha: (...args: unknown[]) => Promise<unknown> } }).client;
      const evalsha = client.evalsha;
      client.evalsha = () => Promise.reject(new Error('BUSY Redis is busy running a script'));
      await assert.rejects(a.heartbeat(), { code: 'unavailable' });
      const health = a.health();
      assert.equal(health.ok, false);
      assert.match(health.detail ?? '', /heartbeat failed: BUSY/);
      client.evalsha = evalsha;
      await a.heartbeat();
      assert.equal(a.health().ok, true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('answers unavailable when Redis cannot be reached', async () => {
    const presence = new RedisPresence({ url: 'redis://127.0.0.1:1', prefix: `${namespace}:down` });
    await assert.rejects(presence.start(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(presence.health().ok, false);
    await presence.close();
  });
});

describe('RedisPresence sweeps the rooms of dead instances', { skip }, () => {
  const TTL = 30_000;
  const BEAT = 10_000;
  const room: RoomRef = { tenant: 'acme', room: 'call' };

  interface Report {
    room: RoomRef;
    expiry: PresenceExpiry;
  }

  /** `count` instances on one prefix and one injected clock; reports[i] collects instance i's onExpire calls. */
  async function instances(name: string, count: number) {
    const prefix = `${namespace}:${name}`;
    const clock = { t: 1_000_000 };
    const reports: Report[][] = [];
    const make = (id: string): RedisPresence => {
      const seen: Report[] = [];
      reports.push(seen);
      return new RedisPresence({
        url: REDIS_URL,
        prefix,
        ttlMs: TTL,
        heartbeatMs: 0,
        instanceId: id,
        now: () => clock.t,
        onExpire: (room, expiry) => seen.push({ room, expiry }),
      });
    };
    const list = Array.from({ length: count }, (_, i) => make(`node-${i}`));
    await Promise.all(list.map((presence) => presence.start()));
    const opened = [...list];
    return {
      clock,
      reports,
      list,
      /** A new instance on the same prefix (a node started later), closed with the others. */
      later: async (id: string): Promise<RedisPresence> => {
        const presence = make(id);
        opened.push(presence);
        await presence.start();
        return presence;
      },
      close: () => Promise.all(opened.map((presence) => presence.close())),
    };
  }

  /** Whether instance `id`'s index is gone: no registration, no room set, no sweep lock. */
  async function indexGone(probe: RedisPresence, id: string): Promise<boolean> {
    const [score, keys] = await Promise.all([admin!.zscore(probe.registryKey(), id), admin!.exists(probe.nodeKey(id, 'rooms'), probe.nodeKey(id, 'sweep'))]);
    return score === null && keys === 0;
  }

  it('a survivor reports the leaves of a room whose members were all on a dead instance within ttl + heartbeat, room empty', async () => {
    const { clock, reports, list, close } = await instances('alone', 2);
    const [a, b] = list as [RedisPresence, RedisPresence];
    const lonely: RoomRef = { tenant: 'acme', room: 'only-on-a' };
    try {
      await a.add(lonely, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
      await a.add(lonely, { user: 'carol', conn: 'a2', node: 'a', ts: 11 });
      await b.add(room, { user: 'bob', conn: 'b1', node: 'b', ts: 20 });
      assert.deepEqual(await admin!.smembers(a.nodeKey(a.instanceId, 'rooms')), [JSON.stringify(['acme', 'only-on-a'])]);
      const keyTtl = await admin!.pttl(a.key(lonely, 'conns'));
      assert.ok(keyTtl > TTL && keyTtl <= TTL * KEY_TTL_FACTOR, `room keys outlive the entries (pttl ${keyTtl})`);
      await a.close(); // a "crashes": entries left, nobody touches its room again
      const lastWrite = clock.t;
      // b heartbeats on schedule; nothing may leave before the TTL, everything within TTL + one heartbeat.
      while (reports[1]!.length === 0 && clock.t - lastWrite <= TTL + BEAT) {
        clock.t += BEAT / 2;
        await b.heartbeat();
        if (clock.t - lastWrite < TTL) assert.deepEqual(reports[1], [], `nothing expires ${clock.t - lastWrite} ms after the last write`);
      }
      assert.ok(clock.t - lastWrite <= TTL + BEAT, `reported ${clock.t - lastWrite} ms after the last write`);
      assert.deepEqual(reports[1], [{ room: lonely, expiry: { users: ['alice', 'carol'], roomEmpty: true } }]);
      assert.deepEqual(reports[0], []);
      assert.equal(await admin!.exists(a.key(lonely, 'conns'), a.key(lonely, 'users'), a.key(lonely, 'counts')), 0, 'the room keys are gone');
      assert.ok(await indexGone(b, a.instanceId), "the dead instance's index is gone");
      assert.deepEqual(await b.members(room), [{ user: 'bob', since: 20 }], "the survivor's own room is untouched");
      await b.heartbeat();
      assert.equal(reports[1].length, 1, 'reported once');
    } finally {
      await close();
    }
  });

  it('exactly one survivor reports a dead instance when two survivors race', async () => {
    const { clock, reports, list, close } = await instances('race', 3);
    const [a, b, c] = list as [RedisPresence, RedisPresence, RedisPresence];
    const rooms: RoomRef[] = Array.from({ length: 40 }, (_, i) => ({ tenant: 'acme', room: `r${i}` }));
    try {
      await Promise.all(rooms.map((r, i) => a.add(r, { user: `u${i}`, conn: `a${i}`, node: 'a', ts: i })));
      await a.close();
      clock.t += TTL + 1;
      await Promise.all([b.heartbeat(), c.heartbeat(), b.heartbeat(), c.heartbeat()]);
      const reporters = [reports[1]!, reports[2]!].filter((seen) => seen.length > 0);
      assert.equal(reporters.length, 1, 'one survivor swept');
      const seen = reporters[0]!;
      assert.deepEqual(seen.map((report) => report.room.room).sort(), rooms.map((r) => r.room).sort(), 'every room reported once');
      assert.ok(seen.every((report) => report.expiry.roomEmpty && report.expiry.users.length === 1));
      await Promise.all([b.heartbeat(), c.heartbeat()]);
      assert.equal(reports[1]!.length + reports[2]!.length, rooms.length, 'nothing reported twice');
      assert.ok(await indexGone(b, a.instanceId));
    } finally {
      await close();
    }
  });

  it('a node restarted under a new instance id sweeps up after its dead predecessor at start', async () => {
    const { clock, reports, list, later, close } = await instances('restart', 1);
    const [old] = list as [RedisPresence];
    try {
      await old.add(room, { user: 'alice', conn: 'o1', node: 'n', ts: 10 });
      await old.close(); // SIGKILL
      clock.t += TTL + 1;
      const fresh = await later('node-restarted');
      assert.deepEqual(reports[1], [{ room, expiry: { users: ['alice'], roomEmpty: true } }]);
      assert.ok(await indexGone(fresh, old.instanceId));
      assert.notEqual(await admin!.zscore(fresh.registryKey(), fresh.instanceId), null, 'the new instance is registered');
    } finally {
      await close();
    }
  });

  it('keeps the index tidy: a room leaves it with the last local entry, a clean close unregisters', async () => {
    const { list, close } = await instances('tidy', 1);
    const [a] = list as [RedisPresence];
    const roomsKey = a.nodeKey(a.instanceId, 'rooms');
    try {
      await a.add(room, { user: 'alice', conn: 'c1', node: 'a', ts: 10 });
      await a.add(room, { user: 'alice', conn: 'c2', node: 'a', ts: 11 });
      await a.remove(room, { user: 'alice', conn: 'c1' });
      assert.equal(await admin!.scard(roomsKey), 1);
      await a.remove(room, { user: 'alice', conn: 'c2' });
      assert.equal(await admin!.exists(roomsKey), 0);
      assert.notEqual(await admin!.zscore(a.registryKey(), a.instanceId), null);
      await a.close();
      assert.ok(await indexGone(a, a.instanceId));
      assert.equal(await admin!.exists(a.registryKey()), 0, 'the registry is empty, so deleted');
    } finally {
      await close();
    }
  });

  it('an instance swept while only cut off registers and lists its rooms again at its next heartbeat', async () => {
    const { clock, reports, list, close } = await instances('late', 2);
    const [a, b] = list as [RedisPresence, RedisPresence];
    try {
      await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
      clock.t += TTL + 1;
      await b.heartbeat();
      assert.deepEqual(reports[1], [{ room, expiry: { users: ['alice'], roomEmpty: true } }]);
      assert.ok(await indexGone(b, a.instanceId));
      await a.heartbeat();
      assert.deepEqual(await b.members(room), [{ user: 'alice', since: 10 }]);
      assert.notEqual(await admin!.zscore(a.registryKey(), a.instanceId), null);
      assert.deepEqual(await admin!.smembers(a.nodeKey(a.instanceId, 'rooms')), [JSON.stringify([room.tenant, room.room])]);
    } finally {
      await close();
    }
  });
});

describe('RedisPresence heartbeat against remove, and restore after a stall', { skip }, () => {
  const TTL = 30_000;
  const USERS = 20;

  interface Seen {
    expired: Array<{ room: RoomRef; expiry: PresenceExpiry }>;
    rejoined: Array<{ room: RoomRef; rejoin: PresenceRejoin }>;
  }

  /**
   * A connection on which the remove script runs in Redis at once but its
   * reply reaches the caller only once `gate` resolves: the interleaving in
   * which a heartbeat used to re-create the removed entries.
   */
  function slowRemoveReplies(gate: Promise<void>): Redis {
    const client = new Redis(REDIS_URL);
    type Send = (...args: unknown[]) => Promise<unknown>;
    const patched = client as unknown as { evalsha: Send; eval: Send };
    for (const [command, script] of [
      ['evalsha', removeScript.sha],
      ['eval', removeScript.source],
    ] as const) {
      const send = patched[command].bind(client);
      patched[command] = (...args) => {
        const reply = send(...args);
        return args[0] === script ? reply.then(async (value) => (await gate, value)) : reply;
      };
    }
    return client;
  }

  async function pair(name: string, clientOfA?: Redis) {
    const prefix = `${namespace}:${name}`;
    const clock = { t: 1_000_000 };
    const seen: Seen[] = [];
    const make = (id: string, client?: Redis): RedisPresence => {
      const mine: Seen = { expired: [], rejoined: [] };
      seen.push(mine);
      return new RedisPresence({
        ...(client ? { client } : { url: REDIS_URL }),
        prefix,
        ttlMs: TTL,
        heartbeatMs: 0,
        instanceId: id,
        now: () => clock.t,
        onExpire: (room, expiry) => mine.expired.push({ room, expiry }),
        onRejoin: (room, rejoin) => mine.rejoined.push({ room, rejoin }),
      });
    };
    const a = make('a', clientOfA);
    const b = make('b');
    await Promise.all([a.start(), b.start()]);
    const close = async (): Promise<void> => {
      await Promise.all([a.close(), b.close()]);
      clientOfA?.disconnect();
    };
    return { clock, seen, a, b, close };
  }

  const users = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(2, '0')}`);

  for (const order of ['heartbeat first', 'removes first'] as const) {
    it(`a heartbeat issued in the same tick as removes (${order}) brings nobody back, and nothing leaves twice`, async () => {
      let release = (): void => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const { clock, seen, a, b, close } = await pair(`race-${order === 'heartbeat first' ? 'h' : 'r'}`, slowRemoveReplies(gate));
      const room: RoomRef = { tenant: 'acme', room: 'race' };
      const keep: RoomRef = { tenant: 'acme', room: 'keep' };
      try {
        for (const [i, user] of users.entries()) await a.add(room, { user, conn: `c${i}`, node: 'a', ts: i });
        await b.add(keep, { user: 'bob', conn: 'b1', node: 'b', ts: 1 });
        const removes = (): Array<Promise<unknown>> => users.map((user, i) => a.remove(room, { user, conn: `c${i}` }));
        let beat: Promise<void>;
        let removed: Array<Promise<unknown>>;
        if (order === 'heartbeat first') {
          beat = a.heartbeat();
          removed = removes();
        } else {
          removed = removes();
          beat = a.heartbeat();
        }
        // The removes ran in Redis; their replies are held until the heartbeat is done.
        await beat;
        release();
        const results = await Promise.all(removed);
        const left = results.filter((result) => (result as { userLeft: boolean }).userLeft);
        assert.equal(left.length, USERS, 'every user left once');
        assert.deepEqual(await b.members(room), [], 'nobody came back');
        assert.equal(await admin!.exists(a.key(room, 'conns'), a.key(room, 'users'), a.key(room, 'counts')), 0, 'the room keys are gone');
        // More heartbeats, a TTL later, on both nodes: no ghost expires, nobody is restored.
        for (let i = 0; i < 4; i += 1) {
          clock.t += TTL / 2 + 1;
          await Promise.all([a.heartbeat(), b.heartbeat()]);
        }
        assert.deepEqual(await b.members(room), []);
        assert.deepEqual(seen[0], { expired: [], rejoined: [] });
        assert.deepEqual(seen[1], { expired: [], rejoined: [] });
        assert.deepEqual(await b.members(keep), [{ user: 'bob', since: 1 }]);
      } finally {
        await close();
      }
    });
  }

  it('a remove issued while an add of the same connection is in flight wins', async () => {
    const { clock, seen, a, b, close } = await pair('add-remove');
    const room: RoomRef = { tenant: 'acme', room: 'add-remove' };
    try {
      const added = users.map((user, i) => a.add(room, { user, conn: `c${i}`, node: 'a', ts: i }));
      const removed = users.map((user, i) => a.remove(room, { user, conn: `c${i}` }));
      await Promise.all([...added, ...removed, a.heartbeat()]);
      assert.deepEqual(await b.members(room), []);
      clock.t += TTL + 1;
      await Promise.all([a.heartbeat(), b.heartbeat()]);
      assert.deepEqual(await b.members(room), []);
      assert.deepEqual(seen[0], { expired: [], rejoined: [] });
      assert.deepEqual(seen[1], { expired: [], rejoined: [] });
    } finally {
      await close();
    }
  });

  it('after a stall longer than the TTL a survivor reports the leave, then the next heartbeat restores and reports the join', async () => {
    const { clock, seen, a, b, close } = await pair('restore');
    const room: RoomRef = { tenant: 'acme', room: 'stall' };
    const shared: RoomRef = { tenant: 'acme', room: 'shared' };
    try {
      await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
      await a.add(room, { user: 'alice', conn: 'a2', node: 'a', ts: 11 });
      await a.add(room, { user: 'carol', conn: 'a3', node: 'a', ts: 12 });
      await a.add(shared, { user: 'dave', conn: 'a4', node: 'a', ts: 13 });
      await b.add(shared, { user: 'bob', conn: 'b1', node: 'b', ts: 20 });
      // a stalls (no heartbeat for longer than the TTL); b heartbeats on.
      clock.t += TTL / 2;
      await b.heartbeat();
      assert.deepEqual(seen[1]!.expired, []);
      clock.t += TTL / 2 + 1;
      await b.heartbeat();
      const byRoom = (reports: Array<{ room: RoomRef }>) => [...reports].sort((x, y) => (x.room.room < y.room.room ? -1 : 1));
      assert.deepEqual(byRoom(seen[1]!.expired), [
        { room: shared, expiry: { users: ['dave'], roomEmpty: false } },
        { room, expiry: { users: ['alice', 'carol'], roomEmpty: true } },
      ]);
      assert.deepEqual(await b.members(room), []);
      await a.heartbeat(); // a wakes up
      assert.deepEqual(seen[0]!.expired, [], 'the survivor already reported the leaves');
      assert.deepEqual(byRoom(seen[0]!.rejoined), [
        { room: shared, rejoin: { users: ['dave'], roomStarted: false } },
        { room, rejoin: { users: ['alice', 'carol'], roomStarted: true } },
      ]);
      assert.deepEqual(await b.members(room), [
        { user: 'alice', since: 10 },
        { user: 'carol', since: 12 },
      ]);
      assert.deepEqual(await b.members(shared), [
        { user: 'dave', since: 13 },
        { user: 'bob', since: 20 },
      ]);
      // Restored entries are a's again: refreshed, and removed with the usual answers.
      clock.t += TTL / 2;
      await Promise.all([a.heartbeat(), b.heartbeat()]);
      clock.t += TTL / 2 + 1;
      await Promise.all([a.heartbeat(), b.heartbeat()]);
      assert.equal(seen[0]!.rejoined.length, 2, 'restored once');
      assert.equal(seen[1]!.expired.length, 2, 'no further leave');
      assert.deepEqual(await a.remove(room, { user: 'alice', conn: 'a1' }), { userLeft: false, roomEmpty: false, count: 2 });
      assert.deepEqual(await a.remove(room, { user: 'alice', conn: 'a2' }), { userLeft: true, roomEmpty: false, count: 1 });
      assert.deepEqual(await a.remove(room, { user: 'carol', conn: 'a3' }), { userLeft: true, roomEmpty: true, count: 0 });
    } finally {
      await close();
    }
  });

  it('a stalled instance whose own heartbeat expires its entries reports the leave, then the join, in that order', async () => {
    const { clock, a, close } = await pair('self');
    const events: string[] = [];
    const room: RoomRef = { tenant: 'acme', room: 'self' };
    const c = new RedisPresence({
      url: REDIS_URL,
      prefix: `${namespace}:self`,
      ttlMs: TTL,
      heartbeatMs: 0,
      instanceId: 'c',
      now: () => clock.t,
      onExpire: (_room, expiry) => events.push(`left ${expiry.users.join(',')}${expiry.roomEmpty ? ' (empty)' : ''}`),
      onRejoin: (_room, rejoin) => events.push(`joined ${rejoin.users.join(',')}${rejoin.roomStarted ? ' (started)' : ''}`),
    });
    try {
      await c.start();
      await c.add(room, { user: 'alice', conn: 'c1', node: 'c', ts: 10, state: '{"status":"here"}' });
      await c.setState(room, { user: 'alice', conn: 'c1' }, '{"status":"away"}');
      clock.t += TTL + 1;
      await c.heartbeat();
      assert.deepEqual(events, ['left alice (empty)', 'joined alice (started)']);
      // Restored with the last state its connection set.
      assert.deepEqual(await a.members(room), [{ user: 'alice', since: 10, state: { status: 'away' } }]);
      assert.deepEqual(await c.remove(room, { user: 'alice', conn: 'c1' }), { userLeft: true, roomEmpty: true, count: 0 });
    } finally {
      await Promise.all([close(), c.close()]);
    }
  });
});
