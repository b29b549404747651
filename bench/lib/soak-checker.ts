/**
 * The soak's checker: everything the load sent and everything the apps (SDK
 * clients) saw, and the verdict per message class, attributed to the fault
 * window each message was sent in.
 *
 * Chat (the class with promises): a message is *expected* by a member when
 * it was acked at an offset after the position the member joined at (same
 * epoch) and, for a member that left, at or before the position it had
 * when it left. *lost*: expected, never seen; *duplicated*: seen twice in
 * one membership; *out of order*: offsets not increasing; *gap*: offsets
 * not contiguous (the SDK must never skip); *unexpected*: a cmid the soak
 * never sent, or seen at another offset than its ack said.
 *
 * Signals and ephemerals are at most once by design: lost ones are counted,
 * not failed; duplicates, reordering and unexpected ones are failures.
 * The verdict itself is computed in soak-verdict.ts.
 */
import type { ChatMessage, EphemeralMessage, SignalDelivery, StreamPosition } from '../../packages/protocol/src/frames.js';
import {
  chatVerdict,
  ephemeralVerdict,
  signalVerdict,
  type ChatSent,
  type ClassCounts,
  type Finding,
  type Report,
  type Segment,
  type SignalSent,
} from './soak-verdict.js';

export type { ClassCounts, Finding } from './soak-verdict.js';

export interface FaultWindow {
  id: number;
  kind: string;
  from: number;
  to: number;
}

export class SoakChecker {
  readonly chat = new Map<string, ChatSent>();
  private readonly segments: Segment[] = [];
  private readonly open = new Map<string, Segment>();
  private readonly signals = new Map<string, SignalSent>();
  private readonly signalSeen = new Map<string, number[]>();
  private readonly ephemeralTop = new Map<string, number>();
  private readonly ephemeralSeen = new Map<string, number[]>();
  /** SDK events worth reporting: recovery_failed per room, rejoins, 4009 closes. */
  readonly events = {
    recoveryFailed: 0,
    rejoined: 0,
    slowConsumerCloses: 0,
    disconnects: 0,
    chatErrors: new Map<string, number>(),
    roomErrors: new Map<string, number>(),
    givenUp: 0,
  };
  private windows: FaultWindow[] = [];

  setWindows(windows: FaultWindow[]): void {
    this.windows = windows;
  }

  /** The fault a message sent at `at` is attributed to: a window open then (2 s margin after), else `none`. */
  faultAt(at: number): string {
    let found: FaultWindow | undefined;
    for (const window of this.windows) if (at >= window.from && at <= window.to + 2000) found = window;
    return found ? found.kind : 'none';
  }

  // ---------------------------------------------------------------- chat

  chatSent(cmid: string, room: string, sender: string): void {
    if (!this.chat.has(cmid)) this.chat.set(cmid, { room, sender, sentAt: Date.now(), attempts: 0, errors: [] });
    this.chat.get(cmid)!.attempts += 1;
  }

  chatError(cmid: string, code: string): void {
    this.chat.get(cmid)?.errors.push(code);
    this.events.chatErrors.set(code, (this.events.chatErrors.get(code) ?? 0) + 1);
  }

  chatGaveUp(cmid: string, why: string): void {
    const entry = this.chat.get(cmid);
    if (entry) entry.gaveUp = why;
    this.events.givenUp += 1;
  }

  chatAcked(cmid: string, ack: { id: string; offset?: number; epoch?: string; duplicate?: boolean }): void {
    const entry = this.chat.get(cmid);
    if (!entry) throw new Error(`ack for a cmid never sent: ${cmid}`);
    const offset = ack.offset ?? -1;
    const epoch = ack.epoch ?? '';
    if (entry.ack) {
      if (entry.ack.offset !== offset || entry.ack.epoch !== epoch || entry.ack.id !== ack.id) {
        entry.ackMismatch = `first ${entry.ack.id}@${entry.ack.offset}, then ${ack.id}@${offset}`;
      }
      return;
    }
    entry.ack = { id: ack.id, offset, epoch, at: Date.now(), duplicate: ack.duplicate === true };
  }

  /**
   * `recipient` sends a join for `room`: a new membership starts collecting
   * now, because live chat can reach the app in the same read as `joined`,
   * before the join's promise callback runs.
   */
  joining(recipient: string, room: string): void {
    const segment: Segment = { recipient, room, start: undefined, startAt: Date.now(), received: [] };
    this.open.set(`${recipient}\u0000${room}`, segment);
  }

  /** The join was answered at `start`: the membership counts from there (what came before it is dropped). */
  joined(recipient: string, room: string, start: StreamPosition): void {
    const key = `${recipient}\u0000${room}`;
    const segment = this.open.get(key) ?? { recipient, room, start: undefined, startAt: Date.now(), received: [] };
    segment.start = { ...start };
    segment.received = segment.received.filter((m) => m.resync || m.epoch !== start.epoch || m.offset > start.offset);
    this.segments.push(segment);
    this.open.set(key, segment);
  }

  /** The join failed: no membership. */
  joinFailed(recipient: string, room: string): void {
    const key = `${recipient}\u0000${room}`;
    if (this.open.get(key)?.start === undefined) this.open.delete(key);
  }

  /** `recipient` left `room` having seen up to `end`. */
  left(recipient: string, room: string, end: StreamPosition | undefined): void {
    const key = `${recipient}\u0000${room}`;
    const segment = this.open.get(key);
    if (!segment) return;
    if (!segment.start) {
      this.open.delete(key);
      return;
    }
    segment.end = end ? { ...end } : { ...segment.start };
    this.open.delete(key);
  }

  chatReceived(recipient: string, message: ChatMessage, resync = false): void {
    const segment = this.open.get(`${recipient}\u0000${message.room}`);
    if (!segment) return; // before the join was sent or after leave: not part of a membership
    if (segment.start && message.epoch === segment.start.epoch && message.offset <= segment.start.offset && !resync) return;
    // An app resyncing from `joined.history` after recovery_failed keeps what it already has.
    if (resync && segment.received.some((r) => r.id === message.id)) return;
    segment.received.push({ cmid: message.cmid, id: message.id, offset: message.offset, epoch: message.epoch, at: Date.now(), resync });
  }

  /** Rooms whose members are still open, with the last acked offset (to wait for catch-up). */
  lastAcked(room: string): StreamPosition | undefined {
    let last: StreamPosition | undefined;
    for (const entry of this.chat.values()) {
      if (entry.room !== room || !entry.ack) continue;
      if (!last || entry.ack.offset > last.offset) last = { offset: entry.ack.offset, epoch: entry.ack.epoch };
    }
    return last;
  }

  openMemberships(): Array<{ recipient: string; room: string }> {
    return [...this.open.values()].map((s) => ({ recipient: s.recipient, room: s.room }));
  }

  // ---------------------------------------------------------------- signals

  signalSent(from: string, to: string, seq: number): void {
    this.signals.set(`${from}>${to}#${seq}`, { from, to, seq, sentAt: Date.now() });
  }

  signalOutcome(from: string, to: string, seq: number, outcome: string): void {
    const entry = this.signals.get(`${from}>${to}#${seq}`);
    if (entry) entry.outcome = outcome;
  }

  signalReceived(recipient: string, delivery: SignalDelivery): void {
    const data = delivery.data as { seq?: unknown } | null;
    const seq = typeof data?.seq === 'number' ? data.seq : -1;
    const key = `${delivery.from}>${recipient}`;
    let list = this.signalSeen.get(key);
    if (!list) this.signalSeen.set(key, (list = []));
    list.push(seq);
  }

  // ---------------------------------------------------------------- ephemerals

  ephemeralSent(from: string, room: string, seq: number): void {
    this.ephemeralTop.set(`${from}\u0000${room}`, seq);
  }

  ephemeralReceived(recipient: string, message: EphemeralMessage): void {
    const data = message.data as { seq?: unknown } | null;
    const seq = typeof data?.seq === 'number' ? data.seq : -1;
    const key = `${message.from}\u0000${message.room}\u0000${recipient}`;
    let list = this.ephemeralSeen.get(key);
    if (!list) this.ephemeralSeen.set(key, (list = []));
    list.push(seq);
  }

  // ---------------------------------------------------------------- verdict

  report(): { classes: Record<'chat' | 'signal' | 'ephemeral', ClassCounts>; findings: Finding[]; byFault: Record<string, Record<string, number>> } {
    const findings: Finding[] = [];
    const add: Report = (finding) => void findings.push({ ...finding, fault: this.faultAt(finding.at) });
    const chat = chatVerdict(this.chat, this.segments, add);
    const signal = signalVerdict(this.signals, this.signalSeen, add);
    const ephemeral = ephemeralVerdict(this.ephemeralTop, this.ephemeralSeen, add);

    const byFault: Record<string, Record<string, number>> = {};
    for (const finding of findings) {
      const bucket = (byFault[finding.fault] ??= {});
      const key = `${finding.cls}.${finding.what}`;
      bucket[key] = (bucket[key] ?? 0) + 1;
    }
    return { classes: { chat, signal, ephemeral }, findings, byFault };
  }
}
