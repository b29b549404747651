/**
 * Validators shared by every module that checks its options at construction:
 * each returns the value or throws a `ConfigError` naming the setting and
 * what it accepts.
 */
import { ConfigError } from './errors.js';

/** An integer in [min, max]. */
export function integer(setting: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(setting, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** An integer of at least `min`, with no upper bound. */
export function integerAtLeast(setting: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(setting, `an integer ≥ ${min}`, value);
  return value;
}

/** One of `values`. */
export function oneOf<T extends string>(setting: string, value: T, values: readonly T[]): T {
  if (!values.includes(value)) throw new ConfigError(setting, values.join(' | '), value);
  return value;
}

/** A URL of one of `protocols` (`redis:`), or undefined when absent or empty. */
export function url(setting: string, value: string | undefined, protocols: string[]): string | undefined {
  if (value === undefined || value === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(setting, `a URL (${protocols.join(', ')})`, value);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(setting, `a URL (${protocols.join(', ')})`, value);
  return value;
}

/** Characters allowed in a component of channel and key names (env, service, node id). */
export const NAME_COMPONENT = /^[A-Za-z0-9._~-]{1,64}$/;

export function nameComponent(setting: string, value: string): string {
  if (!NAME_COMPONENT.test(value)) throw new ConfigError(setting, '1-64 characters of A-Z a-z 0-9 . _ ~ -', value);
  return value;
}

/** Free text of at most 512 characters, or undefined when absent or empty. */
export function optionalText(setting: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 512) throw new ConfigError(setting, 'at most 512 characters', value);
  return value;
}

const PG_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** A lower-case PostgreSQL identifier (a schema name): safe in SQL once double-quoted. */
export function pgIdentifier(setting: string, value: string): string {
  if (!PG_IDENTIFIER.test(value)) {
    throw new ConfigError(setting, 'a PostgreSQL identifier: a-z 0-9 _, not starting with a digit, at most 63', value);
  }
  return value;
}
