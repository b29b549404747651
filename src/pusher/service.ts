/**
 * The Pusher side as the node sees it (docs/pusher.md): built when
 * `pusherApps` is not empty; owns its store and its connections, and offers
 * the node the four hooks it needs: upgrades, HTTP requests, bus envelopes,
 * and shutdown.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Bus, BusEnvelope } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { EventLog } from '../events/event-log.js';
import { errorText } from '../errors.js';
import type { History, RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../config/options.js';
import { redisSentinelSettings } from '../config/normalize.js';
import type { Presence } from '../presence/presence.js';
import type { TenantGuard } from '../quotas/guard.js';
import { redisStoreConnection } from '../redis/connection.js';
import type { NerveGatewayPort, PusherFact } from './context.js';
import type { PusherEvents } from './events.js';
import { PusherGateway } from './gateway.js';
import { handlePusherHttp } from './http-api.js';
import { MemoryPusherStore, RedisPusherStore, type PusherStore } from './store.js';
import { webhookEvent } from './webhooks.js';

export interface PusherServiceDeps {
  options: NodeOptions;
  gateway: NerveGatewayPort;
  bus: Bus;
  presence: Presence;
  /** The chat history (`nerve:resume`). */
  history: History;
  /** The cold lane: `pusher.webhook` events for apps with webhooks go there. */
  events: EventLog;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  /** Tenant quotas and usage metering (src/quotas/guard.ts); absent: neither. */
  tenants?: TenantGuard | undefined;
  /** Replace the store built from options (tests). */
  store?: PusherStore;
  onFact?: (fact: PusherFact) => void;
}

export class PusherService {
  readonly gateway: PusherGateway;
  private readonly events: PusherEvents;
  readonly store: PusherStore;
  private closing: Promise<void> | undefined;

  constructor(private readonly deps: PusherServiceDeps) {
    const { options } = deps;
    this.store =
      deps.store ??
      (options.redisUrl
        ? new RedisPusherStore({
            ...redisStoreConnection(options.redisUrl, options.redisMode === 'sharded', redisSentinelSettings(options)),
            prefix: deps.namer.prefix,
            nodeId: options.nodeId,
            beatMs: options.registryIntervalMs,
            probeIntervalMs: options.probeIntervalMs,
          })
        : new MemoryPusherStore());
    this.gateway = new PusherGateway({
      apps: options.pusherApps,
      options,
      gateway: deps.gateway,
      bus: deps.bus,
      presence: deps.presence,
      history: deps.history,
      store: this.store,
      namer: deps.namer,
      metrics: deps.metrics,
      log: deps.log.child({ component: 'pusher' }),
      tenants: deps.tenants,
      onFact: (fact) => this.onFact(fact),
    });
    this.events = this.gateway.events;
  }

  /** Hand a fact to the listener, and to the cold lane when its app has a webhook for it. */
  private onFact(fact: PusherFact): void {
    this.deps.onFact?.(fact);
    const event = webhookEvent(fact, this.deps.options.nodeId);
    if (!event) return;
    this.deps.events
      .publish(event)
      .catch((error: unknown) => this.deps.log.warn({ err: errorText(error), app: fact.app.id }, 'pusher webhook event not queued'));
  }

  /**
   * Presence entries of a crashed node expired (src/presence): its Pusher
   * members of presence channels left, and channels it alone occupied are
   * vacated. `pusher` when the entries were Pusher occupancy entries, which
   * are not the nerve gateway's business.
   */
  onPresenceExpired(ref: RoomRef, expiry: { users: string[]; roomEmpty: boolean }): 'pusher' | undefined {
    return this.gateway.channels.onPresenceExpired(ref, expiry.users, expiry.roomEmpty);
  }

  /** This node's expired entries were added back; `pusher` for occupancy entries, as above. */
  onPresenceRestored(ref: RoomRef, rejoin: { roomStarted: boolean }): 'pusher' | undefined {
    return this.gateway.channels.onPresenceRestored(ref, rejoin.roomStarted);
  }

  async start(): Promise<void> {
    await this.store.start();
    this.gateway.start();
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    return this.gateway.handleUpgrade(request, socket, head);
  }

  handleRequest(request: IncomingMessage, response: ServerResponse, url: URL): Promise<boolean> {
    return handlePusherHttp(
      {
        apps: this.deps.options.pusherApps,
        pusher: this.events,
        presence: this.deps.presence,
        store: this.store,
        onError: (code) => this.deps.metrics.errors.inc({ code }),
      },
      request,
      response,
      url,
    );
  }

  onBusMessage(channel: string, envelope: BusEnvelope): boolean {
    return this.events.onBusMessage(channel, envelope);
  }

  /** Close every Pusher connection (4200: reconnect at once); resolves once their channels are left. */
  drain(): Promise<void> {
    return this.gateway.drain();
  }

  /** Idempotent; after `drain`, before the lanes close. */
  close(): Promise<void> {
    this.closing ??= this.store.close();
    return this.closing;
  }
}
