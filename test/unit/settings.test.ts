import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServeArgs, serveHelp, settingsMarkdown, SETTINGS } from '../../src/cli/settings.js';
import { ConfigError } from '../../src/config/errors.js';
import { normalizeOptions } from '../../src/config/normalize.js';
import { DEFAULT_LIMITS, NODE_DEFAULTS } from '../../src/config/options.js';

describe('serve settings', () => {
  it('reads flags, --flag=value, env vars, and lets flags win', () => {
    const input = parseServeArgs(['--port', '9000', '--log-level=debug', '--no-demo'], { NERVE_PORT: '1234', NERVE_ENV: 'staging', NERVE_RATE_BURST: '7' });
    const options = normalizeOptions(input);
    assert.equal(options.port, 9000);
    assert.equal(options.logLevel, 'debug');
    assert.equal(options.demo, false);
    assert.equal(options.env, 'staging');
    assert.equal(options.limits.rateBurst, 7);
  });

  it('reads --log-format (flag over NERVE_LOG_FORMAT); without either, pretty on a terminal and json otherwise', () => {
    assert.equal(normalizeOptions(parseServeArgs(['--log-format', 'pretty'], {})).logFormat, 'pretty');
    assert.equal(normalizeOptions(parseServeArgs(['--log-format=json'], { NERVE_LOG_FORMAT: 'pretty' })).logFormat, 'json');
    assert.equal(normalizeOptions(parseServeArgs([], { NERVE_LOG_FORMAT: 'pretty' })).logFormat, 'pretty');
    const wasTty = process.stdout.isTTY;
    try {
      process.stdout.isTTY = true;
      assert.equal(normalizeOptions(parseServeArgs([], {})).logFormat, 'pretty');
      process.stdout.isTTY = false;
      assert.equal(normalizeOptions(parseServeArgs([], {})).logFormat, 'json');
    } finally {
      process.stdout.isTTY = wasTty;
    }
  });

  it('has a flag and an env variable for every setting, all distinct', () => {
    assert.equal(new Set(SETTINGS.map((s) => s.flag)).size, SETTINGS.length);
    assert.equal(new Set(SETTINGS.map((s) => s.env)).size, SETTINGS.length);
    const help = serveHelp();
    for (const setting of SETTINGS) {
      assert.ok(help.includes(`--${setting.flag}`));
      assert.ok(help.includes(setting.env));
    }
  });

  it('applies NODE_DEFAULTS and DEFAULT_LIMITS, the defaults --help and the README show', () => {
    const options = normalizeOptions({});
    for (const [key, value] of Object.entries(NODE_DEFAULTS)) {
      if (key === 'bus') continue; // normalized to the driver that runs
      assert.deepEqual(options[key as keyof typeof options], value, key);
    }
    assert.deepEqual(options.limits, DEFAULT_LIMITS);
  });

  it('resolves --bus: auto follows --redis-url; rabbitmq from the flag or NERVE_BUS', () => {
    assert.equal(normalizeOptions(parseServeArgs([], {})).bus, 'memory');
    assert.equal(normalizeOptions(parseServeArgs(['--redis-url', 'redis://x'], {})).bus, 'redis');
    assert.equal(normalizeOptions(parseServeArgs(['--bus', 'auto', '--redis-url', 'redis://x'], {})).bus, 'redis');
    const rabbit = ['--amqp-url', 'amqp://x', '--postgres-url', 'postgres://x/db'];
    assert.equal(normalizeOptions(parseServeArgs(['--bus', 'rabbitmq', ...rabbit], {})).bus, 'rabbitmq');
    assert.equal(normalizeOptions(parseServeArgs([...rabbit, '--redis-url', 'redis://x'], { NERVE_BUS: 'rabbitmq' })).bus, 'rabbitmq');
  });

  it('reads trusted proxies and tenant-limited API keys', () => {
    const options = normalizeOptions(
      parseServeArgs(
        ['--trusted-proxies', '10.0.0.0/8, ::1', '--api-keys', `[{"key":"${'k'.repeat(24)}","scopes":["publish"],"tenants":["acme","acme"]}]`],
        {},
      ),
    );
    assert.deepEqual(options.trustedProxies, ['10.0.0.0/8', '::1']);
    assert.deepEqual(options.apiKeys[0]?.tenants, ['acme']);
  });

  it('has the README configuration table the settings write, every flag, variable and default', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    for (const setting of SETTINGS) assert.ok(readme.includes(`| \`--${setting.flag}\` | \`${setting.env}\` |`), `README row for --${setting.flag}`);
    assert.ok(readme.includes(settingsMarkdown()), 'README table = settingsMarkdown() (paste its output over the table)');
  });

  const bad: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['non-numeric port', ['--port', 'abc'], {}, /port \(--port\): expected an integer/],
    ['port out of range', ['--port', '70000'], {}, /port: expected an integer from 0 to 65535/],
    ['unknown flag', ['--prot', '1'], {}, /--prot/],
    ['bad log level', [], { NERVE_LOG_LEVEL: 'loud' }, /logLevel \(NERVE_LOG_LEVEL\): expected fatal \| error/],
    ['bad log format', ['--log-format', 'colour'], {}, /logFormat \(--log-format\): expected pretty \| json, got "colour"/],
    ['short auth secret', ['--auth-secret', 'short'], {}, /authSecret: expected at least 32 bytes/],
    ['bad redis url', ['--redis-url', 'http://x'], {}, /redisUrl: expected a URL \(redis:, rediss:\)/],
    ['bad ice servers', ['--ice-servers', '[{"urls":"http://x"}]'], {}, /iceServers/],
    ['env with a colon', ['--env', 'a:b'], {}, /env: expected 1-64 characters/],
    ['hard < soft buffer', ['--send-buffer-soft-bytes', '4096', '--send-buffer-hard-bytes', '2048'], {}, /sendBufferHardBytes/],
    ['missing value', ['--port'], {}, /--port: expected a value/],
    ['unknown bus', ['--bus', 'kafka'], {}, /bus \(--bus\): expected auto \| memory \| redis \| rabbitmq/],
    ['bus rabbitmq without an AMQP URL', ['--bus', 'rabbitmq'], {}, /bus: expected rabbitmq only with --amqp-url/],
    ['bus rabbitmq without PostgreSQL', ['--bus', 'rabbitmq', '--amqp-url', 'amqp://x'], {}, /bus: expected rabbitmq only with --postgres-url/],
    ['bus redis without a Redis URL', [], { NERVE_BUS: 'redis' }, /bus: expected redis only with --redis-url/],
    ['bus memory with a Redis URL', ['--bus', 'memory', '--redis-url', 'redis://x'], {}, /bus: expected memory only without --redis-url/],
    ['chat path worker without bus rabbitmq', ['--chat-path', 'worker', '--redis-url', 'redis://x'], {}, /chatPath: expected worker only with --bus rabbitmq/],
    ['unknown chat path', ['--chat-path', 'queue'], {}, /chatPath \(--chat-path\): expected node \| worker/],
    [
      'a trusted proxy that is not an address',
      ['--trusted-proxies', '10.0.0.0/8,lb.internal'],
      {},
      /trustedProxies: expected IPv4 \/ IPv6 addresses or CIDR ranges/,
    ],
    ['a trusted proxy range too wide for its family', ['--trusted-proxies', '10.0.0.0/40'], {}, /trustedProxies/],
    [
      'an API key limited to an invalid tenant',
      ['--api-keys', `[{"key":"${'k'.repeat(24)}","scopes":[],"tenants":["no spaces"]}]`],
      {},
      /apiKeys\[0\]: expected .*tenants\?/,
    ],
    ['a trusted proxy range of every address', ['--trusted-proxies', '0.0.0.0/0'], {}, /trustedProxies: expected .*not every address/],
    [
      'two API keys with one secret',
      ['--api-key', 'k'.repeat(24), '--api-keys', `[{"key":"${'k'.repeat(24)}","scopes":[],"tenants":["acme"]}]`],
      {},
      /apiKeys: expected each key secret once/,
    ],
    ['an API key limited to no tenant', ['--api-keys', `[{"key":"${'k'.repeat(24)}","scopes":[],"tenants":[]}]`], {}, /apiKeys\[0\]/],
  ];
  for (const [name, argv, env, message] of bad) {
    it(`rejects ${name} with one line naming the setting`, () => {
      assert.throws(
        () => normalizeOptions(parseServeArgs(argv, env)),
        (error: unknown) => error instanceof ConfigError && message.test(error.message) && !error.message.includes('\n'),
      );
    });
  }
});
