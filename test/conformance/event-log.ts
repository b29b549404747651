/**
 * One conformance suite for every EventLog (the socket.io adapter model:
 * `testSuite(createAdapter)`). Run by test/unit/event-log-memory.test.ts and
 * test/integration/events-rabbitmq.test.ts. Each test gets a fresh fixture,
 * and its cleanup runs also on failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryInfo, EventLog, LifecycleEvent } from '../../src/events/event-log.js';
import { parseEvent } from '../../src/events/events.js';
import { createEvent, adminEvent, usageReported } from '../../src/events/events.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { waitFor } from '../helpers/wait.js';

export interface EventLogFixture {
  log: EventLog;
  /** Ids of the events consumer queue `queue` dead-lettered so far (safe to poll). */
  deadLetterIds: (queue: string) => Promise<string[]>;
  /** Remove everything the test created (queues, exchanges). */
  cleanup(): Promise<void>;
}

export type EventLogFactory = () => Promise<EventLogFixture>;

let counter = 0;

/** A valid event of `type`, with a recognisable room. */
export function sampleEvent(type: LifecycleEvent['type'], room = `r${++counter}`): LifecycleEvent {
  const source = { tenant: 'acme', room, session: `s-${room}`, node: 'n1' };
  switch (type) {
    case 'room.created':
      return createEvent(type, source, { createdBy: 'alice' });
    case 'room.ended':
      return createEvent(type, source, { startedAt: 1, durationMs: 60_000, participants: [{ user: 'alice', ms: 60_000 }] });
    case 'participant.joined':
      return createEvent(type, source, { user: 'alice' });
    case 'participant.left':
      return createEvent(type, source, { user: 'alice', reason: 'left' });
    case 'message.created':
      return createEvent(type, source, { messageId: `m-${room}`, from: 'alice', offset: 1, epoch: 'e1', sentAt: 1, body: { text: 'hi' } });
    case 'recording.requested':
      return createEvent(type, source, { by: 'alice', action: 'start' });
    case 'call.started':
      return createEvent(type, source, { call: 'c1', callSession: `cs-${room}`, startedAt: 1, startedBy: 'alice' });
    case 'call.ended':
      return createEvent(type, source, {
        call: 'c1',
        callSession: `cs-${room}`,
        startedAt: 1,
        endedAt: 60_001,
        ms: 60_000,
        participants: [{ user: 'alice', ms: 60_000 }],
        peakParticipants: 1,
        reason: 'left',
      });
    case 'read.updated':
      return createEvent(type, source, { user: 'alice', offset: 3, epoch: 'e1' });
    case 'pusher.webhook':
      return parseEvent({
        v: 1,
        id: `p-${room}`,
        type,
        ts: 1,
        tenant: 'acme',
        node: 'n1',
        data: { app: '1', name: 'member_added', channel: `presence-${room}`, user_id: 'alice' },
      });
    case 'usage.reported':
      return usageReported(
        { tenant: 'acme', node: 'n1', id: `u-${room}` },
        { from: 0, to: 60_000, connectionMs: 60_000, messages: 1, deliveries: 2, signals: 0, storedBytes: 10 },
      );
    case 'admin.disconnect':
      return adminEvent(type, { tenant: 'acme', node: 'n1' }, { actor: 'ops', user: 'alice', reason: 'test' });
    case 'admin.end_room':
      return adminEvent(type, { tenant: 'acme', room, node: 'n1' }, { actor: 'ops', reason: 'test' });
    case 'admin.publish':
      return adminEvent(type, { tenant: 'acme', room, node: 'n1' }, { actor: 'ops', class: 'chat', from: 'ops', bytes: 2 });
    case 'admin.set_quotas':
      return adminEvent(type, { tenant: 'acme', node: 'n1' }, { actor: 'ops', quota: { connections: 10 } });
  }
}

async function withFixture(factory: EventLogFactory, body: (fixture: EventLogFixture) => Promise<void>): Promise<void> {
  const fixture = await factory();
  try {
    await fixture.log.start();
    await body(fixture);
  } finally {
    await fixture.log.close().catch(() => undefined);
    await fixture.cleanup();
  }
}

const TIMEOUT = { timeoutMs: 10_000 };

export function eventLogConformance(name: string, factory: EventLogFactory): void {
  describe(`EventLog conformance: ${name}`, () => {
    it('routes by topic pattern (`*` one word, `#` zero or more)', () =>
      withFixture(factory, async ({ log }) => {
        const seen: Record<string, string[]> = { star: [], exact: [], all: [], hash: [] };
        const record = (key: string) => async (event: LifecycleEvent) => {
          seen[key]!.push(event.type);
          return 'ack' as const;
        };
        await log.consume({ queue: 'star', bindings: ['room.*', 'recording.requested'] }, record('star'));
        await log.consume({ queue: 'exact', bindings: ['participant.joined', 'recording.requested'] }, record('exact'));
        await log.consume({ queue: 'all', bindings: ['#'] }, record('all'));
        await log.consume({ queue: 'hash', bindings: ['room.#', 'recording.#', 'room.created.#'] }, record('hash'));
        for (const type of ['message.created', 'participant.joined', 'room.created', 'room.ended', 'participant.left'] as const) {
          await log.publish(sampleEvent(type));
        }
        // The fence comes last; per-queue order is FIFO, so once it arrived everything routed earlier did too.
        await log.publish(sampleEvent('recording.requested'));
        await waitFor(() => Object.values(seen).every((types) => types.includes('recording.requested')), { ...TIMEOUT, what: 'fence in every queue' });
        assert.deepEqual(seen.star!.sort(), ['recording.requested', 'room.created', 'room.ended']);
        assert.deepEqual(seen.exact!.sort(), ['participant.joined', 'recording.requested']);
        assert.deepEqual(seen.hash!.sort(), ['recording.requested', 'room.created', 'room.ended']);
        assert.equal(seen.all!.length, 6);
      }));

    it('acked events are not delivered again, also to a new consumer of the queue', () =>
      withFixture(factory, async ({ log }) => {
        const deliveries = new Map<string, number>();
        const handler = async (event: LifecycleEvent) => {
          deliveries.set(event.id, (deliveries.get(event.id) ?? 0) + 1);
          return 'ack' as const;
        };
        const first = await log.consume({ queue: 'acks', bindings: ['room.*'] }, handler);
        const event = sampleEvent('room.created');
        await log.publish(event);
        await waitFor(() => deliveries.get(event.id) === 1, { ...TIMEOUT, what: 'first delivery' });
        await first.close();
        await log.consume({ queue: 'acks', bindings: ['room.*'] }, handler);
        const fence = sampleEvent('room.ended');
        await log.publish(fence);
        await waitFor(() => deliveries.get(fence.id) === 1, { ...TIMEOUT, what: 'fence' });
        assert.equal(deliveries.get(event.id), 1);
      }));

    it('retries (answer `retry` or a throw) after the delay, then succeeds', () =>
      withFixture(factory, async ({ log, deadLetterIds }) => {
        const attempts: DeliveryInfo[] = [];
        await log.consume({ queue: 'retries', bindings: ['room.created'], retryDelayMs: 30, maxAttempts: 5 }, async (_event, info) => {
          attempts.push(info);
          if (info.attempt === 1) throw new Error('transient failure');
          if (info.attempt === 2) return 'retry';
          return 'ack';
        });
        await log.publish(sampleEvent('room.created'));
        await waitFor(() => attempts.length === 3, { ...TIMEOUT, what: 'three attempts' });
        assert.deepEqual(
          attempts.map((a) => a.attempt),
          [1, 2, 3],
        );
        assert.ok(attempts.every((a) => a.queue === 'retries'));
        const fence = sampleEvent('room.created');
        await log.publish(fence);
        await waitFor(() => attempts.length === 4, { ...TIMEOUT, what: 'fence' });
        assert.equal(attempts.length, 4, 'an acked retry is not delivered again');
        assert.deepEqual(await deadLetterIds('retries'), []);
      }));

    it('dead-letters after maxAttempts (and at once on `dead_letter`) while other events keep flowing', () =>
      withFixture(factory, async ({ log, deadLetterIds }) => {
        const poison = sampleEvent('room.ended', 'poison');
        const refused = sampleEvent('room.ended', 'refused');
        const poisonAttempts: number[] = [];
        let refusedAttempts = 0;
        const good = new Set<string>();
        await log.consume({ queue: 'dlq-test', bindings: ['room.ended'], retryDelayMs: 20, maxAttempts: 3, prefetch: 4 }, async (event, info) => {
          if (event.id === poison.id) {
            poisonAttempts.push(info.attempt);
            throw new Error('poison');
          }
          if (event.id === refused.id) {
            refusedAttempts++;
            return 'dead_letter';
          }
          good.add(event.id);
          return 'ack';
        });
        await log.publish(poison);
        await log.publish(refused);
        const goodEvents = Array.from({ length: 20 }, (_, i) => sampleEvent('room.ended', `good${i}`));
        for (const event of goodEvents) await log.publish(event);
        await waitFor(() => good.size === 20, { ...TIMEOUT, what: 'good events' });
        await waitFor(async () => (await deadLetterIds('dlq-test')).length === 2, { ...TIMEOUT, what: 'two dead letters' });
        assert.deepEqual((await deadLetterIds('dlq-test')).sort(), [poison.id, refused.id].sort());
        assert.deepEqual(poisonAttempts, [1, 2, 3]);
        assert.equal(refusedAttempts, 1);
      }));

    it('never has more than `prefetch` events in the handler at once', () =>
      withFixture(factory, async ({ log }) => {
        let inHandler = 0;
        let peak = 0;
        let done = 0;
        const gates: Array<() => void> = [];
        await log.consume({ queue: 'prefetch', bindings: ['participant.*'], prefetch: 3 }, async () => {
          inHandler++;
          peak = Math.max(peak, inHandler);
          await new Promise<void>((resolve) => gates.push(resolve));
          inHandler--;
          done++;
          return 'ack';
        });
        for (let i = 0; i < 10; i++) await log.publish(sampleEvent('participant.joined'));
        // Release one at a time, only once the handler is full again, so an over-delivery would show in `peak`.
        for (let released = 0; released < 10; released++) {
          await waitFor(() => gates.length > 0 && (inHandler === 3 || inHandler === 10 - released), { ...TIMEOUT, what: 'handler filled' });
          gates.shift()!();
        }
        await waitFor(() => done === 10, { ...TIMEOUT, what: 'all handled' });
        assert.equal(peak, 3);
      }));

    it('close() is idempotent and later publishes reject with `unavailable`', () =>
      withFixture(factory, async ({ log }) => {
        const handle = await log.consume({ queue: 'closing', bindings: ['#'] }, async () => 'ack');
        const [a, b] = [handle.close(), handle.close()];
        await Promise.all([a, b]);
        const first = log.close();
        const second = log.close();
        assert.equal(first, second, 'close() memoizes its promise');
        await first;
        assert.equal(log.health().ok, false);
        await assert.rejects(log.publish(sampleEvent('room.created')), (error: unknown) => isNerveError(error) && error.code === 'unavailable');
        await log.close();
      }));
  });
}
