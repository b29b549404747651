/**
 * Classifies every chat message for every recipient as delivered, lost,
 * duplicated or unexpected, and checks that each recipient saw a room's
 * offsets contiguously and in order.
 *
 * - A message is *expected* by a recipient when it was acknowledged and its
 *   offset is after the position the recipient started from in that room.
 *   Unacknowledged publishes may or may not have been stored; they are never
 *   required, but receiving one is fine (it is not "unexpected").
 * - *delivered*: expected and received once; *lost*: expected and never
 *   received; *duplicated*: received more than once; *unexpected*: received
 *   but never published by the test.
 */
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

export interface DeliveryReport {
  expected: number;
  delivered: number;
  lost: string[];
  duplicated: string[];
  unexpected: string[];
  /** Recipients whose offsets in a room were not contiguous, or not in increasing order. */
  gaps: string[];
}

interface Published {
  room: string;
  acked?: { offset: number; epoch: string };
}

export class DeliveryChecker {
  /** cmid → what was published. */
  private readonly published = new Map<string, Published>();
  /** recipient → room → start position. */
  private readonly starts = new Map<string, Map<string, { offset: number; epoch: string }>>();
  /** recipient → room → messages in arrival order. */
  private readonly received = new Map<string, Map<string, ChatMessage[]>>();

  /** A publish was sent with this cmid (call before sending). */
  sent(room: string, cmid: string): void {
    if (!this.published.has(cmid)) this.published.set(cmid, { room });
  }

  /** The publish was acknowledged at this position. */
  acked(cmid: string, offset: number, epoch: string): void {
    const entry = this.published.get(cmid);
    if (!entry) throw new Error(`ack for a cmid never sent: ${cmid}`);
    entry.acked = { offset, epoch };
  }

  /** The recipient joined `room` at `position`: it must receive every acknowledged message after it. */
  started(recipient: string, room: string, position: { offset: number; epoch: string }): void {
    let rooms = this.starts.get(recipient);
    if (!rooms) this.starts.set(recipient, (rooms = new Map<string, { offset: number; epoch: string }>()));
    rooms.set(room, { ...position });
  }

  receive(recipient: string, message: ChatMessage): void {
    let rooms = this.received.get(recipient);
    if (!rooms) this.received.set(recipient, (rooms = new Map<string, ChatMessage[]>()));
    let list = rooms.get(message.room);
    if (!list) rooms.set(message.room, (list = []));
    list.push(message);
  }

  /** Highest acknowledged offset per room (to wait for recipients to catch up). */
  lastAcked(room: string): number {
    let last = 0;
    for (const entry of this.published.values()) if (entry.room === room && entry.acked) last = Math.max(last, entry.acked.offset);
    return last;
  }

  report(): DeliveryReport {
    const report: DeliveryReport = { expected: 0, delivered: 0, lost: [], duplicated: [], unexpected: [], gaps: [] };
    for (const [recipient, rooms] of this.starts) {
      for (const [room, start] of rooms) {
        const list = this.received.get(recipient)?.get(room) ?? [];
        const counts = new Map<string, number>();
        for (const message of list) {
          const cmid = message.cmid ?? `(no cmid) ${message.id}`;
          counts.set(cmid, (counts.get(cmid) ?? 0) + 1);
          if (!this.published.has(cmid)) report.unexpected.push(`${recipient}/${room}: ${cmid}`);
        }
        for (const [cmid, count] of counts) if (count > 1) report.duplicated.push(`${recipient}/${room}: ${cmid} ×${count}`);
        for (const [cmid, entry] of this.published) {
          if (entry.room !== room || !entry.acked) continue;
          if (entry.acked.epoch === start.epoch && entry.acked.offset <= start.offset) continue;
          report.expected += 1;
          if (counts.has(cmid)) report.delivered += 1;
          else report.lost.push(`${recipient}/${room}: ${cmid} @${entry.acked.offset}`);
        }
        let previous = start.offset;
        for (const message of list) {
          if (message.epoch !== start.epoch || message.offset !== previous + 1) {
            report.gaps.push(`${recipient}/${room}: after ${previous} got ${message.offset} (${message.epoch})`);
            break;
          }
          previous = message.offset;
        }
      }
    }
    return report;
  }
}
