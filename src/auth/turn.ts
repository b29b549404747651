/**
 * TURN REST credentials, the scheme of coturn's `use-auth-secret`
 * (draft-uberti-behave-turn-rest-00): the username is `<expiry>:<user>`
 * (expiry in Unix seconds), the credential base64(HMAC-SHA1(secret, username)).
 * coturn recomputes the credential from its `static-auth-secret` and refuses
 * it after the expiry.
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '../../packages/protocol/src/frames.js';

export interface TurnOptions {
  /** The `static-auth-secret` shared with coturn. */
  secret: string;
  /** `turn:` / `turns:` URLs the credentials are for. */
  urls: string[];
  /** Lifetime of a credential, seconds. */
  ttlSeconds: number;
}

export interface TurnCredential extends IceServer {
  urls: string[];
  username: string;
  credential: string;
  /** Expiry, ms since epoch. */
  expiresAt: number;
}

export function turnCredential(options: TurnOptions, user: string, now = Date.now()): TurnCredential {
  const expiry = Math.floor(now / 1000) + options.ttlSeconds;
  const username = `${expiry}:${user}`;
  const credential = createHmac('sha1', options.secret).update(username).digest('base64');
  return { urls: [...options.urls], username, credential, expiresAt: expiry * 1000 };
}
