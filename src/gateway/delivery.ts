/**
 * From the bus to the sockets: every envelope the bus hands this node comes
 * here (`onBusMessage`), and local sockets are written only from here, so
 * every member of a room on every node sees the bus's one order, once.
 * Also the signal mailbox: taking it on connect, and on a `mailbox.pending` poke.
 */
import type { BusEnvelope } from '../bus/bus.js';
import { parseControl, type ControlCommand } from '../bus/envelope.js';
import { errorText } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { NodeMetrics } from '../metrics.js';
import type { TenantGuard } from '../quotas/guard.js';
import { ROUTES } from '../routing.js';
import { SpanKind, type Tracing } from '../tracing/tracing.js';
import { CloseCode } from '../../packages/protocol/src/codes.js';
import type { EphemeralMessage, MessageClass } from '../../packages/protocol/src/frames.js';
import { offsetStep } from '../../packages/protocol/src/positions.js';
import type { ChatRecovery } from './chat-recovery.js';
import { scanChatTail, tailEpoch } from './chat-gap.js';
import type { Connection } from './connection.js';
import type { ChannelTarget, LocalRooms } from './local-rooms.js';
import type { MemberPushes } from './member-pushes.js';
import { TextFrame } from './text-frame.js';

type Command<A extends ControlCommand['action']> = Extract<ControlCommand, { action: A }>;

export interface DeliveryDeps {
  nodeId: string;
  local: LocalRooms;
  /** Absent: signals to offline users are not kept. */
  mailbox: Mailbox | undefined;
  metrics: NodeMetrics;
  log: Logger;
  tenants: TenantGuard | undefined;
  tracing: Tracing | undefined;
  /** Live chat is checked against the room's delivered position first (gaps filled, duplicates skipped). */
  chat: Pick<ChatRecovery, 'admit'>;
  /** Member frames to a room go through it (counts instead of frames in large rooms). */
  members: Pick<MemberPushes, 'push'>;
  /** What the room and user commands do on this node. */
  control: {
    roomEnd(channel: string, command: Command<'room.end'>): void;
    userDisconnect(channel: string, command: Command<'user.disconnect'>): void;
  };
}

export class Delivery {
  private readonly local: LocalRooms;
  private readonly metrics: NodeMetrics;
  private readonly chat: Pick<ChatRecovery, 'admit'>;
  /**
   * Signals arriving live for a connection whose mailbox is being taken:
   * held, then sent after the mailbox's older signals, to keep the order
   * from each sender.
   */
  private readonly heldSignals = new Map<Connection, string[]>();

  constructor(private readonly deps: DeliveryDeps) {
    this.local = deps.local;
    this.metrics = deps.metrics;
    this.chat = deps.chat;
  }

  /** Deliver an envelope from the bus to the local connections listening on `channel`. */
  readonly onBusMessage = (channel: string, envelope: BusEnvelope): void => {
    if (envelope.type === 'control') {
      this.onControl(channel, envelope.payload);
      return;
    }
    if (envelope.type !== 'deliver') return;
    const target = this.local.get(channel);
    if (!target) {
      this.metrics.drops.inc({ reason: 'no_local_listener' });
      return;
    }
    // A class kept in the room log carries its offset: checked against the room's last delivered one.
    if (target.kind === 'room' && ROUTES[envelope.class].keep === 'history' && !this.chat.admit(channel, target, envelope.payload)) return;
    if (target.kind === 'room' && ROUTES[envelope.class].op === 'member') {
      this.deps.members.push(channel, target, envelope.payload, envelope.class, envelope.except, envelope.origin === this.deps.nodeId);
      return;
    }
    const tracing = this.deps.tracing;
    if (envelope.trace === undefined || !tracing) {
      this.fanOut(target, envelope.payload, envelope.class, envelope.except);
      return;
    }
    const hop = tracing.start('nerve.deliver', SpanKind.CONSUMER, envelope.trace, {
      tenant: target.tenant,
      ...(target.kind === 'room' ? { room: target.id } : { user: target.id }),
      class: envelope.class,
      node: this.deps.nodeId,
      listeners: target.connections.size,
    });
    try {
      this.fanOut(target, envelope.payload, envelope.class, envelope.except);
      hop.end();
    } catch (error) {
      hop.end(error);
      throw error;
    }
  };

  /**
   * Write one encoded frame to every local listener of a channel: the one
   * loop behind bus deliveries, chat recovered from history, and resync
   * notices. Framed once: the same bytes go to every socket. A connection
   * whose join (room) or mailbox take (user) is in flight gets it held, in
   * order, instead. With `conflate`, a recipient over its soft limit keeps
   * only the latest frame of that key (conflation.ts), whatever the class.
   */
  fanOut(target: ChannelTarget, payload: string, messageClass: MessageClass, except?: string, conflate?: string): void {
    const route = ROUTES[messageClass];
    const droppable = route.droppable || conflate !== undefined;
    const frame = TextFrame.of(payload);
    // Parsed only if some recipient is over its soft limit, and then once.
    let conflateKey: string | undefined | null = conflate ?? null;
    const keyOf = droppable
      ? (): string | undefined => {
          if (conflateKey === null) {
            const message = JSON.parse(payload) as Partial<EphemeralMessage>;
            conflateKey = message.key === undefined ? undefined : `${message.room}\u0000${message.from}\u0000${message.key}`;
          }
          return conflateKey;
        }
      : undefined;
    const room = target.kind === 'room';
    const right = room ? route.recipientRight : null;
    const ordered = room && route.keep === 'history';
    let position: { offset: number; epoch: string } | null | undefined;
    let sent = 0;
    for (const conn of target.connections) {
      if (conn.id === except) continue;
      if (right !== null && !conn.hasRight(target.id, right)) continue;
      const held = room ? conn.heldFor(target.id) : this.heldSignals.get(conn);
      if (held) {
        held.push(payload);
        continue;
      }
      if (ordered) {
        // A connection whose join answer may be ahead of this node's bus delivery skips what the answer carried.
        const floor = conn.chatFloor(target.id);
        if (floor !== undefined) {
          if (position === undefined) {
            const tail = scanChatTail(payload);
            position = tail ? { offset: tail.offset, epoch: tailEpoch(payload, tail) } : null;
          }
          if (position !== null && offsetStep(floor.offset, position.epoch === floor.epoch, position.offset) === 'seen') continue;
          conn.clearChatFloor(target.id);
        }
      }
      const outcome = conn.deliver(frame, droppable, keyOf);
      if (outcome === 'sent') sent += 1;
      else if (outcome === 'dropped') this.metrics.drops.inc({ reason: 'backpressure' });
      else if (outcome === 'slow') {
        this.metrics.drops.inc({ reason: 'slow_consumer' });
        conn.close(CloseCode.SlowConsumer, 'send buffer over limit');
      }
    }
    if (sent > 0) {
      this.metrics.deliveries.inc({ class: messageClass }, sent);
      this.metrics.framesOut.inc({ op: route.op }, sent);
      this.deps.tenants?.delivered(target.tenant, sent);
    }
  }

  /** Control commands on a channel this node listens on; malformed or unknown ones are ignored. */
  private onControl(channel: string, payload: string): void {
    const command = parseControl(payload);
    switch (command?.action) {
      case 'mailbox.pending': {
        const target = this.local.get(channel);
        if (target?.kind === 'user') void this.deliverMailbox(target.tenant, target.id, [...target.connections]);
        return;
      }
      case 'room.end':
        this.deps.control.roomEnd(channel, command);
        return;
      case 'user.disconnect':
        this.deps.control.userDisconnect(channel, command);
        return;
    }
  }

  /** Hold live signals for a connection until its first mailbox take is done (the handshake, before subscribing). */
  holdSignals(conn: Connection): void {
    if (this.deps.mailbox) this.heldSignals.set(conn, []);
  }

  /** The connection closed: nothing is held for it any more. */
  forget(conn: Connection): void {
    this.heldSignals.delete(conn);
  }

  /**
   * Take the user's pending signals (atomically: each goes to one node) and
   * write them, oldest first, to `conns`; then release the signals held for
   * those connections meanwhile. Failures are logged: signals are at most once.
   */
  async deliverMailbox(tenant: string, user: string, conns: Connection[], owned = new Set<Connection>()): Promise<void> {
    const mailbox = this.deps.mailbox;
    if (!mailbox) return;
    // Hold live signals for the connections not already held by another take.
    for (const conn of conns) {
      if (this.heldSignals.has(conn)) continue;
      this.heldSignals.set(conn, []);
      owned.add(conn);
    }
    try {
      const taken = await mailbox.take({ tenant, user });
      if (taken.expired > 0) this.metrics.mailboxExpired.inc({ reason: 'expired' }, taken.expired);
      for (const payload of taken.payloads) {
        let sent = 0;
        for (const conn of conns) {
          if (conn.state !== 'open') continue;
          sent += 1;
          // A connection held by another take gets it in order with that take's held signals.
          const other = owned.has(conn) ? undefined : this.heldSignals.get(conn);
          if (other) other.push(payload);
          else conn.afterSend(conn.deliver(payload, false), ROUTES.signal.op);
        }
        if (sent > 0) this.metrics.mailboxDelivered.inc();
        else this.metrics.drops.inc({ reason: 'mailbox_no_connection' });
      }
    } catch (error) {
      this.deps.log.warn({ err: errorText(error) }, 'mailbox not delivered');
    } finally {
      for (const conn of owned) {
        const pending = this.heldSignals.get(conn);
        if (!pending) continue;
        this.heldSignals.delete(conn);
        for (const payload of pending) if (conn.state === 'open') conn.afterSend(conn.deliver(payload, false), ROUTES.signal.op);
      }
    }
  }
}
