/**
 * HTTP side of a node: liveness, readiness, metrics, the demo page and the
 * SDK bundle. Upgrades are handed to the gateway.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { errorText } from '../errors.js';
import type { LaneHealth } from '../lanes.js';
import type { NodeMetrics } from '../metrics.js';
import { CLIENT_BUNDLE, WEB_ROOT } from '../paths.js';
import { handleApi, type ApiDeps } from './api.js';
import { handleAdmin, type AdminDeps } from './admin.js';
import type { UpgradeTarget } from './gateway-port.js';

/** The admin page's static files (web/), served whether or not the demo is on; its data needs the API key. */
const ADMIN_FILES: Record<string, string> = {
  '/admin': 'admin.html',
  '/admin/': 'admin.html',
  '/admin.js': 'admin.js',
  '/admin-actions.js': 'admin-actions.js',
  '/admin.css': 'admin.css',
};
/** uPlot, the admin page's chart, served as its package ships it (README, "Runtime dependencies"). */
const VENDOR_FILES: Record<string, string> = { '/uPlot.iife.min.js': 'uplot/dist/uPlot.iife.min.js', '/uPlot.min.css': 'uplot/dist/uPlot.min.css' };
const packageFiles = createRequire(import.meta.url);

export interface HttpDeps {
  gateway: UpgradeTarget;
  metrics: NodeMetrics;
  nodeId: string;
  lanes: () => LaneHealth[];
  demo: boolean;
  api: ApiDeps;
  /** The admin JSON API (`/api/admin/...`, src/http/admin.ts); absent: those paths fall through to the server API. */
  admin?: AdminDeps;
  /** Time a new TCP connection has to send complete request headers, ms (slowloris). */
  headersTimeoutMs: number;
  /** The Pusher protocol side (src/pusher): `/app/{key}` upgrades and the `/apps/{id}/...` API; absent without Pusher apps. */
  pusher?: {
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean;
    handleRequest(request: IncomingMessage, response: ServerResponse, url: URL): Promise<boolean>;
  };
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export function createHttpServer(deps: HttpDeps): Server {
  // Node checks headersTimeout on this interval; keep it a fraction of the timeout.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(deps.headersTimeoutMs / 4)));
  const server = createServer({ connectionsCheckingInterval }, requestListener(deps));
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (deps.pusher?.handleUpgrade(request, socket, head)) return;
    upgradeToGateway(deps.gateway, request, socket, head);
  });
  // Slowloris: a client must send its headers promptly. headersTimeout
  // covers requests on a live HTTP connection; the socket-level deadline
  // below also cuts a TCP connection that never completes its first
  // request or upgrade (ws disarms socket timeouts once upgraded).
  server.headersTimeout = deps.headersTimeoutMs;
  server.requestTimeout = Math.max(30_000, deps.headersTimeoutMs);
  server.on('connection', (socket) => {
    const deadline = setTimeout(() => {
      deps.metrics.upgradesRejected.inc({ reason: 'headers_timeout' });
      socket.destroy();
    }, deps.headersTimeoutMs);
    deadline.unref();
    // The first parsed request (or upgrade) ends the deadline; so does close.
    // Disarming also drops the listener, so a long-lived WebSocket does not
    // keep the spent timer and its closure for its whole life.
    const disarm = () => {
      clearTimeout(deadline);
      socket.removeListener('close', disarm);
    };
    socket.on('close', disarm);
    pendingDeadlines.set(socket, disarm);
  });
  const disarmFor = (request: IncomingMessage) => {
    pendingDeadlines.get(request.socket)?.();
    pendingDeadlines.delete(request.socket);
  };
  server.prependListener('request', (request: IncomingMessage) => disarmFor(request));
  server.prependListener('upgrade', (request: IncomingMessage) => disarmFor(request));
  return server;
}

/** The node's answer to a plain HTTP request; also mounted on an application's server by `attach` (src/http/attach.ts). */
export function requestListener(deps: HttpDeps): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    handle(deps, request, response).catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { code: 'internal', message: 'internal error' });
      else response.destroy(error instanceof Error ? error : new Error(errorText(error)));
    });
  };
}

/** Hand an `Upgrade: websocket` request to the gateway. */
export function upgradeToGateway(gateway: UpgradeTarget, request: IncomingMessage, socket: Duplex, head: Buffer): void {
  // Node drops its own error listener from an upgraded socket; until ws
  // owns it (or while a refusal is written) an error must not go unhandled.
  socket.on('error', destroyOnError);
  gateway.handleUpgrade(request, socket, head);
  // ws put its own listener on the socket as it took it over (it does so
  // before any await): ours would be a second listener, and an array, on
  // every long-lived WebSocket.
  if (socket.listenerCount('error') > 1) socket.removeListener('error', destroyOnError);
}

/** One listener for every upgraded socket, not a closure each. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Sockets still inside their first-request deadline, and how to disarm it. */
const pendingDeadlines = new WeakMap<object, () => void>();

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(text);
}

/**
 * The request target as a URL, or undefined when it cannot be one. An
 * origin-form target (`/path?query`) is appended to a fixed origin rather
 * than resolved against it: resolved, `//x` would name a host and `//`
 * would throw. An absolute-form target (`http://host/path`, from proxies)
 * is parsed as is.
 */
function requestUrl(target: string | undefined): URL | undefined {
  const raw = target ?? '/';
  try {
    return raw.startsWith('/') ? new URL(`http://localhost${raw}`) : new URL(raw);
  } catch {
    return undefined;
  }
}

/** A path segment's percent-decoding, or undefined when it is malformed (`%`, `%zz`, a broken UTF-8 sequence). */
function decodePath(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

async function handle(deps: HttpDeps, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = requestUrl(request.url);
  // Refused up front, whatever the path: a malformed target is bad input on every route, never a 500 or a 404.
  const decoded = url && decodePath(url.pathname);
  if (!url || decoded === undefined) {
    deps.metrics.errors.inc({ code: 'http_invalid_path' });
    json(response, 400, { code: 'invalid_path', message: url ? 'malformed percent-encoding in the path' : 'the request target is not a valid path' });
    return;
  }
  const path = url.pathname;
  if (deps.pusher && (await deps.pusher.handleRequest(request, response, url))) return;
  if (deps.admin && (await handleAdmin(deps.admin, request, url, (status, body, headers) => json(response, status, body, headers)))) return;
  if (await handleApi(deps.api, request, url, (status, body, headers) => json(response, status, body, headers))) return;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    deps.metrics.errors.inc({ code: 'http_method_not_allowed' });
    json(response, 405, { code: 'method_not_allowed', message: 'only GET and HEAD' });
    return;
  }
  if (path === '/healthz') {
    json(response, 200, { status: 'ok', node: deps.nodeId });
    return;
  }
  if (path === '/readyz') {
    const lanes = deps.lanes();
    for (const lane of lanes) deps.metrics.laneUp.set({ lane: lane.lane, driver: lane.driver }, lane.ok ? 1 : 0);
    const draining = deps.gateway.state !== 'running';
    const degraded = lanes.filter((lane) => !lane.ok);
    const status = draining ? 'draining' : degraded.length > 0 ? 'degraded' : 'ready';
    json(response, status === 'ready' ? 200 : 503, {
      status,
      node: deps.nodeId,
      ...(degraded.length > 0 ? { reason: degraded.map((lane) => `${lane.lane}: ${lane.detail ?? 'down'}`).join('; ') } : {}),
      lanes,
      connections: deps.gateway.connectionCount(),
    });
    return;
  }
  if (path === '/metrics') {
    for (const lane of deps.lanes()) deps.metrics.laneUp.set({ lane: lane.lane, driver: lane.driver }, lane.ok ? 1 : 0);
    const body = await deps.metrics.registry.metrics();
    response.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
    response.end(body);
    return;
  }
  const adminFile = ADMIN_FILES[path];
  if (adminFile) {
    await sendFile(response, join(WEB_ROOT, adminFile));
    return;
  }
  const vendorFile = VENDOR_FILES[path];
  if (vendorFile) {
    await sendFile(response, resolvePackageFile(vendorFile));
    return;
  }
  if (path === '/nerve-client.js' || path === '/nerve-client.js.map') {
    await sendFile(response, path.endsWith('.map') ? `${CLIENT_BUNDLE}.map` : CLIENT_BUNDLE);
    return;
  }
  if (deps.demo) {
    const relative = path === '/' ? 'index.html' : decoded.slice(1);
    const file = normalize(join(WEB_ROOT, relative));
    // No path may leave the web root.
    if (file.startsWith(WEB_ROOT + sep)) {
      await sendFile(response, file);
      return;
    }
  }
  json(response, 404, { code: 'not_found', message: 'no such path' });
}

/** A file of an installed package, or '' (answered 404) when the package is missing. */
function resolvePackageFile(specifier: string): string {
  try {
    return packageFiles.resolve(specifier);
  } catch {
    return '';
  }
}

async function sendFile(response: ServerResponse, file: string): Promise<void> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) {
    json(response, 404, { code: 'not_found', message: 'no such file' });
    return;
  }
  response.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  createReadStream(file).pipe(response);
}
