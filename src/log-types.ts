/** The part of a pino logger the lanes use: a pino `Logger` fits, and lanes need not import pino. */
export interface LaneLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The default when no logger is given. */
export const silentLogger: LaneLogger = { debug() {}, info() {}, warn() {}, error() {} };
