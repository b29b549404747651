/**
 * The calls this client told the server it is in (the `call` op, so that
 * the server times them for billing), by room. The server ends a
 * connection's calls when it drops; after a reconnect, once a room is
 * joined again, the client joins its calls again (the gap is not billed).
 */
export class CallTiming {
  readonly #calls = new Map<string, Set<string>>();

  /** Note a join or a leave the app asked for. */
  note(room: string, call: string, action: 'join' | 'leave'): void {
    let calls = this.#calls.get(room);
    if (action === 'join') {
      if (!calls) {
        calls = new Set();
        this.#calls.set(room, calls);
      }
      calls.add(call);
    } else if (calls?.delete(call) && calls.size === 0) {
      this.#calls.delete(room);
    }
  }

  /** The calls of `room` to join again after it was joined again. */
  of(room: string): string[] {
    return [...(this.#calls.get(room) ?? [])];
  }

  /** The room was left (its calls with it, on the server too). */
  forget(room: string): void {
    this.#calls.delete(room);
  }
}
