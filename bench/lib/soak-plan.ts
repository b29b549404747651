/**
 * The soak's randomness, all from one seed: which fault comes next, how
 * long it lasts, which node or client it hits. The same seed gives the same
 * plan (the timing of a run still varies with the machine).
 */

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; plenty for picking faults. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULT_KINDS = [
  'node-sigkill',
  'node-sigterm',
  'redis-restart',
  'redis-stall',
  'redis-byte-loss',
  'broker-cut',
  'worker-kill',
  'postgres-cut',
  'slow-client',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export function isFaultKind(value: string): value is FaultKind {
  return (FAULT_KINDS as readonly string[]).includes(value);
}

/** An integer in [min, max]. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/**
 * The fault sequence: rounds, each a seeded shuffle of every enabled kind,
 * so after k rounds every kind ran k times (the run stops at its duration,
 * so the count per kind differs by at most one).
 */
export function* faultSequence(random: () => number, kinds: readonly FaultKind[]): Generator<FaultKind> {
  if (kinds.length === 0) return;
  for (;;) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    yield* round;
  }
}
