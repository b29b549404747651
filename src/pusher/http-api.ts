/**
 * Pusher's HTTP API (https://pusher.com/docs/channels/library_auth_reference/rest-api/),
 * under `/apps/{app_id}/`: trigger events and batches, query channels and
 * presence users cluster-wide, terminate a user's connections. Every
 * request is signed (signature.ts). Refusals answer as Pusher does: the
 * status and a text body saying why.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from '../../packages/protocol/src/nesting.js';
import type { Presence } from '../presence/presence.js';
import type { PusherApp } from '../config/pusher-apps.js';
import type { PusherEvents } from './events.js';
import { MAX_EVENT_NAME, channelKind, isValidChannelName } from './protocol.js';
import { verifyRequest } from './signature.js';
import type { PusherStore } from './store.js';

export interface PusherHttpDeps {
  apps: readonly PusherApp[];
  pusher: Pick<PusherEvents, 'publish' | 'terminate'>;
  presence: Presence;
  store: PusherStore;
  /** Counts each refusal (`nerve_errors_total{code="pusher_http_<status>"}`). */
  onError: (code: string) => void;
  now?: () => number;
}

/** Largest request body, bytes: a batch of 10 events at the largest event size, plus their envelopes. */
const MAX_BODY_BYTES = 1_048_576;
/** Channels one `events` call may name (Pusher: 100). */
const MAX_CHANNELS = 100;
/** Events one `batch_events` call may hold (Pusher: 10). */
const MAX_BATCH = 10;
const SOCKET_ID = /^\d+\.\d+$/;
const INFO_ATTRIBUTES: ReadonlySet<string> = new Set(['user_count', 'subscription_count']);

class Refusal extends Error {
  override readonly name = 'PusherHttpRefusal';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Route =
  | { name: 'events' | 'batch_events' | 'channels'; method: 'POST' | 'GET' }
  | { name: 'channel' | 'users'; method: 'GET'; channel: string }
  | { name: 'terminate'; method: 'POST'; user: string };

function routeOf(rest: string[]): Route | undefined {
  const [first, second, third] = rest;
  const decode = (text: string): string | undefined => {
    try {
      return decodeURIComponent(text);
    } catch {
      return undefined;
    }
  };
  if (rest.length === 1 && first === 'events') return { name: 'events', method: 'POST' };
  if (rest.length === 1 && first === 'batch_events') return { name: 'batch_events', method: 'POST' };
  if (rest.length === 1 && first === 'channels') return { name: 'channels', method: 'GET' };
  if (first === 'channels' && second !== undefined && (rest.length === 2 || (rest.length === 3 && third === 'users'))) {
    const channel = decode(second);
    if (channel === undefined) return undefined;
    return rest.length === 2 ? { name: 'channel', method: 'GET', channel } : { name: 'users', method: 'GET', channel };
  }
  if (rest.length === 3 && first === 'users' && second !== undefined && third === 'terminate_connections') {
    const user = decode(second);
    if (user === undefined) return undefined;
    return { name: 'terminate', method: 'POST', user };
  }
  return undefined;
}

/** Answer a request under `/apps/`; false for any other path. */
export async function handlePusherHttp(deps: PusherHttpDeps, request: IncomingMessage, response: ServerResponse, url: URL): Promise<boolean> {
  if (!url.pathname.startsWith('/apps/')) return false;
  // The signature covers the path as sent, not as decoded.
  const rawPath = (request.url ?? '/').split('?')[0] ?? '/';
  const text = (status: number, body: string) => {
    response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) + 1, 'cache-control': 'no-store' });
    response.end(`${body}\n`);
  };
  try {
    const [, , appId, ...rest] = rawPath.split('/');
    const app = deps.apps.find((candidate) => candidate.id === appId);
    if (!app) throw new Refusal(404, `Unknown app ${String(appId).slice(0, 64)}`);
    const route = routeOf(rest);
    if (!route)
      throw new Refusal(
        404,
        'Not found: the Pusher HTTP API has events, batch_events, channels, channels/{name}, channels/{name}/users and users/{id}/terminate_connections',
      );
    if (request.method !== route.method) {
      response.setHeader('allow', route.method);
      throw new Refusal(405, `Method not allowed: use ${route.method}`);
    }
    const body = route.method === 'POST' ? await readBody(request) : Buffer.alloc(0);
    const refused = verifyRequest(app, route.method, rawPath, url.searchParams, body, (deps.now ?? Date.now)());
    if (refused) throw new Refusal(refused.status, refused.message);
    if (!app.enabled) throw new Refusal(403, 'Application disabled');
    const answer = await serve(deps, app, route, url.searchParams, body);
    const json = JSON.stringify(answer);
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), 'cache-control': 'no-store' });
    response.end(json);
  } catch (error) {
    if (error instanceof Refusal) {
      deps.onError(`pusher_http_${error.status}`);
      text(error.status, error.message);
    } else if (isNerveError(error) && error.code === ErrorCode.QuotaExceeded) {
      // Pusher's word for a message quota: 403.
      deps.onError('pusher_http_403');
      text(403, 'Forbidden: over the message quota of this app (its nerve tenant)');
    } else if (isNerveError(error) && error.code === ErrorCode.RateLimited) {
      deps.onError('pusher_http_429');
      text(429, 'Too many messages in this channel; retry later');
    } else if (
      isNerveError(error) &&
      (error.code === ErrorCode.BusUnavailable || error.code === ErrorCode.Unavailable || error.code === ErrorCode.OutcomeUnknown)
    ) {
      deps.onError('pusher_http_503');
      text(
        503,
        error.code === ErrorCode.OutcomeUnknown
          ? 'Outcome unknown: the event may or may not have been delivered'
          : 'Service unavailable: the cross-node bus is down',
      );
    } else {
      deps.onError('pusher_http_500');
      text(500, 'Internal error');
    }
  }
  return true;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new Refusal(413, `Payload too large: at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Refusal(413, `Payload too large: at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseBody(body: Buffer): Record<string, unknown> {
  const text = body.toString('utf8');
  // The bound of nerve's own API bodies and frames: nothing here is encoded again today, but a body that deep is no
  // Pusher request, and refusing it before JSON.parse keeps any later encoding safe.
  if (nestsDeeperThan(text)) throw new Refusal(400, `Bad request: the body nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Refusal(400, 'Bad request: the body must be JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Refusal(400, 'Bad request: the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function infoAttributes(value: unknown): Set<string> {
  if (value === undefined || value === null || value === '') return new Set();
  if (typeof value !== 'string') throw new Refusal(400, 'Bad request: info is a comma-separated list');
  const attributes = new Set(
    value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== ''),
  );
  for (const attribute of attributes) {
    if (!INFO_ATTRIBUTES.has(attribute))
      throw new Refusal(400, `Bad request: unknown info attribute ${attribute.slice(0, 64)} (user_count, subscription_count)`);
  }
  return attributes;
}

/** One event of `events` or `batch_events`, checked. */
interface EventRequest {
  name: string;
  data: string;
  channels: string[];
  socketId?: string;
  info: Set<string>;
}

function eventRequest(app: PusherApp, raw: Record<string, unknown>, batch: boolean): EventRequest {
  const { name, data } = raw;
  if (typeof name !== 'string' || name === '' || name.length > MAX_EVENT_NAME)
    throw new Refusal(400, `Bad request: name must be a string of 1-${MAX_EVENT_NAME} characters`);
  if (typeof data !== 'string') throw new Refusal(400, 'Bad request: data must be a string (JSON-encode it)');
  if (Buffer.byteLength(data) > app.maxEventBytes) throw new Refusal(413, `Payload too large: event data is over ${app.maxEventBytes} bytes`);
  let channels: unknown;
  if (batch) channels = [raw.channel];
  else channels = raw.channels ?? (raw.channel === undefined ? undefined : [raw.channel]);
  if (!Array.isArray(channels) || channels.length === 0)
    throw new Refusal(400, batch ? 'Bad request: each batch event needs a channel' : 'Bad request: channels must be a non-empty array');
  if (channels.length > MAX_CHANNELS) throw new Refusal(400, `Bad request: at most ${MAX_CHANNELS} channels per event`);
  for (const channel of channels) {
    if (!isValidChannelName(channel)) throw new Refusal(400, 'Bad request: channel names are 1-164 characters of A-Z a-z 0-9 _ - = @ , . ;');
  }
  const socketId = raw.socket_id;
  if (socketId !== undefined && (typeof socketId !== 'string' || !SOCKET_ID.test(socketId)))
    throw new Refusal(400, 'Bad request: socket_id must look like 1234.5678');
  const info = infoAttributes(raw.info);
  const names = channels as string[];
  if (info.has('user_count') && names.some((channel) => channelKind(channel) !== 'presence')) {
    throw new Refusal(400, 'Bad request: info user_count is only for presence channels');
  }
  return { name, data, channels: names, info, ...(socketId === undefined ? {} : { socketId }) };
}

async function serve(deps: PusherHttpDeps, app: PusherApp, route: Route, query: URLSearchParams, body: Buffer): Promise<unknown> {
  switch (route.name) {
    case 'events': {
      const event = eventRequest(app, parseBody(body), false);
      await trigger(deps, app, event);
      if (event.info.size === 0) return {};
      return { channels: await channelInfos(deps, app, event.channels, event.info) };
    }
    case 'batch_events': {
      const raw = parseBody(body).batch;
      if (!Array.isArray(raw) || raw.length === 0) throw new Refusal(400, 'Bad request: batch must be a non-empty array');
      if (raw.length > MAX_BATCH) throw new Refusal(400, `Batch too large: at most ${MAX_BATCH} events`);
      const events = raw.map((item: unknown) => {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new Refusal(400, 'Bad request: each batch event is an object');
        return eventRequest(app, item as Record<string, unknown>, true);
      });
      // All checked before any is sent: a refused batch sends nothing. One event after another (each to its
      // channels at once), so a batch's events to one channel arrive in the batch's order.
      for (const event of events) await trigger(deps, app, event);
      if (events.every((event) => event.info.size === 0)) return {};
      const infos = await Promise.all(
        events.map(async (event) => (event.info.size === 0 ? {} : ((await channelInfos(deps, app, event.channels, event.info))[event.channels[0]!] ?? {}))),
      );
      return { batch: infos };
    }
    case 'channels': {
      const prefix = query.get('filter_by_prefix') ?? '';
      const info = infoAttributes(query.get('info') ?? undefined);
      if (info.has('user_count') && !prefix.startsWith('presence-')) throw new Refusal(400, 'Bad request: info user_count needs filter_by_prefix=presence-');
      const counts = await deps.store.counts(app.tenant);
      const names = [...counts.keys()].filter((name) => name.startsWith(prefix)).sort();
      const channels: Record<string, Record<string, number>> = {};
      const users = info.has('user_count') ? await Promise.all(names.map((name) => userCount(deps, app, name))) : [];
      names.forEach((name, index) => {
        const entry: Record<string, number> = {};
        if (info.has('user_count')) entry.user_count = users[index] ?? 0;
        if (info.has('subscription_count')) entry.subscription_count = counts.get(name) ?? 0;
        channels[name] = entry;
      });
      return { channels };
    }
    case 'channel': {
      if (!isValidChannelName(route.channel)) throw new Refusal(400, 'Bad request: invalid channel name');
      const info = infoAttributes(query.get('info') ?? undefined);
      const presence = channelKind(route.channel) === 'presence';
      if (info.has('user_count') && !presence) throw new Refusal(400, 'Bad request: info user_count is only for presence channels');
      const subscriptions = (await deps.store.counts(app.tenant)).get(route.channel) ?? 0;
      const users = presence ? await userCount(deps, app, route.channel) : 0;
      return {
        occupied: subscriptions > 0 || users > 0,
        ...(info.has('user_count') ? { user_count: users } : {}),
        ...(info.has('subscription_count') ? { subscription_count: subscriptions } : {}),
      };
    }
    case 'users': {
      if (!isValidChannelName(route.channel) || channelKind(route.channel) !== 'presence')
        throw new Refusal(400, 'Bad request: users are listed for presence channels only');
      const members = await deps.presence.members({ tenant: app.tenant, room: route.channel });
      return { users: members.map((member) => ({ id: member.user })) };
    }
    case 'terminate': {
      if (route.user === '' || route.user.length > 128) throw new Refusal(400, 'Bad request: user ids are 1-128 characters');
      await deps.pusher.terminate(app, route.user).catch((error: unknown) => {
        throw isNerveError(error) ? error : new Refusal(503, 'Service unavailable: the cross-node bus is down');
      });
      return {};
    }
  }
}

/**
 * Publish one event to each of its channels (up to 100), all at once: the
 * channels are independent rooms, so one slow publish need not hold the
 * others. Every channel is tried; when some fail, the answer is the first
 * failing channel's in the request's order (its status, as Pusher documents),
 * the same whichever publish settled first.
 */
async function trigger(deps: PusherHttpDeps, app: PusherApp, event: EventRequest): Promise<void> {
  const outcomes = await Promise.allSettled(
    event.channels.map((channel) => deps.pusher.publish(app, channel, event.name, event.data, 'server', event.socketId)),
  );
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) throw failed.reason;
}

async function userCount(deps: PusherHttpDeps, app: PusherApp, channel: string): Promise<number> {
  return (await deps.presence.members({ tenant: app.tenant, room: channel })).length;
}

async function channelInfos(deps: PusherHttpDeps, app: PusherApp, channels: string[], info: Set<string>): Promise<Record<string, Record<string, number>>> {
  // The counts and every channel's presence members are asked for at once, not one round trip after another.
  const [counts, users] = await Promise.all([
    info.has('subscription_count') ? deps.store.counts(app.tenant) : new Map<string, number>(),
    info.has('user_count') ? Promise.all(channels.map((channel) => userCount(deps, app, channel))) : [],
  ]);
  const result: Record<string, Record<string, number>> = {};
  channels.forEach((channel, index) => {
    const entry: Record<string, number> = {};
    if (info.has('user_count')) entry.user_count = users[index] ?? 0;
    if (info.has('subscription_count')) entry.subscription_count = counts.get(channel) ?? 0;
    result[channel] = entry;
  });
  return result;
}
