/**
 * The server HTTP API for backends (`/api/...`; docs/api.md lists every
 * route and its scope), authenticated by scoped bearer API keys
 * (src/auth/api-keys.ts). Every answer is JSON; every refusal is a status
 * with `{code, message}`, counted (`nerve_errors_total{code="http_<code>"}`)
 * and logged as one line. The tenant routes are in api-tenants.ts.
 */
import type { IncomingMessage } from 'node:http';
import type pg from 'pg';
import { API_SCOPES, ApiKeyring, isOperatorKey, type ApiKey, type ApiScope } from '../auth/api-keys.js';
import { mintJoinToken } from '../auth/jwt.js';
import { turnCredential } from '../auth/turn.js';
import { errorText } from '../errors.js';
import type { History } from '../history/history.js';
import type { Logger } from '../logger.js';
import { clip } from '../logger.js';
import type { NodeOptions } from '../config/options.js';
import type { Presence } from '../presence/presence.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { HISTORY_PAGE_LIMITS } from '../../packages/protocol/src/frames.js';
import { isValidRoomId, isValidTenantId, isValidUserId } from '../../packages/protocol/src/ids.js';
import { readUnread } from '../postgres/read-positions.js';
import { InvalidCursorError, readStoredMessages } from '../postgres/stored-messages.js';
import { deleteQuotas, getQuotas, liveUsage, listQuotas, putQuotas, usage, type TenancyApi } from './api-tenants.js';
import type { ServerOperations } from './gateway-port.js';
import { ApiError, apiErrorOf, endRoomBody, joinTokenBody, publishBody, readJson, retryAfterHeaders, signalBody, turnBody, validate } from './api-body.js';

export interface ApiDeps {
  /** Keys and their scopes: `apiKeys`, plus `apiKey` with every scope. */
  keyring: ApiKeyring;
  pool: pg.Pool | undefined;
  schema: string;
  defaultTenant: string;
  /** Server actions (publish, signal, end a room); late-bound in tests. */
  gateway: Pick<ServerOperations, 'serverPublish' | 'serverSignal' | 'endRoom'>;
  history: Pick<History, 'recent' | 'page'>;
  presence: Pick<Presence, 'members'>;
  /** Tenant quotas and usage (src/tenancy.ts); the quota and usage routes answer 501 without. */
  tenancy?: TenancyApi | undefined;
  options: Pick<
    NodeOptions,
    'authSecret' | 'authIssuer' | 'authAudience' | 'joinTokenTtlSeconds' | 'turnSecret' | 'turnUrls' | 'turnTtlSeconds' | 'limits' | 'quotaRefreshMs'
  >;
  log: Logger;
  /** Counts refusals by code. */
  onError: (code: string) => void;
}

type Json = (status: number, body: unknown, headers?: Record<string, string>) => void;

/** Build the keyring from `apiKey` (every scope) and `apiKeys`. */
export function apiKeyring(options: Pick<NodeOptions, 'apiKey' | 'apiKeys'>): ApiKeyring {
  return new ApiKeyring([...(options.apiKey ? [{ key: options.apiKey, scopes: [...API_SCOPES], name: 'api-key' }] : []), ...options.apiKeys]);
}

/** One authorized request, as a route sees it. */
export interface ApiCall {
  deps: ApiDeps;
  /** The key that authorized it. */
  key: ApiKey;
  request: IncomingMessage;
  url: URL;
  /** The path's decoded parameters (room or user). */
  params: string[];
  /**
   * The tenant the request acts for: `named` (from the body), else
   * `?tenant=`, else the key's only tenant, else the node's default; 403 for
   * a tenant the key may not act for (`tenantOf`).
   */
  actingTenant: (named?: string) => string;
}

interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  pattern: RegExp;
  /** `operator`: every scope and no tenant limit (quotas: a tenant must not lift its own). */
  scope: ApiScope | 'operator';
  run: (call: ApiCall) => Promise<[number, unknown]>;
}

const ROOM = '([^/]+)';

const ROUTES: Route[] = [
  { method: 'POST', pattern: new RegExp(`^/api/rooms/${ROOM}/messages$`), scope: 'publish', run: publish },
  { method: 'GET', pattern: new RegExp(`^/api/rooms/${ROOM}/messages$`), scope: 'history:read', run: storedMessages },
  { method: 'GET', pattern: new RegExp(`^/api/rooms/${ROOM}/history$`), scope: 'history:read', run: recentHistory },
  { method: 'GET', pattern: new RegExp(`^/api/rooms/${ROOM}/presence$`), scope: 'presence:read', run: presence },
  { method: 'POST', pattern: new RegExp(`^/api/rooms/${ROOM}/end$`), scope: 'rooms:end', run: endRoom },
  { method: 'POST', pattern: new RegExp(`^/api/users/${ROOM}/signal$`), scope: 'signal', run: signal },
  { method: 'GET', pattern: new RegExp(`^/api/users/${ROOM}/unread$`), scope: 'history:read', run: unread },
  { method: 'POST', pattern: /^\/api\/tokens\/join$/, scope: 'tokens:mint', run: mintJoin },
  { method: 'POST', pattern: /^\/api\/turn$/, scope: 'turn:mint', run: mintTurn },
  { method: 'GET', pattern: new RegExp(`^/api/tenants/${ROOM}/quotas$`), scope: 'operator', run: getQuotas },
  { method: 'PUT', pattern: new RegExp(`^/api/tenants/${ROOM}/quotas$`), scope: 'operator', run: putQuotas },
  { method: 'DELETE', pattern: new RegExp(`^/api/tenants/${ROOM}/quotas$`), scope: 'operator', run: deleteQuotas },
  { method: 'GET', pattern: /^\/api\/quotas$/, scope: 'operator', run: listQuotas },
  { method: 'GET', pattern: /^\/api\/usage$/, scope: 'usage:read', run: usage },
  { method: 'GET', pattern: /^\/api\/usage\/live$/, scope: 'usage:read', run: liveUsage },
];

/** Returns false when the path is not an API path. */
export async function handleApi(deps: ApiDeps, request: IncomingMessage, url: URL, json: Json): Promise<boolean> {
  if (!url.pathname.startsWith('/api/')) return false;
  const fail = (error: ApiError) => {
    deps.onError(error.code);
    deps.log.info({ status: error.status, code: error.code, method: request.method, path: clip(url.pathname) }, 'api request refused');
    json(error.status, { code: error.code, message: error.message, ...error.extra }, retryAfterHeaders(error));
  };
  try {
    if (deps.keyring.size === 0) throw new ApiError(404, 'not_found', 'the server API is off: set an API key');
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    const key = presented ? deps.keyring.find(presented) : undefined;
    if (!key) throw new ApiError(401, 'unauthorized', 'missing or wrong API key');
    const matching = ROUTES.filter((route) => route.pattern.test(url.pathname));
    if (matching.length === 0) throw new ApiError(404, 'not_found', 'no such API path');
    const route = matching.find((candidate) => candidate.method === request.method || (candidate.method === 'GET' && request.method === 'HEAD'));
    if (!route) throw new ApiError(405, 'method_not_allowed', `use ${matching.map((candidate) => candidate.method).join(' or ')}`);
    if (route.scope === 'operator') {
      if (!isOperatorKey(key)) throw new ApiError(403, 'forbidden', 'this path needs an operator key: every scope and no tenant limit (--api-key)');
    } else if (!key.scopes.has(route.scope)) throw new ApiError(403, 'forbidden', `this key lacks the \`${route.scope}\` scope`);
    const params = (route.pattern.exec(url.pathname) ?? []).slice(1).map((param) => {
      try {
        return decodeURIComponent(param);
      } catch {
        throw new ApiError(400, 'invalid_path', 'malformed percent-encoding in the path');
      }
    });
    const actingTenant = (named?: string) => tenantOf(deps, key, named ?? url.searchParams.get('tenant'));
    const [status, body] = await route.run({ deps, key, request, url, params, actingTenant });
    json(status, body);
  } catch (error) {
    if (error instanceof ApiError) fail(error);
    else if (isNerveError(error)) fail(apiErrorOf(error));
    else {
      deps.log.error({ err: errorText(error), path: clip(url.pathname) }, 'api request failed');
      fail(new ApiError(500, 'internal', 'internal error'));
    }
  }
  return true;
}

function room(params: string[]): string {
  const value = params[0] ?? '';
  if (!isValidRoomId(value)) throw new ApiError(400, 'invalid_room', 'room ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -');
  return value;
}

/**
 * The tenant a request acts for: the one it names, else the key's only
 * tenant, else the node's default tenant. A key limited to some tenants gets
 * 403 for any other.
 */
function tenantOf(deps: ApiDeps, key: ApiKey, value: string | null | undefined): string {
  const only = key.tenants?.size === 1 ? [...key.tenants][0] : undefined;
  const tenant = value ?? only ?? deps.defaultTenant;
  if (!isValidTenantId(tenant)) throw new ApiError(400, 'invalid_tenant', 'tenant ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -');
  if (key.tenants && !key.tenants.has(tenant)) throw new ApiError(403, 'forbidden', 'this key may not act for that tenant');
  return tenant;
}

function limitOf(url: URL, fallback: number, max: number): number {
  const text = url.searchParams.get('limit');
  const limit = text === null ? fallback : Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new ApiError(400, 'invalid_limit', `limit is an integer from 1 to ${max}`);
  return limit;
}

/** Body cap: a message's data must fit a WebSocket frame anyway. */
const bodyCap = (deps: ApiDeps): number => deps.options.limits.maxFrameBytes;

async function publish({ deps, request, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const target = room(params);
  const body = validate(publishBody, await readJson(request, bodyCap(deps)));
  const tenant = actingTenant(body.tenant);
  // The caller's W3C trace context (src/tracing/): the message's spans join its trace.
  const traceparent = typeof request.headers.traceparent === 'string' ? request.headers.traceparent : undefined;
  // The body's fields as validated (publishFields); the tenant is the one acted for, set after them.
  const ack = await deps.gateway.serverPublish({ ...body, tenant, room: target, traceparent });
  return [200, { room: target, ...ack }];
}

async function storedMessages({ deps, url, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const target = room(params);
  const tenant = actingTenant();
  const limit = limitOf(url, 50, 200);
  if (!deps.pool) throw new ApiError(503, 'unavailable', 'stored history needs a PostgreSQL URL');
  const before = url.searchParams.get('before');
  try {
    return [200, await readStoredMessages(deps.pool, deps.schema, tenant, target, { limit, ...(before === null ? {} : { before }) })];
  } catch (error) {
    if (error instanceof InvalidCursorError) throw new ApiError(400, 'invalid_cursor', 'invalid `before` cursor');
    throw new ApiError(503, 'unavailable', 'stored history is unavailable');
  }
}

async function recentHistory(call: ApiCall): Promise<[number, unknown]> {
  const { deps, url, params, actingTenant } = call;
  if (url.searchParams.has('before') || url.searchParams.has('epoch')) return historyPage(call);
  const target = room(params);
  const tenant = actingTenant();
  const limit = limitOf(url, 50, 1000);
  const recent = await deps.history.recent({ tenant, room: target }, limit).catch(() => {
    throw new ApiError(503, 'unavailable', 'the history lane is unavailable');
  });
  return [200, { room: target, messages: recent.messages, position: recent.position }];
}

/** With `before` (or `epoch`): a page as the WebSocket `history` op answers it (docs/protocol.md), across the stream and PostgreSQL. */
async function historyPage({ deps, url, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const target = room(params);
  const tenant = actingTenant();
  const limit = limitOf(url, HISTORY_PAGE_LIMITS.default, HISTORY_PAGE_LIMITS.max);
  const beforeText = url.searchParams.get('before');
  const before = beforeText === null ? undefined : Number(beforeText);
  if (before !== undefined && (!/^\d+$/.test(beforeText ?? '') || !Number.isSafeInteger(before) || before < 1)) {
    throw new ApiError(400, 'invalid_cursor', '`before` is an offset, an integer from 1 to 2^53-1');
  }
  const epoch = url.searchParams.get('epoch') ?? undefined;
  if (epoch !== undefined && (epoch.length < 1 || epoch.length > 64)) throw new ApiError(400, 'invalid_cursor', '`epoch` is 1-64 characters');
  const page = await deps.history.page({ tenant, room: target }, { before, limit, epoch }).catch((error: unknown) => {
    if (isNerveError(error) && error.code === ErrorCode.EpochMismatch) throw new ApiError(409, 'epoch_mismatch', 'the room log is in another epoch now');
    throw new ApiError(503, 'unavailable', 'the history lane is unavailable');
  });
  return [200, { room: target, messages: page.messages, more: page.more, epoch: page.epoch }];
}

async function presence({ deps, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const target = room(params);
  const tenant = actingTenant();
  const members = await deps.presence.members({ tenant, room: target }).catch(() => {
    throw new ApiError(503, 'unavailable', 'the presence lane is unavailable');
  });
  // The whole list, with each member's state: the server API is not bound by --presence-list-max.
  return [200, { room: target, members, count: members.length }];
}

async function endRoom({ deps, request, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const target = room(params);
  const body = validate(endRoomBody, await readJson(request, 4096));
  const tenant = actingTenant(body.tenant);
  const nodes = await deps.gateway.endRoom(tenant, target, body.reason);
  return [200, { room: target, nodes }];
}

async function signal({ deps, request, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const to = params[0] ?? '';
  if (!isValidUserId(to)) throw new ApiError(400, 'invalid_user', 'user ids are 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
  const body = validate(signalBody, await readJson(request, bodyCap(deps)));
  const tenant = actingTenant(body.tenant);
  const result = await deps.gateway.serverSignal({ tenant, to, kind: body.kind, data: body.data, from: body.from });
  if (!result.delivered && !result.queued) throw new ApiError(404, 'peer_offline', 'that user is not connected');
  return [200, result];
}

/** A user's rooms with their read position and unread count, from PostgreSQL (for push notifications). */
async function unread({ deps, url, params, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const user = params[0] ?? '';
  if (!isValidUserId(user)) throw new ApiError(400, 'invalid_user', 'user ids are 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
  const tenant = actingTenant();
  const limit = limitOf(url, 100, 1000);
  if (!deps.pool) throw new ApiError(503, 'unavailable', 'unread counts need a PostgreSQL URL');
  const rooms = await readUnread(deps.pool, deps.schema, tenant, user, limit).catch(() => {
    throw new ApiError(503, 'unavailable', 'unread counts are unavailable');
  });
  return [200, { user, rooms }];
}

async function mintJoin({ deps, request, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const body = validate(joinTokenBody, await readJson(request, 4096));
  const secret = deps.options.authSecret;
  if (!secret) throw new ApiError(501, 'not_configured', 'minting join tokens needs --auth-secret');
  const tenant = actingTenant(body.tenant);
  const minted = await mintJoinToken({
    secret,
    user: body.user,
    tenant,
    room: body.room,
    rights: body.rights,
    ttlSeconds: body.ttlSeconds ?? deps.options.joinTokenTtlSeconds,
    issuer: deps.options.authIssuer,
    audience: deps.options.authAudience,
  });
  return [200, { ...minted, user: body.user, room: body.room, tenant }];
}

/**
 * TURN credentials are not bound to a tenant (coturn has one secret per
 * node and knows no tenants), but a key limited to tenants still mints them
 * only for users of its own: the tenant is checked like on every route.
 */
async function mintTurn({ deps, request, actingTenant }: ApiCall): Promise<[number, unknown]> {
  const body = validate(turnBody, await readJson(request, 4096));
  actingTenant(body.tenant);
  const { turnSecret, turnUrls, turnTtlSeconds } = deps.options;
  if (!turnSecret) throw new ApiError(501, 'not_configured', 'minting TURN credentials needs --turn-secret and --turn-urls');
  return [200, turnCredential({ secret: turnSecret, urls: turnUrls, ttlSeconds: body.ttlSeconds ?? turnTtlSeconds }, body.user)];
}
