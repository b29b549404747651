/**
 * The Bus contract (top of src/bus/bus.ts), as one suite every driver runs:
 * `busConformance('redis', () => three RedisBus on one server)`.
 *
 * Negative checks ("this node got nothing") never sleep: they publish a
 * fence envelope after the one that must not arrive and wait for the fence
 * (one channel is delivered in order), or read the broker's own receiver
 * count from `publish`.
 */
import { after, afterEach, before, describe, it as test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Bus, BusEnvelope } from '../../src/bus/bus.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

export interface BusConformanceOptions {
  /** Skip the whole suite with this reason (a missing service outside CI). */
  skip?: string | false;
  /** Runs once before the suite (start a server). */
  setup?: () => Promise<void>;
  /** Runs once after the suite (stop a server). */
  teardown?: () => Promise<void>;
  /** Timeout for one delivery wait, ms. Default 5000. */
  timeoutMs?: number;
  /**
   * What `publish` resolves with: `exact` (the number of subscribed nodes) or
   * `any` (0 when none, 1 when at least one: AMQP cannot count the queues a
   * message reached, src/bus/rabbitmq.ts). Default `exact`.
   */
  receiverCount?: 'exact' | 'any';
  /** Tests the driver cannot pass, by exact name, with the reason (shown as the skip message). */
  unsupported?: Record<string, string>;
}

/**
 * Build `count` (2 or 3) unstarted buses acting as different nodes on one
 * broker. `prefix` is unique per test: use it in node ids or channel prefixes
 * if the driver needs them.
 */
export type BusFactory = (count: number, prefix: string) => Promise<Bus[]> | Bus[];

interface Received {
  channel: string;
  envelope: BusEnvelope;
}

interface Node {
  bus: Bus;
  received: Received[];
  /** Envelopes received on `channel`, in arrival order. */
  on(channel: string): BusEnvelope[];
  /** Every `onResubscribed` report (a driver that lost nothing reports none). */
  resubscribed: string[][];
}

/** Every test of the suite, by name (what `unsupported` may name). */
export const TEST_NAMES: readonly string[] = [
  'acquire resolves only once the channel is live',
  'counts references: two acquires, one release stays subscribed; the last release unsubscribes',
  'release of an unheld channel is a no-op',
  'a fast acquire/release/acquire sequence ends subscribed',
  'every subscribed node, the publisher included, receives each envelope exactly once',
  "each publisher's envelopes reach every receiver in publish order when two nodes publish concurrently",
  'all receivers see one channel in the same order when two nodes publish concurrently',
  'publish resolves with the number of subscribed nodes',
  'envelope fields round-trip exactly',
  'close is idempotent and publish after close rejects with bus_unavailable',
  'onResubscribed: nothing is reported while no subscription was lost',
  'reports healthy while running',
];

export function busConformance(name: string, factory: BusFactory, options: BusConformanceOptions = {}): void {
  const timeoutMs = options.timeoutMs ?? 5000;
  /** The count `publish` must resolve with when `nodes` nodes are subscribed. */
  const receivers = (nodes: number): number => (options.receiverCount === 'any' ? Math.min(nodes, 1) : nodes);
  const unsupported = options.unsupported ?? {};
  for (const title of Object.keys(unsupported)) {
    // A misspelt name would silently run the test it meant to skip.
    if (!TEST_NAMES.includes(title)) throw new Error(`busConformance: no test named ${JSON.stringify(title)} to skip`);
  }
  /** `it`, skipped with the driver's reason when the driver declared it unsupported. */
  const it = (title: string, fn: () => Promise<void>): void => {
    // Keeps TEST_NAMES in step with the suite: a test missing from it could not be skipped by name.
    if (!TEST_NAMES.includes(title)) throw new Error(`busConformance: add ${JSON.stringify(title)} to TEST_NAMES`);
    const reason = unsupported[title];
    test(title, reason === undefined ? {} : { skip: reason }, fn);
  };

  describe(`Bus conformance: ${name}`, { skip: options.skip ?? false }, () => {
    let open: Bus[] = [];
    let ns = '';

    before(async () => {
      await options.setup?.();
    });
    after(async () => {
      await options.teardown?.();
    });
    afterEach(async () => {
      await Promise.allSettled(open.map((bus) => bus.close()));
      open = [];
    });

    async function nodes(count: number): Promise<Node[]> {
      ns = testNamespace('conf');
      const buses = await factory(count, ns);
      open.push(...buses);
      return Promise.all(
        buses.map(async (bus) => {
          const received: Received[] = [];
          const resubscribed: string[][] = [];
          await bus.start(
            (channel, envelope) => received.push({ channel, envelope }),
            (channels) => resubscribed.push(channels),
          );
          return {
            bus,
            received,
            resubscribed,
            on: (channel: string) => received.filter((r) => r.channel === channel).map((r) => r.envelope),
          };
        }),
      );
    }

    const channel = (suffix: string): string => `${ns}:default:room:${suffix}`;
    let seq = 0;
    const envelope = (origin: string, payload = `p${++seq}`, extra: Partial<BusEnvelope> = {}): BusEnvelope => ({
      v: 1,
      type: 'deliver',
      id: randomUUID(),
      origin,
      class: 'chat',
      payload,
      ...extra,
    });
    const has = (node: Node, ch: string, id: string): boolean => node.on(ch).some((e) => e.id === id);
    const waitAll = (targets: Node[], ch: string, id: string, what: string) => waitFor(() => targets.every((n) => has(n, ch, id)), { timeoutMs, what });

    it('acquire resolves only once the channel is live', async () => {
      const [a, b] = await nodes(2);
      for (let i = 0; i < 20; i += 1) {
        const ch = channel(`live-${i}`);
        await b!.bus.acquire(ch);
        // Published immediately after acquire resolved: must not be lost.
        const sent = envelope('a');
        assert.equal(await a!.bus.publish(ch, sent), receivers(1), `publish on ${ch} right after acquire`);
        await waitAll([b!], ch, sent.id, `delivery on ${ch}`);
      }
    });

    it('counts references: two acquires, one release stays subscribed; the last release unsubscribes', async () => {
      const [a, b] = await nodes(2);
      const ch = channel('refs');
      const fence = channel('refs-fence');
      await b!.bus.acquire(ch);
      await b!.bus.acquire(ch);
      await b!.bus.acquire(fence);
      await b!.bus.release(ch);
      assert.deepEqual(b!.bus.channels().sort(), [ch, fence].sort());
      const first = envelope('a');
      assert.equal(await a!.bus.publish(ch, first), receivers(1));
      await waitAll([b!], ch, first.id, 'delivery while one reference is held');

      await b!.bus.release(ch);
      assert.deepEqual(b!.bus.channels(), [fence]);
      assert.equal(await a!.bus.publish(ch, envelope('a')), 0, 'nobody subscribed after the last release');
      const f = envelope('a');
      await a!.bus.publish(fence, f);
      await waitAll([b!], fence, f.id, 'fence');
      assert.deepEqual(
        b!.on(ch).map((e) => e.id),
        [first.id],
        'nothing delivered after the last release',
      );
    });

    it('release of an unheld channel is a no-op', async () => {
      const [a, b] = await nodes(2);
      const ch = channel('held');
      await b!.bus.release(channel('never-acquired'));
      await b!.bus.acquire(ch);
      await b!.bus.release(channel('never-acquired'));
      await b!.bus.release(ch);
      await b!.bus.release(ch);
      assert.deepEqual(b!.bus.channels(), []);
      await b!.bus.acquire(ch);
      assert.deepEqual(b!.bus.channels(), [ch]);
      const sent = envelope('a');
      assert.equal(await a!.bus.publish(ch, sent), receivers(1), 'an extra release did not make the count negative');
      await waitAll([b!], ch, sent.id, 'delivery after re-acquire');
    });

    it('a fast acquire/release/acquire sequence ends subscribed', async () => {
      const [a, b] = await nodes(2);
      const ch = channel('flap');
      const ops: Array<Promise<void>> = [];
      for (let i = 0; i < 10; i += 1) {
        ops.push(b!.bus.acquire(ch), b!.bus.release(ch));
      }
      ops.push(b!.bus.acquire(ch));
      await Promise.all(ops);
      assert.deepEqual(b!.bus.channels(), [ch]);
      const sent = envelope('a');
      assert.equal(await a!.bus.publish(ch, sent), receivers(1));
      await waitAll([b!], ch, sent.id, 'delivery after flapping');
    });

    it('every subscribed node, the publisher included, receives each envelope exactly once', async () => {
      const [a, b, c] = await nodes(3);
      const ch = channel('once');
      for (const n of [a!, b!, c!]) await n.bus.acquire(ch);
      const sent: BusEnvelope[] = [];
      for (let i = 0; i < 50; i += 1) sent.push(envelope('a'));
      const counts = await Promise.all(sent.map((e) => a!.bus.publish(ch, e)));
      assert.deepEqual(
        counts,
        sent.map(() => receivers(3)),
      );
      const fence = envelope('a');
      await a!.bus.publish(ch, fence);
      await waitAll([a!, b!, c!], ch, fence.id, 'fence on every node');
      const expected = [...sent, fence].map((e) => e.id);
      for (const n of [a!, b!, c!])
        assert.deepEqual(
          n.on(ch).map((e) => e.id),
          expected,
        );
    });

    /** Three subscribed nodes; nodes a and b each publish 100 envelopes at once; resolves when all 200 reached every node. */
    async function publishFromTwoNodes(name: string) {
      const [a, b, c] = await nodes(3);
      const ch = channel(name);
      for (const n of [a!, b!, c!]) await n.bus.acquire(ch);
      const fromA = Array.from({ length: 100 }, (_, i) => envelope('a', `a${i}`));
      const fromB = Array.from({ length: 100 }, (_, i) => envelope('b', `b${i}`));
      await Promise.all([Promise.all(fromA.map((e) => a!.bus.publish(ch, e))), Promise.all(fromB.map((e) => b!.bus.publish(ch, e)))]);
      await waitFor(() => [a!, b!, c!].every((n) => n.on(ch).length === 200), { timeoutMs, what: '200 envelopes on every node' });
      return { nodes: [a!, b!, c!], ch, fromA, fromB };
    }

    it("each publisher's envelopes reach every receiver in publish order when two nodes publish concurrently", async () => {
      const { nodes: all, ch, fromA, fromB } = await publishFromTwoNodes('fifo');
      const idsA = new Set(fromA.map((e) => e.id));
      for (const n of all) {
        const order = n.on(ch).map((e) => e.id);
        assert.equal(new Set(order).size, 200, 'each envelope once');
        assert.deepEqual(
          order.filter((id) => idsA.has(id)),
          fromA.map((e) => e.id),
        );
        assert.deepEqual(
          order.filter((id) => !idsA.has(id)),
          fromB.map((e) => e.id),
        );
      }
    });

    it('all receivers see one channel in the same order when two nodes publish concurrently', async () => {
      // Each publisher's own order is the test above; this one is the single order across publishers.
      const {
        nodes: [a, b, c],
        ch,
      } = await publishFromTwoNodes('order');
      const order = a!.on(ch).map((e) => e.id);
      assert.deepEqual(
        b!.on(ch).map((e) => e.id),
        order,
      );
      assert.deepEqual(
        c!.on(ch).map((e) => e.id),
        order,
      );
    });

    it('publish resolves with the number of subscribed nodes', async () => {
      const [a, b, c] = await nodes(3);
      const ch = channel('count');
      assert.equal(await a!.bus.publish(ch, envelope('a')), 0, 'nobody');
      await b!.bus.acquire(ch);
      assert.equal(await a!.bus.publish(ch, envelope('a')), receivers(1), 'another node, not the publisher');
      await c!.bus.acquire(ch);
      assert.equal(await a!.bus.publish(ch, envelope('a')), receivers(2));
      await a!.bus.acquire(ch);
      assert.equal(await a!.bus.publish(ch, envelope('a')), receivers(3), 'the publisher counts when subscribed');
      await b!.bus.release(ch);
      assert.equal(await a!.bus.publish(ch, envelope('a')), receivers(2));
      await a!.bus.release(ch);
      await c!.bus.release(ch);
      assert.equal(await a!.bus.publish(ch, envelope('a')), 0, 'nobody again after every release');
    });

    it('envelope fields round-trip exactly', async () => {
      const [a, b] = await nodes(2);
      const ch = channel('fields');
      await b!.bus.acquire(ch);
      const cases: BusEnvelope[] = [
        envelope('a', ''),
        envelope('a', '{"op":"message","data":{"text":"hi"}}'),
        envelope('a', 'é中文🎉 \u0000\u0001 \r\n\t "\\ \ufeff \u{10FFFF}'),
        envelope('a', 'x'.repeat(64 * 1024)),
        envelope('node-ü', 'with optionals', { trace: 'trace-🎉', except: 'conn-1', class: 'ephemeral' }),
        envelope('a', 'empty optionals', { trace: '', except: '' }),
        envelope('a', '{"action":"room.end","room":"r","reason":"x"}', { type: 'control', class: 'lifecycle' }),
        envelope('a', 'signal', { class: 'signal' }),
      ];
      for (const sent of cases) await a!.bus.publish(ch, sent);
      const last = cases[cases.length - 1]!;
      await waitAll([b!], ch, last.id, 'all cases');
      const got = b!.on(ch);
      assert.equal(got.length, cases.length);
      cases.forEach((sent, i) => assert.deepStrictEqual(got[i], sent));
      assert.equal('trace' in got[0]!, false, 'absent optional fields stay absent');
      assert.equal('except' in got[0]!, false, 'absent optional fields stay absent');
    });

    it('close is idempotent and publish after close rejects with bus_unavailable', async () => {
      const [a] = await nodes(2);
      await a!.bus.acquire(channel('closing'));
      const first = a!.bus.close();
      const second = a!.bus.close();
      await Promise.all([first, second]);
      await a!.bus.close();
      await assert.rejects(a!.bus.publish(channel('closing'), envelope('a')), (error: unknown) => {
        assert.ok(error instanceof NerveError, `expected NerveError, got ${String(error)}`);
        assert.equal(error.code, ErrorCode.BusUnavailable);
        return true;
      });
      assert.equal(a!.bus.health().ok, false);
    });

    it('onResubscribed: nothing is reported while no subscription was lost', async () => {
      const [a, b] = await nodes(2);
      const ch = channel('no-gap');
      await b!.bus.acquire(ch);
      await b!.bus.release(ch);
      await b!.bus.acquire(ch);
      const sent = envelope('a');
      await a!.bus.publish(ch, sent);
      await waitAll([b!], ch, sent.id, 'delivery');
      assert.deepEqual(a!.resubscribed, []);
      assert.deepEqual(b!.resubscribed, []);
    });

    it('reports healthy while running', async () => {
      const [a] = await nodes(2);
      assert.equal(a!.bus.health().ok, true);
      assert.equal(a!.bus.health().lane, 'bus');
      assert.equal(typeof a!.bus.driver, 'string');
    });
  });
}
