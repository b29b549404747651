/**
 * Acks a consumer channel's deliveries in `multiple` acks (issue 18).
 * rabbitmq-client acks every delivery with its own basic.ack; the broker
 * then parses a frame and settles one message per ack, about a fifth of its
 * CPU per event here. The batcher holds the acks for at most a millisecond,
 * or until half the prefetch has settled, and acks the run of settled
 * delivery tags from the lowest one with one `multiple` ack. A tag above one
 * still in a handler is acked on its own in the same flush, so a slow
 * handler never holds the others' acks back (nor the prefetch window).
 * Delivery tags of a channel are consecutive from 1, and a channel's acks
 * go out before it closes (a graceful close redelivers nothing). A channel
 * that dies takes its unacked tags with it: the broker redelivers them, as
 * it would have without batching.
 */
import type { Channel, Connection } from 'rabbitmq-client';

/** Longest an ack waits for others to join it, ms. */
const FLUSH_MS = 1;

export class AckBatcher {
  /** Every tag up to here is settled on the wire (acked or nacked). */
  private floor = 0;
  /** Settled by the consumer, ack not sent yet. */
  private readonly waiting = new Set<number>();
  /** Above `floor` and already settled on the wire (a single ack or a nack): no ack needed, only counted for the run. */
  private readonly sent = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly flushAt: number;

  constructor(
    private readonly channel: Channel,
    private readonly sendAck: (params: { deliveryTag: number; multiple?: boolean }) => void,
    prefetch: number,
  ) {
    this.flushAt = Math.max(1, Math.floor(prefetch / 2));
  }

  ack(deliveryTag: number): void {
    this.waiting.add(deliveryTag);
    if (this.waiting.size >= this.flushAt) this.flush();
    else this.timer ??= setTimeout(this.flush, FLUSH_MS);
  }

  /** A tag settled on the wire another way (a nack). */
  settledElsewhere(deliveryTag: number): void {
    this.sent.add(deliveryTag);
  }

  readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.waiting.size === 0) return;
    if (!this.channel.active) {
      this.waiting.clear();
      return;
    }
    // The run of settled tags above `floor`; a `multiple` ack must name a tag not yet
    // settled (the broker closes the channel on an unknown tag), so it names the
    // highest waiting one and covers the rest of the run below it.
    let top = this.floor;
    let highestWaiting = 0;
    for (;;) {
      const next = top + 1;
      if (this.waiting.delete(next)) highestWaiting = next;
      else if (!this.sent.delete(next)) break;
      top = next;
    }
    this.floor = top;
    try {
      if (highestWaiting > 0) this.sendAck({ deliveryTag: highestWaiting, multiple: true });
      // Above a tag still in a handler: ack them one by one now rather than wait for it.
      for (const tag of this.waiting) {
        this.sendAck({ deliveryTag: tag });
        this.sent.add(tag);
      }
    } catch {
      // The channel closed under us (this may run from a timer): its unacked deliveries go back to the queue.
    }
    this.waiting.clear();
  };
}

/**
 * A view of `connection` whose channels ack through an AckBatcher, for
 * `createConsumer` (rabbitmq-client's Consumer acks on the channel it
 * acquires; it calls nothing else on the view but what it inherits).
 */
export function batchingAcks(connection: Connection, prefetch: number): Connection {
  const view = Object.create(connection) as Connection;
  view.acquire = async (options) => {
    const channel = await connection.acquire(options);
    const ack = channel.basicAck.bind(channel);
    const nack = channel.basicNack.bind(channel);
    const close = channel.close.bind(channel);
    const batcher = new AckBatcher(channel, ack, prefetch);
    channel.basicAck = (params) => {
      if (params.multiple || params.deliveryTag === undefined) {
        batcher.flush();
        ack(params);
      } else batcher.ack(params.deliveryTag);
    };
    channel.basicNack = (params) => {
      if (params.multiple) batcher.flush();
      nack(params);
      if (!params.multiple && params.deliveryTag !== undefined) batcher.settledElsewhere(params.deliveryTag);
    };
    channel.close = () => {
      batcher.flush();
      return close();
    };
    return channel;
  };
  return view;
}
