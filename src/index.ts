/**
 * `@nerve-rt/server` from code: the same NerveNode the CLI (`nerve serve`)
 * builds, for apps that start nodes themselves (tests, a custom launcher).
 * The protocol's codes are re-exported so server-side code can name them
 * without a second package.
 */
export { NerveNode, type NerveNodeDeps, type NodeState } from './node.js';
export { ConfigError } from './config/errors.js';
export { normalizeOptions } from './config/normalize.js';
export { DEFAULT_LIMITS, type NodeOptions, type NodeOptionsInput, type LimitOptions } from './config/options.js';
export { NERVE_VERSION } from './version.js';
// Mount a node on an existing http/https server, an Express app's or a Fastify instance's (docs/embedding.md).
export { attach, type AttachOptions, type AttachedNerve, type AppServer } from './embed.js';
export type { Authenticator, AuthRequest, Identity, JoinGrant } from './auth/authenticator.js';
export type { LogFormat, LogLevel } from './config/options.js';
export { CloseCode, ErrorCode, PROTOCOL_VERSION } from '../packages/protocol/src/index.js';
