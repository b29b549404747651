/**
 * `room.messages`: a room's chat as the app shows it. Edits, deletes and
 * reactions are folded into the messages they target by the protocol's
 * rule (packages/protocol/src/fold.ts) and never appear as messages of
 * their own; an entry whose target is not loaded waits until `loadOlder()`
 * (or the app's own `history()` pages, passed to `add`) brings it in.
 */
import type { ChatMessage, MessageFrame } from '../../protocol/src/frames.js';
import { applyEntry, byOffset, isActionEntry, keyOf, targetKeyOf, type ActionEntry } from '../../protocol/src/fold.js';
import { TypedEmitter } from './emitter.js';
import type { HistoryPage, RoomChatMessage } from './types.js';

/** Events of a {@link MessageList}. */
export interface MessageListEvents<Chat = unknown> {
  /** The list changed (messages added, edited, deleted or reacted to): `items`, as now. */
  change: readonly RoomChatMessage<Chat>[];
}

/** What a list needs of its room: one page of older chat. */
export interface MessageListSource {
  history(options: { before?: number; limit?: number; epoch?: string }): Promise<HistoryPage>;
}

/**
 * A room's chat messages, oldest first, with edits, deletes and reactions
 * folded in: an edited message has the new `data` and `editedAt`, a deleted
 * one is a tombstone (`deleted: true`, `data: null`), reactions are in
 * `reactions`. Kept up to date from the room's join, live messages and
 * resyncs; emits `change`.
 */
export class MessageList<Chat = unknown> extends TypedEmitter<MessageListEvents<Chat>> {
  #items: ChatMessage[] = [];
  /** Where each message of `#items` is, by keyOf. */
  #index = new Map<string, number>();
  /** Entries whose target is not loaded, in offset order. */
  #pending: ActionEntry[] = [];
  /** Offsets taken in (messages and entries), so an overlap is not applied twice. */
  #seen = new Set<number>();
  #epoch: string | undefined;
  #oldest: number | undefined;
  readonly #source: MessageListSource;

  /** @internal Made by `room.messages`. */
  constructor(source: MessageListSource) {
    super();
    this.#source = source;
  }

  /** The messages, oldest first, folded. A new array after each change; do not modify it. */
  get items(): readonly RoomChatMessage<Chat>[] {
    return this.#items as RoomChatMessage<Chat>[];
  }

  /** Entries (edits, deletes, reactions) waiting for a target that is not loaded. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Start again from `messages` (a join's history, a resync): of one epoch, oldest first. */
  reset(messages: readonly ChatMessage[]): void {
    this.#items = [];
    this.#index.clear();
    this.#pending = [];
    this.#seen.clear();
    this.#epoch = messages[0]?.epoch;
    this.#oldest = undefined;
    this.#take(messages);
    this.emit('change', this.items);
  }

  /**
   * Take in chat of this room: live messages, a replay, or a `history()`
   * page. Messages of another epoch than the list's are ignored (a reset
   * log comes with a resync, which resets the list).
   */
  add(messages: readonly MessageFrame[]): void {
    const chat = messages.filter((m): m is ChatMessage => m.class === 'chat');
    if (this.#take(chat)) this.emit('change', this.items);
  }

  /**
   * Load one page of older chat (before the oldest offset held) and fold it
   * in; resolves with whether the server holds older chat still.
   */
  async loadOlder(limit = 50): Promise<boolean> {
    const options: { before?: number; limit: number; epoch?: string } = { limit };
    if (this.#oldest !== undefined) options.before = this.#oldest;
    if (this.#epoch !== undefined) options.epoch = this.#epoch;
    if (options.before === 1) return false;
    const page = await this.#source.history(options);
    this.#epoch ??= page.epoch;
    this.add(page.messages);
    return page.more;
  }

  /** Fold `messages` in; whether anything changed. */
  #take(messages: readonly ChatMessage[]): boolean {
    const fresh = messages.filter((m) => (this.#epoch ??= m.epoch) === m.epoch && !this.#seen.has(m.offset)).sort(byOffset);
    if (fresh.length === 0) return false;
    const entries: ActionEntry[] = [...this.#pending];
    const inserted: ChatMessage[] = [];
    for (const message of fresh) {
      this.#seen.add(message.offset);
      if (this.#oldest === undefined || message.offset < this.#oldest) this.#oldest = message.offset;
      if (isActionEntry(message)) entries.push(message);
      else inserted.push(message);
    }
    if (inserted.length > 0) this.#insert(inserted);
    // Every entry waiting or new, in offset order: a page's older entries before the live ones that waited for it.
    entries.sort(byOffset);
    this.#pending = [];
    let items: ChatMessage[] | undefined;
    for (const entry of entries) {
      const at = this.#index.get(targetKeyOf(entry));
      if (at === undefined) {
        this.#pending.push(entry);
        continue;
      }
      items ??= [...this.#items];
      items[at] = applyEntry(items[at]!, entry);
    }
    if (items) this.#items = items;
    return true;
  }

  /** Merge new messages (sorted) into the list in offset order. */
  #insert(messages: readonly ChatMessage[]): void {
    const last = this.#items[this.#items.length - 1];
    if (last === undefined || messages[0]!.offset > last.offset) {
      // Live chat: appended, the index only grows.
      const start = this.#items.length;
      this.#items = [...this.#items, ...messages];
      messages.forEach((message, at) => this.#index.set(keyOf(message), start + at));
      return;
    }
    this.#items = [...this.#items, ...messages].sort(byOffset);
    this.#index.clear();
    this.#items.forEach((message, at) => this.#index.set(keyOf(message), at));
  }
}
