/** The command-line flags of the bench's child processes (servers and cold-lane children): `--name value`. */

/** The value after `--name`, or `fallback` when the flag is absent. */
export function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] ?? fallback);
}

/** Whether the bare switch `--name` was given. */
export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}
