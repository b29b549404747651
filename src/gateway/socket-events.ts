/**
 * How a connection's socket events reach the gateway without per-socket
 * listeners: the gateway's WebSocketServer makes sockets of a class whose
 * `emit` hands `message`, `pong`, `error` and `close` straight to the
 * gateway, with the Connection the socket carries. Four listeners per
 * socket cost about a tenth of what an idle connection weighs (closures and
 * EventEmitter's listener table). Listeners added with `on` still run.
 */
import { WebSocket, type RawData } from 'ws';
import type { Connection } from './connection.js';

/** What the gateway does with a connection's socket events. */
interface SocketEvents {
  frame(conn: Connection, data: RawData, isBinary: boolean): void;
  error(conn: Connection, error: Error & { code?: string }): void;
  closed(conn: Connection, code: number): void;
}

/** A `ws` WebSocket that knows its Connection (set by the gateway as it accepts the socket). */
export class ConnectionSocket extends WebSocket {
  connection: Connection | undefined;
}

/** The socket class for one gateway's WebSocketServer: its sockets deliver their events to `events`. */
export function connectionSocketClass(events: SocketEvents): typeof ConnectionSocket {
  return class GatewaySocket extends ConnectionSocket {
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      const conn = this.connection;
      if (conn === undefined) return super.emit(event, ...args);
      switch (event) {
        case 'message':
          events.frame(conn, args[0] as RawData, args[1] as boolean);
          break;
        case 'pong':
          // Heartbeat: the sweep clears `alive` and pings; the pong sets it again.
          conn.pong();
          break;
        case 'error':
          events.error(conn, args[0] as Error & { code?: string });
          // Handled: EventEmitter would throw an `error` nobody else listens to.
          if (this.listenerCount('error') === 0) return true;
          break;
        case 'close':
          events.closed(conn, args[0] as number);
          break;
        default:
          break;
      }
      return super.emit(event, ...args);
    }
  };
}
