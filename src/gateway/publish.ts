/**
 * From a request to the bus: room messages (members and the server API),
 * signals (with the mailbox when nobody holds the target), presence
 * announcements and control commands. Which lane, channel, store and echo
 * a message gets is read from its route (src/routing.ts). Nothing here
 * writes to a socket: every node delivers from the bus (delivery.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Bus, BusEnvelope } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import { chatEnvelope, controlEnvelope, deliverEnvelope, type ControlCommand } from '../bus/envelope.js';
import { errorText } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import { messageCreated, type EventSource } from '../events/events.js';
import type { ChatDraft, History, RoomRef } from '../history/history.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { NodeMetrics } from '../metrics.js';
import { storedSize, type TenantGuard } from '../quotas/guard.js';
import { channelOf, ROUTES } from '../routing.js';
import { SpanKind, type Tracing } from '../tracing/tracing.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError, isNerveError } from '../../packages/protocol/src/errors.js';
import type { MessageAction, MessageTarget } from '../../packages/protocol/src/actions.js';
import type { AckFrame, EphemeralMessage, MessageClass, PublishClass, SignalDelivery, SignalKind } from '../../packages/protocol/src/frames.js';

/** A message published into a room, by a member or by the server API (docs/api.md). */
export interface ServerPublish {
  tenant: string;
  room: string;
  class: PublishClass;
  data: unknown;
  /** Sender stamped as `from`: the member, or a user id chosen by the backend. */
  from: string;
  cmid?: string | undefined;
  key?: string | undefined;
  /** A connection (nerve or Pusher socket id) that must not receive an ephemeral message: Pusher's `socket_id` exclusion. */
  except?: string | undefined;
  /** W3C trace context of the caller (a frame's or an API request's `traceparent`), used only when tracing is on. */
  traceparent?: string | undefined;
  /** Chat only: an edit, delete or reaction entry of `target` (message-actions.ts checked both). */
  action?: MessageAction | undefined;
  target?: MessageTarget | undefined;
}

/** A direct signal the server API sends to a user. */
export interface ServerSignal {
  tenant: string;
  to: string;
  kind: SignalKind;
  data: unknown;
  from: string;
}

/** What a publish is answered with (the `ack` frame's fields; `offset`/`epoch` for a class kept in history). */
export type Published = Omit<AckFrame, 'op' | 'rid'>;

/** Where a signal went: some node holds the user, it waits in their mailbox, or neither. */
export type SignalOutcome = 'delivered' | 'queued' | 'offline';

export interface PublisherDeps {
  nodeId: string;
  bus: Bus;
  history: History;
  events: EventLog;
  /** Absent: signals to offline users get `offline`. */
  mailbox: Mailbox | undefined;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  tenants: TenantGuard | undefined;
  tracing: Tracing | undefined;
  /** The room's publish bucket on this node: 0 when allowed, else ms to wait. */
  takeRoomToken(channel: string): number;
  /** Where a room's events happen (tenant, room, node, session). */
  source(ref: RoomRef, channel: string): Promise<EventSource>;
  /** The bus failed: hand the envelope to this node's own listeners; false when none listens here. */
  deliverLocally(channel: string, envelope: BusEnvelope): boolean;
  /** Whether the node accepts new work (not draining). */
  running(): boolean;
}

/** A lane command that was sent but not answered (src/lane-errors.ts), as the answer to a publish or a signal. */
function outcomeUnknown(error: OutcomeUnknownError, what: string): NerveError {
  return new NerveError(ErrorCode.OutcomeUnknown, `${what} did not answer in time: the request may or may not have taken effect`, { cause: error });
}

export class Publisher {
  private readonly nodeId: string;

  constructor(private readonly deps: PublisherDeps) {
    this.nodeId = deps.nodeId;
  }

  /**
   * The server API's publish (docs/api.md): the same path as a member's
   * (per-room rate limit, history, cold-lane event), with a sender chosen
   * by the backend.
   */
  async serverPublish(input: ServerPublish): Promise<Published> {
    if (!this.deps.running()) throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    return this.publishInto(input, input.except);
  }

  /** Publish into a room, in a `nerve.publish` span when tracing is on; `exceptConn` is the sender's connection, if any. */
  publishInto(input: ServerPublish, exceptConn: string | undefined): Promise<Published> {
    const tracing = this.deps.tracing;
    if (!tracing) return this.publishRoom(input, exceptConn, undefined);
    const hop = { tenant: input.tenant, room: input.room, class: input.class };
    return tracing.around('nerve.publish', SpanKind.PRODUCER, input.traceparent, hop, (traceparent) => this.publishRoom(input, exceptConn, traceparent));
  }

  /** Stamp, store (a class kept in history) and publish one room message; `trace` is the publish span's context. */
  private async publishRoom(input: ServerPublish, exceptConn: string | undefined, trace: string | undefined): Promise<Published> {
    const route = ROUTES[input.class];
    const channel = channelOf(route, this.deps.namer, input.tenant, input.room);
    const retryAfterMs = this.deps.takeRoomToken(channel);
    if (retryAfterMs > 0) {
      this.deps.metrics.drops.inc({ reason: 'room_rate_limited' });
      throw new NerveError(ErrorCode.RateLimited, 'too many messages in this room', { retryAfterMs });
    }
    const kept = route.keep === 'history';
    const tenants = this.deps.tenants;
    // The data's JSON size counts for the stored-bytes quota; it is needed before the store, so measured on its own.
    const storedBytes = tenants && kept ? storedSize(input.data) : 0;
    if (tenants) {
      const admitted = tenants.publish(input.tenant, storedBytes);
      if (admitted) await admitted;
    }
    const id = randomUUID();
    const ts = Date.now();
    this.deps.metrics.messages.inc({ class: input.class });
    const except = route.echoToSender ? undefined : exceptConn;

    if (!kept) {
      // The route, not the type, decides the shape: a class published as is carries a conflation key when it is droppable.
      const message = { op: 'message', class: input.class, room: input.room, id, from: input.from, ts, data: input.data } as EphemeralMessage;
      if (route.droppable && input.key !== undefined) message.key = input.key;
      await this.busPublish(channel, input.class, encodeFrame(message), except, id, trace);
      return { id, ts };
    }

    // The cmid makes a stored message idempotent; the history publishes it with its offset.
    const draft = { op: 'message', class: input.class, room: input.room, id, from: input.from, ts, data: input.data } as ChatDraft;
    if (input.cmid !== undefined) draft.cmid = input.cmid;
    if (input.action !== undefined && input.target !== undefined) {
      draft.action = input.action;
      draft.target = { id: input.target.id, offset: input.target.offset };
    }
    const ref: RoomRef = { tenant: input.tenant, room: input.room };
    const { message, duplicate } = await this.append(ref, draft, channel, trace);
    if (tenants && !duplicate) tenants.stored(input.tenant, storedBytes);
    if (route.coldEvent !== null) {
      try {
        // The event id is the message id, so the event is emitted again for
        // a retried publish (duplicate) without consumers storing it twice:
        // a retry after `unavailable` is how the durable copy gets made.
        await this.deps.events.publish(
          messageCreated(
            { ...(await this.deps.source(ref, channel)), id: message.id, ts: message.ts },
            {
              messageId: message.id,
              from: message.from,
              offset: message.offset,
              epoch: message.epoch,
              sentAt: message.ts,
              body: message.data,
              ...(message.cmid === undefined ? {} : { cmid: message.cmid }),
              ...(message.action === undefined || message.target === undefined ? {} : { action: message.action, target: message.target }),
            },
          ),
          trace === undefined ? undefined : { traceparent: trace },
        );
      } catch (error) {
        // Stored and delivered, but the durable copy could not be queued:
        // tell the sender rather than acknowledge something we may lose.
        throw isNerveError(error) ? error : new NerveError(ErrorCode.Unavailable, 'event lane unavailable', { cause: error });
      }
    }
    return { id: message.id, ts: message.ts, offset: message.offset, epoch: message.epoch, ...(duplicate ? { duplicate: true } : {}) };
  }

  /** `History.append`, in its own span when traced; a command sent but not answered is `outcome_unknown` (stored or not: re-send with the same cmid). */
  private async append(ref: RoomRef, draft: ChatDraft, channel: string, trace: string | undefined): ReturnType<History['append']> {
    const { history, tracing } = this.deps;
    try {
      if (trace === undefined || !tracing) return await history.append(ref, draft, { channel, envelope: (stored) => chatEnvelope(stored, this.nodeId) });
      // The history write is its own hop; the envelope it publishes carries it as the parent of every node's delivery.
      return await tracing.around('nerve.history.append', SpanKind.INTERNAL, trace, { tenant: ref.tenant, room: ref.room, class: draft.class }, (traceparent) =>
        history.append(ref, draft, { channel, envelope: (stored) => chatEnvelope(stored, this.nodeId, traceparent) }),
      );
    } catch (error) {
      throw error instanceof OutcomeUnknownError ? outcomeUnknown(error, 'the history') : error;
    }
  }

  /**
   * A signal to a user, on their channel; when no node holds them, kept in
   * their mailbox. `sender`: the member's connection, whose `traceparent`
   * starts a `nerve.signal` hop; absent for the server API.
   */
  async sendSignal(tenant: string, to: string, delivery: SignalDelivery, sender?: { conn: string; traceparent: string | undefined }): Promise<SignalOutcome> {
    const route = ROUTES.signal;
    this.deps.metrics.messages.inc({ class: 'signal' });
    const channel = channelOf(route, this.deps.namer, tenant, to);
    const payload = encodeFrame(delivery);
    const except = route.echoToSender ? undefined : sender?.conn;
    const tracing = this.deps.tracing;
    const receivers =
      tracing && sender
        ? await tracing.around('nerve.signal', SpanKind.PRODUCER, sender.traceparent, { tenant, class: 'signal' }, (traceparent) =>
            this.busPublish(channel, 'signal', payload, except, delivery.id, traceparent),
          )
        : await this.busPublish(channel, 'signal', payload, except, delivery.id);
    if (receivers > 0) return 'delivered';
    if (await this.queueSignal(tenant, to, channel, payload)) return 'queued';
    this.deps.metrics.drops.inc({ reason: 'peer_offline' });
    return 'offline';
  }

  /**
   * A direct signal from the server API (docs/api.md): `delivered` (some
   * node had the user) or `queued` (kept in the mailbox); neither means the
   * user is offline.
   */
  async serverSignal(input: ServerSignal): Promise<{ id: string; ts: number; delivered: boolean; queued: boolean }> {
    if (!this.deps.running()) throw new NerveError(ErrorCode.Unavailable, 'node is shutting down');
    const admitted = this.deps.tenants?.signal(input.tenant);
    if (admitted) await admitted;
    const id = randomUUID();
    const ts = Date.now();
    const delivery: SignalDelivery = { op: 'signal', id, from: input.from, fromConn: 'server', kind: input.kind, data: input.data, ts };
    const outcome = await this.sendSignal(input.tenant, input.to, delivery);
    return { id, ts, delivered: outcome === 'delivered', queued: outcome === 'queued' };
  }

  /**
   * A signal reached no node: keep it in the target's mailbox if the target
   * was connected within the mailbox TTL. Then poke the user channel, so a
   * node that subscribed between our publish and the store takes it now.
   */
  private async queueSignal(tenant: string, user: string, channel: string, payload: string): Promise<boolean> {
    const mailbox = this.deps.mailbox;
    if (!mailbox) return false;
    let queued: boolean;
    try {
      const result = await mailbox.offer({ tenant, user }, payload);
      if (result.dropped > 0) this.deps.metrics.mailboxExpired.inc({ reason: 'overflow' }, result.dropped);
      queued = result.queued;
    } catch (error) {
      // Maybe queued: answering peer_offline would claim the signal is gone.
      if (error instanceof OutcomeUnknownError) throw outcomeUnknown(error, 'the signal mailbox');
      this.deps.log.warn({ err: errorText(error) }, 'signal mailbox unavailable');
      return false;
    }
    if (!queued) return false;
    this.deps.metrics.mailboxQueued.inc();
    await this.deps.bus.publish(channel, controlEnvelope(this.nodeId, { action: 'mailbox.pending' })).catch(() => 0);
    return true;
  }

  /** A command for every node holding `channel` (room end, user disconnect); resolves with how many nodes did. */
  async publishControl(channel: string, command: ControlCommand): Promise<number> {
    try {
      return await this.deps.bus.publish(channel, controlEnvelope(this.nodeId, command));
    } catch (error) {
      throw new NerveError(ErrorCode.BusUnavailable, 'cross-node bus unavailable', { cause: error });
    }
  }

  /** member_joined / member_left: best effort, a bus failure must not fail the join or leave. */
  async announce(channel: string, payload: string, except: string | undefined): Promise<void> {
    try {
      await this.busPublish(channel, 'presence', payload, except, randomUUID());
    } catch (error) {
      this.deps.log.warn({ err: errorText(error) }, 'presence event not published');
    }
  }

  /**
   * Publish on the bus. When the bus is down the envelope is still handed to
   * this node's own listeners (local delivery keeps working through a Redis
   * outage), and the sender is told `bus_unavailable`: it reached this node
   * only. A publish sent but not confirmed (OutcomeUnknownError) is
   * `outcome_unknown`, without the local copy. A class kept in history never
   * comes here: `History.append` publishes it.
   */
  private async busPublish(
    channel: string,
    messageClass: MessageClass,
    payload: string,
    except: string | undefined,
    id: string,
    trace?: string,
  ): Promise<number> {
    const started = performance.now();
    const envelope = deliverEnvelope(this.nodeId, messageClass, id, payload, except, trace);
    try {
      return await this.deps.bus.publish(channel, envelope);
    } catch (error) {
      throw this.busFailed(error, channel, envelope);
    } finally {
      this.deps.metrics.busPublishSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** The error a failed bus publish is answered with, after the local copy when one is due. */
  private busFailed(error: unknown, channel: string, envelope: BusEnvelope): NerveError {
    // The publish may have reached the broker, and then this node's own
    // subscription hands it back: no local copy (it would be a second one),
    // and no drop counted (it may not be one; the answer is counted by code).
    if (error instanceof OutcomeUnknownError) return outcomeUnknown(error, 'the cross-node bus');
    this.deps.metrics.drops.inc({ reason: 'bus_unavailable' });
    const local = this.deps.deliverLocally(channel, envelope);
    return new NerveError(ErrorCode.BusUnavailable, local ? 'cross-node bus unavailable: delivered on this node only' : 'cross-node bus unavailable', {
      cause: error,
    });
  }
}
