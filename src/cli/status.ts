/**
 * `nerve status --redis-url … [--env …] [--service …] [--redis-mode …] [--json]`:
 * the cluster as the node registry sees it (src/registry/), one row per live
 * node. Exit 0 with at least one node, 1 with none, 2 on bad flags, 3 when
 * Redis cannot be read.
 */
import { parseArgs } from 'node:util';
import { ChannelNamer } from '../bus/channels.js';
import { redisStoreConnection } from '../lanes-factory.js';
import { ConfigError, REDIS_MODES, type RedisMode } from '../options.js';
import { RedisNodeRegistry } from '../registry/redis.js';
import type { NodeRecord } from '../registry/registry.js';

export const STATUS_HELP = `Usage: nerve status --redis-url URL [--env dev] [--service nerve] [--redis-mode pubsub|sharded] [--json]

Prints the nodes registered in Redis under {env}:{service} (each node
heartbeats every --registry-interval-ms; one that misses three drops out).
Environment: NERVE_REDIS_URL, NERVE_ENV, NERVE_SERVICE, NERVE_REDIS_MODE (flags win).`;

function sumValues(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** The table `nerve status` prints (exported for tests). */
export function formatStatusTable(nodes: NodeRecord[], now = Date.now()): string {
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
    node.lanes.every((lane) => lane.ok) ? 'ok' : `down: ${node.lanes.filter((lane) => !lane.ok).map((lane) => lane.lane).join(',')}`,
    `${(node.heartbeatAgeMs / 1000).toFixed(1)}s ago`,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
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
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`nerve status: ${(error as Error).message}\n${STATUS_HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${STATUS_HELP}\n`);
    return 0;
  }
  const redisUrl = values['redis-url'] ?? env.NERVE_REDIS_URL;
  const mode = (values['redis-mode'] ?? env.NERVE_REDIS_MODE ?? 'pubsub') as RedisMode;
  try {
    if (!redisUrl || !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('redisUrl', 'a redis:// URL (--redis-url)', redisUrl);
    if (!REDIS_MODES.includes(mode)) throw new ConfigError('redisMode', REDIS_MODES.join(' | '), mode);
  } catch (error) {
    process.stderr.write(`nerve status: ${(error as Error).message}\n`);
    return 2;
  }
  const namer = new ChannelNamer({ env: values.env ?? env.NERVE_ENV ?? 'dev', service: values.service ?? env.NERVE_SERVICE ?? 'nerve', hashTags: mode === 'sharded' });
  const registry = new RedisNodeRegistry({ ...redisStoreConnection(redisUrl, mode === 'sharded'), prefix: namer.prefix });
  try {
    const nodes = await registry.list();
    process.stdout.write(values.json ? `${JSON.stringify({ nodes }, null, 2)}\n` : `${formatStatusTable(nodes)}\n`);
    return nodes.length > 0 ? 0 : 1;
  } catch (error) {
    process.stderr.write(`nerve status: cannot read the registry: ${(error as Error).message}\n`);
    return 3;
  } finally {
    await registry.close();
  }
}
