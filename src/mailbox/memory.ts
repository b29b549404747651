/**
 * In-process Mailbox, for a single node and for unit tests. Marks and
 * entries are pruned lazily (on every call for the user) and by a bounded
 * sweep of the whole map when it grows, so memory follows the recent users.
 */
import { integerAtLeast } from '../config/validate.js';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import {
  DEFAULT_MAILBOX_MAX_ENTRIES,
  DEFAULT_MAILBOX_TTL_MS,
  type Mailbox,
  type MailboxOptions,
  type OfferResult,
  type TakeResult,
  type UserRef,
} from './mailbox.js';

interface Box {
  /** Time until which the user counts as recently seen (0: never marked). */
  seenUntil: number;
  entries: Array<{ expiresAt: number; payload: string }>;
}

export class MemoryMailbox implements Mailbox {
  readonly driver = 'memory';
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly boxes = new Map<string, Box>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private sweepAt = 1024;

  constructor(options: MailboxOptions = {}) {
    this.ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_MAILBOX_TTL_MS, 1);
    this.maxEntries = integerAtLeast('maxEntries', options.maxEntries ?? DEFAULT_MAILBOX_MAX_ENTRIES, 1);
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'mailbox is closed');
    this.state = 'running';
  }

  async markSeen(user: UserRef): Promise<void> {
    this.assertRunning();
    const box = this.box(user, true)!;
    box.seenUntil = this.now() + this.ttlMs;
    this.maybeSweep();
  }

  async offer(user: UserRef, payload: string): Promise<OfferResult> {
    this.assertRunning();
    const now = this.now();
    const box = this.box(user, false);
    if (!box || box.seenUntil <= now) return { queued: false, dropped: 0 };
    box.entries.push({ expiresAt: now + this.ttlMs, payload });
    const dropped = Math.max(0, box.entries.length - this.maxEntries);
    if (dropped > 0) box.entries.splice(0, dropped);
    return { queued: true, dropped };
  }

  async take(user: UserRef): Promise<TakeResult> {
    this.assertRunning();
    const box = this.box(user, false);
    if (!box) return { payloads: [], expired: 0 };
    const now = this.now();
    const live = box.entries.filter((entry) => entry.expiresAt > now);
    const expired = box.entries.length - live.length;
    box.entries = [];
    if (box.seenUntil <= now) this.boxes.delete(key(user));
    return { payloads: live.map((entry) => entry.payload), expired };
  }

  health(): LaneHealth {
    return { lane: 'mailbox', driver: this.driver, ok: this.state === 'running', ...(this.state === 'running' ? {} : { detail: `mailbox is ${this.state}` }) };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.boxes.clear();
  }

  /** Users with a mark or entries (tests). */
  size(): number {
    return this.boxes.size;
  }

  private box(user: UserRef, create: boolean): Box | undefined {
    const k = key(user);
    let box = this.boxes.get(k);
    // A box with entries is kept until taken or swept, so `take` can count what expired.
    if (box && box.seenUntil <= this.now() && box.entries.length === 0) {
      this.boxes.delete(k);
      box = undefined;
    }
    if (!box && create) {
      box = { seenUntil: 0, entries: [] };
      this.boxes.set(k, box);
    }
    return box;
  }

  /** When the map doubles, drop every user whose mark and entries are all past. */
  private maybeSweep(): void {
    if (this.boxes.size < this.sweepAt) return;
    const now = this.now();
    for (const [k, box] of this.boxes) {
      if (box.seenUntil <= now && box.entries.every((entry) => entry.expiresAt <= now)) this.boxes.delete(k);
    }
    this.sweepAt = Math.max(1024, this.boxes.size * 2);
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `mailbox is ${this.state}`);
  }
}

function key(user: UserRef): string {
  return `${user.tenant}\u0000${user.user}`;
}
