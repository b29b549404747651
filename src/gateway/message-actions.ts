/**
 * `edit`, `delete` and `react`: a member changes a chat message of a joined
 * room. Each becomes a chat entry of the room log with an `action` and its
 * `target`, taking the publish path unchanged (stored and published in one
 * step, acked, idempotent by `cmid`, replayed, archived); this module only
 * finds the target and checks who may (docs/protocol.md, "Editing,
 * deleting and reacting"). Folding the entries is the readers' job
 * (packages/protocol/src/fold.ts).
 */
import type { History } from '../history/history.js';
import type { MessageActionFrame } from '../../packages/protocol/src/actions.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { AckFrame, ChatMessage } from '../../packages/protocol/src/frames.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';
import type { Publisher } from './publish.js';

interface MessageActionsDeps {
  maxRoomIdLength: number;
  history: Pick<History, 'page'>;
  publisher: Pick<Publisher, 'publishInto'>;
}

export class MessageActions {
  constructor(private readonly deps: MessageActionsDeps) {}

  /** Check the request, find its target, and store the entry; resolves with the `ack`. */
  async apply(conn: Connection, frame: MessageActionFrame): Promise<AckFrame> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room before changing its messages');
    // Every entry is a message the connection's user sends: it needs `publish` like any other.
    requireRight(conn, frame.room, 'publish');
    const target = await this.find(conn, frame);
    // A reaction is the sender's own; an edit or delete needs the author or a moderator.
    if (frame.op !== 'react' && target.from !== conn.user && !conn.hasRight(frame.room, 'moderate')) {
      throw new NerveError(ErrorCode.Forbidden, `only the author, or a holder of the \`moderate\` right, may ${frame.op} this message`);
    }
    const data = frame.op === 'edit' ? frame.data : frame.op === 'react' ? { emoji: frame.emoji, on: frame.on ?? true } : null;
    const ack = await this.deps.publisher.publishInto(
      {
        tenant: conn.tenant,
        room: frame.room,
        class: 'chat',
        data,
        from: conn.user,
        cmid: frame.cmid,
        action: frame.op,
        target: { id: target.id, offset: target.offset },
      },
      conn.id,
    );
    return { op: 'ack', rid: frame.rid, ...ack };
  }

  /**
   * The target, read where it lives like one `history` page ending at its
   * offset (hot history, or the archive below it), under the connection's
   * tenant. Its id must match; an entry is no target.
   */
  private async find(conn: Connection, frame: MessageActionFrame): Promise<ChatMessage> {
    const { id, offset, epoch } = frame.target;
    const page = await this.deps.history.page({ tenant: conn.tenant, room: frame.room }, { before: offset + 1, limit: 1, epoch });
    const found = page.messages[0];
    if (!found || found.offset !== offset || found.id !== id || found.action !== undefined) {
      throw new NerveError(ErrorCode.MessageNotFound, 'no chat message with that id at that offset in this room');
    }
    return found;
  }
}
