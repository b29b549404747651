/**
 * The receiving end every networked bus shares (Redis, sharded Redis,
 * RabbitMQ): decode the bytes off the wire, count and drop garbage, give
 * canaries to the canary, and hand everything else to the node. Never throws.
 */
import type { BusMessageHandler } from './bus.js';
import type { Canary } from './canary.js';
import { EnvelopeError, decodeEnvelope } from './envelope.js';
import { errorText } from '../errors.js';
import type { LaneLogger } from '../log-types.js';
import type { RedisBusStats } from './wire.js';

export interface BusIntake {
  counters: Pick<RedisBusStats, 'decodeErrors' | 'received'>;
  canary: Canary;
  log: LaneLogger;
}

export function takeWireMessage(intake: BusIntake, handler: BusMessageHandler, channel: string, bytes: unknown): void {
  let envelope;
  try {
    if (!Buffer.isBuffer(bytes)) throw new EnvelopeError('truncated', 'message body is not binary');
    envelope = decodeEnvelope(bytes);
  } catch (error) {
    intake.counters.decodeErrors += 1;
    // Debug, not warn: one misbehaving publisher must not flood the log; the counter is the alarm.
    intake.log.debug({ channel, reason: error instanceof EnvelopeError ? error.reason : errorText(error) }, 'dropped an invalid bus envelope');
    return;
  }
  if (envelope.type === 'canary') {
    // Canaries are the bus's own business; one from another node (or a stale one) is dropped.
    intake.canary.received(envelope.id);
    return;
  }
  intake.counters.received += 1;
  try {
    handler(channel, envelope);
  } catch (error) {
    // A throwing handler must not break the connection's event loop.
    intake.log.error({ channel, err: error }, 'bus message handler threw');
  }
}
