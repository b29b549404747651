/**
 * cleanup: for each room.ended, POST the event to the configured hook (which
 * releases media resources: SFU rooms, recordings, TURN allocations). Retried
 * with backoff by the lane; dead-lettered after the last attempt.
 */
import { postEvent, webhookSigner } from './http.js';
import type { WorkerDefinition } from './worker.js';

export const cleanup: WorkerDefinition = {
  name: 'cleanup',
  needsPostgres: false,
  defaults: { maxAttempts: 8, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const url = context.cleanupHookUrl;
    if (!url) throw new Error('cleanup needs cleanupHookUrl');
    const signer = context.webhookSecret ? webhookSigner(context.webhookSecret) : undefined;
    return [
      {
        spec: { queue: 'cleanup', bindings: ['room.ended'] },
        async handler(event, info) {
          const result = await postEvent(url, event, {
            timeoutMs: context.httpTimeoutMs,
            attempt: info.attempt,
            signer,
          });
          if (result.outcome !== 'ack')
            context.logger.warn({ event: event.id, attempt: info.attempt, status: result.status, error: result.error }, 'cleanup hook failed');
          return result.outcome;
        },
      },
    ];
  },
};
