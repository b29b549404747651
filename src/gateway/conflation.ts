/**
 * Latest-wins holding of one connection's keyed ephemeral frames (cursor,
 * typing) while its socket is over the soft send-buffer limit: a fresher
 * frame replaces the one still waiting instead of piling up behind it.
 */
import type { TextFrame } from './text-frame.js';

export type OutgoingFrame = string | Buffer | TextFrame;

/** What the flush timer finds: the connection closing (drop what is held), its buffer drained (write it), or still full. */
export type BufferState = 'closed' | 'drained' | 'full';

const FLUSH_INTERVAL_MS = 25;

export class ConflatedFrames {
  readonly #frames = new Map<string, OutgoingFrame>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly bufferState: () => BufferState,
    private readonly write: (frame: OutgoingFrame) => void,
  ) {}

  get size(): number {
    return this.#frames.size;
  }

  /** Hold `frame` as the latest for `key`, behind every other key; true when it replaced one. */
  hold(key: string, frame: OutgoingFrame): boolean {
    const replaced = this.#frames.delete(key);
    this.#frames.set(key, frame);
    this.#schedule();
    return replaced;
  }

  /** Write everything held, in the order held. */
  flush(): void {
    for (const frame of this.#frames.values()) this.write(frame);
    this.#frames.clear();
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      const state = this.bufferState();
      if (state === 'closed') this.#frames.clear();
      else if (state === 'drained') this.flush();
      if (this.#frames.size === 0) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    }, FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }
}
