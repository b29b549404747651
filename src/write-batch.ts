/**
 * Coalesces socket writes made in one turn of the event loop. Used for the
 * WebSockets (the gateway) and for the Redis script connections.
 *
 * One read from the bus often carries dozens of envelopes (Redis answers a
 * burst of publishes in one TCP chunk, and the client parses them all in one
 * callback), and each is written to every local member of its room. Without
 * help, every `ws.send` is its own `write` syscall (two buffers, header and
 * body, corked together by `ws`) and, on loopback, its own trip through the
 * receiving TCP stack — most of a node's CPU per delivery. A socket that is
 * written to is corked on its first write of the turn and uncorked once, on
 * `process.nextTick`, so everything it got in that turn leaves in one
 * `writev`. Latency does not change: the tick runs before the event loop
 * goes back to I/O.
 *
 * Corked bytes still count in the socket's `writableLength`, so `ws`'s
 * `bufferedAmount` (and the slow-consumer policy built on it) sees them.
 */
import type { Writable } from 'node:stream';

export class WriteBatch {
  #held = new Set<Writable>();
  readonly #flush = (): void => {
    const held = this.#held;
    this.#held = new Set();
    for (const socket of held) socket.uncork();
  };

  /** Cork `socket` until the end of this tick, unless this batch already holds it. */
  hold(socket: Writable): void {
    if (this.#held.has(socket)) return;
    if (this.#held.size === 0) process.nextTick(this.#flush);
    socket.cork();
    this.#held.add(socket);
  }

  /** How many sockets are held until the end of this tick (for tests). */
  get size(): number {
    return this.#held.size;
  }
}
