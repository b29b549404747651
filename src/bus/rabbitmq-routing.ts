/**
 * Names the RabbitMQ bus uses on the broker. An AMQP routing key holds at most
 * 255 bytes, and a percent-encoded channel name can be longer: a name of at
 * most 255 UTF-8 bytes not starting with `#h:` is its own key (readable in
 * `rabbitmqctl list_bindings`); any other maps to `#h:` + its hex SHA-256.
 * Injective but for SHA-256 collisions: ChannelNamer names never contain `#`.
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
