/**
 * One socket write per event-loop turn on an AMQP connection (issue 18).
 * rabbitmq-client writes each publish and each ack on its own (a cork and an
 * uncork per message): at thousands of events a second that is a syscall and
 * a TCP segment per event, and the broker pays a socket read for each. The
 * publishes a batch of confirms releases, or the acks of the deliveries one
 * socket read brought, are all written within one turn; corking the socket
 * until the end of that turn (process.nextTick runs after the turn's promise
 * jobs) sends them in one write. Nothing is delayed past the turn.
 *
 * The socket is rabbitmq-client's private `_socket` (v5): if it is missing,
 * writes simply go out one by one, as before. rabbitmq-client reads a corked
 * socket as a blocked connection (`connection.ready` is false), so code that
 * asks whether it may publish asks `ready()` here instead.
 */
import type { Socket } from 'node:net';
import type { Connection } from 'rabbitmq-client';

/** Socket options for a lane connection: a send buffer that takes a whole turn's publishes without pausing the encoder. */
export const LANE_SOCKET_OPTIONS = { writableHighWaterMark: 1 << 20 } as const;

export class TurnCork {
  private corked: Socket | undefined;

  constructor(private readonly connection: Connection) {}

  /** Hold the connection's writes until the end of the current turn. Cheap and idempotent within a turn. */
  hold(): void {
    if (this.corked !== undefined) return;
    const socket = this.socket();
    if (socket === undefined || !socket.writable) return;
    socket.cork();
    this.corked = socket;
    process.nextTick(this.release);
  }

  /** `connection.ready`, not counting our own cork: a cork of rabbitmq-client's own (broker blocked) still counts. */
  ready(): boolean {
    if (this.connection.ready) return true;
    const socket = this.corked;
    return socket !== undefined && socket.writableCorked === 1 && socket.writable && socket === this.socket();
  }

  private socket(): Socket | undefined {
    return (this.connection as unknown as { _socket?: Socket })._socket;
  }

  private readonly release = (): void => {
    const socket = this.corked;
    this.corked = undefined;
    // Balanced with our cork: rabbitmq-client's own cork while the broker blocks publishing stays in place.
    socket?.uncork();
  };
}
