/**
 * A member's messages: `publish` into a joined room and `signal` to a
 * user, checked against the connection's rights, then handed to the
 * publisher (publish.ts), which routes them by src/routing.ts.
 */
import { randomUUID } from 'node:crypto';
import type { History } from '../history/history.js';
import type { Presence } from '../presence/presence.js';
import type { TenantGuard } from '../quotas/guard.js';
import { ROUTES } from '../routing.js';
import type { MessageActionFrame } from '../../packages/protocol/src/actions.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { AckFrame, PublishFrame, SignalDelivery, SignalFrame } from '../../packages/protocol/src/frames.js';
import { isValidUserId } from '../../packages/protocol/src/ids.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';
import { MessageActions } from './message-actions.js';
import type { Publisher } from './publish.js';

interface MessagesDeps {
  maxRoomIdLength: number;
  presence: Presence;
  tenants?: TenantGuard | undefined;
  publisher: Pick<Publisher, 'publishInto' | 'sendSignal'>;
  /** Where `edit`, `delete` and `react` find their target. */
  history: Pick<History, 'page'>;
}

/** Tokens without room grants, or with `signal: true`, may signal any user of their tenant. */
function maySignalAnyone(conn: Connection): boolean {
  const identity = conn.identity;
  return identity !== undefined && (identity.grants === undefined || identity.signal === true);
}

export class Messages {
  private readonly actions: MessageActions;

  constructor(private readonly deps: MessagesDeps) {
    this.actions = new MessageActions(deps);
  }

  /** `edit`, `delete` or `react` (message-actions.ts): answered with the entry's `ack`. */
  async act(conn: Connection, frame: MessageActionFrame): Promise<void> {
    conn.answer(await this.actions.apply(conn, frame));
  }

  /** Publish into a room; resolves with the `ack` to send, or nothing for a class without one (ephemeral: fire and forget). */
  async publish(conn: Connection, frame: PublishFrame): Promise<AckFrame | undefined> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room before publishing');
    requireRight(conn, frame.room, 'publish');
    const ack = await this.deps.publisher.publishInto(
      {
        tenant: conn.tenant,
        room: frame.room,
        class: frame.class,
        data: frame.data,
        from: conn.user,
        cmid: frame.cmid,
        key: frame.key,
        traceparent: frame.traceparent,
      },
      conn.id,
    );
    return ROUTES[frame.class].ack ? { op: 'ack', rid: frame.rid, ...ack } : undefined;
  }

  async signal(conn: Connection, frame: SignalFrame): Promise<void> {
    if (!isValidUserId(frame.to)) throw new NerveError(ErrorCode.InvalidUser, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
    // Most tokens may signal anyone: then no presence lookup, and no await.
    if (!maySignalAnyone(conn) && !(await this.maySignalRoomMate(conn, frame.to))) throw new NerveError(ErrorCode.Forbidden, 'no `signal` right for that user');
    const admitted = this.deps.tenants?.signal(conn.tenant);
    if (admitted) await admitted;
    const id = randomUUID();
    const ts = Date.now();
    const delivery: SignalDelivery = { op: 'signal', id, from: conn.user, fromConn: conn.id, kind: frame.kind, data: frame.data, ts };
    const outcome = await this.deps.publisher.sendSignal(conn.tenant, frame.to, delivery, { conn: conn.id, traceparent: frame.traceparent });
    if (outcome === 'offline') throw new NerveError(ErrorCode.PeerOffline, 'that user is not connected');
    conn.answer({ op: 'ack', rid: frame.rid, id, ts, ...(outcome === 'queued' ? { queued: true } : {}) });
  }

  /** A token limited to rooms may signal a user who is in one of its rooms where it holds `signal`. */
  private async maySignalRoomMate(conn: Connection, to: string): Promise<boolean> {
    if (!conn.identity) return false;
    for (const room of conn.rooms) {
      if (!conn.hasRight(room, 'signal')) continue;
      if (await this.deps.presence.has({ tenant: conn.tenant, room }, to)) return true;
    }
    return false;
  }
}
