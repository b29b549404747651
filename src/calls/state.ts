/**
 * The rules of one call's record, in TypeScript for the memory store; the
 * Redis scripts (redis-scripts.ts) apply the same rules in Lua, and
 * test/conformance/calls.ts holds both to them. A participant's time is the
 * union of their connections' stays; an expired connection leaves at its
 * last-seen time, so a dead node's participants are not billed for the
 * time it took to notice.
 */
import type { CallStart, EndedCall } from './calls.js';

interface UserTime {
  /** ms in finished stays. */
  ms: number;
  /** Connections in the call now. */
  n: number;
  /** Start of the current stay (meaningful while `n > 0`). */
  since: number;
}

export interface CallRecord {
  id: string;
  startedAt: number;
  startedBy: string;
  peak: number;
  present: number;
  /** Latest leave or last-seen time of a connection that left. */
  last: number;
  users: Map<string, UserTime>;
  /** conn → its user and last-seen time. */
  conns: Map<string, { user: string; seen: number }>;
}

export function newRecord(id: string, user: string, now: number): CallRecord {
  return { id, startedAt: now, startedBy: user, peak: 0, present: 0, last: now, users: new Map(), conns: new Map() };
}

export function startOf(record: CallRecord): CallStart {
  return { id: record.id, startedAt: record.startedAt, startedBy: record.startedBy };
}

/** Add a connection (true) or refresh a known one (false). */
export function addConn(record: CallRecord, conn: string, user: string, now: number): boolean {
  const known = record.conns.get(conn);
  if (known) {
    known.seen = Math.max(known.seen, now);
    return false;
  }
  record.conns.set(conn, { user, seen: now });
  let time = record.users.get(user);
  if (!time) {
    time = { ms: 0, n: 0, since: now };
    record.users.set(user, time);
  }
  time.n += 1;
  if (time.n === 1) {
    time.since = now;
    record.present += 1;
    record.peak = Math.max(record.peak, record.present);
  }
  return true;
}

/** Remove a connection as of `at`; false when unknown. */
export function dropConn(record: CallRecord, conn: string, at: number): boolean {
  const entry = record.conns.get(conn);
  if (!entry) return false;
  record.conns.delete(conn);
  const time = record.users.get(entry.user);
  if (time) {
    time.n -= 1;
    if (time.n <= 0) {
      time.n = 0;
      time.ms += Math.max(0, at - time.since);
      record.present = Math.max(0, record.present - 1);
    }
  }
  record.last = Math.max(record.last, at);
  return true;
}

/** Remove every connection not seen for `ttlMs` by `now`, each as of its last-seen time. */
export function expireConns(record: CallRecord, now: number, ttlMs: number): void {
  for (const [conn, entry] of [...record.conns]) if (entry.seen + ttlMs <= now) dropConn(record, conn, entry.seen);
}

export function endOf(record: CallRecord): EndedCall {
  const endedAt = Math.max(record.last, record.startedAt);
  return {
    id: record.id,
    startedAt: record.startedAt,
    endedAt,
    participants: [...record.users].map(([user, time]) => ({ user, ms: time.ms + (time.n > 0 ? Math.max(0, endedAt - time.since) : 0) })),
    peakParticipants: record.peak,
  };
}
