/**
 * The two pieces every hook here stands on: `Store`, a value read with
 * React's `useSyncExternalStore` (subscribe + getSnapshot, the snapshot
 * replaced on change, never mutated, so React compares it with `===`), and
 * `Lease`, reference counting whose last release waits one macrotask.
 *
 * Why the wait: in development, React 18's StrictMode runs every effect
 * twice (mount, cleanup, mount again) in one synchronous pass
 * (https://react.dev/reference/react/StrictMode). A release that waits a
 * task is cancelled by the second acquire, so a room is joined once and a
 * socket opened once; a real unmount still releases, one task later.
 */

/** A value that changes; `subscribe` and `getSnapshot` are bound, for `useSyncExternalStore`. */
export class Store<S> {
  #snapshot: S;
  readonly #listeners = new Set<() => void>();

  constructor(initial: S) {
    this.#snapshot = initial;
  }

  /** Call `listener` after every change; returns the function that stops it. */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  };

  /** The current value: the same object until it changes. */
  readonly getSnapshot = (): S => this.#snapshot;

  /** Replace the value (nothing happens when `next` is the current one) and tell the subscribers. */
  protected set(next: S): void {
    if (Object.is(next, this.#snapshot)) return;
    this.#snapshot = next;
    for (const listener of [...this.#listeners]) listener();
  }
}

/**
 * `start()` on the first acquire, `stop()` one macrotask after the last
 * release unless something acquired meanwhile. Each acquire returns its own
 * release, which is idempotent (an effect's cleanup may run once only, but
 * a stray second call must not release someone else's hold).
 */
export class Lease {
  readonly #start: () => void;
  readonly #stop: () => void;
  #holders = 0;
  #active = false;
  #pendingStop: ReturnType<typeof setTimeout> | undefined;

  constructor(start: () => void, stop: () => void) {
    this.#start = start;
    this.#stop = stop;
  }

  /** Whether started and not stopped (a stop that is still pending counts as active). */
  get active(): boolean {
    return this.#active;
  }

  acquire(): () => void {
    this.#holders += 1;
    if (this.#pendingStop !== undefined) {
      clearTimeout(this.#pendingStop);
      this.#pendingStop = undefined;
    }
    if (!this.#active) {
      this.#active = true;
      this.#start();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holders -= 1;
      if (this.#holders > 0) return;
      this.#pendingStop = setTimeout(() => {
        this.#pendingStop = undefined;
        if (this.#holders > 0 || !this.#active) return;
        this.#active = false;
        this.#stop();
      }, 0);
    };
  }
}

/** One value per key object, made on first use; the key's garbage collection takes it along. */
export function perObject<K extends object, V>(make: (key: K) => V): (key: K) => V {
  const values = new WeakMap<K, V>();
  return (key) => {
    let value = values.get(key);
    if (value === undefined) {
      value = make(key);
      values.set(key, value);
    }
    return value;
  };
}
