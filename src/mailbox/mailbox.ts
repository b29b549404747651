/**
 * The signal mailbox seam: a short per-user queue so that a peer who
 * reconnects within seconds still receives the offers, answers and ICE
 * candidates sent while it had no connection anywhere — once.
 * Implementations: memory.ts (one process), redis.ts (a cluster). The
 * contract is on the members of `Mailbox`; test/conformance/mailbox.ts runs
 * it against every driver. Payloads are opaque strings (encoded `signal` frames).
 */
import type { LaneHealth } from '../lanes.js';

export interface UserRef {
  tenant: string;
  user: string;
}

export interface OfferResult {
  /** The payload was stored: the user was seen within the TTL. */
  queued: boolean;
  /** Older entries dropped to keep the mailbox within `maxEntries`. */
  dropped: number;
}

export interface TakeResult {
  /** Pending payloads, oldest first. */
  payloads: string[];
  /** Entries found past their TTL and discarded. */
  expired: number;
}

export interface MailboxOptions {
  /** How long a user counts as recently seen, and how long a stored signal lives, ms. Default 30000. */
  ttlMs?: number;
  /** Most signals kept per user; storing one more drops the oldest. Default 256. */
  maxEntries?: number;
  /** Clock, ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
}

export interface Mailbox {
  readonly driver: string;
  start(): Promise<void>;
  /** Record that the user's last connection on a node just closed; the mark lasts `ttlMs`. */
  markSeen(user: UserRef): Promise<void>;
  /**
   * Store the payload only if the user was seen within `ttlMs`, else answer
   * `queued: false` (a user not seen recently is simply offline). An entry
   * lives `ttlMs` from its own offer; storing past `maxEntries` drops the
   * oldest (reported in `dropped`).
   */
  offer(user: UserRef, payload: string): Promise<OfferResult>;
  /**
   * Atomically read and empty the mailbox: entries oldest first, each to
   * exactly one caller however many nodes call at once. Entries older than
   * `ttlMs` are discarded, counted in `expired`, never returned.
   */
  take(user: UserRef): Promise<TakeResult>;
  health(): LaneHealth;
  /** Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_MAILBOX_TTL_MS = 30_000;
export const DEFAULT_MAILBOX_MAX_ENTRIES = 256;
