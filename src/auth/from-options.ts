/**
 * Which authenticator a node's options ask for: JWTs when a secret, a
 * public key or a JWKS URL is set, else the dev authenticator (the client
 * names its user; docs/protocol.md). Out of node.ts, the composition root,
 * so that it builds its parts and this rule reads on its own.
 */
import type { NodeOptions } from '../config/options.js';
import type { Authenticator } from './authenticator.js';
import { DevAuthenticator } from './dev.js';
import { JwtAuthenticator } from './jwt.js';

type AuthOptions = Pick<
  NodeOptions,
  'authSecret' | 'authPublicKey' | 'authJwksUrl' | 'authAlgorithms' | 'authAudience' | 'authIssuer' | 'authGrantsRequired' | 'defaultTenant'
>;

export function authenticatorFromOptions(options: AuthOptions): Authenticator {
  if (!(options.authSecret || options.authPublicKey || options.authJwksUrl)) return new DevAuthenticator(options.defaultTenant);
  return new JwtAuthenticator({
    secret: options.authSecret,
    publicKey: options.authPublicKey,
    jwksUrl: options.authJwksUrl,
    algorithms: options.authAlgorithms,
    audience: options.authAudience,
    issuer: options.authIssuer,
    grantsRequired: options.authGrantsRequired,
    defaultTenant: options.defaultTenant,
  });
}
