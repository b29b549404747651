/**
 * The soak's outputs: one JSON of every figure, one SVG (a timeline of the
 * faults and the recovery times per fault kind, hand-written SVG like
 * bench/lib/report.ts, no dependency), and the text summary.
 */
import type { ClassCounts, Finding } from './soak-checker.js';
import type { FaultRecord } from './soak-faults.js';
import { FAULT_KINDS } from './soak-plan.js';
import { median } from './stats.js';

export interface StoreCheck {
  /** Acked messages whose row never appeared. */
  missing: number;
  /** Messages (by cmid) with more than one row / replayed more than once. */
  duplicated: number;
  /** Rows whose offset or epoch differs from the ack. */
  mismatched: number;
  /** Rows / replayed messages the soak never sent. */
  unexpected: number;
  /** Rows checked / messages replayed. */
  checked: number;
  detail: string[];
}

export interface RecoverySummary {
  count: number;
  recovered: number;
  readyMs: { median: number; max: number };
  deliveryMs: { median: number; max: number };
  chatMs: { median: number; max: number };
  postgresMs: { median: number; max: number };
}

export interface SoakReport {
  seed: number;
  durationMs: number;
  startedAt: string;
  finishedAt: string;
  wallMs: number;
  namespace: string;
  machine: { cpus: number; loadAverage: number[]; node: string };
  load: Record<string, number>;
  faults: FaultRecord[];
  faultCounts: Record<string, number>;
  recovery: Record<string, RecoverySummary>;
  classes: Record<'chat' | 'signal' | 'ephemeral', ClassCounts>;
  /** Findings per fault kind they are attributed to (`none`: no fault window open). */
  byFault: Record<string, Record<string, number>>;
  postgres: StoreCheck;
  replay: StoreCheck & { rooms: number; notRecovered: string[] };
  catchUp: { laggards: string[] };
  /** `/readyz` readings (every second) where a node was not ready while no fault was open. */
  unreadyWithoutFault: Array<{ at: number; detail: string }>;
  /** Nodes and workers that exited by themselves. */
  crashes: Array<{ at: number; what: string; code: number | null; signal: string | null; detail: string }>;
  sdk: {
    recoveryFailed: number;
    rejoined: number;
    slowConsumerCloses: number;
    disconnects: number;
    chatErrors: Record<string, number>;
    roomErrors: Record<string, number>;
    chatGivenUp: number;
  };
  /** The first 100 findings of each class and kind. */
  findings: Finding[];
  findingsTotal: number;
  ok: boolean;
  failures: string[];
}

const stat = (values: Array<number | undefined>): { median: number; max: number } => {
  const present = values.filter((v): v is number => v !== undefined);
  return present.length === 0 ? { median: Number.NaN, max: Number.NaN } : { median: median(present), max: Math.max(...present) };
};

export function summarizeRecovery(faults: readonly FaultRecord[]): Record<string, RecoverySummary> {
  const out: Record<string, RecoverySummary> = {};
  for (const kind of FAULT_KINDS) {
    const of = faults.filter((f) => f.kind === kind);
    if (of.length === 0) continue;
    out[kind] = {
      count: of.length,
      recovered: of.filter((f) => f.recovered).length,
      readyMs: stat(of.map((f) => f.readyMs)),
      deliveryMs: stat(of.map((f) => f.deliveryMs)),
      chatMs: stat(of.map((f) => f.chatMs)),
      postgresMs: stat(of.map((f) => f.postgresMs)),
    };
  }
  return out;
}

const ms = (value: number): string => (Number.isFinite(value) ? `${(value / 1000).toFixed(1)} s` : '—');

export function summaryText(report: SoakReport): string {
  const lines: string[] = [];
  lines.push(
    `chaos soak: seed ${report.seed}, ${Math.round(report.durationMs / 1000)} s of faults, ${report.faults.length} faults, wall ${Math.round(report.wallMs / 1000)} s`,
  );
  lines.push('');
  lines.push('| fault | count | recovered | readyz (median / max) | cross-node delivery | chat ack | PostgreSQL row |');
  lines.push('|---|---:|---:|---|---|---|---|');
  for (const [kind, r] of Object.entries(report.recovery)) {
    lines.push(
      `| ${kind} | ${r.count} | ${r.recovered} | ${ms(r.readyMs.median)} / ${ms(r.readyMs.max)} | ${ms(r.deliveryMs.median)} / ${ms(r.deliveryMs.max)} | ${ms(r.chatMs.median)} / ${ms(r.chatMs.max)} | ${ms(r.postgresMs.median)} / ${ms(r.postgresMs.max)} |`,
    );
  }
  lines.push('');
  lines.push('| class | sent | acked | expected deliveries | delivered | lost | duplicated | out of order | gaps | unexpected |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [cls, c] of Object.entries(report.classes)) {
    lines.push(
      `| ${cls} | ${c.sent} | ${c.acked} | ${c.expected} | ${c.delivered} | ${c.lost} | ${c.duplicated} | ${c.outOfOrder} | ${c.gaps} | ${c.unexpected} |`,
    );
  }
  lines.push('');
  lines.push(
    `PostgreSQL rows against acks: ${report.postgres.checked} rows; missing ${report.postgres.missing}, duplicated ${report.postgres.duplicated}, mismatched ${report.postgres.mismatched}, unexpected ${report.postgres.unexpected}`,
  );
  lines.push(
    `replay (join since offset 0, ${report.replay.rooms} rooms): ${report.replay.checked} messages; missing ${report.replay.missing}, duplicated ${report.replay.duplicated}, mismatched ${report.replay.mismatched}, unexpected ${report.replay.unexpected}${report.replay.notRecovered.length ? `, not recovered: ${report.replay.notRecovered.join(', ')}` : ''}`,
  );
  const errors =
    Object.entries(report.sdk.chatErrors)
      .map(([code, n]) => `${code} ${n}`)
      .join(', ') || 'none';
  lines.push(
    `SDK: ${report.sdk.disconnects} disconnects, ${report.sdk.rejoined} rejoins, ${report.sdk.recoveryFailed} recovery_failed, ${report.sdk.slowConsumerCloses} closes 4009; chat answers retried: ${errors}; given up: ${report.sdk.chatGivenUp}`,
  );
  const roomErrors = Object.entries(report.sdk.roomErrors)
    .map(([what, n]) => `${what} ×${n}`)
    .join(', ');
  if (roomErrors) lines.push(`SDK room errors (rejoin or refill failed; the app is told only by an error event): ${roomErrors}`);
  if (report.unreadyWithoutFault.length)
    lines.push(`not ready with no fault open: ${report.unreadyWithoutFault.length} reading(s), first: ${report.unreadyWithoutFault[0]!.detail}`);
  for (const crash of report.crashes)
    lines.push(`CRASH: ${crash.what} exited by itself (${crash.code ?? crash.signal}) at ${new Date(crash.at).toISOString()}: ${crash.detail.slice(0, 400)}`);
  const faulted = Object.entries(report.byFault).map(
    ([fault, counts]) =>
      `${fault}: ${Object.entries(counts)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
  );
  if (faulted.length) lines.push(`findings by fault window: ${faulted.join(' | ')}`);
  lines.push('');
  lines.push(report.ok ? 'RESULT: ok (0 acked chat lost or duplicated, every fault recovered)' : `RESULT: FAILED\n- ${report.failures.join('\n- ')}`);
  return lines.join('\n');
}

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Timeline (one row per fault kind: the fault, its heal, its recovery) and recovery bars per kind. */
export function soakSvg(report: SoakReport): string {
  const kinds = Object.keys(report.recovery);
  const width = 1000;
  const left = 130;
  const plotW = width - left - 20;
  const rowH = 18;
  const timelineTop = 70;
  const timelineH = kinds.length * rowH;
  const barsTop = timelineTop + timelineH + 60;
  const barRowH = 34;
  const height = barsTop + kinds.length * barRowH + 40;
  const t0 = Math.min(...report.faults.map((f) => f.injectAt), Date.parse(report.startedAt));
  const t1 = Math.max(...report.faults.map((f) => f.endAt), t0 + 1);
  const x = (t: number): number => left + ((t - t0) / (t1 - t0)) * plotW;
  const colours = { fault: '#c53030', healing: '#dd6b20', ready: '#2b6cb0', delivery: '#2f855a', chat: '#6b46c1', postgres: '#718096' };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${escape(`nerve chaos soak — seed ${report.seed}, ${Math.round(report.durationMs / 1000)} s, ${report.faults.length} faults`)}</text>`,
    `<text x="10" y="40" fill="#555">${escape(`chat: ${report.classes.chat.acked} acked, ${report.classes.chat.lost} lost, ${report.classes.chat.duplicated} duplicated; ${report.faults.filter((f) => f.recovered).length}/${report.faults.length} faults recovered; ${report.ok ? 'ok' : 'FAILED'}`)}</text>`,
    `<text x="10" y="${timelineTop - 8}" font-weight="bold">Timeline: fault (red), heal → recovered (orange); ✕ = not recovered</text>`,
  ];
  kinds.forEach((kind, i) => {
    const y = timelineTop + i * rowH;
    parts.push(`<text x="${left - 6}" y="${y + 12}" text-anchor="end">${escape(kind)}</text>`);
    parts.push(`<line x1="${left}" y1="${y + rowH - 2}" x2="${left + plotW}" y2="${y + rowH - 2}" stroke="#eee"/>`);
    for (const fault of report.faults.filter((f) => f.kind === kind)) {
      const xa = x(fault.injectAt);
      const xh = x(fault.healAt);
      const xe = x(fault.endAt);
      parts.push(`<rect x="${xa.toFixed(1)}" y="${y + 3}" width="${Math.max(1.5, xh - xa).toFixed(1)}" height="${rowH - 8}" fill="${colours.fault}"/>`);
      parts.push(
        `<rect x="${xh.toFixed(1)}" y="${y + 3}" width="${Math.max(1, xe - xh).toFixed(1)}" height="${rowH - 8}" fill="${colours.healing}" opacity="0.6"/>`,
      );
      if (!fault.recovered) parts.push(`<text x="${xe.toFixed(1)}" y="${y + 13}" fill="${colours.fault}" font-weight="bold">✕</text>`);
    }
  });
  const seconds = Math.round((t1 - t0) / 1000);
  const tick = seconds > 300 ? 60 : seconds > 60 ? 10 : 5;
  for (let s = 0; s <= seconds; s += tick) {
    const xs = x(t0 + s * 1000);
    parts.push(`<text x="${xs.toFixed(1)}" y="${timelineTop + timelineH + 14}" text-anchor="middle" fill="#555">${s}s</text>`);
  }
  // Recovery bars: median (solid) and max (outline) per measure, one row per kind, one scale for all.
  const measures = [
    ['ready', 'readyz', 'readyMs'],
    ['delivery', 'cross-node delivery', 'deliveryMs'],
    ['chat', 'chat ack', 'chatMs'],
    ['postgres', 'PostgreSQL row', 'postgresMs'],
  ] as const;
  const maxMs = Math.max(1000, ...kinds.flatMap((k) => measures.map(([, , key]) => report.recovery[k]![key].max).filter(Number.isFinite)));
  parts.push(
    `<text x="10" y="${barsTop - 28}" font-weight="bold">${escape(`Time to recover after the heal, per fault kind: median (bar) and max (outline); scale 0 – ${(maxMs / 1000).toFixed(1)} s`)}</text>`,
  );
  measures.forEach(([colour, label], j) => {
    parts.push(
      `<rect x="${left + j * 150}" y="${barsTop - 20}" width="10" height="10" fill="${colours[colour]}"/><text x="${left + j * 150 + 14}" y="${barsTop - 11}">${escape(label)}</text>`,
    );
  });
  kinds.forEach((kind, i) => {
    const y = barsTop + i * barRowH;
    const r = report.recovery[kind]!;
    parts.push(`<text x="${left - 6}" y="${y + 16}" text-anchor="end">${escape(`${kind} (${r.recovered}/${r.count})`)}</text>`);
    measures.forEach(([colour, , key], j) => {
      const value = r[key];
      const by = y + j * 7 + 2;
      const w = Number.isFinite(value.median) ? (value.median / maxMs) * plotW : 0;
      const wm = Number.isFinite(value.max) ? (value.max / maxMs) * plotW : 0;
      parts.push(`<rect x="${left}" y="${by}" width="${w.toFixed(1)}" height="6" fill="${colours[colour]}"/>`);
      parts.push(`<rect x="${left}" y="${by}" width="${wm.toFixed(1)}" height="6" fill="none" stroke="${colours[colour]}" stroke-width="0.8"/>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}
