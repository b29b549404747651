/**
 * webhooks: POST every event to each configured URL, signed (Standard Webhooks, see http.ts).
 * One queue per URL (`webhooks.<hash of the URL>`), so a failing endpoint
 * retries and dead-letters on its own without re-sending to the healthy ones.
 * Receivers deduplicate by the `Nerve-Event-Id` header (delivery is at least once).
 */
import { createHash } from 'node:crypto';
import { SpanKind } from '../tracing/tracing.js';
import { postEvent, webhookSigner, type PostResult } from './http.js';
import type { WorkerConsumer, WorkerDefinition } from './worker.js';
import { pusherWebhookConsumers } from '../pusher/webhooks.js';

/** Queue name of the webhook consumer for `url`. */
export function webhookQueue(url: string): string {
  return `webhooks.${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
}

export const webhooks: WorkerDefinition = {
  name: 'webhooks',
  needsPostgres: false,
  defaults: { maxAttempts: 8, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    // Pusher-format webhooks of the apps that have some (docs/pusher.md): batched and signed with each app's secret.
    const pusher = pusherWebhookConsumers(context.pusherApps, { timeoutMs: context.httpTimeoutMs, logger: context.logger });
    if (pusher.length > 0 && context.webhookUrls.length === 0) return pusher;
    const secret = context.webhookSecret;
    if (!secret) throw new Error('webhooks needs webhookSecret');
    if (context.webhookUrls.length === 0) throw new Error('webhooks needs at least one webhook URL');
    const signer = webhookSigner(secret);
    return [
      ...pusher,
      ...context.webhookUrls.map((url): WorkerConsumer => ({
        spec: { queue: webhookQueue(url), bindings: ['#'] },
        async handler(event, info) {
          const post = (traceparent: string | undefined): Promise<PostResult> =>
            postEvent(url, event, { signer, timeoutMs: context.httpTimeoutMs, attempt: info.attempt, traceparent });
          let result: PostResult;
          if (context.tracing) {
            const hop = context.tracing.start('nerve.webhook POST', SpanKind.CLIENT, info.traceparent, {
              tenant: event.tenant,
              room: event.room,
              class: 'lifecycle',
              event: event.type,
            });
            hop.span.setAttribute('url.full', url);
            result = await post(hop.traceparent);
            if (result.status !== undefined) hop.span.setAttribute('http.response.status_code', result.status);
            hop.end(result.outcome === 'ack' ? undefined : new Error(result.error ?? `status ${result.status}`));
          } else {
            // Tracing off here: the context the node sent still reaches the endpoint.
            result = await post(info.traceparent);
          }
          if (result.outcome !== 'ack') {
            context.logger.warn({ url, event: event.id, attempt: info.attempt, status: result.status, error: result.error }, 'webhook delivery failed');
          }
          return result.outcome;
        },
      })),
    ];
  },
};
