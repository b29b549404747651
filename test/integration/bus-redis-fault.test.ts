/**
 * RedisBus under faults, on a private redis-server (never the shared one):
 * the server dies and comes back, subscriber connections are killed, and a
 * subscriber goes deaf behind a proxy while its TCP session stays up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { ChannelNamer } from '../../src/bus/channels.js';
import { RedisBus } from '../../src/bus/redis.js';
import type { RedisBusOptions } from '../../src/bus/redis-options.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { redisServerSkipReason, startRedis, startTcpProxy, type RedisServer } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;

const envelope = (origin: string): BusEnvelope => ({ v: 1, type: 'deliver', id: randomUUID(), origin, class: 'signal', payload: 'x' });

/** Reject if `promise` has not settled after `ms`: the "never hangs" check. */
function settlesWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms).unref())]);
}

function isBusUnavailable(error: unknown): boolean {
  return error instanceof NerveError && error.code === 'bus_unavailable';
}

describe('RedisBus faults (private redis-server)', { skip }, () => {
  let server: RedisServer;
  const buses: RedisBus[] = [];

  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await Promise.allSettled(buses.map((bus) => bus.close()));
    await server?.stop();
  });

  async function node(
    nodeId: string,
    received: Map<string, BusEnvelope[]>,
    options: Partial<RedisBusOptions> = {},
    resubscribed?: string[][],
  ): Promise<RedisBus> {
    const bus = new RedisBus({
      url: server.url,
      nodeId,
      namer: new ChannelNamer({ env: testNamespace('fault'), service: 'nerve' }),
      reconnectMaxMs: 400,
      canaryIntervalMs: 0,
      ...options,
    });
    buses.push(bus);
    await bus.start(
      (channel, env) => {
        const list = received.get(channel) ?? [];
        list.push(env);
        received.set(channel, list);
      },
      resubscribed && ((channels) => resubscribed.push([...channels].sort())),
    );
    return bus;
  }

  /** Publish probes from `from` until `to` receives one on `channel`. */
  async function deliveryWorks(from: RedisBus, got: Map<string, BusEnvelope[]>, channel: string, timeoutMs: number): Promise<void> {
    const sent = new Set<string>();
    await waitFor(
      async () => {
        if ((got.get(channel) ?? []).some((e) => sent.has(e.id))) return true;
        const probe = envelope('probe');
        sent.add(probe.id);
        await from.publish(channel, probe).catch(() => 0);
        return (got.get(channel) ?? []).some((e) => sent.has(e.id));
      },
      { timeoutMs, intervalMs: 25, what: `delivery on ${channel}` },
    );
  }

  it('Redis killed: publish rejects fast with bus_unavailable, health degrades; restarted: delivery and subscriptions come back within 2 s', async () => {
    const gotA = new Map<string, BusEnvelope[]>();
    const gotB = new Map<string, BusEnvelope[]>();
    const a = await node('a', gotA);
    const b = await node('b', gotB);
    const channel = 'fault:default:room:kill';
    await b.acquire(channel);
    await b.acquire('fault:default:room:released-during-outage');
    assert.equal(await a.publish(channel, envelope('a')), 1);

    await server.kill();
    try {
      // Each connection notices the kill on its own socket, the subscriber sometimes a moment before the publisher.
      await waitFor(() => !a.health().ok && !b.health().ok && /publisher/.test(a.health().detail ?? ''), {
        what: 'health degraded on both nodes, naming the publisher',
      });
      for (let i = 0; i < 20; i += 1) {
        await assert.rejects(settlesWithin(a.publish(channel, envelope('a')), 1500), isBusUnavailable);
      }
      assert.ok(a.stats().publishFailures >= 20);
      // While down: a new acquire fails and takes no reference; a release succeeds.
      await assert.rejects(settlesWithin(b.acquire('fault:default:room:during'), 1500), isBusUnavailable);
      assert.equal(b.channels().includes('fault:default:room:during'), false);
      await b.release('fault:default:room:released-during-outage');
    } catch (error) {
      // The later tests need the server: bring it back before failing.
      await server.restart();
      throw error;
    }
    const restartedAt = Date.now();
    await server.restart();
    await deliveryWorks(a, gotB, channel, 2000);
    const tookMs = Date.now() - restartedAt;
    await waitFor(() => a.health().ok && b.health().ok, { what: 'health back' });
    assert.ok(b.stats().reconnects >= 1, 'the subscriber reconnect was counted');
    // Exactly the held channels are subscribed again, plus one canary per node.
    const channels = (await server.cli('pubsub', 'channels', 'fault:*')).trim().split('\n').filter(Boolean);
    assert.deepEqual(channels, [channel], `after ${tookMs} ms`);
  });

  it('onResubscribed: after a Redis restart, the held channels are reported once they are live again (no canary, nothing released)', async () => {
    const gotA = new Map<string, BusEnvelope[]>();
    const gotB = new Map<string, BusEnvelope[]>();
    const reports: string[][] = [];
    const a = await node('ra', gotA);
    const b = await node('rb', gotB, { canaryIntervalMs: 100, canaryTimeoutMs: 500 }, reports);
    const held = ['fault:default:room:gap-1', 'fault:default:room:gap-2', 'fault:default:user:gap-u'].sort();
    for (const channel of held) await b.acquire(channel);
    await b.acquire('fault:default:room:gap-released');
    await b.release('fault:default:room:gap-released');
    await deliveryWorks(a, gotB, held[0]!, 2000);
    assert.deepEqual(reports, [], 'nothing reported while nothing was lost');

    await server.restart();
    await waitFor(() => reports.length >= 1, { timeoutMs: 10_000, what: 'onResubscribed after the restart' });
    assert.deepEqual(reports[0], held, 'exactly the held channels');
    // Reported once live: a publish now reaches b on every one of them.
    for (const channel of held) await deliveryWorks(a, gotB, channel, 2000);
  });

  it('onResubscribed: a CLIENT KILL of the subscriber reports the held channels; a canary-triggered reconnect does too', async () => {
    const gotA = new Map<string, BusEnvelope[]>();
    const gotB = new Map<string, BusEnvelope[]>();
    const reports: string[][] = [];
    const a = await node('rka', gotA);
    const b = await node('rkb', gotB, {}, reports);
    const channel = 'fault:default:room:gap-kill';
    await b.acquire(channel);
    await server.cli('client', 'kill', 'type', 'pubsub');
    await waitFor(() => reports.length >= 1, { timeoutMs: 5000, what: 'onResubscribed after CLIENT KILL' });
    assert.deepEqual(reports[0], [channel]);
    await deliveryWorks(a, gotB, channel, 2000);

    const proxy = await startTcpProxy(server.port);
    try {
      const deafReports: string[][] = [];
      const c = await node('rkc', new Map(), { url: `redis://127.0.0.1:${proxy.port}`, canaryIntervalMs: 100, canaryTimeoutMs: 300 }, deafReports);
      await c.acquire(channel);
      assert.equal(proxy.deafenSubscribers(), 1);
      await waitFor(() => deafReports.length >= 1, { timeoutMs: 5000, what: 'onResubscribed after the canary reconnected a deaf subscriber' });
      assert.deepEqual(deafReports[0], [channel]);
    } finally {
      await proxy.close();
    }
  });

  it('subscriber connections killed (CLIENT KILL TYPE pubsub): the bus reconnects and resubscribes', async () => {
    const gotA = new Map<string, BusEnvelope[]>();
    const gotB = new Map<string, BusEnvelope[]>();
    const a = await node('ka', gotA);
    const b = await node('kb', gotB);
    const channel = 'fault:default:room:clientkill';
    await b.acquire(channel);
    const before = b.stats().reconnects;
    await server.cli('client', 'kill', 'type', 'pubsub');
    await waitFor(() => b.stats().reconnects > before, { what: 'subscriber reconnect' });
    await deliveryWorks(a, gotB, channel, 2000);
    assert.equal(await a.publish(channel, envelope('ka')), 1, 'one subscribed node, not two');
  });

  it('canary: a subscriber that is connected but deaf is noticed and reconnected', async () => {
    const proxy = await startTcpProxy(server.port);
    try {
      const gotA = new Map<string, BusEnvelope[]>();
      const gotB = new Map<string, BusEnvelope[]>();
      const a = await node('ca', gotA);
      const b = await node('cb', gotB, { url: `redis://127.0.0.1:${proxy.port}`, canaryIntervalMs: 100, canaryTimeoutMs: 300 });
      const channel = 'fault:default:room:deaf';
      await b.acquire(channel);
      await deliveryWorks(a, gotB, channel, 2000);

      assert.equal(proxy.deafenSubscribers(), 1);
      // The server still counts b as subscribed, yet nothing reaches it.
      const lost = envelope('ca');
      assert.equal(await a.publish(channel, lost), 1);
      await waitFor(() => b.stats().canaryFailures >= 1, { what: 'canary failure' });
      await waitFor(() => b.stats().reconnects >= 1, { what: 'subscriber reconnected after the canary failure' });
      await deliveryWorks(a, gotB, channel, 2000);
      await waitFor(() => b.health().ok, { what: 'health back once the canary returns' });
      assert.equal(
        (gotB.get(channel) ?? []).some((e) => e.id === lost.id),
        false,
        'at most once: the lost message is not replayed',
      );
    } finally {
      await proxy.close();
    }
  });
});
