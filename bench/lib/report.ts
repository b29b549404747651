/**
 * The outputs of a benchmark run: one text table (each system, nerve ÷ each),
 * an SVG bar chart (one small panel per figure, hand-written SVG, no
 * dependency) and the JSON of every raw run.
 */
import type { System } from './clients.js';
import { median } from './stats.js';

export interface Row {
  scenario: string;
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
  /** One value per run. */
  nerve: number[];
  /** One value per run; empty when the peer has no counterpart. */
  socketio: number[];
  /** The limits (bench/limit-server.ts; the bare publisher for the cold lane); empty when not run. */
  limit1: number[];
  limit3: number[];
}

export const LABEL: Record<System, string> = { nerve: 'nerve', socketio: 'Socket.IO', limit1: 'limit-1', limit3: 'limit-3' };

function fmt(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** nerve ÷ `peer`, and a word saying which one is better. */
function ratio(row: Row, peer: Exclude<System, 'nerve'> = 'socketio'): { text: string; winner: string } {
  const n = median(row.nerve);
  const s = median(row[peer]);
  if (row[peer].length === 0 || !Number.isFinite(n) || !Number.isFinite(s)) return { text: '—', winner: '' };
  if (s === 0 || n === 0) return { text: n === s ? '1.00×' : '—', winner: n === s ? 'tie' : '' };
  const r = n / s;
  const nerveBetter = row.better === 'higher' ? r > 1 : r < 1;
  return { text: `${r.toFixed(2)}×`, winner: Math.abs(r - 1) < 0.02 ? 'tie' : nerveBetter ? 'nerve' : LABEL[peer] };
}

/**
 * Each system's median, then nerve ÷ Socket.IO, nerve ÷ limit-3 (the fair limit
 * of a 3-node cluster) and nerve ÷ limit-1 (one process, no bus: for reference).
 */
export function table(rows: readonly Row[]): string {
  const header = ['scenario', 'metric', 'unit', 'nerve', 'Socket.IO', 'limit-3', 'limit-1', 'nerve/SIO', 'nerve/L3', 'nerve/L1', 'better (vs SIO)'];
  const value = (values: number[]) => (values.length ? fmt(median(values)) : 'n/a');
  const body = rows.map((row) => {
    const { text, winner } = ratio(row);
    return [
      row.scenario,
      row.metric,
      `${row.unit} (${row.better === 'higher' ? '↑' : '↓'})`,
      value(row.nerve),
      value(row.socketio),
      value(row.limit3),
      value(row.limit1),
      text,
      ratio(row, 'limit3').text,
      ratio(row, 'limit1').text,
      winner,
    ];
  });
  const numeric = (i: number) => i >= 3 && i <= 9;
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (numeric(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One panel per figure, a bar per system that ran it, each panel with its own scale. */
export function svg(rows: readonly Row[], title: string, subtitle: string): string {
  const columns = 4;
  const panelW = 230;
  const panelH = 170;
  const top = 70;
  const chartRows = Math.ceil(rows.length / columns);
  const width = columns * panelW + 20;
  const height = top + chartRows * panelH + 30;
  const colours: Record<System, string> = { nerve: '#2b6cb0', socketio: '#dd6b20', limit3: '#718096', limit1: '#a0aec0' };
  const order: System[] = ['nerve', 'socketio', 'limit3', 'limit1'];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text x="10" y="40" fill="#555">${escape(subtitle)}</text>`,
    `<rect x="10" y="50" width="10" height="10" fill="${colours.nerve}"/><text x="24" y="59">nerve</text>`,
    `<rect x="70" y="50" width="10" height="10" fill="${colours.socketio}"/><text x="84" y="59">Socket.IO 4 + redis-adapter</text>`,
    `<rect x="260" y="50" width="10" height="10" fill="${colours.limit3}"/><text x="274" y="59">limit-3 (3 bare ws + one Redis channel)</text>`,
    `<rect x="520" y="50" width="10" height="10" fill="${colours.limit1}"/><text x="534" y="59">limit-1 (one bare ws process)</text>`,
  ];
  rows.forEach((row, i) => {
    const x0 = 10 + (i % columns) * panelW;
    const y0 = top + Math.floor(i / columns) * panelH;
    const values = order.filter((key) => row[key].length > 0).map((key) => ({ key, value: median(row[key]) }));
    const max = Math.max(...values.map((entry) => (Number.isFinite(entry.value) ? entry.value : 0)), 1e-9);
    const barTop = y0 + 40;
    const barArea = panelH - 75;
    parts.push(`<rect x="${x0}" y="${y0}" width="${panelW - 10}" height="${panelH - 10}" fill="none" stroke="#ddd"/>`);
    parts.push(`<text x="${x0 + 6}" y="${y0 + 15}" font-weight="bold">${escape(row.scenario)}</text>`);
    parts.push(`<text x="${x0 + 6}" y="${y0 + 29}" fill="#333">${escape(`${row.metric} (${row.unit}, ${row.better} is better)`)}</text>`);
    values.forEach((entry, j) => {
      const h = Number.isFinite(entry.value) ? (entry.value / max) * barArea : 0;
      const bx = x0 + 14 + j * 52;
      const by = barTop + barArea - h;
      parts.push(`<rect x="${bx}" y="${by.toFixed(1)}" width="44" height="${Math.max(0, h).toFixed(1)}" fill="${colours[entry.key]}"/>`);
      parts.push(`<text x="${bx + 22}" y="${(by - 3).toFixed(1)}" text-anchor="middle">${escape(fmt(entry.value))}</text>`);
      parts.push(`<text x="${bx + 22}" y="${barTop + barArea + 13}" text-anchor="middle" fill="#555">${LABEL[entry.key]}</text>`);
    });
    const { text } = ratio(row);
    if (text !== '—') parts.push(`<text x="${x0 + panelW - 16}" y="${y0 + 15}" text-anchor="end" fill="#555">${escape(text)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
