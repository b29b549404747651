/**
 * What every benchmark connection is, whatever it speaks: the systems a run
 * compares, the `BenchConn` interface the scenarios drive, and the Pusher app
 * of the bench cluster. Its own module so that each client (clients.ts,
 * pusher-conn.ts) implements it without importing the others.
 */

/** The systems a run compares; `limit1` and `limit3` are bench/limit-server.ts and speak nerve's protocol. */
export type System = 'nerve' | 'socketio' | 'limit1' | 'limit3';
/** What a load worker can open: a system's own client, or pusher-js against nerve's Pusher endpoint (docs/pusher.md). */
export type ConnKind = System | 'pusher';

/**
 * The Pusher app of the bench cluster (`--pusher-apps`). Its own tenant, so its
 * channels never meet the native rooms; client events on and at the highest rate an app allows,
 * because the load generator, not the app's limiter, must be the bottleneck.
 */
export const BENCH_PUSHER_APP = {
  id: '4242',
  key: 'bench-key',
  secret: 'bench-secret-0123456789',
  tenant: 'pusherbench',
  enableClientMessages: true,
  // The largest the app settings take; a burst over it would show as error frames and missing deliveries.
  maxClientEventsPerSecond: 10_000,
} as const;
export type MessageClass = 'chat' | 'ephemeral';

/** A delivered room message or signal, as the scenarios need it. */
export interface Delivery {
  room?: string;
  from?: string;
  kind?: string;
  data: unknown;
}

export interface BenchConn {
  readonly user: string;
  join(room: string): Promise<void>;
  /** Fire a publish; chat waits for nothing here either (the flow control is `ping`). */
  publish(room: string, cls: MessageClass, data: unknown): void;
  /** Round trip that answers after every request sent before it (the server runs a connection's requests in order). */
  ping(): Promise<void>;
  signal(to: string, kind: string, data: unknown): void;
  onMessage: ((message: Delivery) => void) | undefined;
  onSignal: ((signal: Delivery) => void) | undefined;
  /** Error frames (nerve) seen so far, e.g. rate_limited; must stay 0 for a valid run. */
  readonly errors: number;
  /** The last error frame (nerve), for diagnostics. */
  readonly lastError: string | undefined;
  close(): void;
}
