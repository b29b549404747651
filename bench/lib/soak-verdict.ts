/**
 * The soak's verdict per message class, from what SoakChecker recorded
 * (soak-checker.ts has the rules in its header): chat findings per
 * membership segment, signal and ephemeral counts. Pure functions over the
 * records, apart from the checker that gathers them while the soak runs.
 */
import type { StreamPosition } from '../../packages/protocol/src/frames.js';

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

export interface ChatSent {
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

export interface Segment {
  recipient: string;
  room: string;
  /** Undefined until the join is answered. */
  start: StreamPosition | undefined;
  startAt: number;
  end?: StreamPosition;
  received: Array<{ cmid: string | undefined; id: string; offset: number; epoch: string; at: number; resync: boolean }>;
}

export interface SignalSent {
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

/** Takes one finding; the checker stamps the fault window it falls in. */
export type Report = (finding: Omit<Finding, 'fault'>) => void;

/** Chat: lost, duplicated, out-of-order, gap and unexpected deliveries, per membership segment. */
export function chatVerdict(chatSent: ReadonlyMap<string, ChatSent>, segments: readonly Segment[], report: Report): ClassCounts {
  const chat = zero();
  const findings: Array<Omit<Finding, 'fault'>> = [];
  const add: Report = (finding) => {
    findings.push(finding);
    report(finding);
  };

  for (const [cmid, entry] of chatSent) {
    chat.sent += 1;
    if (entry.ack) chat.acked += 1;
    if (entry.ackMismatch) add({ cls: 'chat', what: 'ack_mismatch', detail: `${cmid}: ${entry.ackMismatch}`, at: entry.sentAt });
  }
  // Acked chat per room, in offset order.
  const ackedByRoom = new Map<string, Array<[string, ChatSent]>>();
  for (const [cmid, entry] of chatSent) {
    if (!entry.ack) continue;
    let list = ackedByRoom.get(entry.room);
    if (!list) ackedByRoom.set(entry.room, (list = []));
    list.push([cmid, entry]);
  }
  for (const segment of segments) {
    if (!segment.start) continue;
    const start: StreamPosition = segment.start;
    const who = `${segment.recipient}/${segment.room}`;
    const counts = new Map<string, number>();
    for (const message of segment.received) {
      const cmid = message.cmid ?? `(no cmid) ${message.id}`;
      counts.set(cmid, (counts.get(cmid) ?? 0) + 1);
      const sent = chatSent.get(cmid);
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
      if (count > 1) add({ cls: 'chat', what: 'duplicated', detail: `${who}: ${cmid} ×${count}`, at: chatSent.get(cmid)?.sentAt ?? segment.startAt });
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
          at: chatSent.get(message.cmid ?? '')?.sentAt ?? message.at,
        });
      } else if (message.offset !== previous.offset + 1) {
        add({
          cls: 'chat',
          what: 'gap',
          detail: `${who}: ${message.offset} after ${previous.offset}`,
          at: chatSent.get(message.cmid ?? '')?.sentAt ?? message.at,
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
  return chat;
}

/** Signals (at most once): lost ones counted, duplicated, reordered and unexpected ones reported. */
export function signalVerdict(signals: ReadonlyMap<string, SignalSent>, seenSeqs: ReadonlyMap<string, number[]>, add: Report): ClassCounts {
  const signal = zero();
  const seenSignals = new Map<string, number>();
  for (const [key, seqs] of seenSeqs) {
    let last = -1;
    for (const seq of seqs) {
      const id = `${key}#${seq}`;
      seenSignals.set(id, (seenSignals.get(id) ?? 0) + 1);
      const sent = signals.get(id);
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
  for (const [id, sent] of signals) {
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
  return signal;
}

/** Ephemerals (droppable): what a receiver missed is counted; duplicates, reordering and unknown ones reported. */
export function ephemeralVerdict(top: ReadonlyMap<string, number>, seenSeqs: ReadonlyMap<string, number[]>, add: Report): ClassCounts {
  const ephemeral = zero();
  for (const seq of top.values()) ephemeral.sent += seq + 1;
  for (const [key, seqs] of seenSeqs) {
    const [from, room] = key.split('\u0000');
    const sentUpTo = top.get(`${from}\u0000${room}`) ?? -1;
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
  return ephemeral;
}
