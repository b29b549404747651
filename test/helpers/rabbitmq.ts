/**
 * RabbitMQ inspection for tests, without the management plugin: a passive
 * declare (does this queue / exchange exist?) on an AMQP connection, and
 * `rabbitmqctl list_bindings` / `list_queues` when the CLI is on this machine
 * (under CI=true it must be: a missing or failing CLI is an error there).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AMQPChannelError, type Connection } from 'rabbitmq-client';

const run = promisify(execFile);

/**
 * Whether queue `queue` exists on the broker: a passive declare answers
 * NOT_FOUND when it does not, and RESOURCE_LOCKED when it is another
 * connection's exclusive queue (which exists).
 */
export async function queueExists(admin: Connection, queue: string): Promise<boolean> {
  try {
    await admin.queueDeclare({ queue, passive: true });
    return true;
  } catch (error) {
    if (error instanceof AMQPChannelError && error.code === 'NOT_FOUND') return false;
    if (error instanceof AMQPChannelError && error.code === 'RESOURCE_LOCKED') return true;
    throw error;
  }
}

/** Whether exchange `exchange` exists on the broker. */
export async function exchangeExists(admin: Connection, exchange: string): Promise<boolean> {
  try {
    await admin.exchangeDeclare({ exchange, passive: true });
    return true;
  } catch (error) {
    if (error instanceof AMQPChannelError && error.code === 'NOT_FOUND') return false;
    throw error;
  }
}

async function rabbitmqctl(args: string[]): Promise<string[][] | undefined> {
  try {
    const { stdout } = await run('rabbitmqctl', ['-q', ...args, '--no-table-headers'], { timeout: 20_000 });
    return stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => line.split('\t'));
  } catch (error) {
    // Under CI the broker runs on this machine, so the CLI must answer: without it the
    // callers' "nothing left on the broker" checks would pass without checking anything.
    if (process.env.CI === 'true') throw new Error(`rabbitmqctl is required in CI: ${String(error)}`, { cause: error });
    // No CLI on this machine (or no rights): the caller falls back on passive declares.
    return undefined;
  }
}

export interface Binding {
  source: string;
  destination: string;
  routingKey: string;
}

/** Bindings whose source or destination starts with `prefix`; undefined when rabbitmqctl is unavailable. */
export async function listBindings(prefix: string): Promise<Binding[] | undefined> {
  const rows = await rabbitmqctl(['list_bindings', 'source_name', 'destination_name', 'routing_key']);
  return rows
    ?.map(([source = '', destination = '', routingKey = '']) => ({ source, destination, routingKey }))
    .filter((binding) => binding.source.startsWith(prefix) || binding.destination.startsWith(prefix));
}

/** Queue names starting with `prefix`; undefined when rabbitmqctl is unavailable. */
export async function listQueues(prefix: string): Promise<string[] | undefined> {
  const rows = await rabbitmqctl(['list_queues', 'name']);
  return rows?.map(([name = '']) => name).filter((name) => name.startsWith(prefix));
}

/** Exchange names starting with `prefix`; undefined when rabbitmqctl is unavailable. */
export async function listExchanges(prefix: string): Promise<string[] | undefined> {
  const rows = await rabbitmqctl(['list_exchanges', 'name']);
  return rows?.map(([name = '']) => name).filter((name) => name.startsWith(prefix));
}

/**
 * Delete every queue and exchange whose name starts with `prefix` (a test's
 * namespace followed by a dot), retry and dead-letter queues included, so a
 * run leaves nothing on the shared broker. Needs rabbitmqctl; without it,
 * only `fallback` names are deleted.
 */
export async function deleteTopology(admin: Connection, prefix: string, fallback: { queues?: string[]; exchanges?: string[] } = {}): Promise<void> {
  for (const queue of (await listQueues(prefix)) ?? fallback.queues ?? []) await admin.queueDelete({ queue }).catch(() => undefined);
  for (const exchange of (await listExchanges(prefix)) ?? fallback.exchanges ?? []) await admin.exchangeDelete({ exchange }).catch(() => undefined);
}

/**
 * The queues of the worker consumers named (`chat-store`, `chat-store-reads`, …)
 * under `prefix` (`<env>.nerve`): each has a work queue, a dead-letter queue and one
 * delay queue per retry delay (1 s doubling to 4,096 s). The fallback list for
 * `deleteTopology` where rabbitmqctl is missing.
 */
export function consumerQueues(prefix: string, consumers: string[]): string[] {
  const queues: string[] = [];
  for (const consumer of consumers) {
    queues.push(`${prefix}.${consumer}`, `${prefix}.${consumer}.dlq`);
    for (let delay = 1000; delay <= 4_096_000; delay *= 2) queues.push(`${prefix}.${consumer}.retry.${delay}`);
  }
  return queues;
}
