/**
 * The Sentinel settings: parsed and refused at start-up (normalizeOptions),
 * and turned into the ioredis options every Redis lane uses
 * (src/redis/connection.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { normalizeOptions, redisSentinelSettings } from '../../src/config/normalize.js';
import { parseSentinelAddress, redisStoreConnection, sentinelRedisOptions } from '../../src/redis/connection.js';

const SENTINELS = ['10.0.0.1:26379', 'sentinel-b:26380', '[::1]:26381'];

function refused(input: Parameters<typeof normalizeOptions>[0], setting: string): void {
  assert.throws(
    () => normalizeOptions(input),
    (error: unknown) => error instanceof ConfigError && error.setting === setting,
  );
}

describe('Redis Sentinel settings', () => {
  it('parses host:port and [v6]:port, refuses anything else', () => {
    assert.deepEqual(parseSentinelAddress('10.0.0.1:26379'), { host: '10.0.0.1', port: 26379 });
    assert.deepEqual(parseSentinelAddress('[::1]:26381'), { host: '::1', port: 26381 });
    for (const bad of ['host', 'host:0', 'host:70000', ':26379', 'a b:1', 'redis://h:1']) assert.equal(parseSentinelAddress(bad), undefined, bad);
  });

  it('normalizes: URL defaults to the master name, WAIT 1 by default with sentinels, 0 without', () => {
    const options = normalizeOptions({ redisSentinels: SENTINELS, redisSentinelName: 'mymaster' });
    assert.equal(options.redisUrl, 'redis://mymaster');
    assert.equal(options.bus, 'redis');
    assert.equal(options.redisWaitReplicas, 1);
    assert.equal(options.redisWaitTimeoutMs, 500);
    assert.deepEqual(redisSentinelSettings(options)?.sentinels, [
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b', port: 26380 },
      { host: '::1', port: 26381 },
    ]);
    const plain = normalizeOptions({ redisUrl: 'redis://127.0.0.1:6379' });
    assert.equal(plain.redisWaitReplicas, 0);
    assert.equal(redisSentinelSettings(plain), undefined);
    assert.equal(normalizeOptions({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisWaitReplicas: 2 }).redisWaitReplicas, 2);
    assert.equal(options.redisWaitAllReplicas, true);
    assert.equal(plain.redisWaitAllReplicas, false);
    assert.equal(normalizeOptions({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisWaitAllReplicas: false }).redisWaitAllReplicas, false);
    assert.equal(normalizeOptions({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisWaitReplicas: 0 }).redisWaitAllReplicas, false);
    assert.equal(normalizeOptions({ redisUrl: 'redis://h:1', redisWaitReplicas: 1, redisWaitAllReplicas: true }).redisWaitAllReplicas, true);
  });

  it('refuses incoherent settings with a ConfigError naming the setting', () => {
    refused({ redisSentinels: ['nope'], redisSentinelName: 'm' }, 'redisSentinels');
    refused({ redisSentinels: SENTINELS }, 'redisSentinelName');
    refused({ redisSentinels: SENTINELS, redisSentinelName: 'bad name' }, 'redisSentinelName');
    refused({ redisSentinelName: 'm' }, 'redisSentinels');
    refused({ redisSentinelPassword: 'secret' }, 'redisSentinels');
    refused({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisMode: 'sharded' }, 'redisSentinels');
    refused({ redisUrl: 'redis://h:7000', redisMode: 'sharded', redisWaitReplicas: 1 }, 'redisWaitReplicas');
    refused({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisWaitTimeoutMs: 5000 }, 'redisWaitTimeoutMs');
    refused({ redisSentinels: SENTINELS, redisSentinelName: 'm', redisWaitReplicas: 17 }, 'redisWaitReplicas');
  });

  it('builds one set of ioredis options for every lane: sentinels, failover detector, TLS where asked', () => {
    const settings = { sentinels: [{ host: 's1', port: 26379 }], name: 'mymaster', password: 'pw', tls: true };
    const options = sentinelRedisOptions(settings, 'rediss://:data@mymaster/2');
    assert.deepEqual(options.sentinels, [{ host: 's1', port: 26379 }]);
    assert.equal(options.name, 'mymaster');
    assert.equal(options.sentinelPassword, 'pw');
    assert.deepEqual(options.sentinelTLS, {});
    assert.equal(options.enableTLSForSentinelMode, true);
    assert.equal(options.failoverDetector, true);
    assert.equal(typeof options.reconnectOnError, 'function');
    assert.deepEqual(sentinelRedisOptions(undefined, 'redis://h:1'), {});
    assert.equal(sentinelRedisOptions(settings, 'redis://mymaster').enableTLSForSentinelMode, undefined);

    const store = redisStoreConnection('redis://mymaster', false, settings);
    assert.ok('url' in store && store.redisOptions.failoverDetector === true);
    assert.throws(() => redisStoreConnection('redis://h:7000', true, settings), TypeError);
  });
});
