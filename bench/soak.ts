/**
 * `npm run soak`: the chaos soak (project issue 14). A 3-node cluster with
 * a chat-store worker, its own Redis behind a fault proxy, the shared
 * RabbitMQ and PostgreSQL each behind a fault proxy, under mixed load from
 * SDK clients, while faults drawn from a fixed seed hit it one after
 * another. Writes bench/results/soak-<timestamp>.{json,svg}, prints the
 * summary, exits 1 when acked chat was lost or duplicated or a fault did
 * not recover. Options: bench/README.md ("Chaos soak").
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SOAK, runSoak, type SoakOptions } from './lib/soak-run.js';
import { FAULT_KINDS, isFaultKind, type FaultKind } from './lib/soak-plan.js';

function usage(): string {
  return [
    'Usage: npm run soak -- [options]',
    `  --seed N              fault plan seed (default ${DEFAULT_SOAK.seed})`,
    `  --duration S          seconds of fault injection (default ${DEFAULT_SOAK.durationMs / 1000})`,
    `  --faults a,b,...      fault kinds to use (default all: ${FAULT_KINDS.join(', ')})`,
    `  --max-faults N        stop after N faults even before the duration ends (default 0 = no limit)`,
    `  --min-per-kind N      fail when a kind ran fewer times (default ${DEFAULT_SOAK.minPerKind}; 0 = no check)`,
    `  --recovery-timeout S  a fault not back within this is not recovered (default ${DEFAULT_SOAK.recoveryTimeoutMs / 1000})`,
    `  --members N           chat members (default ${DEFAULT_SOAK.members})`,
    `  --rooms N             rooms (default ${DEFAULT_SOAK.rooms})`,
    `  --chat-period-ms N    pause between one member's chat messages (default ${DEFAULT_SOAK.chatPeriodMs})`,
    `  --out DIR             where the JSON and SVG go (default ${DEFAULT_SOAK.outDir})`,
  ].join('\n');
}

function positive(name: string, text: string | undefined, fallback: number, allowZero = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
    throw new Error(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${text}`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      duration: { type: 'string' },
      faults: { type: 'string' },
      'max-faults': { type: 'string' },
      'min-per-kind': { type: 'string' },
      'recovery-timeout': { type: 'string' },
      members: { type: 'string' },
      rooms: { type: 'string' },
      'chat-period-ms': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(usage());
    return;
  }
  let faults: readonly FaultKind[] = DEFAULT_SOAK.faults;
  if (values.faults !== undefined) {
    const names = values.faults
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    const bad = names.filter((name) => !isFaultKind(name));
    if (bad.length > 0 || names.length === 0)
      throw new Error(`--faults: unknown kind(s) ${bad.join(', ') || '(none given)'}; known: ${FAULT_KINDS.join(', ')}`);
    faults = names.filter(isFaultKind);
  }
  const options: SoakOptions = {
    ...DEFAULT_SOAK,
    seed: positive('seed', values.seed, DEFAULT_SOAK.seed, true),
    durationMs: positive('duration', values.duration, DEFAULT_SOAK.durationMs / 1000) * 1000,
    faults,
    maxFaults: positive('max-faults', values['max-faults'], DEFAULT_SOAK.maxFaults, true),
    minPerKind: positive('min-per-kind', values['min-per-kind'], DEFAULT_SOAK.minPerKind, true),
    recoveryTimeoutMs: positive('recovery-timeout', values['recovery-timeout'], DEFAULT_SOAK.recoveryTimeoutMs / 1000) * 1000,
    members: positive('members', values.members, DEFAULT_SOAK.members),
    rooms: positive('rooms', values.rooms, DEFAULT_SOAK.rooms),
    chatPeriodMs: positive('chat-period-ms', values['chat-period-ms'], DEFAULT_SOAK.chatPeriodMs),
    outDir: values.out ?? DEFAULT_SOAK.outDir,
    log: (line) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`),
  };
  const outcome = await runSoak(options);
  console.log('');
  console.log(outcome.summary);
  console.log(`\nwrote ${outcome.jsonPath} and ${outcome.svgPath}`);
  process.exitCode = outcome.report.ok ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 2;
});
