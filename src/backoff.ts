/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(max, base·2^attempt)).
 * Jitter spreads the reconnects of many nodes or clients after a shared outage,
 * so they do not hit the recovering server in one wave (AWS Architecture Blog,
 * "Exponential Backoff and Jitter").
 */
export function fullJitter(attempt: number, baseMs: number, maxMs: number): number {
  const window = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.random() * window);
}
