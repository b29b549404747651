/**
 * How Pusher events and nerve room messages meet on a room channel
 * (docs/pusher.md, "How channels map onto rooms", has the table). The bus
 * carries nerve frames only, so a node that knows nothing of Pusher
 * delivers them as usual; the Pusher side translates what it receives, and
 * publishes a Pusher event as an ephemeral message `{event, data}`.
 */
import type { ChatMessage, EphemeralMessage, MemberJoinedFrame, MemberLeftFrame } from '../../packages/protocol/src/frames.js';
import type { MessageClass } from '../../packages/protocol/src/frames.js';
import { encodePusher, type ChannelKind } from './protocol.js';

/** The data of the nerve ephemeral message carrying a Pusher event. */
export interface PusherEventData {
  event: string;
  data: unknown;
}

/** A `member_joined` frame published by the Pusher side carries the member's `user_info` (JSON text) for other nodes' Pusher subscribers. */
export interface PusherMemberJoined extends MemberJoinedFrame {
  info?: string;
}

function isPusherEventData(data: unknown): data is PusherEventData {
  return typeof data === 'object' && data !== null && !Array.isArray(data) && typeof (data as { event?: unknown }).event === 'string';
}

/**
 * The Pusher frame for a nerve frame received on `channel`, or undefined
 * when Pusher subscribers get nothing of it (presence frames on a channel
 * that is not a presence channel; anything that does not parse).
 */
export function pusherFrameOf(channel: string, kind: ChannelKind, messageClass: MessageClass, payload: string): string | undefined {
  const translate = TRANSLATORS[messageClass];
  if (translate === undefined) return undefined;
  let frame: unknown;
  try {
    frame = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof frame !== 'object' || frame === null) return undefined;
  return translate(channel, kind, frame);
}

/** The Pusher frame for one parsed nerve frame of a class, or undefined. */
type Translator = (channel: string, kind: ChannelKind, frame: { op?: unknown }) => string | undefined;

// Keyed by class: the classes Pusher subscribers never see have no entry.
const TRANSLATORS: Readonly<Record<MessageClass, Translator | undefined>> = {
  presence: memberEvent,
  ephemeral: ephemeralEvent,
  chat: chatEvent,
  signal: undefined,
  lifecycle: undefined,
};

function memberEvent(channel: string, kind: ChannelKind, frame: { op?: unknown }): string | undefined {
  if (kind !== 'presence') return undefined;
  if (frame.op === 'member_joined') {
    const joined = frame as PusherMemberJoined;
    return encodePusher({
      event: 'pusher_internal:member_added',
      channel,
      data: JSON.stringify({ user_id: joined.user, user_info: parseInfo(joined.info) }),
    });
  }
  if (frame.op === 'member_left') {
    const left = frame as MemberLeftFrame;
    return encodePusher({ event: 'pusher_internal:member_removed', channel, data: JSON.stringify({ user_id: left.user }) });
  }
  return undefined;
}

function ephemeralEvent(channel: string, kind: ChannelKind, frame: { op?: unknown }): string | undefined {
  if (frame.op !== 'message') return undefined;
  const message = frame as EphemeralMessage;
  if (isPusherEventData(message.data)) {
    const withUser = kind === 'presence' && message.data.event.startsWith('client-');
    return encodePusher({ event: message.data.event, channel, data: message.data.data, ...(withUser ? { user_id: message.from } : {}) });
  }
  const data = { from: message.from, id: message.id, ts: message.ts, data: message.data, ...(message.key === undefined ? {} : { key: message.key }) };
  return encodePusher({ event: 'nerve-message', channel, data: JSON.stringify(data) });
}

/**
 * A chat message is `nerve-chat`; an entry of an edit, a delete or a
 * reaction is `nerve-chat-edit`, `nerve-chat-delete` or `nerve-chat-react`
 * with its `target`, so that a Pusher app bound to `nerve-chat` never shows
 * one as a new message.
 */
function chatEvent(channel: string, _kind: ChannelKind, frame: { op?: unknown }): string | undefined {
  if (frame.op !== 'message') return undefined;
  const message = frame as ChatMessage;
  const data = { from: message.from, id: message.id, ts: message.ts, offset: message.offset, epoch: message.epoch, data: message.data };
  if (message.action === undefined || message.target === undefined) return encodePusher({ event: 'nerve-chat', channel, data: JSON.stringify(data) });
  const target = { id: message.target.id, offset: message.target.offset };
  return encodePusher({ event: `nerve-chat-${message.action}`, channel, data: JSON.stringify({ ...data, target }) });
}

function parseInfo(info: string | undefined): unknown {
  if (info === undefined) return undefined;
  try {
    return JSON.parse(info) as unknown;
  } catch {
    return undefined;
  }
}
