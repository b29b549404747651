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

/**
 * The state members see, as JSON text: `claim` keys win over `client` keys.
 * Undefined when neither gives one. Throws `presence_too_large` above `maxBytes` (UTF-8).
 */
export function presenceStateText(client: PresenceState | undefined, claim: PresenceState | undefined, maxBytes: number): string | undefined {
  if (client === undefined && claim === undefined) return undefined;
  const text = JSON.stringify({ ...client, ...claim });
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new NerveError(ErrorCode.PresenceTooLarge, `presence state is ${bytes} bytes as JSON, at most ${maxBytes}`);
  return text;
}

/** A Member from stored fields; `state` is JSON text written by presenceStateText (unreadable text is left out, never thrown). */
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
