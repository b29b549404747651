/**
 * `nerve serve --nodes N`: N full nodes on one machine sharing one port
 * (node:cluster), so one box uses all its cores behind one balancer address.
 * The primary only supervises: fork, drain on a signal, restart a crashed
 * worker with backoff, exit when all have exited (docs/architecture.md,
 * "Several nodes on one machine").
 */
import cluster, { type Worker } from 'node:cluster';
import { fullJitter } from '../backoff.js';
import type { Logger } from '../logger.js';
import { createLogger } from '../logger.js';
import { ConfigError } from '../config/errors.js';
import type { NodeOptionsInput } from '../config/options.js';
import { defaultNodeId, normalizeOptions } from '../config/normalize.js';

/** The IPC message the primary sends a worker to start its graceful stop. */
const DRAIN_MESSAGE = 'nerve:drain';
/** Restart delay window after a first crash; doubles per consecutive crash. */
const RESTART_BASE_MS = 250;
/** Longest restart delay. */
const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before crashing starts the backoff over. */
const STABLE_AFTER_MS = 30_000;
/** Consecutive failures of one worker to reach `listening` before the primary gives up (start cannot succeed). */
const MAX_START_FAILURES = 5;

interface MultiServeOptions {
  /** Number of worker processes (N > 1). */
  nodes: number;
  /** The node options parsed from flags and environment (validated here, once, before any fork). */
  options: NodeOptionsInput;
  /** The `serve` arguments as given; each worker gets them plus `--node-id {nodeId}-{i} --nodes 1`. */
  argv: readonly string[];
}

/**
 * Validate a multi-process start: throws `ConfigError` when N > 1 without
 * Redis, or when the derived node ids are invalid. Returns the base node id.
 */
function checkMultiOptions(nodes: number, options: NodeOptionsInput): string {
  if (nodes > 1 && (options.redisUrl === undefined || options.redisUrl === '')) {
    throw new ConfigError('redisUrl', `a Redis URL when nodes is ${nodes} (in-memory lanes cannot span processes)`, options.redisUrl);
  }
  const base = options.nodeId ?? defaultNodeId();
  // Validate everything once in the primary, with the longest derived node id.
  normalizeOptions({ ...options, nodeId: workerNodeId(base, nodes - 1) });
  return base;
}

function workerNodeId(base: string, index: number): string {
  return `${base}-${index}`;
}

/**
 * In a worker: call `stop` when the primary asks for a graceful stop.
 * Signals alone are not enough: Ctrl-C sends SIGINT to the whole process
 * group, and a forwarded signal on top would count as a second signal and
 * cut the drain short. The IPC message is idempotent with the node's stop.
 */
export function onPrimaryDrain(stop: () => void): void {
  if (!cluster.isWorker) return;
  process.on('message', (message: unknown) => {
    if (message === DRAIN_MESSAGE) stop();
  });
}

interface Slot {
  index: number;
  nodeId: string;
  worker: Worker | undefined;
  startedAt: number;
  listened: boolean;
  crashes: number;
  startFailures: number;
  timer: NodeJS.Timeout | undefined;
}

/** Run the primary; resolves with the process exit code once every worker exited. */
export async function serveMulti(input: MultiServeOptions): Promise<number> {
  const base = checkMultiOptions(input.nodes, input.options);
  // The level and format of its workers' lines, which share its stdout.
  const { logLevel, logFormat } = normalizeOptions(input.options);
  const log: Logger = createLogger(logLevel, { node: base, role: 'primary' }, logFormat);
  const slots: Slot[] = Array.from({ length: input.nodes }, (_, index) => ({
    index,
    nodeId: workerNodeId(base, index),
    worker: undefined,
    startedAt: 0,
    listened: false,
    crashes: 0,
    startFailures: 0,
    timer: undefined,
  }));
  let stopping = false;
  let signals = 0;
  let failed = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    if (stopping) return;
    // Later flags win, so the appended ones override a --node-id / --nodes given by the user.
    cluster.setupPrimary({ args: ['serve', ...input.argv, '--node-id', slot.nodeId, '--nodes', '1'] });
    const worker = cluster.fork();
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.listened = false;
    worker.once('listening', () => {
      slot.listened = true;
      slot.startFailures = 0;
    });
    worker.once('exit', (code: number | null, signal: string | null) => onExit(slot, worker, code, signal));
  };

  const allExited = (): boolean => slots.every((slot) => slot.worker === undefined && slot.timer === undefined);

  const finishIfIdle = (): void => {
    if (stopping && allExited()) {
      log.info('all workers exited');
      resolveDone(failed ? 1 : 0);
    }
  };

  const shutdown = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'stopping workers');
    for (const slot of slots) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
      const worker = slot.worker;
      if (worker && worker.isConnected()) worker.send(DRAIN_MESSAGE);
      else if (worker) worker.process.kill('SIGTERM');
    }
    finishIfIdle();
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (stopping) {
      if (code !== 0) failed = true;
      log.info({ worker: slot.nodeId, code, signal }, 'worker exited');
      finishIfIdle();
      return;
    }
    if (!slot.listened) slot.startFailures += 1;
    if (slot.startFailures >= MAX_START_FAILURES) {
      log.fatal({ worker: slot.nodeId, code, signal, attempts: slot.startFailures }, 'worker cannot start; giving up');
      failed = true;
      shutdown('worker cannot start');
      return;
    }
    if (Date.now() - slot.startedAt > STABLE_AFTER_MS) slot.crashes = 0;
    const delay = fullJitter(slot.crashes, RESTART_BASE_MS, RESTART_MAX_MS);
    slot.crashes += 1;
    log.error({ worker: slot.nodeId, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting');
    slot.timer = setTimeout(() => fork(slot), delay);
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal, killing workers');
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    shutdown(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  log.info({ nodes: input.nodes, workers: slots.map((slot) => slot.nodeId) }, 'starting workers');
  for (const slot of slots) fork(slot);
  const code = await done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return code;
}
