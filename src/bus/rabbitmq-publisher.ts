/**
 * The RabbitMQ bus's publishing side: `mandatory` publishes with publisher
 * confirms on one channel (so one node's envelopes keep their order). The
 * broker returns an unroutable message before confirming it, so "confirmed
 * and not returned" means at least one node is bound: `send` answers 0 or 1,
 * as AMQP cannot say how many queues a message reached.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Connection, Publisher, ReturnedMessage } from 'rabbitmq-client';

/** A publish the broker did not confirm within the timeout: sent, outcome unknown. */
export class ConfirmTimeout extends Error {
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
  ) {
    // Re-declared by rabbitmq-client on every new channel, i.e. after every reconnect.
    this.publisher = connection.createPublisher({ confirm: true, exchanges: [exchange] });
    // (rabbitmq-client 5 forwards returns as this event; its `onReturn` prop is not wired.)
    this.publisher.on('basic.return', (message: ReturnedMessage) => {
      const id = message.messageId;
      if (id !== undefined && this.inFlight.has(id)) this.returned.add(id);
    });
  }

  /** Resolves with 0 when no queue is bound to `routingKey`, 1 when one is; rejects with `ConfirmTimeout` or the send's error. */
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
      try {
        await Promise.race([sent, timeout]);
      } catch (error) {
        if (error instanceof ConfirmTimeout) this.confirmOverdue = error.message;
        throw error;
      }
      this.confirmOverdue = undefined;
      // rabbitmq-client emits `basic.return` on a later turn (setImmediate) than it
      // resolves the confirm, though the broker sent the return first: wait one turn.
      await nextTurn();
      return this.returned.has(id) ? 0 : 1;
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
