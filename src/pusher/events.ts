/**
 * Events on the Pusher side: bus envelopes translated (translate.ts) and
 * written to this node's subscribers, client events and HTTP API events
 * published as ephemeral room messages, `nerve:resume` answered from the
 * chat history, and `terminate_connections` sent on a user's channel.
 */
import type { BusEnvelope } from '../bus/bus.js';
import { controlEnvelope, parseControl } from '../bus/envelope.js';
import { errorText } from '../errors.js';
import { TextFrame } from '../gateway/text-frame.js';
import type { RecoveryResult } from '../history/history.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import type { PusherApp } from '../config/pusher-apps.js';
import type { LocalChannel, PusherChannels } from './channels.js';
import { answerInvalid, reportFact, type PusherDeps } from './context.js';
import { CACHE_TTL_MS, MAX_EVENT_NAME, PusherCode, encodePusher, errorFrame, isCacheChannel } from './protocol.js';
import type { PusherSocket } from './socket.js';
import { pusherFrameOf } from './translate.js';

/** nerve's extension events (docs/pusher.md, "Extensions"): the client asks for missed chat, the server says it is done. */
export const RESUME = 'nerve:resume';
const RESUMED = 'nerve:resumed';

export class PusherEvents {
  /** The same maps as PusherChannels', read once per envelope. */
  private readonly channels: ReadonlyMap<string, LocalChannel>;
  private readonly users: ReadonlyMap<string, Set<PusherSocket>>;

  constructor(
    private readonly deps: PusherDeps,
    private readonly membership: PusherChannels,
  ) {
    this.channels = membership.channels;
    this.users = membership.users;
  }

  /** Deliver an envelope to this node's Pusher subscribers; false when none listens on the channel. */
  onBusMessage(channel: string, envelope: BusEnvelope): boolean {
    if (envelope.type === 'control') {
      const sockets = this.users.get(channel);
      if (!sockets) return this.channels.has(channel);
      // On a signed-in user's channel: close that user's Pusher connections (HTTP API `terminate_connections`).
      if (parseControl(envelope.payload)?.action === 'pusher.terminate') {
        for (const socket of [...sockets]) {
          socket.send(errorFrame(PusherCode.Unauthorized, 'connection terminated by the server'));
          socket.close(PusherCode.Unauthorized, 'terminated');
        }
      }
      return true;
    }
    const target = this.channels.get(channel);
    if (!target) return false;
    if (envelope.type !== 'deliver') return true;
    const text = pusherFrameOf(target.name, target.kind, envelope.class, envelope.payload);
    if (text === undefined) return true;
    // Encoded and framed once for every subscriber (the nerve gateway's fanOut does the same), not once per socket by ws.
    const frame = new TextFrame(Buffer.from(text));
    const hardLimit = this.deps.options.limits.sendBufferHardBytes;
    let sent = 0;
    for (const socket of target.sockets) {
      if (socket.id === envelope.except) continue;
      const sub = socket.subscriptions.get(target.name);
      if (!sub) continue;
      if (sub.held) {
        sub.held.push(frame);
        continue;
      }
      if (socket.ws.bufferedAmount > hardLimit) {
        this.deps.metrics.drops.inc({ reason: 'slow_consumer' });
        socket.send(errorFrame(null, 'send buffer over limit'));
        socket.close(PusherCode.OverCapacity, 'over capacity: the client reads too slowly');
        continue;
      }
      socket.send(frame);
      sent += 1;
    }
    if (sent > 0) {
      this.deps.metrics.deliveries.inc({ class: envelope.class }, sent);
      this.deps.tenants?.delivered(target.app.tenant, sent);
    }
    return true;
  }

  /**
   * Publish one Pusher event into a channel (client events and the HTTP
   * API): kept first when the channel is a cache channel, then sent as an
   * ephemeral room message through the nerve gateway. Throws its NerveError.
   */
  async publish(app: PusherApp, channel: string, event: string, data: unknown, from: string, except: string | undefined): Promise<void> {
    if (isCacheChannel(channel)) {
      // What a subscriber gets on subscribe: the event as any subscriber received it (no user_id: the sender is long gone).
      await this.deps.store
        .setCached(app.tenant, channel, encodePusher({ event, channel, data }))
        .catch((error: unknown) => this.deps.log.warn({ err: errorText(error), ttlMs: CACHE_TTL_MS }, 'cache channel event not kept'));
    }
    await this.deps.gateway.serverPublish({ tenant: app.tenant, room: channel, class: 'ephemeral', data: { event, data }, from, except });
  }

  /** Close every Pusher connection of a signed-in user, on every node (HTTP API). Resolves with how many nodes had some. */
  async terminate(app: PusherApp, user: string): Promise<number> {
    const envelope = controlEnvelope(this.deps.options.nodeId, { action: 'pusher.terminate' });
    return this.deps.bus.publish(this.membership.userChannel(app, user), envelope);
  }

  async clientEvent(socket: PusherSocket, event: string, channel: unknown, data: unknown): Promise<void> {
    const app = socket.app;
    if (!app.enableClientMessages) return answerInvalid(this.deps, socket, 'client events are not enabled for this app');
    if (typeof channel !== 'string') return answerInvalid(this.deps, socket, 'a client event needs a channel');
    const sub = socket.subscriptions.get(channel);
    if (!sub || sub.held) return answerInvalid(this.deps, socket, `client event on ${channel.slice(0, 64)} before its subscription succeeded`);
    if (sub.kind !== 'private' && sub.kind !== 'presence') return answerInvalid(this.deps, socket, 'client events go on private- and presence- channels only');
    if (event.length > MAX_EVENT_NAME) return answerInvalid(this.deps, socket, `event names are at most ${MAX_EVENT_NAME} characters`);
    if (Buffer.byteLength(JSON.stringify(data ?? null)) > app.maxEventBytes)
      return answerInvalid(this.deps, socket, `event data is over ${app.maxEventBytes} bytes`);
    if (socket.clientEvents.take() > 0) {
      this.deps.metrics.drops.inc({ reason: 'pusher_client_event_rate' });
      return answerInvalid(this.deps, socket, `over ${app.maxClientEventsPerSecond} client events per second`, PusherCode.ClientEventRateLimited);
    }
    const from = sub.user ?? socket.user ?? socket.id;
    try {
      await this.publish(app, channel, event, data, from, socket.id);
    } catch (error) {
      const code = isNerveError(error) ? error.code : undefined;
      if (code === ErrorCode.RateLimited) return answerInvalid(this.deps, socket, 'too many messages in this channel', PusherCode.ClientEventRateLimited);
      if (code === ErrorCode.QuotaExceeded) return answerInvalid(this.deps, socket, 'over the message quota of this app');
      // bus_unavailable, unavailable, outcome_unknown: said as is, the client may send it again.
      return answerInvalid(this.deps, socket, `event not delivered (${code ?? 'internal'})`);
    }
    reportFact(this.deps, {
      type: 'client_event',
      app,
      channel,
      event,
      data,
      socketId: socket.id,
      ...(sub.kind === 'presence' && sub.user !== undefined ? { userId: sub.user } : {}),
    });
  }

  /**
   * `nerve:resume` (docs/pusher.md, "Extensions"): the `nerve-chat` events
   * (and `nerve-chat-edit`, `-delete`, `-react` for the entries, pusherFrameOf
   * names them) of a subscribed channel after `{epoch, offset}`, from the history, then
   * `nerve:resumed` with whether they are exactly the missed ones. Live
   * events keep flowing meanwhile, so the client drops offsets it has.
   */
  async resume(socket: PusherSocket, data: Record<string, unknown>): Promise<void> {
    const { channel, epoch, offset } = data;
    if (typeof channel !== 'string') return answerInvalid(this.deps, socket, 'nerve:resume needs a channel');
    const sub = socket.subscriptions.get(channel);
    if (!sub || sub.held) return answerInvalid(this.deps, socket, `nerve:resume on ${channel.slice(0, 64)} before its subscription succeeded`);
    if (typeof epoch !== 'string' || epoch.length < 1 || epoch.length > 64)
      return answerInvalid(this.deps, socket, 'nerve:resume epoch must be a string of 1-64 characters');
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
      return answerInvalid(this.deps, socket, 'nerve:resume offset must be an integer from 0 to 2^53-1');
    let read: RecoveryResult;
    try {
      read = await this.deps.history.since({ tenant: socket.app.tenant, room: channel }, { epoch, offset }, this.deps.options.limits.recoveryLimit);
    } catch (error) {
      socket.log.warn({ err: errorText(error), channel }, 'history unavailable for nerve:resume');
      return answerInvalid(this.deps, socket, 'history unavailable: nerve:resume not answered; retry');
    }
    for (const message of read.messages) {
      const text = pusherFrameOf(channel, sub.kind, 'chat', encodeFrame(message));
      if (text !== undefined) socket.send(text);
    }
    if (read.messages.length > 0) this.deps.tenants?.delivered(socket.app.tenant, read.messages.length);
    socket.event(RESUMED, JSON.stringify({ recovered: read.recovered, count: read.messages.length, position: read.position }), channel);
  }
}
