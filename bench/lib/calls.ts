/**
 * Calls answered by id over some channel (a forked worker's IPC, an
 * inspector WebSocket): each call gets the next id, waits for the answer
 * with that id or its timeout, and all fail together when the channel goes.
 */
interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class Calls {
  private nextId = 0;
  private readonly waiting = new Map<number, Waiter>();

  /** Send with a fresh id; resolves with what `answer(id, …)` gives, rejects after `timeoutMs` with `timeoutText`. */
  call<T>(send: (id: number) => void, timeoutMs: number, timeoutText: string): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(timeoutText));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      send(id);
    });
  }

  /** Settle the call `id` (an answer to no call in flight is ignored). */
  answer(id: number, outcome: { value: unknown } | { error: Error }): void {
    const waiter = this.waiting.get(id);
    if (!waiter) return;
    this.waiting.delete(id);
    if ('error' in outcome) waiter.reject(outcome.error);
    else waiter.resolve(outcome.value);
  }

  /** The channel is gone: every call in flight fails with `error`. */
  failAll(error: Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}
