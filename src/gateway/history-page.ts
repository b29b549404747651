/**
 * `history`: a page of a joined room's chat older than what `join` gave.
 * The History lane does the reading, across its hot store and the
 * PostgreSQL archive under one offset cursor (src/history/paging.ts); this
 * is the edge's part: the room id, membership, the right, the tenant.
 */
import type { History } from '../history/history.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { HISTORY_PAGE_LIMITS, type HistoryFrame } from '../../packages/protocol/src/frames.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';

interface HistoryPagesDeps {
  history: Pick<History, 'page'>;
  maxRoomIdLength: number;
}

export class HistoryPages {
  constructor(private readonly deps: HistoryPagesDeps) {}

  async page(conn: Connection, frame: HistoryFrame): Promise<void> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    // Members only, as for presence: the room's chat is what joining it shows.
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room to read its history');
    // Grants can shrink while joined (a refresh with narrower rights): reading needs `join` still.
    requireRight(conn, frame.room, 'join');
    const page = await this.deps.history.page(
      // The connection's tenant, never one the client names: another tenant's room of the same id is another log.
      { tenant: conn.tenant, room: frame.room },
      { before: frame.before, limit: frame.limit ?? HISTORY_PAGE_LIMITS.default, epoch: frame.epoch },
    );
    conn.answer({ op: 'history', rid: frame.rid, room: frame.room, messages: page.messages, more: page.more, epoch: page.epoch });
  }
}
