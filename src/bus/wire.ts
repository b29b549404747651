/**
 * What every networked bus (Redis, sharded Redis, RabbitMQ) shares on the
 * sending side: its counters, the `bus_unavailable` error, the bytes of an
 * outgoing envelope and of a canary probe. The receiving side is intake.ts.
 */
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { BusEnvelope } from './bus.js';
import { canaryEnvelope, encodeEnvelope } from './envelope.js';

/** Counters for the node's metrics; monotonic since `start`. */
export interface RedisBusStats {
  /** Envelopes published (the server answered). */
  published: number;
  /** Envelopes received and handed to the node (canaries excluded). */
  received: number;
  /** Publishes rejected (bus down, timeout, encode error). */
  publishFailures: number;
  /** Messages on a subscribed channel that were not a valid envelope; dropped. */
  decodeErrors: number;
  /** Subscriber or publisher connections re-established after a loss. */
  reconnects: number;
  /** Canary probes that did not come back. */
  canaryFailures: number;
}

/** Nothing was sent: the bus is down, closed, or refused the command. */
export function unavailable(message: string, cause?: unknown): NerveError {
  return new NerveError(ErrorCode.BusUnavailable, message, cause === undefined ? undefined : { cause });
}

/** An outgoing envelope's bytes: one that cannot be encoded counts as a failed publish. */
export function encodeOutgoing(counters: RedisBusStats, envelope: BusEnvelope): Buffer {
  try {
    return encodeEnvelope(envelope);
  } catch (error) {
    counters.publishFailures += 1;
    throw error;
  }
}

/** A canary probe from node `origin` (every networked bus sends them to itself). */
export function canaryBytes(origin: string, id: string): Buffer {
  return encodeEnvelope(canaryEnvelope(origin, id));
}
