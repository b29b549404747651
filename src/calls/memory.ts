/**
 * In-process CallStore, for a single node and for unit tests. Connections
 * expire as in Redis (the conformance suite drives both with its own clock),
 * though in one process a node that stops refreshing is the whole system.
 */
import { randomUUID } from 'node:crypto';
import { escapeComponent } from '../bus/channels.js';
import { integerAtLeast } from '../config/validate.js';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import {
  DEFAULT_CALL_TTL_MS,
  type CallJoinResult,
  type CallLeaveResult,
  type CallRef,
  type CallRefreshResult,
  type CallStore,
  type CallStoreOptions,
  type SweptCall,
} from './calls.js';
import { addConn, dropConn, endOf, expireConns, newRecord, startOf, type CallRecord } from './state.js';

export class MemoryCallStore implements CallStore {
  readonly driver = 'memory';
  private readonly calls = new Map<string, { ref: CallRef; record: CallRecord }>();
  private readonly ttlMs: number;
  private state: 'idle' | 'running' | 'closed' = 'idle';

  constructor(options: CallStoreOptions = {}) {
    this.ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_CALL_TTL_MS, 100);
  }

  async open(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'call store is closed');
    this.state = 'running';
  }

  async join(ref: CallRef, entry: { user: string; conn: string }, now: number): Promise<CallJoinResult> {
    this.assertRunning();
    const key = callKey(ref);
    const result: CallJoinResult = { joined: false };
    let held = this.calls.get(key);
    if (held) {
      expireConns(held.record, now, this.ttlMs);
      if (held.record.conns.size === 0) {
        result.ended = endOf(held.record);
        held = undefined;
      }
    }
    if (!held) {
      held = { ref: { ...ref }, record: newRecord(randomUUID(), entry.user, now) };
      this.calls.set(key, held);
      result.started = startOf(held.record);
    }
    result.joined = addConn(held.record, entry.conn, entry.user, now);
    return result;
  }

  async leave(ref: CallRef, conn: string, now: number): Promise<CallLeaveResult> {
    this.assertRunning();
    const key = callKey(ref);
    const held = this.calls.get(key);
    if (!held) return { left: false };
    expireConns(held.record, now, this.ttlMs);
    const left = dropConn(held.record, conn, now);
    if (held.record.conns.size > 0) return { left };
    this.calls.delete(key);
    return { left, ended: endOf(held.record) };
  }

  async refresh(ref: CallRef, conns: string[], now: number): Promise<CallRefreshResult> {
    this.assertRunning();
    const key = callKey(ref);
    const held = this.calls.get(key);
    if (!held) return { missing: [...conns] };
    expireConns(held.record, now, this.ttlMs);
    if (held.record.conns.size === 0) {
      this.calls.delete(key);
      return { missing: [...conns], ended: endOf(held.record) };
    }
    const missing: string[] = [];
    for (const conn of conns) {
      const entry = held.record.conns.get(conn);
      if (entry) entry.seen = Math.max(entry.seen, now);
      else missing.push(conn);
    }
    return { missing };
  }

  async sweep(now: number): Promise<SweptCall[]> {
    this.assertRunning();
    const swept: SweptCall[] = [];
    for (const [key, held] of [...this.calls]) {
      expireConns(held.record, now, this.ttlMs);
      if (held.record.conns.size > 0) continue;
      this.calls.delete(key);
      swept.push({ ref: held.ref, ended: endOf(held.record) });
    }
    return swept;
  }

  health(): LaneHealth {
    const base = { lane: 'calls', driver: this.driver };
    return this.state === 'running' ? { ...base, ok: true } : { ...base, ok: false, detail: `call store is ${this.state}` };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.calls.clear();
  }

  /** Calls held (tests). */
  size(): number {
    return this.calls.size;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `call store is ${this.state}`);
  }
}

function callKey(ref: CallRef): string {
  return `${escapeComponent(ref.tenant)}:${escapeComponent(ref.room)}:${escapeComponent(ref.call)}`;
}
