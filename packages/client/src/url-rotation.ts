/**
 * Which node URL the next connection attempt goes to, when `url` is a list.
 * Plain round robin sent every client of a dead node to the same next node
 * (a storm on one survivor) and, after a retry or two, back to the dead node.
 * So the first attempt takes the first URL, and every later one a URL that
 * has not failed within `COOLDOWN_MS`, at random (the clients of a lost node
 * spread over the others). When every URL failed recently, one that accepted
 * the TCP connection (a slow or draining node) goes before one that never
 * opened (a dead one), the longest-failed first. `welcome` clears a URL.
 */

/** How long a failed URL is passed over while another is available, ms. */
export const COOLDOWN_MS = 30_000;

/** How the last attempt on a URL ended: it answered, it opened and then failed, or it never opened. */
type Outcome = 'answered' | 'failed' | 'unreachable';

interface UrlState {
  readonly url: string;
  outcome: Outcome;
  /** When the last failure happened (ms); meaningless while `answered`. */
  at: number;
}

export interface RotationClock {
  now(): number;
  /** A number in [0, 1), as `Math.random`. */
  random(): number;
}

const SYSTEM_CLOCK: RotationClock = { now: Date.now, random: Math.random };

export class UrlRotation {
  readonly #states: readonly UrlState[];
  readonly #clock: RotationClock;
  #started = false;

  constructor(urls: readonly string[], clock: RotationClock = SYSTEM_CLOCK) {
    if (urls.length === 0) throw new TypeError('url must not be an empty list');
    this.#states = urls.map((url) => ({ url, outcome: 'answered', at: 0 }));
    this.#clock = clock;
  }

  /** The URL of the next attempt. */
  next(): string {
    if (!this.#started) {
      this.#started = true;
      return this.#states[0]!.url;
    }
    const now = this.#clock.now();
    const fresh = this.#states.filter((state) => state.outcome === 'answered' || now - state.at >= COOLDOWN_MS);
    if (fresh.length > 0) return fresh[Math.floor(this.#clock.random() * fresh.length)]!.url;
    const rank = (state: UrlState): number => (state.outcome === 'failed' ? 0 : 1);
    const best = [...this.#states].sort((a, b) => rank(a) - rank(b) || a.at - b.at)[0]!;
    return best.url;
  }

  /** The attempt on `url` ended without a usable connection, or its connection was lost. `opened`: the socket had opened. */
  failed(url: string, opened: boolean): void {
    const state = this.#states.find((candidate) => candidate.url === url);
    if (!state) return;
    state.outcome = opened ? 'failed' : 'unreachable';
    state.at = this.#clock.now();
  }

  /** `url` answered the handshake. */
  answered(url: string): void {
    const state = this.#states.find((candidate) => candidate.url === url);
    if (state) state.outcome = 'answered';
  }
}
