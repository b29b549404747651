/**
 * The load worker's side of the reconnect-storm scenario (bench/worker.ts
 * dispatches the `storm-*` commands here): the storm clients of this
 * process, a steady chat and ping load on some of them, and the figures the
 * coordinator (bench/lib/scale-storm.ts) reads back.
 */
import { nowMs } from './stats.js';
import { StormConn, type StormSpec } from './storm-client.js';

export type StormCommand =
  | { cmd: 'storm-open'; conns: StormSpec[]; concurrency: number }
  | { cmd: 'storm-join'; concurrency: number }
  | { cmd: 'storm-load'; chatEveryMs: number; pingEveryMs: number }
  | { cmd: 'storm-unload' }
  | { cmd: 'storm-wait'; deadUrl: string; timeoutMs: number }
  | { cmd: 'storm-close' };

export interface StormOpenResult {
  opened: number;
  failed: number;
  firstError?: string;
}

/** What the clients that were on the killed node did (times on the shared monotonic clock, nowMs). */
export interface StormWaitResult {
  /** Clients whose first node was the killed one. */
  affected: number;
  dropped: number;
  resumed: number;
  /** Resumes answered `recovered: true` (exactly the missed chat) and `false`. */
  recovered: number;
  notRecovered: number;
  failedAttempts: number;
  lastError?: string;
  /** When each resumed client's rejoin was answered. */
  resumedAt: Float64Array;
  firstDropAt: number;
  complete: boolean;
}

export interface StormUnloadResult {
  /** Answered pings: [sentAtMs, rttMs] pairs. */
  pings: Float64Array;
  chatsSent: number;
  chatsReceived: number;
}

const conns: StormConn[] = [];
let timers: NodeJS.Timeout[] = [];
let chatsSent = 0;

/** Run `task` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** A timer per client, started at a random phase so the load is steady rather than in waves. */
function every(periodMs: number, targets: readonly StormConn[], act: (conn: StormConn) => void): void {
  for (const conn of targets) {
    const start = setTimeout(() => {
      act(conn);
      timers.push(setInterval(() => act(conn), periodMs));
    }, Math.random() * periodMs);
    timers.push(start);
  }
}

async function waitResumed(deadUrl: string, timeoutMs: number): Promise<StormWaitResult> {
  const affected = conns.filter((conn) => conn.firstUrl === deadUrl);
  const deadline = nowMs() + timeoutMs;
  const done = () => affected.every((conn) => conn.droppedAt !== 0 && conn.resumedAt !== 0);
  while (!done() && nowMs() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  const dropped = affected.filter((conn) => conn.droppedAt !== 0);
  const resumed = dropped.filter((conn) => conn.resumedAt !== 0);
  const result: StormWaitResult = {
    affected: affected.length,
    dropped: dropped.length,
    resumed: resumed.length,
    recovered: resumed.filter((conn) => conn.recovered === true).length,
    notRecovered: resumed.filter((conn) => conn.recovered === false).length,
    failedAttempts: affected.reduce((total, conn) => total + conn.failedAttempts, 0),
    resumedAt: Float64Array.from(resumed.map((conn) => conn.resumedAt)),
    firstDropAt: Math.min(...dropped.map((conn) => conn.droppedAt)),
    complete: done(),
  };
  const lastError = affected.find((conn) => conn.lastError !== undefined)?.lastError;
  if (lastError !== undefined) result.lastError = lastError;
  return result;
}

export async function handleStorm(command: StormCommand): Promise<unknown> {
  switch (command.cmd) {
    case 'storm-open': {
      let failed = 0;
      let firstError: string | undefined;
      const opened = command.conns.map((spec) => new StormConn(spec));
      await pool(opened, command.concurrency, async (conn) => {
        try {
          await conn.start();
          conns.push(conn);
        } catch (error) {
          failed += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      });
      const result: StormOpenResult = { opened: opened.length - failed, failed };
      if (firstError !== undefined) result.firstError = firstError;
      return result;
    }
    case 'storm-join': {
      // A join refused after the SDK's retries is counted, not fatal: on an overloaded machine a few are.
      let failed = 0;
      let firstError: string | undefined;
      await pool(conns, command.concurrency, async (conn) => {
        try {
          await conn.join();
        } catch (error) {
          failed += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      });
      return { failed, ...(firstError === undefined ? {} : { firstError }) };
    }
    case 'storm-load':
      every(
        command.chatEveryMs,
        conns.filter((conn) => conn.role === 'chat'),
        (conn) => {
          conn.chat({ t: nowMs() });
          chatsSent += 1;
        },
      );
      every(
        command.pingEveryMs,
        conns.filter((conn) => conn.role === 'ping'),
        (conn) => conn.ping(),
      );
      return null;
    case 'storm-unload': {
      for (const timer of timers) clearTimeout(timer);
      timers = [];
      const pings = conns.flatMap((conn) => conn.pings.splice(0));
      const result: StormUnloadResult = { pings: Float64Array.from(pings), chatsSent, chatsReceived: conns.reduce((total, conn) => total + conn.received, 0) };
      return result;
    }
    case 'storm-wait':
      return waitResumed(command.deadUrl, command.timeoutMs);
    case 'storm-close':
      for (const conn of conns.splice(0)) conn.close();
      return null;
  }
}
