/**
 * The pusher-js benchmark connection, against nerve's Pusher endpoint
 * (docs/pusher.md, bench/README.md scenario 7). Apart from clients.ts, whose
 * connections speak nerve's own protocol and Socket.IO.
 */
import { createHmac } from 'node:crypto';
import * as pusherJs from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback } from 'pusher-js';
import { BENCH_PUSHER_APP, type BenchConn, type Delivery, type MessageClass } from './bench-conn.js';

// pusher-js is CommonJS (module.exports = Pusher) with ES-style typings: at run time the class is the namespace's default.
type PusherClient = InstanceType<typeof pusherJs.default.default>;
const PusherClient = pusherJs.default as unknown as typeof pusherJs.default.default;

/** The event name every bench room message travels under, as a Pusher client event. */
const PUSHER_EVENT = 'client-bench';
/** The same, triggered through the HTTP API (where `client-` names are the clients' own). */
export const PUSHER_API_EVENT = 'bench';

/**
 * pusher-js against nerve's Pusher endpoint. A room is the private channel
 * `private-<room>` (private: client events need it), authorized here with
 * the app secret as an app's auth endpoint would; a publish is a client
 * event, which nerve relays as an ephemeral room message. `ping` is
 * `pusher:ping` → `pusher:pong`: the node answers a connection's frames in
 * order, so it flow-controls the publisher like the native ping.
 */
export class PusherConn implements BenchConn {
  onMessage: ((message: Delivery) => void) | undefined;
  readonly onSignal = undefined;
  errors = 0;
  lastError: string | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly pongs: Array<() => void> = [];

  constructor(
    readonly user: string,
    private readonly pusher: PusherClient,
  ) {
    pusher.connection.bind('message', (event: { event: string }) => {
      if (event.event === 'pusher:pong') this.pongs.shift()?.();
    });
    pusher.connection.bind('error', (error: unknown) => this.error(error));
  }

  private error(error: unknown): void {
    this.errors += 1;
    this.lastError = JSON.stringify(error).slice(0, 300);
  }

  /** `url` is ws://host:port (the node); resolves on `pusher:connection_established`. */
  static open(url: string, user: string, timeoutMs: number): Promise<PusherConn> {
    const { hostname, port } = new URL(url);
    const sign = (socketId: string, channel: string) =>
      `${BENCH_PUSHER_APP.key}:${createHmac('sha256', BENCH_PUSHER_APP.secret).update(`${socketId}:${channel}`).digest('hex')}`;
    const pusher = new PusherClient(BENCH_PUSHER_APP.key, {
      cluster: 'nerve',
      wsHost: hostname,
      wsPort: Number(port),
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      // pusher-js pings on its own after this much silence; far off, so every pong seen answers one of ours.
      activityTimeout: 600_000,
      channelAuthorization: {
        endpoint: '/unused',
        transport: 'ajax',
        customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) =>
          callback(null, { auth: sign(socketId, channelName) }),
      },
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pusher.disconnect();
        reject(new Error(`pusher-js connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      pusher.connection.bind('state_change', ({ current }: { current: string }) => {
        if (current === 'connected') {
          clearTimeout(timer);
          resolve(new PusherConn(user, pusher));
        } else if (current === 'failed' || current === 'unavailable') {
          clearTimeout(timer);
          pusher.disconnect();
          reject(new Error(`pusher-js connection ${current}`));
        }
      });
    });
  }

  join(room: string): Promise<void> {
    const name = `private-${room}`;
    const channel = this.pusher.subscribe(name);
    this.channels.set(room, channel);
    for (const event of [PUSHER_EVENT, PUSHER_API_EVENT]) channel.bind(event, (data: unknown) => this.onMessage?.({ room, data }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no subscription_succeeded for ${name} within 30 s`)), 30_000);
      channel.bind('pusher:subscription_succeeded', () => {
        clearTimeout(timer);
        resolve();
      });
      channel.bind('pusher:subscription_error', (error: unknown) => {
        clearTimeout(timer);
        this.error(error);
        reject(new Error(`subscribe ${name} refused: ${JSON.stringify(error)}`));
      });
    });
  }

  publish(room: string, _cls: MessageClass, data: unknown): void {
    const channel = this.channels.get(room);
    if (!channel?.trigger(PUSHER_EVENT, data)) this.error({ publish: `not subscribed to ${room}` });
  }

  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('pusher:pong not seen within 30 s')), 30_000);
      this.pongs.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.pusher.connection.send_event('pusher:ping', {});
    });
  }

  signal(): void {
    throw new Error('pusher-js connections carry no nerve signals');
  }

  close(): void {
    this.pusher.disconnect();
  }
}
