/**
 * The admin JSON API behind the admin page (web/admin.html, docs/api.md,
 * "Admin API"): `GET /api/admin/cluster` (every node of the registry with
 * its load, lanes and recent errors) and the actions of admin-actions.ts.
 * Operator keys only (every scope, no tenant limit; compared in constant
 * time by ApiKeyring); answers 404 while no key is configured, as the
 * server API does.
 */
import type { IncomingMessage } from 'node:http';
import { isOperatorKey, type ApiKeyring } from '../auth/api-keys.js';
import type { NodeRecord } from '../registry/registry.js';
import { handleAdminAction, type AdminActionDeps } from './admin-actions.js';
import { retryAfterHeaders } from './api-body.js';

export interface ClusterView {
  /** This node's id (the one answering). */
  self: string;
  /** Registry driver: `redis` (the cluster) or `memory` (this node only). */
  registry: string;
  /** Set when the registry could not be read: `nodes` then holds this node only. */
  registryError?: string;
  /** ms since epoch, this node's clock. */
  now: number;
  nodes: NodeRecord[];
}

export interface AdminDeps {
  keyring: ApiKeyring;
  cluster: () => Promise<ClusterView>;
  /** Counts refusals by code (`nerve_errors_total{code="http_<code>"}`). */
  onError: (code: string) => void;
  /** What the actions act on; without it the action paths answer 404. */
  actions?: AdminActionDeps | undefined;
}

type Json = (status: number, body: unknown, headers?: Record<string, string>) => void;

/** Returns false when the path is not an admin API path. */
export async function handleAdmin(deps: AdminDeps, request: IncomingMessage, url: URL, json: Json): Promise<boolean> {
  if (!url.pathname.startsWith('/api/admin/')) return false;
  const refuse = (status: number, code: string, message: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) => {
    deps.onError(code);
    json(status, { code, message, ...extra }, headers);
  };
  if (deps.keyring.size === 0) {
    refuse(404, 'not_found', 'the admin API is off: set --api-key');
    return true;
  }
  const header = request.headers.authorization ?? '';
  const key = header.startsWith('Bearer ') ? deps.keyring.find(header.slice(7)) : undefined;
  if (!key) {
    refuse(401, 'unauthorized', 'missing or wrong API key', { 'www-authenticate': 'Bearer' });
    return true;
  }
  // Operator keys only: the cluster view spans every tenant (their counts and errors), so a key limited to tenants may not read it, whatever its scopes.
  if (!isOperatorKey(key)) {
    refuse(403, 'forbidden', 'the admin API needs an operator key: every scope and no tenant limit (--api-key)');
    return true;
  }
  if (
    deps.actions &&
    (await handleAdminAction(deps.actions, key, request, url, json, (error) =>
      refuse(error.status, error.code, error.message, retryAfterHeaders(error), error.extra),
    ))
  ) {
    return true;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    refuse(405, 'method_not_allowed', 'use GET');
    return true;
  }
  if (url.pathname === '/api/admin/cluster') {
    json(200, await deps.cluster());
    return true;
  }
  refuse(404, 'not_found', 'no such admin path');
  return true;
}
