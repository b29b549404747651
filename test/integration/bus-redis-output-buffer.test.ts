/**
 * The Redis bus's start-up check of `client-output-buffer-limit pubsub`
 * (src/redis/output-buffer.ts, docs/operations.md "Redis"), against private
 * redis-servers: a low limit, the default, and a server refusing CONFIG.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ChannelNamer } from '../../src/bus/channels.js';
import { RedisBus } from '../../src/bus/redis.js';
import { DEFAULT_LIMITS } from '../../src/config/options.js';
import type { LaneLogger } from '../../src/log-types.js';
import { pubsubBufferNeed } from '../../src/redis/output-buffer.js';
import { redisServerSkipReason, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;

interface Entry {
  level: string;
  msg: string | undefined;
}

describe('Redis bus: client-output-buffer-limit check (private redis-server)', { skip }, () => {
  const servers: RedisServer[] = [];
  const buses: RedisBus[] = [];
  after(async () => {
    await Promise.allSettled(buses.map((bus) => bus.close()));
    await Promise.allSettled(servers.map((server) => server.stop()));
  });

  async function busOn(extra: string[]): Promise<{ bus: RedisBus; entries: Entry[] }> {
    const server = await startRedis(extra);
    servers.push(server);
    const entries: Entry[] = [];
    const record = (level: string) => (_obj: object, msg?: string) => entries.push({ level, msg });
    const logger: LaneLogger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
    const bus = new RedisBus({
      url: server.url,
      nodeId: 'n1',
      namer: new ChannelNamer({ env: testNamespace('cobl'), service: 'nerve' }),
      canaryIntervalMs: 0,
      logger,
      pubsubBufferNeedBytes: pubsubBufferNeed(DEFAULT_LIMITS),
    });
    buses.push(bus);
    await bus.start(() => {});
    return { bus, entries };
  }

  it('a pubsub hard limit below the need: warned in the log and on the healthy lane', async () => {
    const { bus, entries } = await busOn(['--client-output-buffer-limit', 'pubsub 1mb 512kb 60']);
    await waitFor(() => entries.some((entry) => entry.level === 'warn'), { what: 'the warning' });
    const warning = entries.find((entry) => entry.level === 'warn')?.msg ?? '';
    assert.match(warning, /client-output-buffer-limit pubsub hard limit is 1\.0 MiB, below the 25\.0 MiB/);
    const health = bus.health();
    assert.equal(health.ok, true, 'a warning, not a failure');
    assert.equal(health.detail, `warning: ${warning}`);
  });

  it("the server's default (32 MiB hard) holds the default need: no warning", async () => {
    const { bus, entries } = await busOn([]);
    // The check runs after start; wait until its CONFIG GET has been answered (the server counts it).
    const server = servers[servers.length - 1]!;
    await waitFor(async () => /cmdstat_config(\|get)?:calls=[1-9]/.test(await server.cli('info', 'commandstats')), { what: 'the CONFIG GET' });
    // A publish on the same connection, answered after the CONFIG GET: its reply has been handled by then.
    await bus.publish('cobl-probe', { v: 1, type: 'deliver', id: 'x', origin: 'n1', class: 'signal', payload: 'x' });
    assert.deepEqual(
      entries.filter((entry) => entry.level === 'warn'),
      [],
    );
    assert.deepEqual(bus.health(), { lane: 'bus', driver: 'redis', ok: true });
  });

  it('CONFIG refused (managed Redis): noted at debug, no warning, the bus runs', async () => {
    const { bus, entries } = await busOn(['--rename-command', 'CONFIG', '""']);
    await waitFor(() => entries.some((entry) => entry.level === 'debug' && /client-output-buffer-limit/.test(entry.msg ?? '')), {
      what: 'the debug line',
    });
    assert.equal(
      entries.some((entry) => entry.level === 'warn'),
      false,
    );
    assert.deepEqual(bus.health(), { lane: 'bus', driver: 'redis', ok: true });
  });
});
