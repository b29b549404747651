/**
 * One chaos soak run: start the services and the cluster, start the load,
 * inject faults from the seed until the duration is over, stop the load,
 * let everyone catch up, then check everything (deliveries, PostgreSQL rows
 * against acks, a replay of every room) and write the report.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { NerveClient } from '../../packages/client/src/index.js';
import { WebSocket } from 'ws';
import { SoakChecker, type Finding } from './soak-checker.js';
import { soakServicesMissing, startSoakEnv, type SoakEnv } from './soak-env.js';
import { chatBack, deliveryBack, readyDetails, runFault, type FaultRecord } from './soak-faults.js';
import { SoakLoad } from './soak-load.js';
import { between, faultSequence, FAULT_KINDS, seededRandom, type FaultKind } from './soak-plan.js';
import { soakSvg, summarizeRecovery, summaryText, type SoakReport, type StoreCheck } from './soak-report.js';

export interface SoakOptions {
  seed: number;
  /** How long faults are injected, ms (the load runs from before the first to after the last). */
  durationMs: number;
  faults: readonly FaultKind[];
  /** A fault that is not back within this long after its heal counts as not recovered. */
  recoveryTimeoutMs: number;
  /** Pause after one fault recovered before the next, ms range. */
  gapMs: readonly [number, number];
  /** Stop after this many faults even if the duration is not over (0: no limit). */
  maxFaults: number;
  /** Every kind must run at least this often, else the run fails (0: no such check). */
  minPerKind: number;
  members: number;
  rooms: number;
  chatPeriodMs: number;
  /** Directory of the JSON and SVG (created). */
  outDir: string;
  log: (line: string) => void;
}

export const DEFAULT_SOAK: Omit<SoakOptions, 'log'> = {
  seed: 14,
  durationMs: 600_000,
  faults: FAULT_KINDS,
  recoveryTimeoutMs: 45_000,
  gapMs: [1000, 3000],
  maxFaults: 0,
  minPerKind: 5,
  members: 24,
  rooms: 6,
  chatPeriodMs: 800,
  outDir: 'bench/results',
};

export interface SoakOutcome {
  report: SoakReport;
  summary: string;
  jsonPath: string;
  svgPath: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(probe: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakOutcome> {
  const missing = await soakServicesMissing();
  if (missing) throw new Error(`chaos soak needs its services: ${missing}`);
  const { log } = options;
  const started = Date.now();
  const random = seededRandom(options.seed);
  const namespace = `soak${randomBytes(4).toString('hex')}`;
  log(`namespace ${namespace}: starting Redis, proxies, worker and 3 nodes`);
  const env = await startSoakEnv({ namespace, nodes: 3, log });
  const checker = new SoakChecker();
  const load = new SoakLoad({
    env,
    checker,
    random: seededRandom(options.seed ^ 0x5eed),
    log,
    members: options.members,
    rooms: options.rooms,
    chatPeriodMs: options.chatPeriodMs,
    signalers: Math.ceil(options.members / 3),
    signalPeriodMs: 1000,
    ephemeralPeriodMs: 1500,
    churners: 4,
    reconnectEveryMs: 8000,
  });
  const faults: FaultRecord[] = [];
  const spurious: Array<{ at: number; detail: string }> = [];
  let currentFault = false;
  try {
    await load.start();
    const warm = Date.now();
    const warmed = await waitUntil(
      () => deliveryBack(load, env.slots.length, warm) !== undefined && chatBack(load, env.slots.length, warm) !== undefined,
      30_000,
    );
    if (!warmed) throw new Error('the cluster never delivered across nodes before any fault (warm-up)');
    log(
      `load running (${options.members} members in ${options.rooms} rooms, probes on every node); faults for ${Math.round(options.durationMs / 1000)} s, seed ${options.seed}`,
    );

    // Between faults every node should stay ready: a node that reports itself down with no fault
    // open (a probe that fires on a busy but healthy connection) is a finding of its own.
    let monitoring = true;
    const monitor = (async () => {
      while (monitoring) {
        await sleep(1000);
        const now = Date.now();
        const quiet = !currentFault && faults.every((f) => now > f.endAt + 2000 || now < f.injectAt);
        if (!quiet || !env.slots.every((s) => s.up && s.process)) continue;
        const detail = await readyDetails(env);
        if (/: (?!200 )/.test(detail) && !currentFault) spurious.push({ at: now, detail });
      }
    })();
    const faultsEnd = Date.now() + options.durationMs;
    const sequence = faultSequence(random, options.faults);
    let id = 0;
    while (Date.now() < faultsEnd && (options.maxFaults === 0 || id < options.maxFaults)) {
      const next = sequence.next();
      if (next.done) break;
      currentFault = true;
      const record = await runFault({ env, load, random, recoveryTimeoutMs: options.recoveryTimeoutMs, log }, ++id, next.value);
      currentFault = false;
      faults.push(record);
      checker.setWindows(faults.map((f) => ({ id: f.id, kind: f.kind, from: f.injectAt, to: f.endAt })));
      await sleep(between(random, options.gapMs[0], options.gapMs[1]));
    }

    monitoring = false;
    await monitor;
    for (const entry of spurious) log(`not ready with no fault open: ${entry.detail}`);
    log('faults over: stopping the load, waiting for every chat message in flight');
    await load.stop();
    // Every open membership must reach its room's last acked offset.
    const caughtUp = (): string[] =>
      load.positions().flatMap(({ name, room, offset }) => {
        const last = load.lastAcked(room);
        return (offset ?? 0) >= last ? [] : [`${name}/${room} at ${offset ?? 'none'} of ${last}`];
      });
    await waitUntil(() => caughtUp().length === 0, 30_000);
    const laggards = caughtUp();
    const postgres = await checkPostgres(env, checker);
    const replay = await checkReplay(env, load, checker);

    const verdict = checker.report();
    const counts: Record<string, number> = {};
    for (const f of faults) counts[f.kind] = (counts[f.kind] ?? 0) + 1;
    const failures: string[] = [];
    const chat = verdict.classes.chat;
    if (chat.lost) failures.push(`${chat.lost} acked chat deliveries lost`);
    if (chat.duplicated) failures.push(`${chat.duplicated} chat deliveries duplicated`);
    if (chat.outOfOrder) failures.push(`${chat.outOfOrder} chat deliveries out of order`);
    if (chat.gaps) failures.push(`${chat.gaps} chat offset gaps or epoch changes seen by an app`);
    if (chat.unexpected) failures.push(`${chat.unexpected} unexpected chat deliveries or disagreeing acks`);
    if (laggards.length) failures.push(`${laggards.length} members never caught up: ${laggards.slice(0, 5).join(', ')}`);
    if (postgres.missing || postgres.duplicated || postgres.mismatched)
      failures.push(`PostgreSQL: ${postgres.missing} acked missing, ${postgres.duplicated} duplicated, ${postgres.mismatched} mismatched`);
    if (replay.missing || replay.duplicated || replay.mismatched || replay.notRecovered.length) {
      failures.push(
        `replay: ${replay.missing} acked missing, ${replay.duplicated} duplicated, ${replay.mismatched} mismatched, ${replay.notRecovered.length} rooms not recovered`,
      );
    }
    for (const crash of env.crashes) failures.push(`${crash.what} crashed (exit ${crash.code ?? crash.signal})`);
    for (const f of faults) if (!f.recovered) failures.push(`fault #${f.id} ${f.kind} did not recover: ${f.notes.join('; ')}`);
    if (options.minPerKind > 0) {
      for (const kind of options.faults)
        if ((counts[kind] ?? 0) < options.minPerKind) failures.push(`${kind} ran ${counts[kind] ?? 0} times, fewer than ${options.minPerKind}`);
    }
    const finished = Date.now();
    const report: SoakReport = {
      seed: options.seed,
      durationMs: options.durationMs,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      wallMs: finished - started,
      namespace,
      machine: { cpus: cpus().length, loadAverage: loadavg(), node: process.version },
      load: {
        members: options.members,
        rooms: options.rooms,
        chatPeriodMs: options.chatPeriodMs,
        signalers: Math.ceil(options.members / 3),
        churners: 4,
        slowClients: 2,
        probes: env.slots.length,
      },
      faults,
      faultCounts: counts,
      recovery: summarizeRecovery(faults),
      classes: verdict.classes,
      byFault: verdict.byFault,
      postgres,
      replay,
      catchUp: { laggards },
      crashes: [...env.crashes],
      unreadyWithoutFault: spurious,
      sdk: {
        recoveryFailed: checker.events.recoveryFailed,
        rejoined: checker.events.rejoined,
        slowConsumerCloses: checker.events.slowConsumerCloses,
        disconnects: checker.events.disconnects,
        chatErrors: Object.fromEntries(checker.events.chatErrors),
        roomErrors: Object.fromEntries(checker.events.roomErrors),
        chatGivenUp: checker.events.givenUp,
      },
      findings: sampleFindings(verdict.findings, 100),
      findingsTotal: verdict.findings.length,
      ok: failures.length === 0,
      failures,
    };
    await mkdir(options.outDir, { recursive: true });
    const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
    const jsonPath = join(options.outDir, `soak-${stamp}.json`);
    const svgPath = join(options.outDir, `soak-${stamp}.svg`);
    await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(svgPath, soakSvg(report));
    return { report, summary: summaryText(report), jsonPath, svgPath };
  } finally {
    await load.close().catch(() => undefined);
    await env.stop();
  }
}

/** At most `per` findings of each class and kind (the first ones), so one flood of a kind does not hide the others. */
function sampleFindings(findings: readonly Finding[], per: number): Finding[] {
  const taken = new Map<string, number>();
  return findings.filter((finding) => {
    const key = `${finding.cls}.${finding.what}`;
    const n = taken.get(key) ?? 0;
    taken.set(key, n + 1);
    return n < per;
  });
}

/** Every acked chat message has exactly one row, at its acked offset; waits up to 60 s for the worker to drain. */
async function checkPostgres(env: SoakEnv, checker: SoakChecker): Promise<StoreCheck> {
  const acked = new Map<string, { cmid: string; offset: number; epoch: string }>();
  for (const [cmid, entry] of checker.chat) if (entry.ack) acked.set(entry.ack.id, { cmid, offset: entry.ack.offset, epoch: entry.ack.epoch });
  type Row = { id: string; cmid: string | null; room_offset: string; epoch: string };
  let rows: Row[] = [];
  await waitUntil(
    async () => {
      try {
        rows = (await env.db.query<Row>(`SELECT id, cmid, room_offset, epoch FROM "${env.schema}".chat_messages`)).rows;
      } catch {
        rows = [];
      }
      const ids = new Set(rows.map((r) => r.id));
      return [...acked.keys()].every((id) => ids.has(id));
    },
    60_000,
    500,
  );
  const check: StoreCheck = { missing: 0, duplicated: 0, mismatched: 0, unexpected: 0, checked: rows.length, detail: [] };
  const ids = new Set(rows.map((r) => r.id));
  for (const [id, ack] of acked) {
    if (!ids.has(id)) {
      check.missing += 1;
      if (check.detail.length < 50) check.detail.push(`missing ${ack.cmid} (${id})`);
    }
  }
  const perCmid = new Map<string, number>();
  for (const row of rows) {
    const cmid = row.cmid ?? '';
    perCmid.set(cmid, (perCmid.get(cmid) ?? 0) + 1);
    const sent = checker.chat.get(cmid);
    if (!sent) {
      check.unexpected += 1;
      if (check.detail.length < 50) check.detail.push(`row ${row.id} with unknown cmid ${cmid}`);
    } else if (sent.ack && (Number(row.room_offset) !== sent.ack.offset || row.epoch !== sent.ack.epoch || row.id !== sent.ack.id)) {
      check.mismatched += 1;
      if (check.detail.length < 50) check.detail.push(`row ${row.id} (${cmid}) at ${row.room_offset}, acked ${sent.ack.id} at ${sent.ack.offset}`);
    }
  }
  for (const [cmid, n] of perCmid) {
    if (n > 1) {
      check.duplicated += 1;
      if (check.detail.length < 50) check.detail.push(`${cmid}: ${n} rows`);
    }
  }
  return check;
}

/** A fresh client joins every room with `since` offset 0: the answer must be the whole log, each acked message once at its offset. */
async function checkReplay(env: SoakEnv, load: SoakLoad, checker: SoakChecker): Promise<StoreCheck & { rooms: number; notRecovered: string[] }> {
  const url = env.slots.flatMap((s) => (s.process ? [s.process.wsUrl] : []));
  const reader = new NerveClient({ url, user: 'replay-reader', WebSocket, requestTimeoutMs: 30_000 });
  const rooms = [...load.rooms, load.probeRoom];
  const check = {
    missing: 0,
    duplicated: 0,
    mismatched: 0,
    unexpected: 0,
    checked: 0,
    detail: [] as string[],
    rooms: rooms.length,
    notRecovered: [] as string[],
  };
  try {
    await reader.connect();
    for (const room of rooms) {
      const last = checker.lastAcked(room);
      const joined = await reader.join(room, { since: { offset: 0, epoch: last?.epoch ?? 'none' } });
      if (joined.recovered === false) check.notRecovered.push(room);
      check.checked += joined.history.length;
      const seen = new Map<string, number>();
      let previous = 0;
      for (const message of joined.history) {
        const cmid = message.cmid ?? '';
        seen.set(cmid, (seen.get(cmid) ?? 0) + 1);
        if (message.offset !== previous + 1 && check.detail.length < 50) check.detail.push(`${room}: replay offset ${message.offset} after ${previous}`);
        previous = message.offset;
        const sent = checker.chat.get(cmid);
        if (!sent) check.unexpected += 1;
        else if (sent.ack && (sent.ack.offset !== message.offset || sent.ack.epoch !== message.epoch)) {
          check.mismatched += 1;
          if (check.detail.length < 50) check.detail.push(`${room}: ${cmid} replayed at ${message.offset}, acked at ${sent.ack.offset}`);
        }
      }
      for (const [cmid, n] of seen) {
        if (n <= 1) continue;
        check.duplicated += 1;
        if (check.detail.length < 50) check.detail.push(`${room}: ${cmid} replayed ${n} times`);
      }
      for (const [cmid, entry] of checker.chat) {
        if (entry.room !== room || !entry.ack) continue;
        if (!seen.has(cmid)) {
          check.missing += 1;
          if (check.detail.length < 50) check.detail.push(`${room}: ${cmid} acked at ${entry.ack.offset} not replayed`);
        }
      }
      await reader.leave(room);
    }
  } finally {
    await reader.close();
  }
  return check;
}
