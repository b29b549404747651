/**
 * The soak's faults: inject one, heal it (release the proxy, restart the
 * process), then measure how long the cluster takes to recover, from the
 * moment the cause was removed:
 *
 * - `readyMs`: every node answers `/readyz` 200;
 * - `deliveryMs`: an ephemeral probe sent after the heal from every node
 *   reached every other node (all ordered pairs);
 * - `chatMs`: a chat message sent after the heal was acked on every node;
 * - `postgresMs`: such a message is in PostgreSQL (the cold lane and the
 *   chat-store worker flow again).
 *
 * A fault *recovered* when all four happened within the recovery timeout.
 * Nothing here restarts anything to help a fault heal: what does not come
 * back by itself is reported as not recovered.
 */
import { between, type FaultKind } from './soak-plan.js';
import type { SoakEnv } from './soak-env.js';
import type { SoakLoad } from './soak-load.js';

export interface FaultRecord {
  id: number;
  kind: FaultKind;
  /** What was hit (node slot, proxy), and how long the fault lasted. */
  target: string;
  holdMs: number;
  injectAt: number;
  healAt: number;
  /** End of the recovery wait (recovered or timed out): the fault's window for attribution ends here. */
  endAt: number;
  readyMs: number | undefined;
  deliveryMs: number | undefined;
  chatMs: number | undefined;
  postgresMs: number | undefined;
  recovered: boolean;
  notes: string[];
}

export interface FaultContext {
  env: SoakEnv;
  load: SoakLoad;
  random: () => number;
  recoveryTimeoutMs: number;
  log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function allReady(env: SoakEnv): Promise<boolean> {
  const checks = env.slots.map(async (slot) => {
    if (!slot.up || !slot.process) return false;
    try {
      const response = await fetch(`${slot.process.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      return response.status === 200;
    } catch {
      return false;
    }
  });
  return (await Promise.all(checks)).every(Boolean);
}

/** Why a node is not ready (for the notes of a fault that did not recover). */
export async function readyDetails(env: SoakEnv): Promise<string> {
  const parts = await Promise.all(
    env.slots.map(async (slot) => {
      if (!slot.process) return `n${slot.index}: down`;
      try {
        const response = await fetch(`${slot.process.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        const body = (await response.json()) as { status?: string; lanes?: Array<{ lane: string; ok: boolean; detail?: string }> };
        const bad = (body.lanes ?? []).filter((lane) => !lane.ok).map((lane) => `${lane.lane}: ${lane.detail ?? 'down'}`);
        return `n${slot.index}: ${response.status} ${body.status ?? ''}${bad.length ? ` (${bad.join('; ')})` : ''}`;
      } catch (error) {
        return `n${slot.index}: ${String(error)}`;
      }
    }),
  );
  return parts.join(' | ');
}

/** Time from `healAt` until every ordered pair of node slots saw a probe sent at or after `healAt`. */
export function deliveryBack(load: SoakLoad, slots: number, healAt: number): number | undefined {
  const first = new Map<string, number>();
  for (const arrival of load.arrivals) {
    if (arrival.sentAt < healAt || arrival.src === arrival.dst) continue;
    const key = `${arrival.src}>${arrival.dst}`;
    const seen = first.get(key);
    if (seen === undefined || arrival.at < seen) first.set(key, arrival.at);
  }
  if (first.size < slots * (slots - 1)) return undefined;
  return Math.max(...first.values()) - healAt;
}

/** Time from `healAt` until a chat attempt made at or after it was acked on every slot; and that ack's id per slot. */
export function chatBack(load: SoakLoad, slots: number, healAt: number): { ms: number; ids: string[] } | undefined {
  const first = new Map<number, { at: number; id: string }>();
  for (const ack of load.probeAcks) {
    if (ack.attemptAt < healAt) continue;
    const seen = first.get(ack.slot);
    if (!seen || ack.at < seen.at) first.set(ack.slot, { at: ack.at, id: ack.id });
  }
  if (first.size < slots) return undefined;
  return { ms: Math.max(...[...first.values()].map((v) => v.at)) - healAt, ids: [...first.values()].map((v) => v.id) };
}

async function inPostgres(env: SoakEnv, ids: string[]): Promise<boolean> {
  try {
    const result = await env.db.query<{ n: string }>(`SELECT count(*) AS n FROM "${env.schema}".chat_messages WHERE id = ANY($1)`, [ids]);
    return Number(result.rows[0]?.n) === ids.length;
  } catch {
    return false; // the schema may not exist yet
  }
}

/** Inject `kind`, heal it, and wait for the recovery (or the timeout). */
export async function runFault(ctx: FaultContext, id: number, kind: FaultKind): Promise<FaultRecord> {
  const { env, load, random, log } = ctx;
  const slot = between(random, 0, env.slots.length - 1);
  const record: FaultRecord = {
    id,
    kind,
    target: '',
    holdMs: 0,
    injectAt: Date.now(),
    healAt: 0,
    endAt: 0,
    readyMs: undefined,
    deliveryMs: undefined,
    chatMs: undefined,
    postgresMs: undefined,
    recovered: false,
    notes: [],
  };
  const crashesBefore = env.crashes.length;
  let restart: Promise<unknown> | undefined;
  switch (kind) {
    case 'node-sigkill':
    case 'node-sigterm': {
      record.target = `node n${slot}`;
      record.holdMs = between(random, 500, 2000);
      await env.killSlot(slot, kind === 'node-sigkill' ? 'SIGKILL' : 'SIGTERM');
      await sleep(record.holdMs);
      record.healAt = Date.now();
      restart = env.startSlot(slot);
      break;
    }
    case 'redis-restart': {
      record.target = 'redis';
      await env.redis.restart();
      record.healAt = Date.now();
      record.holdMs = record.healAt - record.injectAt;
      break;
    }
    case 'redis-stall': {
      record.target = 'redis proxy (bytes held)';
      record.holdMs = between(random, 3000, 8000);
      env.redisProxy.hold();
      await sleep(record.holdMs);
      env.redisProxy.release();
      record.healAt = Date.now();
      break;
    }
    case 'redis-byte-loss': {
      record.target = 'redis proxy (bytes dropped)';
      record.holdMs = between(random, 2000, 5000);
      env.redisProxy.drop();
      await sleep(record.holdMs);
      env.redisProxy.release();
      record.healAt = Date.now();
      break;
    }
    case 'broker-cut': {
      record.target = 'rabbitmq proxy';
      record.holdMs = between(random, 200, 3000);
      env.amqpProxy.refuse();
      record.notes.push(`cut ${env.amqpProxy.cut()} connection(s)`);
      await sleep(record.holdMs);
      env.amqpProxy.release();
      record.healAt = Date.now();
      break;
    }
    case 'worker-kill': {
      record.target = 'chat-store worker';
      record.holdMs = between(random, 500, 3000);
      await env.killWorker();
      await sleep(record.holdMs);
      record.healAt = Date.now();
      restart = env.startWorker();
      break;
    }
    case 'postgres-cut': {
      // Half of them a restart as clients see it (connections reset, refused meanwhile), half a stall (bytes held).
      const stall = random() < 0.5;
      record.target = `postgresql proxy (${stall ? 'bytes held' : 'connections cut, refused'})`;
      record.holdMs = between(random, 1000, 5000);
      if (stall) env.postgresProxy.hold();
      else {
        env.postgresProxy.refuse();
        record.notes.push(`cut ${env.postgresProxy.cut()} connection(s)`);
      }
      await sleep(record.holdMs);
      env.postgresProxy.release();
      record.healAt = Date.now();
      break;
    }
    case 'slow-client': {
      record.target = `clients in ${load.slowRooms().join(', ')}`;
      record.holdMs = between(random, 3000, 8000);
      const { paused, closed, burst } = await load.slowFault(record.holdMs);
      record.notes.push(`${paused} paused, burst of ${burst} × 32 KiB, ${closed} closed with 4009`);
      record.healAt = Date.now();
      break;
    }
  }
  log(`fault #${id} ${kind} on ${record.target}: held ${record.holdMs} ms, healed; waiting for recovery`);

  // Marks for the slow clients: what their rooms had acked when they were released.
  const marks = new Map<string, number>();
  if (kind === 'slow-client') for (const room of load.slowRooms()) marks.set(room, load.lastAcked(room));
  let restartError: string | undefined;
  void restart?.catch((error: unknown) => {
    restartError = String(error);
  });
  let slowBackMs: number | undefined = kind === 'slow-client' ? undefined : 0;
  const deadline = record.healAt + ctx.recoveryTimeoutMs;
  const slots = env.slots.length;
  while (Date.now() < deadline) {
    if (restartError) {
      record.notes.push(`restart failed: ${restartError}`);
      break;
    }
    if (record.readyMs === undefined && (await allReady(env))) record.readyMs = Date.now() - record.healAt;
    record.deliveryMs ??= deliveryBack(load, slots, record.healAt);
    const chat = chatBack(load, slots, record.healAt);
    if (chat && record.chatMs === undefined) record.chatMs = chat.ms;
    if (chat && record.postgresMs === undefined && (await inPostgres(env, chat.ids))) record.postgresMs = Date.now() - record.healAt;
    if (slowBackMs === undefined && load.slowCaughtUp(marks)) slowBackMs = Date.now() - record.healAt;
    if (
      record.readyMs !== undefined &&
      record.deliveryMs !== undefined &&
      record.chatMs !== undefined &&
      record.postgresMs !== undefined &&
      slowBackMs !== undefined
    ) {
      record.recovered = true;
      break;
    }
    await sleep(200);
  }
  if (kind === 'slow-client') record.notes.push(slowBackMs === undefined ? 'slow clients did not catch up' : `slow clients caught up after ${slowBackMs} ms`);
  if (!record.recovered) {
    const missing = [
      record.readyMs === undefined ? 'readyz' : '',
      record.deliveryMs === undefined ? 'cross-node delivery' : '',
      record.chatMs === undefined ? 'chat acks' : '',
      record.postgresMs === undefined ? 'postgres rows' : '',
      slowBackMs === undefined ? 'slow clients' : '',
    ].filter(Boolean);
    record.notes.push(`not back within ${ctx.recoveryTimeoutMs} ms: ${missing.join(', ')}`);
    record.notes.push(`readyz: ${await readyDetails(env)}`);
  }
  await restart?.catch(() => undefined);
  // A process that died of the fault did not heal by itself, even if a supervisor's restart brought the figures back.
  const crashes = env.crashes.slice(crashesBefore);
  if (crashes.length > 0) {
    record.recovered = false;
    for (const crash of crashes) record.notes.push(`${crash.what} crashed (exit ${crash.code ?? crash.signal}): ${crash.detail.slice(0, 300)}`);
  }
  record.endAt = Date.now();
  log(
    `fault #${id} ${kind}: ${record.recovered ? 'recovered' : 'NOT RECOVERED'} — readyz ${fmt(record.readyMs)}, delivery ${fmt(record.deliveryMs)}, chat ${fmt(record.chatMs)}, postgres ${fmt(record.postgresMs)}${record.notes.length ? ` (${record.notes.join('; ')})` : ''}`,
  );
  return record;
}

const fmt = (ms: number | undefined): string => (ms === undefined ? '—' : `${ms} ms`);
