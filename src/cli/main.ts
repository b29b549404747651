#!/usr/bin/env node
/**
 * `nerve` command line. The only place that reads flags and environment
 * variables; everything else takes options.
 */
import { NerveNode } from '../node.js';
import { ConfigError } from '../config/errors.js';
import { onPrimaryDrain, serveMulti } from './multi.js';
import { parseServeCommand, serveHelp } from './settings.js';
import { startTracingSdk, tracingRequested, type TracingSdk } from '../tracing/sdk.js';
import { NERVE_VERSION } from '../version.js';

const USAGE = `Usage: nerve <command> [flags]

Commands:
  serve            start a node (nerve serve --help for every setting)
  worker <name>    run a cold-lane worker (nerve worker --help)
  status           the nodes of a cluster, from the registry in Redis (nerve status --help)
  dev-cluster      3 nodes and the workers on the local services (nerve dev-cluster --help)
  version          print the version
`;

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${serveHelp()}\n`);
    return 0;
  }
  let node: NerveNode;
  let otelEndpoint: string | undefined;
  try {
    const { options, cli } = parseServeCommand(argv, process.env);
    if (cli.nodes > 1) {
      // N node processes sharing the port (src/cli/multi.ts); it validates before any fork.
      return await serveMulti({ nodes: cli.nodes, options, argv });
    }
    otelEndpoint = cli.otelEndpoint;
    node = new NerveNode({ ...options, tracing: options.tracing || tracingRequested(otelEndpoint, process.env) });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`nerve: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let signals = 0;
  // Assigned once the SDK starts; a signal may drain before that.
  // eslint-disable-next-line prefer-const
  let sdk: TracingSdk | undefined;
  let draining = false;
  const drain = (reason: string) => {
    if (draining) return;
    draining = true;
    node.log.info({ reason }, 'draining');
    node.stop().then(
      async () => {
        await sdk?.shutdown();
        process.exit(0);
      },
      (error: unknown) => {
        node.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      node.log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    drain(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A worker of `serve --nodes N`: the primary asks for the same graceful
  // stop over IPC; it does not count as a signal (Ctrl-C may also have
  // reached this worker directly, through the process group).
  onPrimaryDrain(() => drain('asked by the primary'));
  // Spans of the hops (src/tracing/); the provider is registered before the first span, as start() opens the lanes.
  sdk = await startTracingSdk({ endpoint: otelEndpoint, serviceName: 'nerve', instanceId: node.options.nodeId, env: process.env });
  try {
    await node.start();
  } catch (error) {
    node.log.fatal({ err: error }, 'start failed');
    await node.stop().catch(() => {});
    return 1;
  }
  return new Promise<number>(() => {
    // Runs until a signal.
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'worker': {
      const { workerMain } = await import('../workers/cli.js');
      return workerMain(rest, process.env);
    }
    case 'status': {
      const { statusMain } = await import('./status.js');
      return statusMain(rest, process.env);
    }
    case 'dev-cluster': {
      const { devClusterMain } = await import('./dev-cluster.js');
      return devClusterMain(rest);
    }
    case 'version':
    case '--version':
      process.stdout.write(`${NERVE_VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`nerve: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`nerve: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
