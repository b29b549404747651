/**
 * Server API routes of tenant quotas and usage (docs/api.md): see and set a
 * tenant's quotas (keys that may act for every tenant only: a tenant must
 * not raise its own), and read its metered usage.
 */
import type { IncomingMessage } from 'node:http';
import type pg from 'pg';
import { ApiError, readJson } from './api-body.js';
import type { NodeOptions } from '../config/options.js';
import { InvalidQuotaError, parseTenantQuota } from '../quotas/quotas.js';
import type { Tenancy } from '../tenancy.js';
import { isValidTenantId } from '../../packages/protocol/src/ids.js';
import { readUsage } from '../postgres/usage.js';

export type TenancyApi = Pick<Tenancy, 'quotas' | 'meter' | 'enforcer' | 'live'>;

/** What the tenant routes read of a server API call (api.ts's ApiCall), named here so this module need not import api.ts back. */
interface ApiCall {
  deps: { pool: pg.Pool | undefined; schema: string; tenancy?: TenancyApi | undefined; options: Pick<NodeOptions, 'quotaRefreshMs'> };
  request: IncomingMessage;
  url: URL;
  params: string[];
  actingTenant: (named?: string) => string;
}

function tenancyOf(call: ApiCall): TenancyApi {
  if (!call.deps.tenancy) throw new ApiError(501, 'not_configured', 'tenant quotas are not available on this server');
  return call.deps.tenancy;
}

/** The tenant of a quota path (the route already took an operator key: a tenant's own key could lift its quotas). */
function operatorTenant(call: ApiCall): string {
  const tenant = call.params[0] ?? '';
  if (!isValidTenantId(tenant)) throw new ApiError(400, 'invalid_tenant', 'tenant ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -');
  return tenant;
}

function unavailable(): never {
  throw new ApiError(503, 'unavailable', 'the quota store is unavailable');
}

export async function getQuotas(call: ApiCall): Promise<[number, unknown]> {
  const tenant = operatorTenant(call);
  const { quotas } = tenancyOf(call);
  const entry = await quotas.get(tenant).catch(unavailable);
  return [200, { tenant, quota: entry?.quota ?? {}, source: entry?.source ?? 'none', effective: quotas.effective(tenant) }];
}

export async function putQuotas(call: ApiCall): Promise<[number, unknown]> {
  const tenant = operatorTenant(call);
  let quota;
  try {
    quota = parseTenantQuota(await readJson(call.request, 4096));
  } catch (error) {
    if (error instanceof InvalidQuotaError) throw new ApiError(400, 'invalid_quota', error.message, { field: error.field });
    throw error;
  }
  const entry = await tenancyOf(call).quotas.set(tenant, quota).catch(unavailable);
  return [200, { ...entry, refreshMs: call.deps.options.quotaRefreshMs }];
}

export async function deleteQuotas(call: ApiCall): Promise<[number, unknown]> {
  const tenant = operatorTenant(call);
  const { quotas } = tenancyOf(call);
  const removed = await quotas.remove(tenant).catch(unavailable);
  return [200, { tenant, removed, effective: quotas.effective(tenant) }];
}

export async function listQuotas(call: ApiCall): Promise<[number, unknown]> {
  const tenants = await tenancyOf(call).quotas.list().catch(unavailable);
  return [200, { tenants }];
}

/** `from` / `to`: ms since epoch or an ISO 8601 date. */
function instant(call: ApiCall, name: string, fallback: number): number {
  const text = call.url.searchParams.get(name);
  if (text === null || text === '') return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new ApiError(400, 'invalid_period', `${name} is ms since epoch or an ISO 8601 date`);
  return value;
}

const DAY_MS = 86_400_000;

export async function usage(call: ApiCall): Promise<[number, unknown]> {
  const tenant = call.actingTenant();
  const to = instant(call, 'to', Date.now());
  const from = instant(call, 'from', to - DAY_MS);
  if (from > to) throw new ApiError(400, 'invalid_period', 'from is after to');
  const pool = call.deps.pool;
  if (!pool) throw new ApiError(503, 'unavailable', 'usage needs a PostgreSQL URL (the usage worker writes it there)');
  const totals = await readUsage(pool, call.deps.schema, tenant, from, to).catch(() => {
    throw new ApiError(503, 'unavailable', 'usage is unavailable');
  });
  return [200, { tenant, from, to, ...totals }];
}

export async function liveUsage(call: ApiCall): Promise<[number, unknown]> {
  const tenant = call.actingTenant();
  const { live, quotas } = tenancyOf(call);
  // Every node's current interval so far (src/usage/live.ts): never throws, `partial` when other nodes' counts could not be read.
  return [200, { ...(await live.read(tenant)), quota: quotas.effective(tenant) }];
}
