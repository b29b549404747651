/**
 * Chat gap recovery on a node: per room with local members, the position of
 * the last chat delivered here (RoomChatCursor, chat-gap.ts). A live message
 * past the next offset, or a subscription the bus reports lost, makes the
 * room hold its live chat, re-read the history after the cursor and deliver
 * the missed messages first (docs/architecture.md, "Gaps in a subscription").
 */
import type { History, RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import { clip } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import { fullJitter } from '../backoff.js';
import { errorText } from '../errors.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { MessageClass, ResyncFrame, ResyncReason } from '../../packages/protocol/src/frames.js';
import { offsetStep } from '../../packages/protocol/src/positions.js';
import { Limiter, RoomChatCursor, scanChatTail, tailEpoch, tailHasEpoch } from './chat-gap.js';
import type { ChannelTarget, LocalRooms } from './local-rooms.js';

// The history read's retry delays: 100 ms doubling up to 1.6 s, five times.
const READ_RETRY_BASE_MS = 100;
const READ_RETRY_MAX_MS = 1_600;

export interface ChatRecoveryDeps {
  local: LocalRooms;
  history: Pick<History, 'since'>;
  metrics: Pick<NodeMetrics, 'chatGaps' | 'chatGapRecoveries' | 'chatGapMessages' | 'drops'>;
  log: Logger;
  /** Most messages one history read may return (`limits.recoveryLimit`). */
  recoveryLimit: number;
  /** Writes an encoded frame to a channel's local listeners (Delivery.fanOut). */
  fanOut: (target: ChannelTarget, payload: string, messageClass: MessageClass) => void;
  /** Whether the node has stopped: a failing history read is then not retried. */
  stopped: () => boolean;
}

type SinceResult = Awaited<ReturnType<History['since']>>;

export class ChatRecovery {
  /** History reads run at most this many rooms at a time (a Redis restart reports every room at once). */
  private readonly reads = new Limiter(16);

  constructor(private readonly deps: ChatRecoveryDeps) {}

  /**
   * Whether a live chat payload may be delivered now, keeping the room's
   * cursor. A message at or below the cursor was delivered already (from the
   * history) and is skipped; while a recovery runs, messages are held; a
   * message past the next offset, or of another epoch, means the bus lost
   * some: it is held and a recovery starts. No allocation unless the epoch changes.
   */
  admit(channel: string, target: ChannelTarget, payload: string): boolean {
    const tail = scanChatTail(payload);
    if (!tail) return true;
    const cursor = (target.chat ??= new RoomChatCursor());
    if (cursor.held) {
      if (!cursor.hold(payload)) this.deps.metrics.drops.inc({ reason: 'recovery_overflow' });
      return false;
    }
    if (!cursor.known) {
      cursor.set(tailEpoch(payload, tail), tail.offset);
      return true;
    }
    const sameEpoch = tailHasEpoch(payload, tail, cursor.epoch);
    const step = offsetStep(cursor.offset, sameEpoch, tail.offset);
    if (step === 'seen') return false;
    if (step === 'next') {
      if (sameEpoch) cursor.offset = tail.offset;
      else cursor.set(tailEpoch(payload, tail), tail.offset);
      return true;
    }
    this.deps.metrics.chatGaps.inc({ trigger: 'offset_jump' });
    cursor.hold(payload);
    this.start(channel, target, cursor);
    return false;
  }

  /** A join read the room's position: the room's first one tells this node where its chat stands, if no message did. */
  noteJoinPosition(channel: string, epoch: string, offset: number): void {
    const target = this.deps.local.get(channel);
    if (target?.kind !== 'room') return;
    const cursor = (target.chat ??= new RoomChatCursor());
    if (!cursor.known) cursor.set(epoch, offset);
  }

  /**
   * The bus subscribed `channels` again after losing them: every room with
   * local members re-reads its history from the last offset delivered here.
   * User channels are left alone: signals are at most once.
   */
  onResubscribed(channels: string[]): void {
    for (const channel of channels) {
      const target = this.deps.local.get(channel);
      if (target?.kind !== 'room') continue;
      this.deps.metrics.chatGaps.inc({ trigger: 'resubscribe' });
      const cursor = (target.chat ??= new RoomChatCursor());
      if (cursor.known) {
        this.start(channel, target, cursor);
      } else {
        // Only joins in flight, whose answers may predate the loss: their clients resume from their own positions.
        this.resync(target, 'position_unknown');
      }
    }
  }

  private start(channel: string, target: ChannelTarget, cursor: RoomChatCursor): void {
    this.recover(channel, target, cursor).catch((error: unknown) => {
      this.deps.log.error({ err: errorText(error), tenant: target.tenant, room: clip(target.id) }, 'chat gap recovery failed');
    });
  }

  /**
   * Fill a room's chat gap: hold live chat, read the history after the
   * cursor, deliver the missed messages in order, then release the held
   * ones (skipping what the read delivered). When the history cannot return
   * exactly the missed messages, or cannot be read, the members get
   * `resync`. One recovery per room at a time; a loss reported meanwhile
   * makes it read again.
   */
  private async recover(channel: string, target: ChannelTarget, cursor: RoomChatCursor): Promise<void> {
    cursor.held ??= [];
    if (cursor.recovering) {
      cursor.again = true;
      return;
    }
    cursor.recovering = true;
    const ref: RoomRef = { tenant: target.tenant, room: target.id };
    const still = (): boolean => this.deps.local.get(channel) === target;
    let resync: ResyncReason | undefined;
    try {
      do {
        cursor.again = false;
        const from = { offset: cursor.offset, epoch: cursor.epoch };
        const read = await this.read(ref, from, still);
        if (!still()) return;
        if (read === undefined) {
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'failed' });
          this.deps.log.warn({ tenant: target.tenant, room: clip(target.id), from }, 'chat gap not recovered: history unavailable; members told to resync');
          resync = 'history_unavailable';
          break;
        }
        if (read.recovered) {
          let delivered = 0;
          for (const message of read.messages) {
            // Only the cursor's epoch: a read that crossed into another one delivers nothing of it.
            if (message.epoch !== cursor.epoch || offsetStep(cursor.offset, true, message.offset) === 'seen') continue;
            cursor.offset = message.offset;
            this.deps.fanOut(target, encodeFrame(message), 'chat');
            delivered += 1;
          }
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'recovered' });
          if (delivered > 0) {
            this.deps.metrics.chatGapMessages.inc(delivered);
            this.deps.log.info({ tenant: target.tenant, room: clip(target.id), from, delivered }, 'chat missed on the bus delivered from history');
          }
        } else {
          this.deps.metrics.chatGapRecoveries.inc({ outcome: 'unrecoverable' });
          this.deps.log.warn(
            { tenant: target.tenant, room: clip(target.id), from, position: read.position },
            'chat gap not recoverable; members told to resync',
          );
          resync = 'unrecoverable';
          cursor.set(read.position.epoch, read.position.offset);
        }
      } while (cursor.again);
    } finally {
      cursor.recovering = false;
      cursor.again = false;
    }
    if (cursor.overflowed) {
      cursor.overflowed = false;
      resync ??= 'unrecoverable';
      // Some live messages were dropped: the members resume on their own; track again from the next message.
      cursor.known = false;
    }
    if (resync !== undefined) this.resync(target, resync);
    // Without the history this node does not know what was missed: the members resume from their own positions.
    if (resync === 'history_unavailable') cursor.known = false;
    const held = cursor.held ?? [];
    cursor.held = undefined;
    // Through admit again: duplicates of what the read delivered are skipped; a new jump starts another recovery (and holds the rest).
    for (const payload of held) {
      if (this.admit(channel, target, payload)) this.deps.fanOut(target, payload, 'chat');
    }
  }

  /** `history.since` with five retries (full jitter: after a Redis restart the history may come back after the bus); undefined when it kept failing or the room has no local member left. */
  private async read(ref: RoomRef, from: { offset: number; epoch: string }, still: () => boolean): Promise<SinceResult | undefined> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.reads.run(() => this.deps.history.since(ref, from, this.deps.recoveryLimit));
      } catch (error) {
        if (attempt >= 5 || !still() || this.deps.stopped()) {
          this.deps.log.debug({ err: errorText(error), room: clip(ref.room) }, 'history read for a chat gap failed');
          return undefined;
        }
      }
      await new Promise<void>((resolve) => setTimeout(resolve, fullJitter(attempt, READ_RETRY_BASE_MS, READ_RETRY_MAX_MS)).unref());
    }
  }

  /** Tell the room's local members to resume it themselves (`join` with `since`). */
  private resync(target: ChannelTarget, reason: ResyncReason): void {
    const frame: ResyncFrame = { op: 'resync', room: target.id, reason };
    this.deps.fanOut(target, encodeFrame(frame), 'lifecycle');
  }
}
