/**
 * Errors a lane (Redis, RabbitMQ, PostgreSQL) throws when it cannot say what
 * became of a request. A lane refusing before anything was sent (connection
 * not ready, no offline queue) keeps its `unavailable` / `bus_unavailable`
 * NerveError: nothing happened. A request that was written to the server but
 * got no reply in time (a timeout, a connection lost under it) may have
 * taken effect, or may still: that is `OutcomeUnknownError`, so the answer
 * to the client never claims "nothing was stored".
 */

export class OutcomeUnknownError extends Error {
  readonly code = 'outcome_unknown';
  override readonly name = 'OutcomeUnknownError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
