/**
 * Who may open a WebSocket: the path, the node's state, the Origin
 * allowlist and the per-address cap (`maxConnectionsPerIp`, shared with the
 * Pusher endpoint so mixing the two does not double a client's share).
 * Refusals are answered as plain HTTP before the upgrade.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NodeOptions } from '../config/options.js';
import type { Logger } from '../logger.js';
import { clip } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import { clientAddress, TrustedProxies } from '../net/client-address.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { KeyCounter } from './rate-limit.js';

/** HTTP status lines for upgrade refusals. */
const STATUS_TEXT: Record<number, string> = { 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Random bytes for connection ids, drawn 256 ids at a time: one CSPRNG call per 256 connects instead of one each. */
const ID_BYTES = 9;
let idPool = Buffer.alloc(0);
let idAt = 0;

/** A fresh connection id: 9 random bytes, 12 base64url characters (docs/protocol.md, `welcome.connId`). */
export function connectionId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return idPool.toString('base64url', idAt - ID_BYTES, idAt);
}

export class Admission {
  /** Open WebSockets per remote address, counted only under a cap. */
  readonly #perIp = new KeyCounter();
  readonly #maxPerIp: number;
  readonly #allowedOrigins: ReadonlySet<string>;
  readonly #trustedProxies: TrustedProxies | undefined;

  constructor(
    private readonly options: NodeOptions,
    private readonly metrics: Pick<NodeMetrics, 'upgradesRejected'>,
    private readonly log: Logger,
  ) {
    this.#maxPerIp = options.limits.maxConnectionsPerIp;
    this.#allowedOrigins = new Set(options.allowedOrigins);
    this.#trustedProxies = options.trustedProxies.length > 0 ? new TrustedProxies(options.trustedProxies) : undefined;
  }

  /** The client address to accept a /ws upgrade under; undefined when it was refused (and answered). */
  admit(request: IncomingMessage, socket: Duplex, running: boolean): string | undefined {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/ws') return this.reject(socket, 404, 'not_found', 'WebSocket endpoint is /ws');
    if (!running) return this.reject(socket, 503, 'draining', 'node is shutting down; reconnect to another node');
    if (!this.originAllowed(request.headers.origin)) {
      return this.reject(socket, 403, 'origin_not_allowed', 'this origin may not open a WebSocket here', { origin: clip(request.headers.origin ?? '(none)') });
    }
    const address = this.clientAddress(request);
    if (this.#maxPerIp > 0 && this.#perIp.get(address) >= this.#maxPerIp) {
      return this.reject(socket, 429, ErrorCode.TooManyConnections, `at most ${this.#maxPerIp} connections per address`, { remoteAddress: address });
    }
    return address;
  }

  /** For the Pusher endpoint: the address to count its upgrade under, or undefined when that address is at the cap. */
  admitAddress(request: IncomingMessage): { address: string; max: number } | { address: undefined; max: number } {
    const max = this.#maxPerIp;
    const address = this.clientAddress(request);
    return max > 0 && this.#perIp.get(address) >= max ? { address: undefined, max } : { address, max };
  }

  /** A connection opened (`open`) or closed under `address`; counted only under a cap. */
  count(address: string, open: boolean): void {
    if (this.#maxPerIp <= 0) return;
    if (open) this.#perIp.increment(address);
    else this.#perIp.decrement(address);
  }

  /** Where an upgrade comes from: the TCP peer, or the client a trusted proxy names (client-address.ts). */
  private clientAddress(request: IncomingMessage): string {
    return clientAddress(request.socket.remoteAddress, request.headers['x-forwarded-for'], this.#trustedProxies);
  }

  /** No allowlist: every origin. With one: listed origins, and no Origin header only if `allowMissingOrigin`. */
  private originAllowed(origin: string | undefined): boolean {
    if (this.#allowedOrigins.size === 0) return true;
    if (origin === undefined || origin === '') return this.options.allowMissingOrigin;
    try {
      return this.#allowedOrigins.has(new URL(origin).origin);
    } catch {
      return false;
    }
  }

  private reject(socket: Duplex, status: number, reason: string, message: string, context: Record<string, unknown> = {}): undefined {
    this.metrics.upgradesRejected.inc({ reason });
    this.log.info({ status, code: reason, ...context }, 'upgrade refused');
    const body = JSON.stringify({ code: reason, message });
    const statusText = STATUS_TEXT[status] ?? 'Error';
    socket.end(
      `HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return undefined;
  }
}
