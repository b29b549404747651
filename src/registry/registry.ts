/**
 * The node registry (project issue 8): which nodes make up the cluster now,
 * where they listen, and a small snapshot of each one's load and health, for
 * `nerve status` and the admin page. Every node rewrites its entry on a
 * heartbeat (heartbeat.ts); one not refreshed within `ttlMs` disappears.
 * Implementations: memory.ts (one process), redis.ts (Redis or Redis Cluster).
 */
import type { LaneHealth } from '../lanes.js';

export type RegisteredState = 'running' | 'draining';

/** A recent error seen by a node, for the admin page (codes only: never user data). */
export interface RecentError {
  /** ms since epoch, the node's clock. */
  ts: number;
  /** Machine code: an error frame code, `http_<code>`, or `lane_<lane>` for a lane that went down. */
  code: string;
  /** Short human text (a lane's detail), when there is one. */
  detail?: string;
  /** Consecutive occurrences folded into this entry. */
  count: number;
}

/** Monotonic counters of one node since it started: the admin page derives rates from two snapshots. */
export interface NodeCounters {
  /** Messages accepted from clients and the server API, by class (`nerve_messages_total`). */
  messagesIn: Record<string, number>;
  /** Messages written to local sockets, by class (`nerve_deliveries_total`). */
  deliveries: Record<string, number>;
  /** Lifecycle events handed to the cold lane and confirmed. */
  eventsPublished: number;
  /** Drops, all reasons (`nerve_drops_total`). */
  drops: number;
  /** Error frames and HTTP refusals (`nerve_errors_total`). */
  errors: number;
}

/** One node's registry entry, as written by the node. */
export interface NodeEntry {
  id: string;
  /** Where the node can be reached: `--advertise-url`, else `http://{host}:{port}` it listens on. */
  address: string;
  /** nerve version (package.json). */
  version: string;
  /** ms since epoch. */
  startedAt: number;
  state: RegisteredState;
  connections: number;
  rooms: number;
  counters: NodeCounters;
  lanes: LaneHealth[];
  /** The newest last. */
  errors: RecentError[];
  /** Registry TTL this entry was written with, ms. */
  ttlMs: number;
}

/** An entry as read back: plus how long ago its node last wrote it (by the registry's clock). */
export interface NodeRecord extends NodeEntry {
  /** ms since the last heartbeat, measured on the registry's clock (Redis `TIME`), so node clock skew does not matter. */
  heartbeatAgeMs: number;
}

export interface NodeRegistry {
  readonly driver: string;
  /** Write (or refresh) an entry; it expires `entry.ttlMs` after this call unless refreshed. */
  announce(entry: NodeEntry): Promise<void>;
  /** Remove an entry now (graceful stop). */
  remove(id: string): Promise<void>;
  /** Live entries, sorted by id; expired ones are pruned. */
  list(): Promise<NodeRecord[]>;
  /** Close what the registry opened. Idempotent. */
  close(): Promise<void>;
}
