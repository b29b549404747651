/**
 * `nerve status --redis-url … [--env …] [--service …] [--redis-mode …] [--redis-sentinels … --redis-sentinel-name …] [--json]`:
 * the cluster as the node registry sees it (src/registry/), one row per live
 * node. Exit 0 with at least one node, 1 with none, 2 on bad flags, 3 when
 * Redis cannot be read.
 */
import { parseArgs } from 'node:util';
import { ChannelNamer } from '../bus/channels.js';
import { errorText } from '../errors.js';
import { ConfigError } from '../config/errors.js';
import { NODE_DEFAULTS, REDIS_MODES, type RedisMode } from '../config/options.js';
import { normalizeOptions, redisSentinelSettings } from '../config/normalize.js';
import { redisStoreConnection, type RedisSentinelSettings } from '../redis/connection.js';
import { RedisNodeRegistry } from '../registry/redis.js';
import type { NodeRecord } from '../registry/registry.js';

const STATUS_HELP = `Usage: nerve status --redis-url URL [--env dev] [--service nerve] [--redis-mode pubsub|sharded] [--json]
       nerve status --redis-sentinels HOST:PORT,... --redis-sentinel-name NAME [--redis-url URL] [--redis-sentinel-password P] [--redis-sentinel-username U] [--redis-sentinel-tls] ...

Prints the nodes registered in Redis under {env}:{service} (each node
heartbeats every --registry-interval-ms; one that misses three drops out).
With sentinels, --redis-url only gives the data nodes' credentials and TLS.
Environment: NERVE_REDIS_URL, NERVE_ENV, NERVE_SERVICE, NERVE_REDIS_MODE,
NERVE_REDIS_SENTINELS, NERVE_REDIS_SENTINEL_NAME, NERVE_REDIS_SENTINEL_PASSWORD,
NERVE_REDIS_SENTINEL_USERNAME, NERVE_REDIS_SENTINEL_TLS (flags win).`;

function sumValues(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** The table `nerve status` prints. */
function formatStatusTable(nodes: NodeRecord[], now = Date.now()): string {
  const header = ['NODE', 'ADDRESS', 'STATE', 'VERSION', 'UP', 'CONNS', 'ROOMS', 'MSGS IN', 'LANES', 'HEARTBEAT'];
  const rows = nodes.map((node) => [
    node.id,
    node.address,
    node.state,
    node.version,
    age(now - node.startedAt),
    String(node.connections),
    String(node.rooms),
    String(sumValues(node.counters.messagesIn)),
    node.lanes.every((lane) => lane.ok)
      ? 'ok'
      : `down: ${node.lanes
          .filter((lane) => !lane.ok)
          .map((lane) => lane.lane)
          .join(',')}`,
    `${(node.heartbeatAgeMs / 1000).toFixed(1)}s ago`,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const total = nodes.reduce((acc, node) => acc + node.connections, 0);
  return [line(header), ...rows.map(line), '', `${nodes.length} node(s), ${total} connection(s)`].join('\n');
}

export async function statusMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'redis-url': { type: 'string' },
        env: { type: 'string' },
        service: { type: 'string' },
        'redis-mode': { type: 'string' },
        'redis-sentinels': { type: 'string' },
        'redis-sentinel-name': { type: 'string' },
        'redis-sentinel-password': { type: 'string' },
        'redis-sentinel-username': { type: 'string' },
        'redis-sentinel-tls': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`nerve status: ${errorText(error)}\n${STATUS_HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${STATUS_HELP}\n`);
    return 0;
  }
  let redisUrl = values['redis-url'] ?? env.NERVE_REDIS_URL;
  const mode = (values['redis-mode'] ?? env.NERVE_REDIS_MODE ?? NODE_DEFAULTS.redisMode) as RedisMode;
  let sentinel: RedisSentinelSettings | undefined;
  try {
    const sentinels = (values['redis-sentinels'] ?? env.NERVE_REDIS_SENTINELS ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    if (sentinels.length > 0) {
      // The node's own rules (and errors) for the Sentinel settings.
      const options = normalizeOptions({
        redisUrl,
        redisMode: mode,
        redisSentinels: sentinels,
        redisSentinelName: values['redis-sentinel-name'] ?? env.NERVE_REDIS_SENTINEL_NAME,
        redisSentinelPassword: values['redis-sentinel-password'] ?? env.NERVE_REDIS_SENTINEL_PASSWORD,
        redisSentinelUsername: values['redis-sentinel-username'] ?? env.NERVE_REDIS_SENTINEL_USERNAME,
        redisSentinelTls: values['redis-sentinel-tls'] ?? /^(1|true|yes|on)$/i.test(env.NERVE_REDIS_SENTINEL_TLS ?? ''),
      });
      sentinel = redisSentinelSettings(options);
      redisUrl = options.redisUrl;
    }
    if (!redisUrl || !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('redisUrl', 'a redis:// URL (--redis-url)', redisUrl);
    if (!REDIS_MODES.includes(mode)) throw new ConfigError('redisMode', REDIS_MODES.join(' | '), mode);
  } catch (error) {
    process.stderr.write(`nerve status: ${errorText(error)}\n`);
    return 2;
  }
  const namer = new ChannelNamer({
    env: values.env ?? env.NERVE_ENV ?? NODE_DEFAULTS.env,
    service: values.service ?? env.NERVE_SERVICE ?? NODE_DEFAULTS.service,
    hashTags: mode === 'sharded',
  });
  const registry = new RedisNodeRegistry({ ...redisStoreConnection(redisUrl, mode === 'sharded', sentinel), prefix: namer.prefix });
  try {
    const nodes = await registry.list();
    process.stdout.write(values.json ? `${JSON.stringify({ nodes }, null, 2)}\n` : `${formatStatusTable(nodes)}\n`);
    return nodes.length > 0 ? 0 : 1;
  } catch (error) {
    process.stderr.write(`nerve status: cannot read the registry: ${errorText(error)}\n`);
    return 3;
  } finally {
    await registry.close();
  }
}
