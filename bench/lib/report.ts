/**
 * The outputs of a benchmark run: one text table (nerve, Socket.IO, ratio),
 * an SVG bar chart (one small panel per figure, hand-written SVG, no
 * dependency) and the JSON of every raw run.
 */
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
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** nerve ÷ Socket.IO, and a word saying which one is better. */
function ratio(row: Row): { text: string; winner: string } {
  const n = median(row.nerve);
  const s = median(row.socketio);
  if (row.socketio.length === 0 || !Number.isFinite(n) || !Number.isFinite(s)) return { text: '—', winner: '' };
  if (s === 0 || n === 0) return { text: n === s ? '1.00×' : '—', winner: n === s ? 'tie' : '' };
  const r = n / s;
  const nerveBetter = row.better === 'higher' ? r > 1 : r < 1;
  return { text: `${r.toFixed(2)}×`, winner: Math.abs(r - 1) < 0.02 ? 'tie' : nerveBetter ? 'nerve' : 'Socket.IO' };
}

export function table(rows: readonly Row[]): string {
  const header = ['scenario', 'metric', 'unit', 'nerve', 'Socket.IO', 'nerve/SIO', 'better'];
  const body = rows.map((row) => {
    const { text, winner } = ratio(row);
    return [row.scenario, row.metric, `${row.unit} (${row.better === 'higher' ? '↑' : '↓'})`, fmt(median(row.nerve)), row.socketio.length ? fmt(median(row.socketio)) : 'n/a', text, winner];
  });
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (i >= 3 && i <= 5 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i >= 3 && i <= 5 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One panel per figure, two bars (nerve, Socket.IO), each panel with its own scale. */
export function svg(rows: readonly Row[], title: string, subtitle: string): string {
  const columns = 4;
  const panelW = 230;
  const panelH = 170;
  const top = 70;
  const chartRows = Math.ceil(rows.length / columns);
  const width = columns * panelW + 20;
  const height = top + chartRows * panelH + 30;
  const colours = { nerve: '#2b6cb0', socketio: '#dd6b20' };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text x="10" y="40" fill="#555">${escape(subtitle)}</text>`,
    `<rect x="10" y="50" width="10" height="10" fill="${colours.nerve}"/><text x="24" y="59">nerve</text>`,
    `<rect x="70" y="50" width="10" height="10" fill="${colours.socketio}"/><text x="84" y="59">Socket.IO 4 + redis-adapter</text>`,
  ];
  rows.forEach((row, i) => {
    const x0 = 10 + (i % columns) * panelW;
    const y0 = top + Math.floor(i / columns) * panelH;
    const values = [
      { key: 'nerve' as const, value: median(row.nerve) },
      ...(row.socketio.length ? [{ key: 'socketio' as const, value: median(row.socketio) }] : []),
    ];
    const max = Math.max(...values.map((entry) => (Number.isFinite(entry.value) ? entry.value : 0)), 1e-9);
    const barTop = y0 + 40;
    const barArea = panelH - 75;
    parts.push(`<rect x="${x0}" y="${y0}" width="${panelW - 10}" height="${panelH - 10}" fill="none" stroke="#ddd"/>`);
    parts.push(`<text x="${x0 + 6}" y="${y0 + 15}" font-weight="bold">${escape(row.scenario)}</text>`);
    parts.push(`<text x="${x0 + 6}" y="${y0 + 29}" fill="#333">${escape(`${row.metric} (${row.unit}, ${row.better} is better)`)}</text>`);
    values.forEach((entry, j) => {
      const h = Number.isFinite(entry.value) ? (entry.value / max) * barArea : 0;
      const bx = x0 + 40 + j * 80;
      const by = barTop + barArea - h;
      parts.push(`<rect x="${bx}" y="${by.toFixed(1)}" width="60" height="${Math.max(0, h).toFixed(1)}" fill="${colours[entry.key]}"/>`);
      parts.push(`<text x="${bx + 30}" y="${(by - 3).toFixed(1)}" text-anchor="middle">${escape(fmt(entry.value))}</text>`);
      parts.push(`<text x="${bx + 30}" y="${barTop + barArea + 13}" text-anchor="middle" fill="#555">${entry.key === 'nerve' ? 'nerve' : 'Socket.IO'}</text>`);
    });
    const { text } = ratio(row);
    if (text !== '—') parts.push(`<text x="${x0 + panelW - 16}" y="${y0 + 15}" text-anchor="end" fill="#555">${escape(text)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
