/**
 * Channel (and key) names: `{env}:{service}:{tenant}:room:{id}` and
 * `…:user:{id}`. Every component is percent-encoded except RFC 3986's
 * unreserved characters, so `:` and `%` never appear inside a component:
 * names are injective and hold no glob character, whatever the ids
 * (docs/architecture.md, "Cross-node: Redis"). With `hashTags` (Redis
 * Cluster) room and user names end in the `{tenant:id}` tag their history
 * and presence keys carry, so a room's channel and keys share one slot.
 */

/** Components made only of unreserved characters (every valid room and user id but `@`) are their own escape. */
const UNRESERVED = /^[A-Za-z0-9._~-]*$/;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function escapeComponent(value: string): string {
  if (UNRESERVED.test(value)) return value;
  // A lone UTF-16 surrogate has no UTF-8 form (encodeURIComponent throws);
  // it is written `%uXXXX`, which no UTF-8 escape (`%` + two hex digits) can equal.
  // (No in-band marker: an earlier version split on "\u0000u", which an id can contain.)
  let escaped = '';
  let from = 0;
  for (const match of value.matchAll(LONE_SURROGATE)) {
    escaped += `${encode(value.slice(from, match.index))}%u${match[0].charCodeAt(0).toString(16).toUpperCase()}`;
    from = match.index + 1;
  }
  return escaped + encode(value.slice(from));
}

function encode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The Redis Cluster hash tag of a (tenant, id) pair, braces included:
 * `{<escaped tenant>:<escaped id>}`. The history and presence keys of a room
 * and, with `hashTags`, its channel all carry this text, so they share a slot.
 */
export function hashTag(tenant: string, id: string): string {
  return `{${escapeComponent(tenant)}:${escapeComponent(id)}}`;
}

export interface ChannelNamerOptions {
  /** Environment name, first component of every name (`prod`, `staging`). Required. */
  env: string;
  /** Service name, second component of every name. Required. */
  service: string;
  /**
   * End room and user names with a cluster hash tag (`{tenant:id}`) so a
   * room's channel shares the slot of its history keys. Needed by sharded
   * Pub/Sub on Redis Cluster (`--redis-mode sharded`); useless elsewhere.
   * Default false.
   */
  hashTags?: boolean;
}

export class ChannelNamer {
  /** `{env}:{service}`, escaped; the prefix of every channel and key name. */
  readonly prefix: string;
  /** Whether room and user names end in a hash tag (see the module comment). */
  readonly hashTags: boolean;

  constructor(options: ChannelNamerOptions) {
    this.prefix = `${escapeComponent(options.env)}:${escapeComponent(options.service)}`;
    this.hashTags = options.hashTags ?? false;
  }

  room(tenant: string, room: string): string {
    return this.name(tenant, 'room', room);
  }

  user(tenant: string, user: string): string {
    return this.name(tenant, 'user', user);
  }

  private name(tenant: string, kind: 'room' | 'user', id: string): string {
    const last = this.hashTags ? hashTag(tenant, id) : escapeComponent(id);
    return `${this.prefix}:${escapeComponent(tenant)}:${kind}:${last}`;
  }

  /** A node's private channel (canary probes, requests addressed to one node). */
  node(nodeId: string): string {
    return `${this.prefix}:_node:${escapeComponent(nodeId)}`;
  }
}
