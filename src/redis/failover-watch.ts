/**
 * Hears a Sentinel failover begin (`+selected-slave`, about 100 ms before the
 * leader promotes the replica), so the history fences its appends before
 * any server changes role: the old master's other replicas would still pass
 * WAIT for writes the failover then drops (docs/operations.md, "Redis
 * Sentinel"). `+switch-master`, `-failover-abort-*` or a time bound end it.
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { fullJitter } from '../backoff.js';
import type { RedisSentinelSettings } from './connection.js';

/** What the watcher tells: a failover of the watched master began, or ended (switched or aborted). */
export interface FailoverWatchEvents {
  started: [detail: string];
  ended: [detail: string];
}

/** Events a leader publishes while it fails the master over, and the end of one (docs: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/#pubsub-messages). */
const START = ['+selected-slave', '+failover-state-send-slaveof-noone'];
const END = ['+switch-master', '-failover-abort-not-elected', '-failover-abort-no-good-slave', '-failover-abort-slave-timeout'];

export class FailoverWatch extends EventEmitter<FailoverWatchEvents> {
  private readonly clients: Redis[];
  private active = false;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param sentinel the sentinels and the master name
   * @param maxFailoverMs a failover not ended after this long is treated as ended (Sentinel's own failover-timeout bounds it too). Default 30000.
   */
  constructor(
    private readonly sentinel: RedisSentinelSettings,
    private readonly maxFailoverMs = 30_000,
  ) {
    super();
    this.clients = sentinel.sentinels.map(
      (address) =>
        new Redis({
          host: address.host,
          port: address.port,
          ...(sentinel.password === undefined ? {} : { password: sentinel.password }),
          ...(sentinel.username === undefined ? {} : { username: sentinel.username }),
          ...(sentinel.tls ? { tls: {} } : {}),
          lazyConnect: true,
          connectionName: 'nerve-failover-watch',
          // A sentinel down at start-up gets its SUBSCRIBE when it comes back.
          enableOfflineQueue: true,
          maxRetriesPerRequest: null,
          // Subscriptions are restored by ioredis after a reconnect (autoResubscribe).
          retryStrategy: (attempt: number) => fullJitter(attempt, 100, 2000),
        }),
    );
    for (const client of this.clients) {
      // A sentinel that is down is one of several; the others still tell.
      client.on('error', () => {});
      client.on('message', (channel: string, message: string) => this.onEvent(channel, message));
    }
  }

  /** Whether a failover of the master is under way (between a start and its end). */
  get inProgress(): boolean {
    return this.active;
  }

  /**
   * Subscribe on every sentinel; resolves once one has confirmed, rejects
   * when none did within `startTimeoutMs`. The others keep trying in the
   * background (ioredis reconnects, and sends the queued SUBSCRIBE then).
   */
  async start(startTimeoutMs = 10_000): Promise<void> {
    const subscribed = this.clients.map((client) => {
      client.connect().catch(() => {});
      const done = client.subscribe(...START, ...END);
      done.catch(() => {});
      return done;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no sentinel of ${this.sentinel.sentinels.map((a) => `${a.host}:${a.port}`).join(', ')} answered within ${startTimeoutMs} ms`)),
        startTimeoutMs,
      );
    });
    try {
      await Promise.race([Promise.any(subscribed), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const client of this.clients) client.disconnect();
  }

  private onEvent(channel: string, message: string): void {
    // +selected-slave / +failover-state-*: "<type> <name> <ip> <port> @ <master> <ip> <port>";
    // +switch-master: "<master> <old ip> <old port> <new ip> <new port>"; -failover-abort-*: "master <master> <ip> <port>".
    const words = message.split(' ');
    const master = channel === '+switch-master' ? words[0] : words.includes('@') ? words[words.indexOf('@') + 1] : words[1];
    if (master !== this.sentinel.name) return;
    if (START.includes(channel)) {
      if (this.active) return;
      this.active = true;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.end(`no end within ${this.maxFailoverMs} ms`), this.maxFailoverMs);
      this.timer.unref();
      this.emit('started', `${channel} ${message}`);
    } else if (END.includes(channel)) {
      this.end(`${channel} ${message}`);
    }
  }

  private end(detail: string): void {
    if (!this.active) return;
    this.active = false;
    clearTimeout(this.timer);
    this.emit('ended', detail);
  }
}
