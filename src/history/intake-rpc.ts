/**
 * Request/reply over RabbitMQ direct reply-to, for the chat intake. Not
 * rabbitmq-client's RPCClient (5.0.x), which publishes a request before its
 * reply consumer exists and registers it only after the confirm, dropping a
 * fast reply (docs/architecture.md, "The chat intake"). Here every request
 * waits for its channel's one setup and is registered before it is published;
 * requests go out in call order on one channel.
 */
import type { AsyncMessage, Channel, Connection, Envelope } from 'rabbitmq-client';

export interface IntakeTopology {
  exchanges: Array<Exclude<Parameters<Channel['exchangeDeclare']>[0], undefined>>;
  queues: Array<Exclude<Parameters<Channel['queueDeclare']>[0], string | undefined>>;
  queueBindings: Array<Parameters<Channel['queueBind']>[0]>;
}

/** No reply within the timeout. */
export class RpcTimeoutError extends Error {
  override readonly name = 'RpcTimeoutError';
}

interface Waiting {
  resolve: (reply: AsyncMessage) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

const REPLY_TO = 'amq.rabbitmq.reply-to';

export class IntakeRpc {
  private channel: Channel | undefined;
  private setup: Promise<Channel> | undefined;
  private readonly waiting = new Map<string, Waiting>();
  private seq = 0;
  private closed = false;

  constructor(
    private readonly connection: Connection,
    private readonly topology: IntakeTopology,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Publish `body` with a reply-to and an expiration of the timeout; resolve
   * with the reply, reject with RpcTimeoutError, or with the channel's error.
   */
  async send(envelope: Omit<Envelope, 'replyTo' | 'correlationId' | 'expiration'>, body: unknown): Promise<AsyncMessage> {
    if (this.closed) throw new Error('intake rpc is closed');
    const channel = this.channel?.active ? this.channel : await this.open();
    const id = `${++this.seq}`;
    return new Promise<AsyncMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new RpcTimeoutError(`no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      // Registered before publishing: a reply can come back before the publish call settles.
      this.waiting.set(id, { resolve, reject, timer });
      channel
        .basicPublish({ ...envelope, replyTo: REPLY_TO, correlationId: id, expiration: String(this.timeoutMs) }, body)
        .catch((error: unknown) => this.settle(id, error));
    });
  }

  /** One setup at a time; every request waits for it. */
  private open(): Promise<Channel> {
    this.setup ??= this.declare().finally(() => {
      this.setup = undefined;
    });
    return this.setup;
  }

  private async declare(): Promise<Channel> {
    const channel = await this.connection.acquire();
    try {
      for (const exchange of this.topology.exchanges) await channel.exchangeDeclare(exchange);
      for (const queue of this.topology.queues) await channel.queueDeclare(queue);
      for (const binding of this.topology.queueBindings) await channel.queueBind(binding);
      await channel.basicConsume({ queue: REPLY_TO, noAck: true }, (reply) => {
        if (reply.correlationId !== undefined) this.settle(reply.correlationId, undefined, reply);
      });
    } catch (error) {
      await channel.close().catch(() => {});
      throw error;
    }
    // Replies come back on the channel that sent the request: when it goes, so do their answers.
    channel.once('close', () => {
      if (this.channel === channel) this.channel = undefined;
      for (const id of [...this.waiting.keys()]) this.settle(id, new Error('intake rpc channel closed'));
    });
    this.channel = channel;
    return channel;
  }

  private settle(id: string, error: unknown, reply?: AsyncMessage): void {
    const waiting = this.waiting.get(id);
    if (!waiting) return; // timed out already, or not ours
    this.waiting.delete(id);
    clearTimeout(waiting.timer);
    if (reply) waiting.resolve(reply);
    else waiting.reject(error);
  }

  /** Reject what is waiting and close the channel. */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.waiting.keys()]) this.settle(id, new Error('intake rpc is closed'));
    const channel = this.channel ?? (await this.setup?.catch(() => undefined));
    this.channel = undefined;
    await channel?.close().catch(() => {});
  }
}
