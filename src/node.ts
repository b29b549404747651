/**
 * The composition root: one nerve node. Builds the lanes, the gateway and
 * the HTTP server, starts them in order and stops them in the one shutdown
 * order (stop accepting → drain clients with a reason → close lanes → close
 * HTTP).
 */
import { Tracing } from './tracing/tracing.js';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import type { Server } from 'node:http';
import type { Authenticator } from './auth/authenticator.js';
import { authenticatorFromOptions } from './auth/from-options.js';
import { ChannelNamer } from './bus/channels.js';
import { errorText } from './errors.js';
import { Gateway } from './gateway/gateway.js';
import { createHttpServer, requestListener, upgradeToGateway, type HttpDeps } from './http/http-server.js';
import { HttpMount, refuseUpgrade, type AppServer, type MountOptions } from './http/attach.js';
import { apiKeyring } from './http/api.js';
import type { LaneHealth } from './lanes.js';
import { createLanes, type LaneOverrides, type Lanes } from './lanes-factory.js';
import { createLogger, type Logger } from './logger.js';
import { NodeMetrics } from './metrics.js';
import type { NodeOptions, NodeOptionsInput } from './config/options.js';
import { normalizeOptions, redisSentinelSettings } from './config/normalize.js';
import { handleAdminCluster } from './http/admin-cluster.js';
import { DeliverySampler, InstrumentedEventLog } from './instrument.js';
import { RegistryHeartbeat } from './registry/heartbeat.js';
import { MemoryNodeRegistry } from './registry/memory.js';
import { RedisNodeRegistry } from './registry/redis.js';
import type { NodeRegistry } from './registry/registry.js';
import { NodeSnapshot } from './registry/snapshot.js';
import { NERVE_VERSION } from './version.js';
import type { RedisBusStats } from './bus/wire.js';
import type { LinkStats } from './redis/link.js';
import { PostgresProbe } from './postgres/probe.js';
import { PusherService } from './pusher/service.js';
import { redisStoreConnection } from './redis/connection.js';
import { Tenancy } from './tenancy.js';

/** The connection probe counters of a lane that keeps them (src/redis/link.ts); none for the others. */
function linkStatsOf(lane: unknown): LinkStats[] {
  const probed = lane as { linkStats?: unknown } | undefined;
  return probed && typeof probed.linkStats === 'function' ? (probed.linkStats as () => LinkStats[]).call(lane) : [];
}

export type NodeState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface NerveNodeDeps {
  /** Replace lanes built from options (tests, embedding). */
  lanes?: LaneOverrides;
  authenticator?: Authenticator;
  logger?: Logger;
  /**
   * Mount on this application server instead of a server of the node's own
   * (`attach`, src/embed.ts): no listen, no close of the server, and only
   * nerve's paths are taken.
   */
  mount?: MountOptions & { server: AppServer };
}

export class NerveNode {
  readonly options: NodeOptions;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly lanes: Lanes;
  readonly gateway: Gateway;
  /** Tenant quotas and usage metering (src/tenancy.ts). */
  readonly tenancy: Tenancy;
  readonly authenticator: Authenticator;
  /** The Pusher protocol side (src/pusher, docs/pusher.md); only with `pusherApps`. */
  readonly pusher: PusherService | undefined;
  /** The node's own server, or the application's when mounted. */
  private readonly http: Server | AppServer;
  private readonly mount: HttpMount | undefined;
  private readonly mountOptions: MountOptions | undefined;
  /** Reads stored chat history for the server API; only when a PostgreSQL URL is set. */
  private readonly pool: pg.Pool | undefined;
  /** Probes the pool every probeIntervalMs (src/postgres/probe.ts); /readyz shows it as lane `postgres`. */
  private readonly pgProbe: PostgresProbe | undefined;
  private state: NodeState = 'idle';
  private stopping: Promise<void> | undefined;
  /** Who is in the cluster (Redis when `redisUrl` is set, else this node alone); `nerve status` and /admin read it. */
  readonly registry: NodeRegistry;
  private readonly heartbeat: RegistryHeartbeat;
  private readonly snapshot: NodeSnapshot;
  private readonly timedEvents: InstrumentedEventLog;
  private readonly sampler: DeliverySampler;
  private readonly startedAt = Date.now();

  constructor(input: NodeOptionsInput = {}, deps: NerveNodeDeps = {}) {
    this.options = normalizeOptions(input);
    this.log = deps.logger ?? createLogger(this.options.logLevel, { node: this.options.nodeId }, this.options.logFormat);
    this.metrics = new NodeMetrics({ nodeId: this.options.nodeId, version: NERVE_VERSION });
    this.sampler = new DeliverySampler(this.metrics);
    if (this.options.postgresUrl) {
      // With --bus rabbitmq the chat history lives here too: an append holds a connection per room being written.
      // connectionTimeoutMillis: a chat append must fail (the client retries), never wait forever for a connection.
      this.pool = new pg.Pool({ connectionString: this.options.postgresUrl, max: this.options.bus === 'rabbitmq' ? 16 : 4, connectionTimeoutMillis: 5000 });
      this.pool.on('error', (error) => this.log.warn({ err: error.message }, 'postgres pool error'));
      this.pgProbe = new PostgresProbe(this.pool, this.options.probeIntervalMs);
    }
    // Sharded Pub/Sub: room channels carry the hash tag of their history keys (src/bus/channels.ts).
    const namer = new ChannelNamer({ env: this.options.env, service: this.options.service, hashTags: this.options.redisMode === 'sharded' });
    const lanes = createLanes(
      this.options,
      {
        namer,
        log: this.log,
        pool: this.pool,
        // Late-bound: the gateway is built after the lanes it uses.
        // Occupancy entries of Pusher channels (src/pusher) are the Pusher side's alone, never a room's.
        onPresenceExpired: (room, expiry) => {
          if (this.pusher?.onPresenceExpired(room, expiry) !== 'pusher') this.gateway.onPresenceExpired(room, expiry);
        },
        onPresenceRestored: (room, rejoin) => {
          if (this.pusher?.onPresenceRestored(room, rejoin) !== 'pusher') this.gateway.onPresenceRestored(room, rejoin);
        },
      },
      deps.lanes,
    );
    // Broker confirm latency (nerve_event_publish_seconds) is timed around the cold lane, not inside it.
    this.timedEvents = new InstrumentedEventLog(lanes.events, this.metrics);
    this.lanes = { ...lanes, events: this.timedEvents };
    const busWithStats = this.lanes.bus as { stats?: () => RedisBusStats };
    const stats = busWithStats.stats;
    if (typeof stats === 'function') this.metrics.sources.busStats = () => stats.call(busWithStats);
    this.metrics.sources.outboxDepth = () => this.lanes.events.outboxDepth();
    const sharded = this.options.redisMode === 'sharded';
    this.registry = this.options.redisUrl
      ? new RedisNodeRegistry({
          ...redisStoreConnection(this.options.redisUrl, sharded, redisSentinelSettings(this.options)),
          prefix: namer.prefix,
          probeIntervalMs: this.options.probeIntervalMs,
          logger: this.log,
          // Its connection was replaced (or came back): it may have missed beats, so the entry is written again now.
          onRestored: () => void this.heartbeat.beatNow(),
        })
      : new MemoryNodeRegistry();
    const probed = [
      this.lanes.bus,
      this.lanes.history,
      this.lanes.presence,
      this.lanes.mailbox,
      this.lanes.sessions,
      this.lanes.receipts,
      this.registry,
      this.pgProbe,
    ];
    this.metrics.sources.linkStats = () => probed.flatMap(linkStatsOf);
    this.authenticator = deps.authenticator ?? authenticatorFromOptions(this.options);
    this.tenancy = new Tenancy(this.options, { prefix: namer.prefix, events: this.lanes.events, metrics: this.metrics, log: this.log });
    this.gateway = new Gateway({
      options: this.options,
      ...this.lanes,
      authenticator: this.authenticator,
      namer,
      metrics: this.metrics,
      log: this.log,
      tenants: this.tenancy.guard,
      tracing: this.options.tracing ? new Tracing() : undefined,
    });
    this.pusher =
      this.options.pusherApps.length > 0
        ? new PusherService({
            options: this.options,
            gateway: this.gateway,
            bus: this.lanes.bus,
            presence: this.lanes.presence,
            history: this.lanes.history,
            events: this.lanes.events,
            namer,
            metrics: this.metrics,
            log: this.log,
            tenants: this.tenancy.guard,
          })
        : undefined;
    const httpDeps: HttpDeps = {
      ...(this.pusher ? { pusher: this.pusher } : {}),
      gateway: this.gateway,
      metrics: this.metrics,
      nodeId: this.options.nodeId,
      lanes: () => this.health(),
      demo: this.options.demo,
      headersTimeoutMs: this.options.limits.headersTimeoutMs,
      api: {
        keyring: apiKeyring(this.options),
        pool: this.pool,
        schema: this.options.postgresSchema,
        defaultTenant: this.options.defaultTenant,
        gateway: this.gateway,
        history: this.lanes.history,
        presence: this.lanes.presence,
        tenancy: this.tenancy,
        options: this.options,
        log: this.log.child({ component: 'api' }),
        onError: (code) => this.metrics.errors.inc({ code: `http_${code}` }),
      },
      admin: {
        keyring: apiKeyring(this.options),
        cluster: () =>
          handleAdminCluster(
            this.options.nodeId,
            this.registry,
            () => this.snapshot.build(),
            () => this.gateway.state !== 'running',
          ),
        onError: (code) => this.metrics.errors.inc({ code: `http_${code}` }),
        actions: {
          nodeId: this.options.nodeId,
          gateway: this.gateway,
          events: this.lanes.events,
          tenancy: this.tenancy,
          pool: this.pool,
          schema: this.options.postgresSchema,
          maxFrameBytes: this.options.limits.maxFrameBytes,
          quotaRefreshMs: this.options.quotaRefreshMs,
          log: this.log.child({ component: 'admin' }),
        },
      },
    };
    if (deps.mount) {
      const { server, ...mountOptions } = deps.mount;
      this.http = server;
      this.mountOptions = mountOptions;
      this.mount = new HttpMount(server, mountOptions, {
        request: requestListener(httpDeps),
        upgrade: (request, socket, head) => {
          // Mounted before the lanes are up (so nerve's path is never the application's meanwhile): refused until then.
          if (this.state === 'idle' || this.state === 'starting') {
            this.metrics.upgradesRejected.inc({ reason: 'starting' });
            refuseUpgrade(socket, 503, 'starting', 'nerve is starting; retry shortly');
            return;
          }
          upgradeToGateway(this.gateway, request, socket, head);
        },
        refused: (reason) => this.metrics.upgradesRejected.inc({ reason }),
      });
    } else {
      this.http = createHttpServer(httpDeps);
    }
    this.snapshot = new NodeSnapshot({
      nodeId: this.options.nodeId,
      address: () => this.address(),
      version: NERVE_VERSION,
      startedAt: this.startedAt,
      metrics: this.metrics,
      connections: () => this.gateway.connectionCount(),
      rooms: () => this.gateway.roomCount(),
      lanes: () => this.health(),
      eventsPublished: () => this.timedEvents.published,
    });
    this.heartbeat = new RegistryHeartbeat({
      registry: this.registry,
      intervalMs: this.options.registryIntervalMs,
      snapshot: () => this.snapshot.build(),
      log: this.log.child({ component: 'registry' }),
    });
  }

  /** Where this node is reached: `advertiseUrl`, else the address it listens on. */
  address(): string {
    if (this.options.advertiseUrl) return this.options.advertiseUrl;
    const bound = this.http.address();
    const port = bound && typeof bound === 'object' ? bound.port : this.options.port;
    const host = this.options.host === '0.0.0.0' || this.options.host === '::' ? 'localhost' : this.options.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get status(): NodeState {
    return this.state;
  }

  health(): LaneHealth[] {
    const { bus, history, presence, events, mailbox } = this.lanes;
    this.metrics.outboxDepth.set(events.outboxDepth());
    // Room sessions are not a lane of their own in /readyz: they share presence's Redis (whose health shows it),
    // and their failures never fail a request (logged, nerve_errors_total{code="session_unavailable"}).
    // Read positions neither: a `read` they fail is answered `unavailable`, a join goes on without them.
    return [
      bus.health(),
      history.health(),
      presence.health(),
      events.health(),
      ...(mailbox ? [mailbox.health()] : []),
      ...(this.pgProbe ? [this.pgProbe.health()] : []),
    ];
  }

  async start(): Promise<AddressInfo> {
    if (this.state !== 'idle') throw new Error(`cannot start a node that is ${this.state}`);
    this.state = 'starting';
    this.mount?.install();
    const { bus, history, presence, events, mailbox, sessions, calls, receipts } = this.lanes;
    await bus.start(
      (channel, envelope) => {
        // A room channel may have Pusher subscribers, nerve members or both; a channel only Pusher listens on is not the gateway's.
        const forPusher = this.pusher?.onBusMessage(channel, envelope) ?? false;
        if (!forPusher || this.gateway.listensOn(channel)) this.gateway.onBusMessage(channel, envelope);
        this.sampler.delivered(envelope);
      },
      // Channels the bus had to subscribe again may have missed chat: the gateway re-reads it from the history.
      (channels) => this.gateway.onBusResubscribed(channels),
    );
    await Promise.all([history.start(), presence.start(), events.start(), mailbox?.start(), sessions.open(), calls.open(), receipts.open()]);
    this.pgProbe?.start();
    if (this.authenticator.kind === 'dev') {
      this.log.warn('dev authentication is on: clients choose their own user id. Set an auth secret for production.');
    }
    this.tenancy.enforcer.localRooms = () => this.gateway.localRooms();
    await this.tenancy.start();
    this.gateway.start();
    await this.pusher?.start();
    const lanes = this.health().map((lane) => `${lane.lane}:${lane.driver}`);
    if (this.mount) {
      this.state = 'running';
      await this.heartbeat.start();
      this.log.info({ path: this.mountOptions?.path, httpPrefix: this.mountOptions?.httpPrefix ?? null, lanes }, 'attached');
      const bound = this.http.address();
      return bound && typeof bound === 'object' ? bound : { address: this.options.host, family: 'IPv4', port: this.options.port };
    }
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.options.port, this.options.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.state = 'running';
    await this.heartbeat.start();
    const address = this.http.address() as AddressInfo;
    // `url`: what a person opens (the demo page), not the address the node advertises to the cluster.
    this.log.info({ port: address.port, host: address.address, url: `${localUrl(address)}/`, lanes }, 'listening');
    return address;
  }

  /** Graceful stop; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    this.log.info('shutting down');
    // 1. stop accepting: upgrades are refused (503) and /readyz answers 503
    // `draining`, while the listener stays open so load balancers can see
    // that; the registry shows the node as draining.
    this.metrics.draining.set(1);
    const drained = this.gateway.drain(this.options.shutdownTimeoutMs, this.options.drainWindowMs);
    await this.heartbeat.draining();
    // 2. drain clients with a reason (1001, reconnect elsewhere), in batches over the drain window.
    await Promise.all([drained, this.pusher?.drain()]);
    await this.pusher?.close().catch(() => {});
    // A mounted node leaves the application's server open: it is not nerve's to close.
    if (!this.mount) this.http.close();
    await this.heartbeat.stop();
    await this.registry.close().catch(() => {});
    // The last usage report, with every drained connection's minutes, goes before the cold lane closes.
    await this.tenancy.stop().catch((error: unknown) => this.log.warn({ err: errorText(error) }, 'tenant quotas close failed'));
    // 3. close lanes: the event log flushes its outbox first.
    const { bus, history, presence, events, mailbox, sessions, calls, receipts } = this.lanes;
    const results = await Promise.allSettled([
      events.close(),
      history.close(),
      presence.close(),
      mailbox?.close(),
      sessions.close(),
      calls.close(),
      receipts.close(),
    ]);
    await bus.close().catch((error: unknown) => this.log.warn({ err: errorText(error) }, 'bus close failed'));
    for (const result of results) {
      if (result.status === 'rejected') this.log.warn({ err: errorText(result.reason) }, 'lane close failed');
    }
    this.pgProbe?.stop();
    await this.pool?.end().catch(() => {});
    // 4. close HTTP (keep-alive sockets included); mounted: give nerve's paths back to the application.
    if (this.mount) this.mount.remove();
    else this.http.closeAllConnections();
    this.state = 'stopped';
    this.log.info('stopped');
  }
}

/** `http://localhost:8080`: a wildcard address is opened as localhost, an IPv6 one in brackets. */
function localUrl(address: AddressInfo): string {
  const host = address.address === '0.0.0.0' || address.address === '::' ? 'localhost' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
