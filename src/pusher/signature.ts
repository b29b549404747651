/**
 * Pusher's HMAC-SHA256 signatures, all keyed with the app secret:
 * - channel auth: `{key}:{hex(HMAC(socket_id:channel[:channel_data]))}`;
 * - user sign-in: `{key}:{hex(HMAC(socket_id::user::user_data))}`;
 * - HTTP API requests: `auth_signature = hex(HMAC("{METHOD}\n{path}\n{sorted query}"))`,
 *   the query being every parameter but `auth_signature`, keys lower-cased,
 *   sorted, `key=value` joined by `&` (https://pusher.com/docs/channels/library_auth_reference/rest-api/#authentication);
 * - webhooks: `X-Pusher-Signature = hex(HMAC(body))`.
 * Compared in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { PusherApp } from '../config/pusher-apps.js';

export function hmacHex(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

/** Constant-time comparison of two ASCII strings (lengths leak; they are public: 64 hex digits). */
function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Whether `auth` (`key:signature`) signs `socketId:channel[:channelData]` for this app. */
export function channelAuthValid(app: PusherApp, auth: unknown, socketId: string, channel: string, channelData: string | undefined): boolean {
  const text = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return signedBy(app, auth, text);
}

/** Whether `auth` signs a user sign-in (`socket_id::user::user_data`). */
export function signinValid(app: PusherApp, auth: unknown, socketId: string, userData: string): boolean {
  return signedBy(app, auth, `${socketId}::user::${userData}`);
}

function signedBy(app: PusherApp, auth: unknown, text: string): boolean {
  if (typeof auth !== 'string') return false;
  const colon = auth.indexOf(':');
  if (colon < 0) return false;
  const key = auth.slice(0, colon);
  const signature = auth.slice(colon + 1);
  return sameText(key, app.key) && sameText(signature, hmacHex(app.secret, text));
}

/** Why a signed HTTP API request was refused: the status and the text Pusher answers with. */
export interface RequestRefusal {
  status: 401;
  message: string;
}

/** How far `auth_timestamp` may be from the server's clock, seconds (Pusher: 600). */
const TIMESTAMP_WINDOW_S = 600;

/**
 * Check a signed HTTP API request. `query` is the decoded query string;
 * `body` the raw body (empty for GET). Returns undefined when valid.
 */
export function verifyRequest(app: PusherApp, method: string, path: string, query: URLSearchParams, body: Buffer, nowMs: number): RequestRefusal | undefined {
  const authKey = query.get('auth_key');
  const timestamp = query.get('auth_timestamp');
  const version = query.get('auth_version');
  const signature = query.get('auth_signature');
  if (authKey === null || timestamp === null || signature === null)
    return { status: 401, message: 'Missing authentication parameters: auth_key, auth_timestamp and auth_signature are required' };
  if (!sameText(authKey, app.key)) return { status: 401, message: 'Unknown auth_key' };
  if (version !== null && version !== '1.0') return { status: 401, message: 'Unsupported auth_version: only 1.0' };
  const seconds = Number(timestamp);
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - seconds) > TIMESTAMP_WINDOW_S) {
    return { status: 401, message: `Timestamp expired: given timestamp is not within ${TIMESTAMP_WINDOW_S} seconds of the server time` };
  }
  const md5 = query.get('body_md5');
  if (body.length > 0) {
    const expected = createHash('md5').update(body).digest('hex');
    if (md5 === null || !sameText(md5, expected)) return { status: 401, message: 'Invalid body_md5: it must be the MD5 hex digest of the request body' };
  }
  const pairs: [string, string][] = [];
  for (const [name, value] of query) {
    if (name === 'auth_signature') continue;
    pairs.push([name.toLowerCase(), value]);
  }
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const text = `${method.toUpperCase()}\n${path}\n${pairs.map(([name, value]) => `${name}=${value}`).join('&')}`;
  if (!sameText(signature, hmacHex(app.secret, text))) {
    return { status: 401, message: `Invalid signature: you should have sent HmacSHA256Hex(${JSON.stringify(text)}, your_secret)` };
  }
  return undefined;
}
