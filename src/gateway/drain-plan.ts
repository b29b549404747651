/**
 * When to close which share of a draining node's connections (project issue
 * 8). Closing every socket at once sends every client to the other nodes in
 * the same instant: a reconnect storm of handshakes, resumes and history
 * reads. Spreading the 1001 closes over a window (and the SDK's full-jitter
 * backoff on top) keeps the survivors' load smooth.
 */

/** Time left after the last batch for close handshakes and room leaves, before the shutdown timeout cuts sockets, ms. */
const DRAIN_CLOSE_GRACE_MS = 1000;
/** Closer batches than this are pointless (timer granularity, one event-loop turn of work each), ms. */
const DRAIN_MIN_SPACING_MS = 100;

interface DrainBatch {
  /** Offset from the start of the drain, ms. */
  atMs: number;
  /** Connections to close in this batch. */
  count: number;
}

/**
 * Batches spaced evenly from 0 to the window's end (the window is capped so
 * that the last batch still has `DRAIN_CLOSE_GRACE_MS` before `timeoutMs`),
 * sizes differing by at most one. A window of 0, or a single connection, is
 * one batch at 0.
 */
export function drainSchedule(connections: number, windowMs: number, timeoutMs: number): DrainBatch[] {
  if (connections <= 0) return [];
  const spread = Math.max(0, Math.min(windowMs, timeoutMs - DRAIN_CLOSE_GRACE_MS));
  const batches = Math.max(1, Math.min(connections, Math.floor(spread / DRAIN_MIN_SPACING_MS) + 1));
  if (batches === 1) return [{ atMs: 0, count: connections }];
  const plan: DrainBatch[] = [];
  for (let i = 0; i < batches; i++) {
    const count = Math.floor(((i + 1) * connections) / batches) - Math.floor((i * connections) / batches);
    if (count > 0) plan.push({ atMs: Math.round((i * spread) / (batches - 1)), count });
  }
  return plan;
}
