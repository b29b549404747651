/**
 * Presence state, the one place its rules live: what a member's state is
 * (the client's object with the token's `presence` claim merged over it, so
 * a name or avatar the backend signed cannot be changed by the client), its
 * size bound, and how drivers turn stored JSON text back into a Member.
 * docs/protocol.md, "Presence state".
 */
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { Member, PresenceState } from '../../packages/protocol/src/frames.js';

/** A member's state both ways: the object members see, and its JSON text (what the store keeps). */
export interface StateAndText {
  state: PresenceState;
  text: string;
}

/**
 * The state members see: `claim` keys win over `client` keys. Undefined when
 * neither gives one. Throws `presence_too_large` above `maxBytes` (UTF-8).
 * One serialization, measured and kept: callers store `text` and send
 * `state` (which encodes to the same text), so nothing is parsed back.
 */
export function presenceState(client: PresenceState | undefined, claim: PresenceState | undefined, maxBytes: number): StateAndText | undefined {
  if (client === undefined && claim === undefined) return undefined;
  const state = { ...client, ...claim };
  const text = JSON.stringify(state);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new NerveError(ErrorCode.PresenceTooLarge, `presence state is ${bytes} bytes as JSON, at most ${maxBytes}`);
  return { state, text };
}

/** A Member from stored fields; `state` is JSON text written by presenceState (unreadable text is left out, never thrown). */
export function memberOf(user: string, since: number, state: string | undefined): Member {
  if (state === undefined || state === '') return { user, since };
  try {
    const parsed = JSON.parse(state) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return { user, since, state: parsed as PresenceState };
  } catch {
    // Only this module writes it; a damaged value is as good as none.
  }
  return { user, since };
}
