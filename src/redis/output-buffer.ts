/**
 * Redis' `client-output-buffer-limit` for the pubsub class against what the
 * node's fan-out needs (docs/operations.md, "Redis"). Redis closes a
 * subscriber connection whose unread output passes the hard limit, at once;
 * every channel of that node then misses what was published until it has
 * resubscribed. The need: one room's full publish burst of the largest
 * frames (`roomRateBurst × maxFrameBytes`) must fit while a node is briefly
 * busy. The soft limit is not checked: it needs the buffer to stay over it
 * for its seconds, which a short stall does not.
 */

/** One class of `client-output-buffer-limit`; 0 means no limit. */
export interface OutputBufferLimit {
  hardBytes: number;
  softBytes: number;
  softSeconds: number;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1000, kb: 1024, m: 1_000_000, mb: 1024 ** 2, g: 1_000_000_000, gb: 1024 ** 3 };

/** Redis' memory units (redis.conf: `1k` = 1000, `1kb` = 1024, case-insensitive); undefined when not one. */
function bytes(text: string): number | undefined {
  const match = /^(\d+)([a-z]*)$/i.exec(text);
  const unit = UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  return match && unit !== undefined ? Number(match[1]) * unit : undefined;
}

/**
 * The classes of a `CONFIG GET client-output-buffer-limit` value, e.g.
 * `normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60`
 * (Redis prints bytes; the units of redis.conf are read too). A malformed
 * value yields no entry for its class.
 */
export function parseOutputBufferLimits(value: string): Map<string, OutputBufferLimit> {
  const words = value.trim().split(/\s+/);
  const limits = new Map<string, OutputBufferLimit>();
  for (let i = 0; i + 3 < words.length; i += 4) {
    const hardBytes = bytes(words[i + 1] as string);
    const softBytes = bytes(words[i + 2] as string);
    const softSeconds = bytes(words[i + 3] as string);
    if (hardBytes === undefined || softBytes === undefined || softSeconds === undefined) continue;
    limits.set((words[i] as string).toLowerCase(), { hardBytes, softBytes, softSeconds });
  }
  return limits;
}

/** Bytes of subscriber output the node's fan-out may need Redis to hold: one room's burst of the largest frames. */
export function pubsubBufferNeed(limits: { roomRateBurst: number; maxFrameBytes: number }): number {
  return limits.roomRateBurst * limits.maxFrameBytes;
}

const mib = (value: number): string => `${(value / 2 ** 20).toFixed(1)} MiB`;

/** The warning when the pubsub hard limit is below `needBytes`, else undefined (also with no limit, 0). */
export function pubsubLimitWarning(limit: OutputBufferLimit | undefined, needBytes: number): string | undefined {
  if (!limit || limit.hardBytes === 0 || limit.hardBytes >= needBytes) return undefined;
  return (
    `Redis client-output-buffer-limit pubsub hard limit is ${mib(limit.hardBytes)}, below the ${mib(needBytes)} ` +
    'one room burst can queue for a node (roomRateBurst × maxFrameBytes): Redis may cut a busy node from the bus'
  );
}

/** What a connection answers to `CONFIG GET` (ioredis `config('GET', …)`): [name, value, …]. */
interface ConfigReader {
  config(subcommand: 'GET', parameter: string): Promise<unknown>;
}

/**
 * Read the pubsub class of the server's limit. Undefined when the server
 * answers something unexpected; rejects when it refuses CONFIG (managed
 * Redis often renames or forbids it). Either way the caller checks nothing.
 */
export async function readPubsubLimit(redis: ConfigReader): Promise<OutputBufferLimit | undefined> {
  const reply = await redis.config('GET', 'client-output-buffer-limit');
  if (!Array.isArray(reply) || typeof reply[1] !== 'string') return undefined;
  return parseOutputBufferLimits(reply[1]).get('pubsub');
}
