/**
 * Outgoing HTTP for the cleanup and webhooks workers: JSON POSTs signed to the
 * Standard Webhooks specification (https://www.standardwebhooks.com), so a
 * receiver verifies with that project's library in its language
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature`; docs/events.md).
 */
import { Webhook } from 'standardwebhooks';
import type { HandlerOutcome, LifecycleEvent } from '../events/event-log.js';
import { errorText } from '../errors.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The signer of `--webhook-secret`: `whsec_` + base64 is the specification's
 * form (the key is the decoded bytes); any other text is its own key, as UTF-8
 * bytes, which a receiver's library takes as `whsec_` + its base64.
 */
export function webhookSigner(secret: string): Webhook {
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : undefined;
  if (encoded && BASE64.test(encoded)) return new Webhook(Buffer.from(encoded, 'base64'), { format: 'raw' });
  return new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' });
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
  options: { signer?: Webhook | undefined; timeoutMs: number; attempt: number; fetch?: typeof fetch; traceparent?: string | undefined },
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
  if (options.signer) {
    // The event id is the message id: the same on every retry, as the specification asks.
    const at = new Date();
    headers['webhook-id'] = event.id;
    headers['webhook-timestamp'] = String(Math.floor(at.getTime() / 1000));
    headers['webhook-signature'] = options.signer.sign(event.id, at, body);
  }
  try {
    const response = await (options.fetch ?? fetch)(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs), redirect: 'manual' });
    // Drain the body so the connection can be reused.
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { outcome: 'ack', status: response.status };
    return { outcome: response.status === 410 ? 'dead_letter' : 'retry', status: response.status };
  } catch (error) {
    return { outcome: 'retry', error: errorText(error) };
  }
}
