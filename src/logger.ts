/**
 * pino loggers: one root per node, children per connection. pino escapes
 * every string value, so user input cannot forge a log line; `clip` also
 * shortens long ones. `pretty` lines are formatted on the main thread
 * (`sync`), dearer than JSON: the default picks them only on a terminal.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config/options.js';

export type { Logger };

/**
 * pino-pretty is required only when pretty lines are asked for: importing it
 * costs about 0.1 s of start-up (measured 85-250 ms), which every JSON-logging
 * node and worker would otherwise pay for nothing.
 */
const requireModule = createRequire(import.meta.url);
function loadPretty(): typeof PinoPretty {
  return requireModule('pino-pretty') as typeof PinoPretty;
}

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}, format: LogFormat = 'json'): Logger {
  if (format === 'pretty') {
    const pretty = loadPretty();
    return pino(
      { level, base: { pid: process.pid, ...bindings } },
      pretty({
        sync: true,
        colorize: pretty.isColorSupported && process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        // The node id (or worker name) leads the line; pid and hostname are noise on one machine.
        ignore: 'pid,hostname,node,worker,url',
        // The URL of the `listening` line goes right after the message, where a person looks.
        messageFormat: '{if node}{node} {end}{if worker}{worker} {end}{msg}{if url} {url}{end}',
        singleLine: true,
      }),
    );
  }
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Shorten a user-controlled string before it goes into a log line. */
export function clip(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return text.length > max ? `${text.slice(0, max)}…(${text.length})` : text;
}
