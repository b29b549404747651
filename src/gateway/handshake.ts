/**
 * A connection's own operations: `connect` (authenticate, the per-user and
 * tenant connection caps, subscribe the user channel, welcome, take the
 * signal mailbox), `refresh`, and the undoing of both when it closes.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { turnCredential } from '../auth/turn.js';
import type { Bus } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import { publicLimits, type NodeOptions } from '../config/options.js';
import { errorText } from '../errors.js';
import { clip } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { TenantGuard } from '../quotas/guard.js';
import { CloseCode, ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError, isNerveError } from '../../packages/protocol/src/errors.js';
import type { ConnectFrame, IceServer, RefreshFrame, RequestId } from '../../packages/protocol/src/frames.js';
import { PROTOCOL_VERSION } from '../../packages/protocol/src/frames.js';
import type { Connection } from './connection.js';
import type { Delivery } from './delivery.js';
import type { Failures } from './failures.js';
import type { LocalRooms } from './local-rooms.js';
import { KeyCounter } from './rate-limit.js';

interface HandshakeDeps {
  options: NodeOptions;
  authenticator: Authenticator;
  namer: ChannelNamer;
  bus: Bus;
  mailbox?: Mailbox | undefined;
  tenants?: TenantGuard | undefined;
  nodeId: string;
  local: LocalRooms;
  failures: Failures;
  delivery: Pick<Delivery, 'holdSignals' | 'forget' | 'deliverMailbox'>;
}

export class Handshake {
  /** Authenticated connections per tenant + user (`maxConnectionsPerUser`). */
  readonly #perUser = new KeyCounter();
  /** The `welcome` frame's limits: the node's options do not change while it runs, so one object serves every connect. */
  readonly #limits: ReturnType<typeof publicLimits>;

  constructor(private readonly deps: HandshakeDeps) {
    this.#limits = publicLimits(deps.options.limits);
  }

  async connect(conn: Connection, frame: ConnectFrame): Promise<void> {
    const { failures, options } = this.deps;
    if (conn.state === 'open') throw new NerveError(ErrorCode.AlreadyConnected, 'already connected');
    if (frame.v !== PROTOCOL_VERSION) {
      failures.fail(conn, frame.rid, new NerveError(ErrorCode.UnsupportedVersion, `this server speaks protocol v${PROTOCOL_VERSION}`));
      conn.close(CloseCode.UnsupportedVersion, 'unsupported protocol version');
      return;
    }
    try {
      const identity = await this.deps.authenticator.authenticate({
        ...(frame.token === undefined ? {} : { token: frame.token }),
        ...(frame.user === undefined ? {} : { user: frame.user }),
        remoteAddress: conn.remoteAddress,
      });
      conn.identify(identity);
    } catch (error) {
      const reason = isNerveError(error) ? error : new NerveError(ErrorCode.AuthFailed, 'authentication failed', { cause: error });
      failures.fail(conn, frame.rid, reason.code === ErrorCode.AuthFailed ? reason : new NerveError(ErrorCode.AuthFailed, reason.message));
      conn.close(CloseCode.AuthFailed, 'authentication failed');
      return;
    }
    if (conn.state !== 'handshake') return;
    const maxPerUser = options.limits.maxConnectionsPerUser;
    const userKey = `${conn.tenant}\u0000${conn.user}`;
    if (maxPerUser > 0 && this.#perUser.get(userKey) >= maxPerUser) {
      failures.fail(conn, frame.rid, new NerveError(ErrorCode.TooManyConnections, `at most ${maxPerUser} connections per user on this node`));
      conn.close(CloseCode.TooManyConnections, 'too many connections for this user');
      return;
    }
    // Counted only under a limit: with none, a count per user would be a map entry and a key string per connection for nothing.
    if (maxPerUser > 0) {
      this.#perUser.increment(userKey);
      conn.countUser();
    }
    if (this.deps.tenants && !(await this.admitTenant(conn, frame.rid))) return;
    const userChannel = this.deps.namer.user(conn.tenant, conn.user);
    this.deps.delivery.holdSignals(conn);
    if (this.deps.local.add(userChannel, 'user', conn.tenant, conn.user, conn)) await this.deps.bus.acquire(userChannel);
    conn.open();
    conn.debug({ user: clip(conn.user), tenant: conn.tenant }, 'connection authenticated');
    conn.answer({
      op: 'welcome',
      rid: frame.rid,
      v: PROTOCOL_VERSION,
      connId: conn.id,
      nodeId: this.deps.nodeId,
      user: conn.user,
      tenant: conn.tenant,
      limits: this.#limits,
      iceServers: this.iceServers(conn.user),
      ...(conn.identity?.expiresAt === undefined ? {} : { expiresAt: conn.identity.expiresAt }),
    });
    conn.armExpiry();
    // After the welcome, and after subscribing: a signal queued before the
    // subscription is in the mailbox, one published after it arrives live
    // (held until the mailbox is delivered), and one queued in between is
    // announced by the sender's `mailbox.pending` poke.
    await this.deps.delivery.deliverMailbox(conn.tenant, conn.user, [conn], new Set([conn]));
  }

  /** The tenant's connection quota (cluster-wide): false when refused (answered, closed 4011) or closed meanwhile. */
  private async admitTenant(conn: Connection, rid: RequestId): Promise<boolean> {
    const tenants = this.deps.tenants!;
    try {
      await tenants.connect(conn.tenant);
    } catch (error) {
      this.deps.failures.fail(conn, rid, error);
      conn.close(CloseCode.TooManyConnections, 'tenant connection quota');
      return false;
    }
    if (conn.state !== 'handshake') {
      tenants.disconnected(conn.tenant);
      return false;
    }
    conn.countTenant();
    return true;
  }

  /** The configured ICE servers, plus TURN REST credentials for `user` when a TURN secret is set. */
  private iceServers(user: string): IceServer[] {
    const { turnSecret, turnUrls, turnTtlSeconds, iceServers } = this.deps.options;
    if (turnSecret === undefined) return iceServers;
    const { urls, username, credential } = turnCredential({ secret: turnSecret, urls: turnUrls, ttlSeconds: turnTtlSeconds }, user);
    return [...iceServers, { urls, username, credential }];
  }

  /** `refresh`: a new token for the same user and tenant replaces the connection's identity and expiry. */
  async refresh(conn: Connection, frame: RefreshFrame): Promise<void> {
    let identity: Awaited<ReturnType<Authenticator['authenticate']>>;
    try {
      identity = await this.deps.authenticator.authenticate({ token: frame.token, remoteAddress: conn.remoteAddress });
    } catch (error) {
      throw new NerveError(ErrorCode.RefreshFailed, isNerveError(error) ? error.message : 'refresh failed', { cause: error });
    }
    if (identity.user !== conn.user || identity.tenant !== conn.tenant) {
      throw new NerveError(ErrorCode.Forbidden, 'a refresh token must name the same user and tenant');
    }
    if (conn.state !== 'open') return;
    conn.identify(identity);
    conn.armExpiry();
    conn.answer({ op: 'refreshed', rid: frame.rid, ...(identity.expiresAt === undefined ? {} : { expiresAt: identity.expiresAt }) });
  }

  /** The connection closed: out of the per-user and tenant counts, at once. */
  uncount(conn: Connection): void {
    if (conn.countedUser) this.#perUser.decrement(`${conn.tenant}\u0000${conn.user}`);
    if (conn.countedTenant) this.deps.tenants?.disconnected(conn.tenant);
  }

  /** The connection closed and left its rooms: out of its user channel, and, if it was the user's last here, the mailbox takes over. */
  async leaveUserChannel(conn: Connection): Promise<void> {
    if (!conn.identity) return;
    const userChannel = this.deps.namer.user(conn.tenant, conn.user);
    this.deps.delivery.forget(conn);
    if (!this.deps.local.remove(userChannel, conn)) return;
    await this.deps.bus.release(userChannel).catch(() => {});
    // The user's last connection here is gone: signals sent to them for
    // the next mailboxTtlMs wait in their mailbox for a reconnect.
    await this.deps.mailbox
      ?.markSeen({ tenant: conn.tenant, user: conn.user })
      .catch((error: unknown) => conn.log.warn({ err: errorText(error) }, 'mailbox mark failed'));
  }
}
