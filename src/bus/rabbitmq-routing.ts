/**
 * Names the RabbitMQ bus uses on the broker (project issue 6).
 *
 * Routing keys: an AMQP routing key is a short string, at most 255 bytes
 * (AMQP 0-9-1 `shortstr`). A bus channel name (`{env}:{service}:{tenant}:room:{id}`,
 * src/bus/channels.ts) can be longer: ids of up to 128 characters are
 * percent-encoded, so one multi-byte id triples in size. The mapping:
 *
 * - a channel of at most 255 UTF-8 bytes that does not start with `#h:` is its
 *   own routing key (readable in `rabbitmqctl list_bindings`);
 * - any other channel maps to `#h:` + the hex SHA-256 of its UTF-8 bytes
 *   (67 bytes).
 *
 * The mapping is injective except for SHA-256 collisions: a name kept as is
 * never starts with `#h:`, and hashed keys always do. ChannelNamer names never
 * contain `#` (it is percent-encoded), so the marker cannot be reached by an
 * id; the second clause guards names built some other way.
 */
import { createHash } from 'node:crypto';

/** Longest routing key AMQP 0-9-1 can carry, in bytes. */
export const MAX_ROUTING_KEY_BYTES = 255;
/** Prefix of hashed routing keys. */
export const HASHED_KEY_PREFIX = '#h:';

export function routingKeyFor(channel: string): string {
  if (Buffer.byteLength(channel, 'utf8') <= MAX_ROUTING_KEY_BYTES && !channel.startsWith(HASHED_KEY_PREFIX)) return channel;
  return `${HASHED_KEY_PREFIX}${createHash('sha256').update(channel, 'utf8').digest('hex')}`;
}

/** The direct exchange every node publishes hot-lane envelopes to: `{env}.{service}.hot`. */
export function hotExchangeName(env: string, service: string): string {
  return `${env}.${service}.hot`;
}

/**
 * Prefix of a node's queues: `{env}.{service}.hot.node.{nodeId}.` followed by
 * a random incarnation per (re)connection. The incarnation makes a new queue
 * never wait for the broker to notice that the connection owning the previous
 * one is dead (an exclusive queue of the same name would answer RESOURCE_LOCKED).
 */
export function nodeQueuePrefix(env: string, service: string, nodeId: string): string {
  return `${hotExchangeName(env, service)}.node.${nodeId}.`;
}
