/** Thrown for bad configuration; `setting` names the option, `accepted` what it takes. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'config_invalid';
  constructor(
    readonly setting: string,
    readonly accepted: string,
    readonly received: unknown,
  ) {
    super(`invalid setting ${setting}: expected ${accepted}, got ${formatReceived(received)}`);
  }
}

/** One short line: a long value (a JSON blob, a PEM) is cut. */
function formatReceived(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
