/**
 * Outgoing HTTP for the cleanup and webhooks workers: JSON POSTs signed with
 * HMAC-SHA256 over `${timestamp}.${body}` (the scheme Stripe popularised:
 * the timestamp in the signed text stops replays of old bodies).
 *
 *   Nerve-Signature: t=1718000000,v1=5257a869e7ec...
 *
 * Receivers verify with `verifySignature` (or the same few lines in any
 * language, see docs/events.md).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HandlerOutcome, LifecycleEvent } from '../events/event-log.js';

export const SIGNATURE_HEADER = 'Nerve-Signature';

export function sign(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function signatureHeader(secret: string, body: string, now = Date.now()): string {
  const t = Math.floor(now / 1000);
  return `t=${t},v1=${sign(secret, t, body)}`;
}

/** Check a `Nerve-Signature` header: right HMAC, timestamp within `toleranceSeconds` (default 300) of `now`. */
export function verifySignature(secret: string, header: string, body: string, options: { toleranceSeconds?: number; now?: number } = {}): boolean {
  let t: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value !== undefined && /^\d+$/.test(value)) t = Number(value);
    if (key === 'v1' && value !== undefined) signatures.push(value);
  }
  if (t === undefined || signatures.length === 0) return false;
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(sign(secret, t, body), 'hex');
  return signatures.some((s) => {
    const given = Buffer.from(s, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export interface PostResult {
  outcome: HandlerOutcome;
  status?: number;
  error?: string;
}

/**
 * POST `event` as JSON. 2xx → ack; 410 Gone → dead_letter (the endpoint says
 * it will never take it); anything else, including timeouts and network
 * errors → retry, with the lane's backoff.
 */
export async function postEvent(
  url: string,
  event: LifecycleEvent,
  options: { secret?: string; timeoutMs: number; attempt: number; fetch?: typeof fetch; traceparent?: string | undefined },
): Promise<PostResult> {
  const body = JSON.stringify(event);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'nerve-worker',
    'nerve-event-id': event.id,
    'nerve-event-type': event.type,
    'nerve-attempt': String(options.attempt),
  };
  // W3C trace context (src/tracing/): the endpoint's own spans can join the message's trace.
  if (options.traceparent !== undefined) headers.traceparent = options.traceparent;
  if (options.secret) headers[SIGNATURE_HEADER.toLowerCase()] = signatureHeader(options.secret, body);
  try {
    const response = await (options.fetch ?? fetch)(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs), redirect: 'manual' });
    // Drain the body so the connection can be reused.
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { outcome: 'ack', status: response.status };
    return { outcome: response.status === 410 ? 'dead_letter' : 'retry', status: response.status };
  } catch (error) {
    return { outcome: 'retry', error: error instanceof Error ? error.message : String(error) };
  }
}
