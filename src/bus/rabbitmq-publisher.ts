/**
 * The RabbitMQ bus's publishing side: `mandatory` publishes with publisher
 * confirms on one channel (so one node's envelopes keep their order). The
 * broker returns an unroutable message before confirming it, so "confirmed
 * and not returned" means at least one node is bound: `send` answers 0 or 1,
 * as AMQP cannot say how many queues a message reached.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Connection, Publisher, ReturnedMessage } from 'rabbitmq-client';
import { errorText } from '../errors.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { unavailable, type RedisBusStats } from './wire.js';

/** A publish the broker did not confirm within the timeout: sent, outcome unknown. */
class ConfirmTimeout extends Error {
  readonly code = 'confirm_timeout';
  override readonly name = 'ConfirmTimeout';
}

export class ConfirmedPublisher {
  private readonly publisher: Publisher;
  private publishSeq = 0;
  /** Publishes awaiting their confirm, and those among them the broker returned as unroutable. */
  private readonly inFlight = new Set<string>();
  private readonly returned = new Set<string>();
  /** Why the last publish got no confirm in time, until a later one is confirmed (health shows it). */
  confirmOverdue: string | undefined;

  constructor(
    connection: Connection,
    exchange: { exchange: string; type: 'direct'; durable: true },
    private readonly options: { messageTtlMs: number; publishTimeoutMs: number },
    private readonly counters: RedisBusStats,
  ) {
    // Re-declared by rabbitmq-client on every new channel, i.e. after every reconnect.
    this.publisher = connection.createPublisher({ confirm: true, exchanges: [exchange] });
    // (rabbitmq-client 5 forwards returns as this event; its `onReturn` prop is not wired.)
    this.publisher.on('basic.return', (message: ReturnedMessage) => {
      const id = message.messageId;
      if (id !== undefined && this.inFlight.has(id)) this.returned.add(id);
    });
  }

  /**
   * Resolves with 0 when no queue is bound to `routingKey`, 1 when one is.
   * Rejects with `OutcomeUnknownError` when unconfirmed in time (the broker may
   * have routed it), `bus_unavailable` when the send failed.
   */
  async send(exchange: string, routingKey: string, bytes: Buffer): Promise<number> {
    const id = `${++this.publishSeq}`;
    this.inFlight.add(id);
    let timer: NodeJS.Timeout | undefined;
    try {
      const sent = this.publisher.send(
        { exchange, routingKey, mandatory: true, messageId: id, durable: false, expiration: String(this.options.messageTtlMs) },
        bytes,
      );
      // A send that loses the race against the timeout still settles later: keep that quiet.
      sent.catch(() => {});
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ConfirmTimeout(`no confirm within ${this.options.publishTimeoutMs} ms`)), this.options.publishTimeoutMs);
      });
      await Promise.race([sent, timeout]);
      this.confirmOverdue = undefined;
      // rabbitmq-client emits `basic.return` on a later turn (setImmediate) than it
      // resolves the confirm, though the broker sent the return first: wait one turn.
      await nextTurn();
      this.counters.published += 1;
      return this.returned.has(id) ? 0 : 1;
    } catch (error) {
      this.counters.publishFailures += 1;
      if (error instanceof ConfirmTimeout) {
        // Shown by health until a publish is confirmed again.
        this.confirmOverdue = error.message;
        throw new OutcomeUnknownError(`rabbitmq publish sent, ${error.message}; it may have been delivered`, { cause: error });
      }
      throw unavailable(`rabbitmq publish failed: ${errorText(error)}`, error);
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(id);
      this.returned.delete(id);
    }
  }

  close(): Promise<void> {
    return this.publisher.close();
  }
}
