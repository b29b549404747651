/**
 * A load-generator process. The coordinator (bench/run.ts, bench/scale.ts)
 * forks several of these and drives them over IPC (advanced serialization,
 * so latency samples travel as Float64Array). Every command is bounded in
 * count and time and answers once. The reconnect storm's clients and
 * commands are in lib/storm-load.ts.
 */
import { joinRetries, openConn, type BenchConn, type ConnKind, type MessageClass } from './lib/clients.js';
import { nowMs } from './lib/stats.js';
import { handleStorm, type StormCommand } from './lib/storm-load.js';

export type WorkerCommand =
  | { cmd: 'open'; system: ConnKind; conns: Array<{ url: string; user: string }>; concurrency: number; timeoutMs: number }
  | { cmd: 'join'; room: string; concurrency: number; from?: number; to?: number; /** Each connection its own room, `<room>-<index>`. */ roomPerConn?: boolean }
  | { cmd: 'arm'; mode: 'count' | 'latency'; tag: string; expected: number; from?: number; to?: number }
  | { cmd: 'collect'; timeoutMs: number }
  | {
      cmd: 'publish';
      index: number;
      room: string;
      cls: MessageClass;
      tag: string;
      count: number;
      ratePerSecond: number;
      window: number;
      size: number;
      timeoutMs: number;
      warmup?: number;
    }
  | { cmd: 'answer'; from?: number; to?: number }
  | { cmd: 'call'; pairs: Array<{ index: number; to: string }>; rounds: number; size: number; timeoutMs: number }
  | { cmd: 'errors' }
  | { cmd: 'close' }
  | StormCommand;

export interface OpenResult {
  opened: number;
  failed: number;
  firstError?: string;
  startMs: number;
  endMs: number;
}
export interface CollectResult {
  received: number;
  firstMs: number;
  lastMs: number;
  complete: boolean;
  samples: Float64Array;
}
export interface PublishResult {
  sent: number;
  startMs: number;
  endMs: number;
}
export interface CallResult {
  samples: Float64Array;
  timeouts: number;
}

interface Request {
  id: number;
  command: WorkerCommand;
}

const conns: BenchConn[] = [];

/** Run `task` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function slice(from?: number, to?: number): BenchConn[] {
  return conns.slice(from ?? 0, to ?? conns.length);
}

interface Armed {
  mode: 'count' | 'latency';
  expectedTotal: number;
  received: number;
  firstMs: number;
  lastMs: number;
  samples: number[];
  done: () => void;
  finished: Promise<void>;
}
let armed: Armed | undefined;

function arm(command: Extract<WorkerCommand, { cmd: 'arm' }>): number {
  const targets = slice(command.from, command.to);
  let done = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const state: Armed = {
    mode: command.mode,
    expectedTotal: command.expected * targets.length,
    received: 0,
    firstMs: 0,
    lastMs: 0,
    samples: [],
    done,
    finished,
  };
  armed = state;
  if (state.expectedTotal === 0) done();
  for (const conn of targets) {
    conn.onMessage = (message) => {
      const data = message.data as { tag?: string; t?: number; warm?: boolean } | null;
      if (data?.tag !== command.tag) return;
      const at = nowMs();
      if (state.received === 0) state.firstMs = at;
      state.lastMs = at;
      state.received += 1;
      if (state.mode === 'latency' && !data.warm && typeof data.t === 'number') state.samples.push(at - data.t);
      if (state.received === state.expectedTotal) state.done();
    };
  }
  return targets.length;
}

async function collect(timeoutMs: number): Promise<CollectResult> {
  const state = armed;
  if (!state) throw new Error('collect without arm');
  let timer: NodeJS.Timeout | undefined;
  const complete = await Promise.race([
    state.finished.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ]);
  clearTimeout(timer);
  for (const conn of conns) conn.onMessage = undefined;
  armed = undefined;
  return { received: state.received, firstMs: state.firstMs, lastMs: state.lastMs, complete, samples: Float64Array.from(state.samples) };
}

async function publish(command: Extract<WorkerCommand, { cmd: 'publish' }>): Promise<PublishResult> {
  const conn = conns[command.index];
  if (!conn) throw new Error(`no connection ${command.index}`);
  const pad = 'x'.repeat(command.size);
  const warmup = command.warmup ?? 0;
  const deadline = nowMs() + command.timeoutMs;
  const startMs = nowMs();
  let sent = 0;
  if (command.ratePerSecond > 0) {
    // Fixed rate: every millisecond tick sends what the schedule owes, so the
    // offered load does not depend on how fast the server answers.
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = nowMs();
        const due = Math.min(command.count, Math.floor(((now - startMs) / 1000) * command.ratePerSecond) + 1);
        while (sent < due) {
          conn.publish(command.room, command.cls, { tag: command.tag, seq: sent, t: nowMs(), warm: sent < warmup, pad });
          sent += 1;
        }
        if (sent >= command.count || now > deadline) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, 1);
      tick();
    });
    await conn.ping();
  } else {
    // Full speed with flow control: `window` publishes then a ping, at most two
    // windows unanswered — well under nerve's 256-request queue per connection.
    const inFlight: Array<Promise<void>> = [];
    while (sent < command.count && nowMs() < deadline) {
      const n = Math.min(command.window, command.count - sent);
      for (let i = 0; i < n; i++) {
        conn.publish(command.room, command.cls, { tag: command.tag, seq: sent, t: nowMs(), warm: sent < warmup, pad });
        sent += 1;
      }
      inFlight.push(conn.ping());
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
  }
  return { sent, startMs, endMs: nowMs() };
}

function answer(from?: number, to?: number): number {
  const targets = slice(from, to);
  for (const conn of targets) {
    conn.onSignal = (signal) => {
      if (signal.kind === 'offer' && typeof signal.from === 'string') conn.signal(signal.from, 'answer', signal.data);
    };
  }
  return targets.length;
}

async function call(command: Extract<WorkerCommand, { cmd: 'call' }>): Promise<CallResult> {
  const sdp = `v=0\r\n${'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n'.repeat(Math.ceil(command.size / 60))}`.slice(0, command.size);
  const samples: number[] = [];
  let timeouts = 0;
  await Promise.all(
    command.pairs.map(async ({ index, to }) => {
      const conn = conns[index];
      if (!conn) throw new Error(`no connection ${index}`);
      for (let round = 0; round < command.rounds; round++) {
        const t = nowMs();
        const answered = new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), command.timeoutMs);
          conn.onSignal = (signal) => {
            const data = signal.data as { t?: number } | null;
            if (signal.kind === 'answer' && data?.t === t) {
              clearTimeout(timer);
              resolve(true);
            }
          };
        });
        conn.signal(to, 'offer', { t, type: 'offer', sdp });
        if (await answered) samples.push(nowMs() - t);
        else timeouts += 1;
      }
      conn.onSignal = undefined;
    }),
  );
  return { samples: Float64Array.from(samples), timeouts };
}

async function handle(command: WorkerCommand): Promise<unknown> {
  switch (command.cmd) {
    case 'open': {
      const startMs = nowMs();
      let failed = 0;
      let firstError: string | undefined;
      // Connections keep the position of their spec (not completion order): scenarios address them by index.
      const opened = new Array<BenchConn | undefined>(command.conns.length);
      await pool(command.conns, command.concurrency, async ({ url, user }, index) => {
        try {
          opened[index] = await openConn(command.system, url, user, command.timeoutMs);
        } catch (error) {
          failed += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      });
      for (const conn of opened) if (conn) conns.push(conn);
      const result: OpenResult = { opened: command.conns.length - failed, failed, startMs, endMs: nowMs() };
      if (firstError !== undefined) result.firstError = firstError;
      return result;
    }
    case 'join':
      await pool(slice(command.from, command.to), command.concurrency, (conn, index) =>
        conn.join(command.roomPerConn ? `${command.room}-${index}` : command.room),
      );
      return null;
    case 'arm':
      return arm(command);
    case 'collect':
      return collect(command.timeoutMs);
    case 'publish':
      return publish(command);
    case 'answer':
      return answer(command.from, command.to);
    case 'call':
      return call(command);
    case 'errors':
      return {
        count: conns.reduce((total, conn) => total + conn.errors, 0),
        last: conns.find((conn) => conn.lastError !== undefined)?.lastError,
        joinRetries: joinRetries(),
      };
    case 'close':
      for (const conn of conns.splice(0)) conn.close();
      await handleStorm({ cmd: 'storm-close' });
      return null;
    default:
      return handleStorm(command);
  }
}

/** Answer the coordinator; if it is gone (EPIPE), there is no one left to tell. */
function reply(message: Record<string, unknown>): void {
  if (process.connected) process.send?.(message, undefined, {}, () => {});
}

process.on('message', (message: Request) => {
  handle(message.command).then(
    (result) => reply({ id: message.id, ok: true, result }),
    (error: unknown) => reply({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
