/**
 * Chat messages built by hand for the unit tests of what the SDK and the
 * protocol package do with them (read state, folding, the React stores):
 * message `offset` of room `r` in EPOCH, its id `m<offset>`. A test's own
 * builder passes what it sets differently.
 */
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

/** The room log's epoch of these messages. */
export const EPOCH = 'e1';

/** Chat message `offset` whose payload is `data`; `fields` override the rest (by default from alice at ts `offset`, in EPOCH). */
export function chatMessage<T>(offset: number, data: T, fields: Partial<Omit<ChatMessage, 'data'>> = {}): Omit<ChatMessage, 'data'> & { data: T } {
  return { op: 'message', class: 'chat', room: 'r', id: `m${offset}`, from: 'alice', ts: offset, offset, epoch: EPOCH, data, ...fields };
}
