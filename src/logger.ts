/**
 * JSON logs through pino. One root logger per node, child loggers per
 * connection. pino escapes every string value, so a user-controlled string
 * cannot break or forge a log line; we also truncate long ones.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './options.js';

export type { Logger };

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Shorten a user-controlled string before it goes into a log line. */
export function clip(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…(${text.length})` : text;
}
