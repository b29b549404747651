/**
 * A cluster of real nerve node processes (`nerve serve`) on one Redis: each
 * node on its own free port, all sharing one random `--env` namespace, so a
 * test run's channels and keys never meet another run's. `stop()` stops the
 * nodes and deletes the namespace's keys.
 */
import { startNode, type NodeProcess } from './node-process.js';
import { deleteKeys } from './redis-keys.js';
import { testNamespace } from './wait.js';

export interface StartClusterOptions {
  /** Number of node processes. Default 3. */
  count?: number;
  /** Redis every node uses for the hot lane, replay and presence. Required. */
  redisUrl: string;
  /** The `--env` namespace (first component of every channel and key). Default: a fresh `testNamespace()`. */
  env?: string;
  /** Extra `nerve serve` flags for every node. */
  args?: string[];
  /** Environment variables for every node process. */
  processEnv?: Record<string, string>;
}

export interface Cluster {
  nodes: NodeProcess[];
  /** The shared `--env` namespace. */
  env: string;
  redisUrl: string;
  /** Node `i` (throws when out of range, so tests need no `!`). */
  node(i: number): NodeProcess;
  /** SIGTERM every node, wait for them, then delete `{env}:nerve:*`. Idempotent. */
  stop(): Promise<void>;
}

export async function startCluster(options: StartClusterOptions): Promise<Cluster> {
  const count = options.count ?? 3;
  const env = options.env ?? testNamespace('cl');
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startNode({
        nodeId: `${env}-n${i}`,
        args: ['--redis-url', options.redisUrl, '--env', env, ...(options.args ?? [])],
        ...(options.processEnv ? { env: options.processEnv } : {}),
      }),
    ),
  );
  const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await deleteNamespaceKeys(options.redisUrl, env);
    })();
    return stopping;
  };
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
  return {
    nodes,
    env,
    redisUrl: options.redisUrl,
    node(i: number): NodeProcess {
      const node = nodes[i];
      if (!node) throw new RangeError(`cluster has ${nodes.length} nodes, no node ${i}`);
      return node;
    },
    stop,
  };
}

/**
 * Delete every key of namespace `env` (`{env}:nerve:*`, SCAN then UNLINK).
 * Best effort: a Redis that is down (an outage test's private server) is
 * not an error here.
 */
export async function deleteNamespaceKeys(redisUrl: string, env: string, service = 'nerve'): Promise<number> {
  try {
    return await deleteKeys(redisUrl, `${env}:${service}:*`);
  } catch {
    // Redis unreachable: nothing to clean on a server that is gone.
    return 0;
  }
}
