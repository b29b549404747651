/**
 * Pusher apps (docs/pusher.md): each app is a tenant of the node, reached
 * by its key on the WebSocket side (`/app/{key}`) and by its id on the HTTP
 * API (`/apps/{id}/...`), and signed with its secret. Configured with
 * `--pusher-apps` / `NERVE_PUSHER_APPS` (JSON text or the path of a JSON
 * file) and validated at start-up: a bad entry is a `ConfigError` naming it.
 */
import { readFileSync } from 'node:fs';
import { isValidTenantId } from '../../packages/protocol/src/ids.js';
import { ConfigError } from './errors.js';
import { integer } from './validate.js';

export interface PusherApp {
  /** The app id of the HTTP API paths (`/apps/{id}/events`). Required; 1-64 characters of A-Z a-z 0-9 . _ -. */
  id: string;
  /** The public key clients connect with (`/app/{key}`) and sign requests with. Required; same characters as `id`. */
  key: string;
  /** The HMAC-SHA256 secret of channel auth, user sign-in and HTTP API signatures. Required; at least 8 characters. */
  secret: string;
  /** The nerve tenant the app's channels live in (rooms of that tenant). Default: the app id. */
  tenant: string;
  /** A disabled app refuses connections (4003) and API calls (403). Default true. */
  enabled: boolean;
  /** Whether `client-*` events are relayed (Pusher's dashboard switch). Default false, as on Pusher. */
  enableClientMessages: boolean;
  /** Client events one connection may send per second before 4301 refusals. Default 10 (Pusher's limit). */
  maxClientEventsPerSecond: number;
  /** Open connections of the app on this node; 0 = no limit. Over it: close 4004. Default 0. */
  maxConnections: number;
  /** Seconds of silence after which the server pings (sent to clients as `activity_timeout`). Default 120. */
  activityTimeoutS: number;
  /** Largest event `data`, bytes (client events and HTTP API). Default 10240 (Pusher's 10 KB). */
  maxEventBytes: number;
  /** Members of one presence channel. Default 100 (Pusher's limit). */
  maxPresenceMembers: number;
  /** Largest `user_info` of a presence member, bytes. Default 1024 (Pusher's 1 KB). */
  maxPresenceInfoBytes: number;
  /**
   * Pusher-format webhooks (src/pusher/webhooks.ts): each URL gets the events
   * named in `events` (default: all of them), batched and signed, from the
   * `pusher-webhooks` worker. Default none: the node then emits no webhook events.
   */
  webhooks: PusherWebhookTarget[];
}

/** The webhook events nerve sends, as Pusher names them. */
export const PUSHER_WEBHOOK_EVENTS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'] as const;
export type PusherWebhookName = (typeof PUSHER_WEBHOOK_EVENTS)[number];

export interface PusherWebhookTarget {
  /** An http(s) URL. */
  url: string;
  /** Which events this URL gets. */
  events: PusherWebhookName[];
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ACCEPTED =
  'a JSON array of {id, key, secret, tenant?, enabled?, enableClientMessages?, maxClientEventsPerSecond?, maxConnections?, activityTimeoutS?, maxEventBytes?, maxPresenceMembers?, maxPresenceInfoBytes?, webhooks?}, or the path of a file holding one';

type Bounds = readonly [min: number, max: number, fallback: number];
const INTEGERS: Record<
  'maxClientEventsPerSecond' | 'maxConnections' | 'activityTimeoutS' | 'maxEventBytes' | 'maxPresenceMembers' | 'maxPresenceInfoBytes',
  Bounds
> = {
  maxClientEventsPerSecond: [1, 10_000, 10],
  maxConnections: [0, 10_000_000, 0],
  activityTimeoutS: [1, 3600, 120],
  maxEventBytes: [1, 1_048_576, 10_240],
  maxPresenceMembers: [1, 100_000, 100],
  maxPresenceInfoBytes: [2, 65_536, 1024],
};

/** Read `--pusher-apps` (JSON text, a file path, or an already parsed array) into validated apps. Throws ConfigError. */
export function normalizePusherApps(value: unknown): PusherApp[] {
  if (value === undefined || value === '') return [];
  let parsed: unknown = value;
  if (typeof value === 'string') {
    const text = value.trimStart().startsWith('[') ? value : readAppsFile(value);
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      throw new ConfigError('pusherApps', ACCEPTED, '<not JSON>');
    }
  }
  if (!Array.isArray(parsed)) throw new ConfigError('pusherApps', ACCEPTED, typeof parsed);
  const apps = parsed.map((item, index) => app(item, index));
  for (const field of ['id', 'key', 'tenant'] as const) {
    const seen = new Set<string>();
    for (const entry of apps) {
      // One tenant per app: channels of two apps must never meet in one room.
      if (seen.has(entry[field])) throw new ConfigError(`pusherApps`, `each app ${field} once`, entry[field]);
      seen.add(entry[field]);
    }
  }
  return apps;
}

function readAppsFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError('pusherApps', ACCEPTED, path);
  }
}

function app(item: unknown, index: number): PusherApp {
  const setting = `pusherApps[${index}]`;
  if (typeof item !== 'object' || item === null || Array.isArray(item))
    throw new ConfigError(setting, 'an object {id, key, secret, ...}', JSON.stringify(item));
  const raw = item as Record<string, unknown>;
  const id = typeof raw.id === 'number' ? String(raw.id) : raw.id;
  if (typeof id !== 'string' || !NAME.test(id)) throw new ConfigError(`${setting}.id`, '1-64 characters of A-Z a-z 0-9 . _ -', raw.id);
  if (typeof raw.key !== 'string' || !NAME.test(raw.key)) throw new ConfigError(`${setting}.key`, '1-64 characters of A-Z a-z 0-9 . _ -', raw.key);
  if (typeof raw.secret !== 'string' || raw.secret.length < 8) throw new ConfigError(`${setting}.secret`, 'a string of at least 8 characters', '<hidden>');
  const tenant = raw.tenant ?? id;
  if (!isValidTenantId(tenant)) throw new ConfigError(`${setting}.tenant`, 'a nerve tenant id (1-64 characters of A-Z a-z 0-9 . _ ~ -)', tenant);
  const flag = (name: string, fallback: boolean): boolean => {
    const value = raw[name] ?? fallback;
    if (typeof value !== 'boolean') throw new ConfigError(`${setting}.${name}`, 'true | false', value);
    return value;
  };
  const bounded = (name: keyof typeof INTEGERS): number => {
    const [min, max, fallback] = INTEGERS[name];
    return integer(`${setting}.${name}`, (raw[name] ?? fallback) as number, min, max);
  };
  const known = new Set(['id', 'key', 'secret', 'tenant', 'enabled', 'enableClientMessages', 'webhooks', ...Object.keys(INTEGERS)]);
  for (const name of Object.keys(raw)) {
    if (!known.has(name)) throw new ConfigError(`${setting}.${name}`, `one of ${[...known].join(', ')}`, name);
  }
  return {
    id,
    key: raw.key,
    secret: raw.secret,
    tenant,
    enabled: flag('enabled', true),
    enableClientMessages: flag('enableClientMessages', false),
    maxClientEventsPerSecond: bounded('maxClientEventsPerSecond'),
    maxConnections: bounded('maxConnections'),
    activityTimeoutS: bounded('activityTimeoutS'),
    maxEventBytes: bounded('maxEventBytes'),
    maxPresenceMembers: bounded('maxPresenceMembers'),
    maxPresenceInfoBytes: bounded('maxPresenceInfoBytes'),
    webhooks: webhookTargets(raw.webhooks ?? [], `${setting}.webhooks`),
  };
}

function webhookTargets(value: unknown, setting: string): PusherWebhookTarget[] {
  const accepted = `an array of {url: "http(s)://...", events?: [${PUSHER_WEBHOOK_EVENTS.join(' | ')}]}`;
  if (!Array.isArray(value)) throw new ConfigError(setting, accepted, JSON.stringify(value));
  return value.map((item: unknown, index) => {
    const target = typeof item === 'object' && item !== null ? (item as { url?: unknown; events?: unknown }) : {};
    let url: URL | undefined;
    try {
      url = typeof target.url === 'string' ? new URL(target.url) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ConfigError(`${setting}[${index}].url`, 'an http(s) URL', target.url);
    const events = target.events ?? [...PUSHER_WEBHOOK_EVENTS];
    if (!Array.isArray(events) || events.length === 0 || events.some((name) => !(PUSHER_WEBHOOK_EVENTS as readonly unknown[]).includes(name))) {
      throw new ConfigError(`${setting}[${index}].events`, `a non-empty array of ${PUSHER_WEBHOOK_EVENTS.join(' | ')}`, JSON.stringify(events));
    }
    return { url: url.href, events: events as PusherWebhookName[] };
  });
}
