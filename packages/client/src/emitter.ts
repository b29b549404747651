/**
 * A small typed event emitter, browser-safe (no `node:events`). Event names
 * and payload types come from one event map, so `on('message', fn)` knows
 * what `fn` receives.
 */

/** A listener of an event whose payload is `T`. */
export type Listener<T> = (value: T) => void;

/** `Events` is an interface of event name → payload type. */
export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Add a listener; returns a function that removes it. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    return () => this.off(name, listener);
  }

  /** Remove a listener added with `on` (the function `on` returns does the same). */
  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    set.delete(listener);
    if (set.size === 0) this.#listeners.delete(name);
  }

  /** Add a listener that runs once. */
  once<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(name, (value) => {
      off();
      listener(value);
    });
    return off;
  }

  /** How many listeners `name` has. */
  listenerCount<K extends keyof Events>(name: K): number {
    return this.#listeners.get(name)?.size ?? 0;
  }

  /** Remove every listener (of one event, or of all). */
  removeAllListeners<K extends keyof Events>(name?: K): void {
    if (name === undefined) this.#listeners.clear();
    else this.#listeners.delete(name);
  }

  /**
   * Call the listeners of `name` with `value`. A listener that throws does not
   * stop the others nor corrupt the emitter's caller (which is usually in the
   * middle of processing a frame): the error is re-thrown asynchronously, where
   * the host reports it as uncaught, as browsers do for EventTarget listeners.
   */
  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    // A copy: listeners added or removed during the emit take effect next time.
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}
