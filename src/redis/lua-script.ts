/**
 * A Lua script run by SHA, loaded on demand: EVALSHA first, EVAL once when
 * the server answers NOSCRIPT (a restart or SCRIPT FLUSH forgets scripts).
 * The one script client of every Redis lane (history, presence, mailbox,
 * sessions, registry, quotas, the Pusher store). On a Cluster ioredis routes
 * by the slot of the first key, so every key a script touches (and every
 * shard channel it SPUBLISHes on) must hash to one slot.
 */
import { createHash } from 'node:crypto';
import { Redis, type Cluster } from 'ioredis';
import { WriteBatch } from '../write-batch.js';
import { RedisLink } from './link.js';

export type LuaArg = string | Buffer | number;

export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Run the script on `client`. On a connection watched by a RedisLink, a
   * call sent but not answered rejects with OutcomeUnknownError (and a
   * timeout replaces the connection); see src/redis/link.ts.
   */
  run(client: Redis | Cluster, keys: string[], args: LuaArg[]): Promise<unknown> {
    const link = RedisLink.of(client);
    return track(client, link ? link.run(this.name, () => this.call(client, keys, args)) : this.call(client, keys, args));
  }

  private async call(client: Redis | Cluster, keys: string[], args: LuaArg[]): Promise<unknown> {
    holdWrites(client);
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      // NOSCRIPT is the one server reply we must branch on; Redis gives no code other than this prefix.
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Script calls not settled yet, per connection, so that closing waits for
 * them. A call is not one command: after NOSCRIPT it sends EVAL, and a QUIT
 * sent in between would close the connection under that retry.
 */
const inFlight = new WeakMap<Redis | Cluster, Set<Promise<unknown>>>();

function track(client: Redis | Cluster, call: Promise<unknown>): Promise<unknown> {
  let calls = inFlight.get(client);
  if (!calls) inFlight.set(client, (calls = new Set()));
  const settled = (): void => void calls.delete(call);
  call.then(settled, settled);
  calls.add(call);
  return call;
}

/** Resolve once every script call in flight on `client` settled, or after `ms`. */
export async function scriptCallsSettled(client: Redis | Cluster, ms: number): Promise<void> {
  const calls = inFlight.get(client);
  if (!calls || calls.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled([...calls]),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * Script calls issued in one tick (a burst of pipelined chat appends) leave
 * in one write: the socket is corked until the end of the tick, as the
 * gateway does for WebSockets. Not ioredis' auto-pipelining (see
 * SCRIPT_CONNECTION_DEFAULTS in script-connection.ts). Standalone
 * connections only: a Cluster spreads calls over several sockets.
 */
const scriptWrites = new WriteBatch();

function holdWrites(client: Redis | Cluster): void {
  if (client instanceof Redis && client.status === 'ready' && client.stream) scriptWrites.hold(client.stream);
}
