/**
 * A node mounted on an application's own HTTP server (`attach`,
 * src/embed.ts, docs/embedding.md): nerve takes its WebSocket path and,
 * optionally, its HTTP routes under a prefix, at `server.emit`, before any
 * listener sees the event. One more listener would not do: a `ws` server
 * built with `{ server, path }` answers 400 to upgrades off its path, and
 * Express or Fastify answer 404 to paths they do not know.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';

/** An application's server: `http.createServer()`, `https.createServer()`, Express's `app.listen()`, Fastify's `fastify.server`. */
export type AppServer = HttpServer | HttpsServer;

export interface MountOptions {
  /** Path of nerve's WebSocket endpoint on the application's server, e.g. `/ws`. */
  path: string;
  /** Prefix of nerve's HTTP routes (`/healthz`, `/readyz`, `/metrics`, `/api/…`, …), e.g. `/nerve`; undefined: nerve answers no plain request. */
  httpPrefix: string | undefined;
}

export interface MountHandlers {
  /** A request under the prefix, its URL rewritten to the node's own path (`/nerve/readyz` → `/readyz`). */
  request(request: IncomingMessage, response: ServerResponse): void;
  /** An upgrade on nerve's path, its URL rewritten to `/ws` (the gateway's path), query kept. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** An upgrade nerve refused itself (`reason` as in `nerve_upgrades_rejected_total`). */
  refused(reason: string): void;
}

type Emit = (this: AppServer, event: string | symbol, ...args: unknown[]) => boolean;

/** The WebSocket path the gateway answers (src/gateway/admission.ts). */
const GATEWAY_PATH = '/ws';

export class HttpMount {
  private installed = false;
  private originalEmit: Emit | undefined;
  /** The `emit` we put on the server, to tell whether someone wrapped it after us. */
  private ownEmit: Emit | undefined;
  private hadOwnEmit = false;
  /**
   * A real 'upgrade' listener: Node hands an upgrade request to the request
   * listeners when a server has none, and the gateway cannot take a socket
   * the HTTP parser still reads. It sees only upgrades that are not nerve's.
   */
  private readonly onOtherUpgrade = (_request: IncomingMessage, socket: Duplex): void => {
    // Another listener is the application's and answers its own paths. With
    // none, nothing would ever answer: refuse, as a node of its own does.
    if (this.server.listenerCount('upgrade') > 1) return;
    this.handlers.refused('not_found');
    refuseUpgrade(socket, 404, 'not_found', `the WebSocket endpoint is ${this.options.path}`);
  };

  constructor(
    private readonly server: AppServer,
    private readonly options: MountOptions,
    private readonly handlers: MountHandlers,
  ) {}

  install(): void {
    if (this.installed) return;
    this.installed = true;
    this.hadOwnEmit = Object.prototype.hasOwnProperty.call(this.server, 'emit');
    // Kept unbound and called with the server as `this`, as Node calls it.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const original = this.server.emit as Emit;
    this.originalEmit = original;
    const takes = (event: string | symbol, args: unknown[]): boolean =>
      this.installed &&
      ((event === 'upgrade' && this.takeUpgrade(args[0] as IncomingMessage, args[1] as Duplex, args[2] as Buffer)) ||
        (event === 'request' && this.takeRequest(args[0] as IncomingMessage, args[1] as ServerResponse)));
    const ownEmit: Emit = function (this: AppServer, event, ...args) {
      if (takes(event, args)) return true;
      return original.call(this, event, ...args);
    };
    this.ownEmit = ownEmit;
    (this.server as { emit: Emit }).emit = ownEmit;
    this.server.on('upgrade', this.onOtherUpgrade);
  }

  /** Gives every path back to the application. Idempotent. */
  remove(): void {
    if (!this.installed) return;
    this.installed = false;
    this.server.removeListener('upgrade', this.onOtherUpgrade);
    // Restore only if ours is still the outermost emit; if something wrapped
    // it since, ours stays in the chain but passes every event through.
    if (this.server.emit === this.ownEmit) {
      if (this.hadOwnEmit) (this.server as { emit: Emit }).emit = this.originalEmit!;
      else delete (this.server as { emit?: Emit }).emit;
    }
  }

  private takeUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const { path, query } = splitTarget(request.url);
    if (path !== this.options.path) return false;
    request.url = GATEWAY_PATH + query;
    this.handlers.upgrade(request, socket, head);
    return true;
  }

  private takeRequest(request: IncomingMessage, response: ServerResponse): boolean {
    const prefix = this.options.httpPrefix;
    if (prefix === undefined) return false;
    const { path, query } = splitTarget(request.url);
    if (path !== prefix && !path.startsWith(`${prefix}/`)) return false;
    request.url = (path.slice(prefix.length) || '/') + query;
    this.handlers.request(request, response);
    return true;
  }
}

/** `/a/b?x=1` → `{ path: '/a/b', query: '?x=1' }`. */
function splitTarget(target: string | undefined): { path: string; query: string } {
  const raw = target ?? '/';
  const at = raw.indexOf('?');
  return at === -1 ? { path: raw, query: '' } : { path: raw.slice(0, at), query: raw.slice(at) };
}

const STATUS_TEXT: Record<number, string> = { 404: 'Not Found', 503: 'Service Unavailable' };

/** An HTTP refusal written on a socket that was handed over for an upgrade, with the JSON body of every nerve refusal. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
