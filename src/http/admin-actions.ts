/**
 * The admin API's actions under `/api/admin/tenants/:tenant/` (docs/api.md,
 * "Admin API"): disconnect a user, end a room, publish, read and change
 * quotas, read usage. Operator keys only (admin.ts checks the key first).
 * Every action that changes something is first written to the cold lane as
 * an `admin.*` audit event: an action whose event the lane refuses is not
 * taken (503), so none goes unrecorded. Reads are not audited.
 */
import type { IncomingMessage } from 'node:http';
import type pg from 'pg';
import { z } from 'zod';
import type { ApiKey } from '../auth/api-keys.js';
import { errorText } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import { adminEvent } from '../events/events.js';
import type { Logger } from '../logger.js';
import { clip } from '../logger.js';
import { InvalidQuotaError, parseTenantQuota } from '../quotas/quotas.js';
import type { Tenancy } from '../tenancy.js';
import { readUsage } from '../postgres/usage.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { isValidRoomId, isValidTenantId, isValidUserId } from '../../packages/protocol/src/ids.js';
import type { ServerOperations } from './gateway-port.js';
import { ApiError, apiErrorOf, publishFields, readJson, validate } from './api-body.js';

export interface AdminActionDeps {
  nodeId: string;
  gateway: Pick<ServerOperations, 'serverPublish' | 'endRoom' | 'disconnectUser'>;
  /** Audit events go here (the node's cold lane). */
  events: Pick<EventLog, 'publish'>;
  /** Tenant quotas and live usage; the quota and usage routes answer 501 without. */
  tenancy: Pick<Tenancy, 'quotas' | 'live'> | undefined;
  /** Metered usage (the usage worker's table); without it the usage answer has no `lastHour`. */
  pool: pg.Pool | undefined;
  schema: string;
  /** Body cap of a publish: a WebSocket frame's. */
  maxFrameBytes: number;
  /** How long a quota change takes to reach every node. */
  quotaRefreshMs: number;
  log: Logger;
}

type Json = (status: number, body: unknown, headers?: Record<string, string>) => void;

const reason = z.string().max(200);
const disconnectBody = z.object({ conn: z.string().min(1).max(128).optional(), reason: reason.default('disconnected by an operator') });
const endBody = z.object({ reason: reason.default('ended by an operator') });
const publishBody = z.object(publishFields('admin'));

const SEGMENT = '([^/]+)';
interface Route {
  method: 'GET' | 'POST' | 'PUT';
  pattern: RegExp;
  run: (call: ActionCall) => Promise<[number, unknown]>;
}
interface ActionCall {
  deps: AdminActionDeps;
  request: IncomingMessage;
  key: ApiKey;
  tenant: string;
  /** The path's second parameter (user or room), decoded. */
  target: string;
}

const ROUTES: Route[] = [
  { method: 'POST', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/users/${SEGMENT}/disconnect$`), run: disconnect },
  { method: 'POST', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/rooms/${SEGMENT}/end$`), run: endRoom },
  { method: 'POST', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/rooms/${SEGMENT}/messages$`), run: publish },
  { method: 'GET', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/quotas$`), run: getQuotas },
  { method: 'PUT', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/quotas$`), run: putQuotas },
  { method: 'GET', pattern: new RegExp(`^/api/admin/tenants/${SEGMENT}/usage$`), run: usage },
];

/** Answers an admin action path; false when `pathname` is none of them. The caller has checked the key. */
export async function handleAdminAction(
  deps: AdminActionDeps,
  key: ApiKey,
  request: IncomingMessage,
  url: URL,
  json: Json,
  refuse: (error: ApiError) => void,
): Promise<boolean> {
  const matching = ROUTES.filter((route) => route.pattern.test(url.pathname));
  if (matching.length === 0) return false;
  try {
    const route = matching.find((candidate) => candidate.method === request.method || (candidate.method === 'GET' && request.method === 'HEAD'));
    if (!route) throw new ApiError(405, 'method_not_allowed', `use ${matching.map((candidate) => candidate.method).join(' or ')}`);
    const [tenant = '', target = ''] = (route.pattern.exec(url.pathname) ?? []).slice(1).map((param) => {
      try {
        return decodeURIComponent(param);
      } catch {
        throw new ApiError(400, 'invalid_path', 'malformed percent-encoding in the path');
      }
    });
    if (!isValidTenantId(tenant)) throw new ApiError(400, 'invalid_tenant', 'tenant ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -');
    const [status, body] = await route.run({ deps, request, key, tenant, target });
    json(status, body);
  } catch (error) {
    if (error instanceof ApiError) refuse(error);
    else if (isNerveError(error)) refuse(apiErrorOf(error));
    else {
      deps.log.error({ err: errorText(error), path: clip(url.pathname) }, 'admin action failed');
      refuse(new ApiError(500, 'internal', 'internal error'));
    }
  }
  return true;
}

/** Write the audit event; refuse the action (503) when the cold lane does not take it. */
async function audit(call: ActionCall, event: Parameters<EventLog['publish']>[0]): Promise<void> {
  try {
    await call.deps.events.publish(event);
  } catch (error) {
    call.deps.log.warn({ err: errorText(error), type: event.type }, 'admin audit event refused; action not taken');
    throw new ApiError(503, 'audit_unavailable', 'the audit event could not be written (cold lane unavailable): the action was not taken');
  }
  call.deps.log.info({ type: event.type, tenant: event.tenant, room: event.room, actor: call.key.name }, 'admin action');
}

function room(call: ActionCall): string {
  if (!isValidRoomId(call.target)) throw new ApiError(400, 'invalid_room', 'room ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -');
  return call.target;
}

async function disconnect(call: ActionCall): Promise<[number, unknown]> {
  const user = call.target;
  if (!isValidUserId(user)) throw new ApiError(400, 'invalid_user', 'user ids are 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
  const body = validate(disconnectBody, await readJson(call.request, 4096));
  await audit(
    call,
    adminEvent(
      'admin.disconnect',
      { tenant: call.tenant, node: call.deps.nodeId },
      { actor: call.key.name, user, reason: body.reason, ...(body.conn === undefined ? {} : { conn: body.conn }) },
    ),
  );
  const nodes = await call.deps.gateway.disconnectUser(call.tenant, user, body.conn, body.reason);
  return [200, { tenant: call.tenant, user, ...(body.conn === undefined ? {} : { conn: body.conn }), nodes }];
}

async function endRoom(call: ActionCall): Promise<[number, unknown]> {
  const target = room(call);
  const body = validate(endBody, await readJson(call.request, 4096));
  await audit(call, adminEvent('admin.end_room', { tenant: call.tenant, room: target, node: call.deps.nodeId }, { actor: call.key.name, reason: body.reason }));
  const nodes = await call.deps.gateway.endRoom(call.tenant, target, body.reason);
  return [200, { tenant: call.tenant, room: target, nodes }];
}

async function publish(call: ActionCall): Promise<[number, unknown]> {
  const target = room(call);
  const body = validate(publishBody, await readJson(call.request, call.deps.maxFrameBytes));
  const bytes = Buffer.byteLength(JSON.stringify(body.data));
  await audit(
    call,
    adminEvent(
      'admin.publish',
      { tenant: call.tenant, room: target, node: call.deps.nodeId },
      { actor: call.key.name, class: body.class, from: body.from, bytes },
    ),
  );
  const ack = await call.deps.gateway.serverPublish({ ...body, tenant: call.tenant, room: target });
  return [200, { tenant: call.tenant, room: target, ...ack }];
}

function tenancyOf(call: ActionCall): Pick<Tenancy, 'quotas' | 'live'> {
  if (!call.deps.tenancy) throw new ApiError(501, 'not_configured', 'tenant quotas are not available on this server');
  return call.deps.tenancy;
}

function quotaStoreDown(): never {
  throw new ApiError(503, 'unavailable', 'the quota store is unavailable');
}

async function getQuotas(call: ActionCall): Promise<[number, unknown]> {
  const { quotas } = tenancyOf(call);
  const entry = await quotas.get(call.tenant).catch(quotaStoreDown);
  return [200, { tenant: call.tenant, quota: entry?.quota ?? {}, source: entry?.source ?? 'none', effective: quotas.effective(call.tenant) }];
}

async function putQuotas(call: ActionCall): Promise<[number, unknown]> {
  const { quotas } = tenancyOf(call);
  let quota;
  try {
    quota = parseTenantQuota(await readJson(call.request, 4096));
  } catch (error) {
    if (error instanceof InvalidQuotaError) throw new ApiError(400, 'invalid_quota', error.message, { field: error.field });
    throw error;
  }
  await audit(call, adminEvent('admin.set_quotas', { tenant: call.tenant, node: call.deps.nodeId }, { actor: call.key.name, quota: { ...quota } }));
  const entry = await quotas.set(call.tenant, quota).catch(quotaStoreDown);
  return [200, { ...entry, refreshMs: call.deps.quotaRefreshMs }];
}

const HOUR_MS = 3_600_000;

async function usage(call: ActionCall): Promise<[number, unknown]> {
  const { live: liveUsage, quotas } = tenancyOf(call);
  const sum = await liveUsage.read(call.tenant);
  const live = {
    node: sum.node,
    nodes: sum.nodes,
    partial: sum.partial,
    from: sum.from,
    to: sum.to,
    connections: sum.connections,
    connectionMs: sum.connectionMs,
    messages: sum.messages,
    deliveries: sum.deliveries,
    signals: sum.signals,
    storedBytes: sum.storedBytes,
  };
  // The last hour as metered by every node (usage.reported, stored by the usage worker); absent without PostgreSQL or when it cannot be read.
  let lastHour: unknown;
  let lastHourError: string | undefined;
  if (!call.deps.pool) lastHourError = 'no PostgreSQL URL on this node';
  else {
    const to = Date.now();
    lastHour = await readUsage(call.deps.pool, call.deps.schema, call.tenant, to - HOUR_MS, to).then(
      (totals) => ({ from: to - HOUR_MS, to, ...totals }),
      () => {
        lastHourError = 'usage table unavailable';
        return undefined;
      },
    );
  }
  return [200, { tenant: call.tenant, live, quota: quotas.effective(call.tenant), ...(lastHour === undefined ? { lastHourError } : { lastHour }) }];
}
