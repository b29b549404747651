/**
 * A worker's hop: one `nerve.worker` span per handled event, the child of the
 * span that emitted it (the cold lane's `traceparent` header). The handler
 * sees the worker span as `info.traceparent`, so its own hops (the webhook
 * request) hang below it.
 */
import type { EventHandler } from '../events/event-log.js';
import { SpanKind, type Tracing } from './tracing.js';

export function traceHandler(tracing: Tracing | undefined, worker: string, handler: EventHandler): EventHandler {
  if (!tracing) return handler;
  return async (event, info) => {
    const hop = tracing.start(`nerve.worker ${worker}`, SpanKind.CONSUMER, info.traceparent, {
      tenant: event.tenant,
      room: event.room,
      class: 'lifecycle',
      event: event.type,
      worker,
      attempt: info.attempt,
    });
    try {
      const outcome = await handler(event, { ...info, traceparent: hop.traceparent });
      hop.span.setAttribute('nerve.outcome', outcome);
      hop.end();
      return outcome;
    } catch (error) {
      hop.end(error);
      throw error;
    }
  };
}
