/**
 * Coalesces socket writes made in one turn of the event loop, for the
 * WebSockets (the gateway) and the Redis script connections: a socket
 * written to is corked on its first write of the turn and uncorked on
 * `process.nextTick`, so all it got leaves in one `writev`, with no added
 * latency. Corked bytes still count in `bufferedAmount`, so the
 * slow-consumer policy sees them (docs/architecture.md, "Writing to sockets").
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
