/**
 * How a failed request is answered: every error becomes a typed `error`
 * frame, is logged at a level fitting its code, and counts towards the
 * connection's error window (4008 once over `maxErrorsPer10s`), lane
 * failures excepted. Also the checks every room operation makes first.
 */
import type { RoomRight } from '../auth/grants.js';
import { clip } from '../logger.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { NodeMetrics } from '../metrics.js';
import { CloseCode, ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError, isNerveError } from '../../packages/protocol/src/errors.js';
import type { RequestId } from '../../packages/protocol/src/frames.js';
import { isValidRoomId } from '../../packages/protocol/src/ids.js';
import type { Connection } from './connection.js';

/**
 * Lane failures: the server's state, not the connection's doing. Every other
 * error a connection is answered counts towards the 4008 policy close,
 * `internal` included (a frame that keeps hitting a server fault is cut,
 * instead of logging a stack per frame for ever).
 */
const LANE_FAILURES: ReadonlySet<string> = new Set([ErrorCode.BusUnavailable, ErrorCode.Unavailable, ErrorCode.OutcomeUnknown]);

/** Refusals worth an `info` log line (security-relevant); other client faults log at `debug`. */
const LOGGED_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.AuthFailed, ErrorCode.Forbidden, ErrorCode.RefreshFailed, ErrorCode.TooManyConnections]);

/** A failed request, logged and counted; `send` answers it (and closes a connection over its error limit). */
interface Failure {
  closes: boolean;
  send: () => void;
}

export class Failures {
  constructor(
    private readonly metrics: Pick<NodeMetrics, 'errors'>,
    private readonly maxErrorsPer10s: number,
  ) {}

  /** Answer a failed request now. */
  fail(conn: Connection, rid: RequestId | undefined, error: unknown): void {
    this.failure(conn, rid, error).send();
  }

  /** Logs and counts a failed request now; `send` answers it. */
  failure(conn: Connection, rid: RequestId | undefined, error: unknown): Failure {
    // A lane command left unanswered under a request other than publish or signal (join, leave, presence): that request failed, and was undone.
    const nerveError = isNerveError(error)
      ? error
      : error instanceof OutcomeUnknownError
        ? new NerveError(ErrorCode.Unavailable, 'a lane did not answer in time', { cause: error })
        : new NerveError(ErrorCode.Internal, 'internal error', { cause: error });
    if (nerveError.code === ErrorCode.Internal) conn.log.error({ err: error, rid }, 'request failed');
    else if (LOGGED_REFUSALS.has(nerveError.code))
      conn.log.info({ code: nerveError.code, reason: nerveError.message, rid, user: clip(conn.user) }, 'request refused');
    else conn.debug({ code: nerveError.code, rid }, 'request refused');
    this.metrics.errors.inc({ code: nerveError.code });
    const closes = !LANE_FAILURES.has(nerveError.code) && conn.errorWindow.hit() > this.maxErrorsPer10s;
    return {
      closes,
      send: () => {
        conn.answer({
          op: 'error',
          ...(rid === undefined ? {} : { rid }),
          code: nerveError.code,
          message: nerveError.message,
          ...(nerveError.retryAfterMs === undefined ? {} : { retryAfterMs: nerveError.retryAfterMs }),
          ...(nerveError.quota === undefined ? {} : { quota: nerveError.quota }),
        });
        if (closes) conn.close(CloseCode.PolicyViolation, 'too many errors');
      },
    };
  }
}

/** Throws `invalid_room` unless `room` is a valid room id of at most `maxLength` characters. */
export function checkRoom(room: string, maxLength: number): void {
  if (!isValidRoomId(room, maxLength)) {
    throw new NerveError(ErrorCode.InvalidRoom, `room ids are 1-${maxLength} characters of A-Z a-z 0-9 . _ ~ -`);
  }
}

/** Throws `forbidden` unless the connection holds `right` in `room`. */
export function requireRight(conn: Connection, room: string, right: RoomRight): void {
  if (!conn.hasRight(room, right)) throw new NerveError(ErrorCode.Forbidden, `no \`${right}\` right in this room`);
}
