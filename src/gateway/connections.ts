/**
 * The node's WebSocket connections from accept to cleanup: accepting a
 * socket (counted per address, handshake timer armed), the heartbeat sweep,
 * the work after a socket closes (wait for its requests, leave its rooms and
 * its user channel), an operator's disconnect, and the closing half of a
 * drain. Apart from gateway.ts, which builds and wires the parts and answers
 * the node's calls, so that what happens to one connection reads in one place.
 */
import type { Duplex } from 'node:stream';
import { errorText } from '../errors.js';
import { clip } from '../logger.js';
import { CloseCode } from '../../packages/protocol/src/codes.js';
import { connectionId, type Admission } from './admission.js';
import { Connection } from './connection.js';
import { drainSchedule } from './drain-plan.js';
import type { Handshake } from './handshake.js';
import type { Rooms } from './rooms.js';
import type { GatewayDeps, GatewayShared } from './shared.js';
import type { ConnectionSocket } from './socket-events.js';

/** What the connections need of the gateway's parts. */
export interface ConnectionsDeps {
  shared: GatewayShared;
  metrics: GatewayDeps['metrics'];
  log: GatewayDeps['log'];
  limits: Pick<GatewayDeps['options']['limits'], 'heartbeatMs' | 'handshakeTimeoutMs'>;
  admission: Admission;
  handshake: Handshake;
  rooms: Rooms;
}

export class Connections {
  private readonly deps: ConnectionsDeps;
  private readonly open: Set<Connection>;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Woken each time a closed connection finished its cleanup (drain waits on them). */
  private readonly idleWaiters = new Set<() => void>();
  /** Room-leaving work of closed connections, awaited by drain before the lanes close. */
  private readonly cleanups = new Set<Promise<void>>();

  constructor(deps: ConnectionsDeps) {
    this.deps = deps;
    this.open = deps.shared.connections;
  }

  get size(): number {
    return this.open.size;
  }

  /** Start pinging every connection each `heartbeatMs`. */
  startHeartbeat(): void {
    this.heartbeat = setInterval(() => this.sweep(), this.deps.limits.heartbeatMs);
    this.heartbeat.unref();
  }

  /** `remoteAddress`: the client address the upgrade was admitted under (and counted against, on close too). */
  accept(ws: ConnectionSocket, remoteAddress: string, tcp: Duplex): void {
    const conn = new Connection(connectionId(), ws, remoteAddress, this.deps.shared.connectionContext, tcp);
    // From here on the socket's events reach the gateway with `conn` (socket-events.ts).
    ws.connection = conn;
    this.open.add(conn);
    this.deps.admission.count(remoteAddress, true);
    this.deps.metrics.connections.set(this.open.size);
    this.deps.metrics.connectionsTotal.inc();
    conn.debug({ remoteAddress }, 'connection opened');
    conn.armHandshake(this.deps.limits.handshakeTimeoutMs);
  }

  /** The socket of `conn` closed: clean up after it, and let drain wait for that. */
  closed(conn: Connection, code: number): void {
    const cleanup = this.cleanUp(conn, code);
    this.cleanups.add(cleanup);
    void cleanup.finally(() => this.cleanups.delete(cleanup));
  }

  /** A `user.disconnect` command reached this node: close the user's local connections (4012), or the one named. */
  disconnectUser(channel: string, command: { user: string; reason: string; conn?: string | undefined }): void {
    const target = this.deps.shared.local.get(channel);
    if (target?.kind !== 'user' || target.id !== command.user) return;
    const closing = [...target.connections].filter((conn) => command.conn === undefined || conn.id === command.conn);
    if (closing.length === 0) return;
    this.deps.log.info({ tenant: target.tenant, user: clip(command.user), connections: closing.length }, 'connections closed by an operator');
    let reason = command.reason.slice(0, 123) || 'disconnected by an operator';
    // A close reason is at most 123 bytes of UTF-8.
    while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
    for (const conn of closing) conn.close(CloseCode.Disconnected, reason);
  }

  /**
   * Drain's closing half: stop the heartbeat, close every connection with
   * 1001 ("going away, reconnect") in batches spread over `windowMs`
   * (drain-plan.ts; 0 = all at once), wait for them to go until `timeoutMs`
   * is up, then terminate stragglers. Resolves with that deadline.
   */
  async closeAll(timeoutMs: number, windowMs: number): Promise<number> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    const queue = [...this.open];
    const closeNext = (count: number) => {
      for (const conn of queue.splice(0, count)) conn.close(CloseCode.GoingAway, 'node going away, reconnect');
    };
    const batchTimers = drainSchedule(queue.length, windowMs, timeoutMs).map((batch) =>
      batch.atMs === 0 ? (closeNext(batch.count), undefined) : setTimeout(() => closeNext(batch.count), batch.atMs),
    );
    const deadline = Date.now() + timeoutMs;
    while (this.open.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.idleWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.idleWaiters.clear();
    }
    for (const timer of batchTimers) clearTimeout(timer);
    for (const conn of this.open) conn.socket.terminate();
    return deadline;
  }

  /** Settles once the cleanup of every connection closed so far is done. */
  cleanedUp(): Promise<unknown> {
    return Promise.allSettled([...this.cleanups]);
  }

  private async cleanUp(conn: Connection, code: number): Promise<void> {
    if (!conn.closed()) return;
    this.open.delete(conn);
    this.deps.metrics.connections.set(this.open.size);
    this.deps.admission.count(conn.remoteAddress, false);
    this.deps.handshake.uncount(conn);
    conn.debug({ code }, 'connection closed');
    // Wait for the requests in flight (pipelined publishes included), then leave every room.
    await conn.idle;
    for (const room of [...conn.rooms]) {
      await this.deps.rooms.leaveRoom(conn, room, 'disconnected').catch((error: unknown) => conn.log.warn({ err: errorText(error) }, 'leave on close failed'));
    }
    await this.deps.handshake.leaveUserChannel(conn);
    this.idleWaiters.forEach((resolve) => resolve());
  }

  /** Heartbeat: terminate connections that did not answer the previous ping. */
  private sweep(): void {
    for (const conn of this.open) {
      if (conn.state === 'closed') continue;
      if (!conn.ping()) {
        this.deps.metrics.closes.inc({ code: 'heartbeat' });
        conn.debug({}, 'heartbeat missed, terminating');
        conn.socket.terminate();
      }
    }
  }
}
