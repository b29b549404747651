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
 */
import type { ChatMessage, EphemeralMessage, SignalDelivery, StreamPosition } from '../../packages/protocol/src/frames.js';

export interface FaultWindow {
  id: number;
  kind: string;
  from: number;
  to: number;
}

export interface ClassCounts {
  sent: number;
  acked: number;
  /** Expected deliveries (chat: acked × members that should see it). */
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  unexpected: number;
  gaps: number;
}

const zero = (): ClassCounts => ({ sent: 0, acked: 0, expected: 0, delivered: 0, lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0, gaps: 0 });

interface ChatSent {
  room: string;
  sender: string;
  sentAt: number;
  attempts: number;
  errors: string[];
  ack?: { id: string; offset: number; epoch: string; at: number; duplicate: boolean };
  /** Acks of later attempts that disagreed with the first one. */
  ackMismatch?: string;
  gaveUp?: string;
}

interface Segment {
  recipient: string;
  room: string;
  /** Undefined until the join is answered. */
  start: StreamPosition | undefined;
  startAt: number;
  end?: StreamPosition;
  received: Array<{ cmid: string | undefined; id: string; offset: number; epoch: string; at: number; resync: boolean }>;
}

interface SignalSent {
  from: string;
  to: string;
  seq: number;
  sentAt: number;
  outcome?: string;
}

export interface Finding {
  cls: 'chat' | 'signal' | 'ephemeral' | 'postgres' | 'replay';
  what: 'lost' | 'duplicated' | 'out_of_order' | 'unexpected' | 'gap' | 'ack_mismatch' | 'epoch_change' | 'missing' | 'extra';
  detail: string;
  /** When the message was sent (for attribution). */
  at: number;
  fault: string;
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
    const chat = zero();
    const add = (finding: Omit<Finding, 'fault'>): void => void findings.push({ ...finding, fault: this.faultAt(finding.at) });

    for (const [cmid, entry] of this.chat) {
      chat.sent += 1;
      if (entry.ack) chat.acked += 1;
      if (entry.ackMismatch) add({ cls: 'chat', what: 'ack_mismatch', detail: `${cmid}: ${entry.ackMismatch}`, at: entry.sentAt });
    }
    // Acked chat per room, in offset order.
    const ackedByRoom = new Map<string, Array<[string, ChatSent]>>();
    for (const [cmid, entry] of this.chat) {
      if (!entry.ack) continue;
      let list = ackedByRoom.get(entry.room);
      if (!list) ackedByRoom.set(entry.room, (list = []));
      list.push([cmid, entry]);
    }
    for (const segment of this.segments) {
      if (!segment.start) continue;
      const start: StreamPosition = segment.start;
      const who = `${segment.recipient}/${segment.room}`;
      const counts = new Map<string, number>();
      for (const message of segment.received) {
        const cmid = message.cmid ?? `(no cmid) ${message.id}`;
        counts.set(cmid, (counts.get(cmid) ?? 0) + 1);
        const sent = this.chat.get(cmid);
        if (!sent) add({ cls: 'chat', what: 'unexpected', detail: `${who}: ${cmid} never sent`, at: message.at });
        else if (sent.ack && (sent.ack.offset !== message.offset || sent.ack.epoch !== message.epoch)) {
          add({
            cls: 'chat',
            what: 'unexpected',
            detail: `${who}: ${cmid} seen at ${message.offset}/${message.epoch}, acked at ${sent.ack.offset}/${sent.ack.epoch}`,
            at: sent.sentAt,
          });
        }
      }
      for (const [cmid, count] of counts) {
        if (count > 1) add({ cls: 'chat', what: 'duplicated', detail: `${who}: ${cmid} ×${count}`, at: this.chat.get(cmid)?.sentAt ?? segment.startAt });
      }
      for (const [cmid, entry] of ackedByRoom.get(segment.room) ?? []) {
        const ack = entry.ack!;
        if (ack.epoch !== start.epoch) continue; // another epoch: counted below as an epoch change
        if (ack.offset <= start.offset) continue;
        if (segment.end && (segment.end.epoch !== ack.epoch || ack.offset > segment.end.offset)) continue;
        chat.expected += 1;
        if (counts.has(cmid)) chat.delivered += 1;
        else
          add({
            cls: 'chat',
            what: 'lost',
            detail: `${who}: ${cmid} @${ack.offset} (sent by ${entry.sender}, acked ${ack.duplicate ? 'as duplicate ' : ''}after ${entry.attempts} attempt(s))`,
            at: entry.sentAt,
          });
      }
      let previous: StreamPosition = start;
      for (const message of segment.received) {
        if (message.resync) continue;
        if (message.epoch !== previous.epoch) {
          add({ cls: 'chat', what: 'epoch_change', detail: `${who}: ${previous.epoch} → ${message.epoch} at offset ${message.offset}`, at: message.at });
        } else if (message.offset <= previous.offset) {
          add({
            cls: 'chat',
            what: 'out_of_order',
            detail: `${who}: ${message.offset} after ${previous.offset}`,
            at: this.chat.get(message.cmid ?? '')?.sentAt ?? message.at,
          });
        } else if (message.offset !== previous.offset + 1) {
          add({
            cls: 'chat',
            what: 'gap',
            detail: `${who}: ${message.offset} after ${previous.offset}`,
            at: this.chat.get(message.cmid ?? '')?.sentAt ?? message.at,
          });
        }
        previous = { offset: message.offset, epoch: message.epoch };
      }
    }
    chat.lost = findings.filter((f) => f.cls === 'chat' && f.what === 'lost').length;
    chat.duplicated = findings.filter((f) => f.cls === 'chat' && f.what === 'duplicated').length;
    chat.outOfOrder = findings.filter((f) => f.cls === 'chat' && f.what === 'out_of_order').length;
    chat.unexpected = findings.filter((f) => f.cls === 'chat' && (f.what === 'unexpected' || f.what === 'ack_mismatch')).length;
    chat.gaps = findings.filter((f) => f.cls === 'chat' && (f.what === 'gap' || f.what === 'epoch_change')).length;

    const signal = zero();
    const seenSignals = new Map<string, number>();
    for (const [key, seqs] of this.signalSeen) {
      let last = -1;
      for (const seq of seqs) {
        const id = `${key}#${seq}`;
        seenSignals.set(id, (seenSignals.get(id) ?? 0) + 1);
        const sent = this.signals.get(id);
        if (!sent) {
          signal.unexpected += 1;
          add({ cls: 'signal', what: 'unexpected', detail: id, at: Date.now() });
        } else if (seq < last) {
          signal.outOfOrder += 1;
          add({
            cls: 'signal',
            what: 'out_of_order',
            detail: `${id} (answered ${sent.outcome ?? 'nothing'}, sent ${new Date(sent.sentAt).toISOString().slice(11, 23)}) after #${last}`,
            at: sent.sentAt,
          });
        }
        last = Math.max(last, seq);
      }
    }
    for (const [id, sent] of this.signals) {
      signal.sent += 1;
      const seen = seenSignals.get(id) ?? 0;
      if (sent.outcome === 'ack' || sent.outcome === 'queued') {
        signal.acked += 1;
        signal.expected += 1;
        if (seen > 0) signal.delivered += 1;
        else {
          signal.lost += 1;
          add({ cls: 'signal', what: 'lost', detail: `${id} (${sent.outcome})`, at: sent.sentAt });
        }
      }
      if (seen > 1) {
        signal.duplicated += 1;
        add({ cls: 'signal', what: 'duplicated', detail: `${id} ×${seen}`, at: sent.sentAt });
      }
    }

    const ephemeral = zero();
    for (const seq of this.ephemeralTop.values()) ephemeral.sent += seq + 1;
    for (const [key, seqs] of this.ephemeralSeen) {
      const [from, room] = key.split('\u0000');
      const sentUpTo = this.ephemeralTop.get(`${from}\u0000${room}`) ?? -1;
      const seen = new Set<number>();
      let last = -1;
      for (const seq of seqs) {
        ephemeral.delivered += 1;
        if (seq < 0 || seq > sentUpTo) {
          ephemeral.unexpected += 1;
          add({ cls: 'ephemeral', what: 'unexpected', detail: `${key.replaceAll('\u0000', '/')} #${seq}`, at: Date.now() });
        }
        if (seen.has(seq)) {
          ephemeral.duplicated += 1;
          add({ cls: 'ephemeral', what: 'duplicated', detail: `${key.replaceAll('\u0000', '/')} #${seq}`, at: Date.now() });
        } else if (seq < last) {
          ephemeral.outOfOrder += 1;
          add({ cls: 'ephemeral', what: 'out_of_order', detail: `${key.replaceAll('\u0000', '/')} #${seq} after #${last}`, at: Date.now() });
        }
        seen.add(seq);
        last = Math.max(last, seq);
      }
      // Droppable: what a receiver missed between its first and last one is counted, not failed.
      const first = Math.min(...seqs.filter((s) => s >= 0));
      if (Number.isFinite(first)) ephemeral.lost += Math.max(0, last - first + 1 - seen.size);
    }

    const byFault: Record<string, Record<string, number>> = {};
    for (const finding of findings) {
      const bucket = (byFault[finding.fault] ??= {});
      const key = `${finding.cls}.${finding.what}`;
      bucket[key] = (bucket[key] ?? 0) + 1;
    }
    return { classes: { chat, signal, ephemeral }, findings, byFault };
  }
}
