/**
 * `attach(server, options)`: a nerve node on an application's own HTTP
 * server (plain `http`, Express, Fastify), sharing its port, the way
 * Socket.IO's `new Server(httpServer)` does. It is the same `NerveNode` as
 * `nerve serve` (src/node.ts), mounted instead of listening
 * (src/http/attach.ts): nerve answers upgrades on its WebSocket path and,
 * with `httpPrefix`, its HTTP routes under that prefix; every other request
 * and upgrade stays the application's. docs/embedding.md.
 */
import type { Authenticator } from './auth/authenticator.js';
import type { AppServer } from './http/attach.js';
import type { LaneOverrides } from './lanes-factory.js';
import type { Logger } from './logger.js';
import { NerveNode } from './node.js';
import { ConfigError } from './config/errors.js';
import type { NodeOptionsInput } from './config/options.js';

export type { AppServer };

/** Every node option but `port` and `host` (the server's) and `demo` (its page loads its files from `/`, which is the application's). */
export interface AttachOptions extends Omit<NodeOptionsInput, 'port' | 'host' | 'demo'> {
  /** Path of nerve's WebSocket endpoint on the server. Default `/ws`. */
  path?: string;
  /**
   * Serve nerve's HTTP routes under this prefix: `/healthz`, `/readyz`,
   * `/metrics`, the server API (`/api/…`, admin JSON included) and
   * `/nerve-client.js` become `/nerve/healthz` and so on for `'/nerve'`.
   * (The /admin page loads its files from `/`: it works only on a node of
   * its own.) Default none: nerve answers no plain HTTP request, every
   * route is the application's.
   */
  httpPrefix?: string;
  /** Verify client credentials your own way. Default: JWT with an auth key set, else dev auth. */
  authenticator?: Authenticator;
  /** Log through your own pino logger. Default: a pino logger per `logLevel` and `logFormat`. */
  logger?: Logger;
  /** Replace lanes built from the options (tests). */
  lanes?: LaneOverrides;
}

export interface AttachedNerve {
  /** The node: its `gateway`, `metrics` (prom-client registry), `log`, `status`. */
  readonly node: NerveNode;
  /**
   * Resolves once the lanes are up and nerve accepts WebSockets (until then
   * its path answers 503 `starting`). Rejects if a lane cannot start; nerve
   * has then given its paths back to the server.
   */
  readonly ready: Promise<void>;
  /**
   * Drains nerve's clients (close 1001, reconnect elsewhere), closes the
   * lanes and gives nerve's paths back to the server; the server itself and
   * its other connections stay open. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Mount nerve on `server`. Call it before or after `server.listen()`; the
 * port is the server's, so `port` and `host` are not options here. Throws a
 * `ConfigError` (code `config_invalid`) for a bad option, before mounting
 * anything.
 */
export function attach(server: AppServer, options: AttachOptions = {}): AttachedNerve {
  const { path = '/ws', httpPrefix, authenticator, logger, lanes, ...nodeOptions } = options;
  checkPath('path', path);
  if (httpPrefix !== undefined) {
    checkPath('httpPrefix', httpPrefix);
    if (httpPrefix === '/' || httpPrefix.endsWith('/'))
      throw new ConfigError('httpPrefix', 'a path such as /nerve, not / and without a trailing /', httpPrefix);
  }
  const node = new NerveNode(
    { ...nodeOptions, demo: false },
    {
      ...(authenticator ? { authenticator } : {}),
      ...(logger ? { logger } : {}),
      ...(lanes ? { lanes } : {}),
      mount: { server, path, httpPrefix },
    },
  );
  const ready = node.start().then(
    () => undefined,
    async (error: unknown) => {
      await node.stop().catch(() => {});
      throw error;
    },
  );
  // The caller may never await `ready` (fire-and-forget attach): a failed start is logged, not an unhandled rejection.
  ready.catch((error: unknown) => node.log.error({ err: error }, 'attach failed'));
  return {
    node,
    ready,
    // A close during start waits for it to settle: a half-started node would be stopped twice over.
    close: () =>
      ready.then(
        () => node.stop(),
        () => node.stop(),
      ),
  };
}

function checkPath(setting: string, value: string): void {
  if (typeof value !== 'string' || !/^\/[^?#\s]*$/.test(value)) throw new ConfigError(setting, 'a path starting with /, without ? or #', value);
}
