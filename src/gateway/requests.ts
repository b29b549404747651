/**
 * The request pipeline of every connection: decode a frame, apply the
 * connection's token bucket and its cap on requests in flight, run the
 * requests in order on the connection's queue (publishes pipelined), and
 * answer refusals in request order.
 */
import type { RawData } from 'ws';
import type { NodeMetrics } from '../metrics.js';
import { decodeClientFrame } from '../../packages/protocol/src/codec.js';
import { CloseCode, ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ClientFrame, PublishFrame, RequestId } from '../../packages/protocol/src/frames.js';
import type { CallParticipation } from './call-participation.js';
import type { Connection } from './connection.js';
import type { Failures } from './failures.js';
import type { Handshake } from './handshake.js';
import type { HistoryPages } from './history-page.js';
import type { Messages } from './messages.js';
import type { PresenceStates } from './presence-state.js';
import type { ReadReceipts } from './read-receipts.js';
import type { Rooms } from './rooms.js';
import { errorText } from '../errors.js';

/** Most requests a connection may have queued before further ones are refused. */
const MAX_PENDING_REQUESTS = 256;

interface RequestsDeps {
  metrics: NodeMetrics;
  failures: Failures;
  handshake: Pick<Handshake, 'connect' | 'refresh'>;
  rooms: Pick<Rooms, 'join' | 'leave' | 'presenceQuery'>;
  presenceStates: Pick<PresenceStates, 'set'>;
  messages: Pick<Messages, 'publish' | 'signal' | 'act'>;
  historyPages: Pick<HistoryPages, 'page'>;
  calls: Pick<CallParticipation, 'request'>;
  readReceipts: Pick<ReadReceipts, 'read'>;
}

export class Requests {
  constructor(private readonly deps: RequestsDeps) {}

  /** One WebSocket message from a connection. */
  onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.state !== 'handshake' && conn.state !== 'open') return;
    const metrics = this.deps.metrics;
    if (isBinary) {
      metrics.framesIn.inc({ op: 'binary' });
      conn.close(CloseCode.UnsupportedData, 'protocol v1 takes JSON text frames only');
      return;
    }
    // ws hands a Buffer (binaryType 'nodebuffer'): decode it in place; Buffer.from(buffer) would copy it first.
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    // Decode before rate limiting so a refusal carries the request id; the
    // frame is at most maxFrameBytes, so decoding is cheap and bounded.
    const decoded = decodeClientFrame(text);
    const retryAfterMs = conn.bucket.take();
    if (retryAfterMs > 0) {
      metrics.framesIn.inc({ op: 'rate_limited' });
      this.refuse(conn, decoded.ok ? decoded.frame.rid : decoded.rid, new NerveError(ErrorCode.RateLimited, 'too many frames', { retryAfterMs }));
      return;
    }
    if (!decoded.ok) {
      metrics.framesIn.inc({ op: 'invalid' });
      this.refuse(conn, decoded.rid, decoded.error);
      return;
    }
    const frame = decoded.frame;
    metrics.framesIn.inc({ op: frame.op });
    if (!conn.startRequest(MAX_PENDING_REQUESTS)) {
      this.refuse(conn, frame.rid, new NerveError(ErrorCode.RateLimited, 'too many requests in flight', { retryAfterMs: 100 }));
      return;
    }
    if (frame.op === 'publish') {
      this.pipelinePublish(conn, frame);
      return;
    }
    // Requests of one connection run in order: a publish sent right after a
    // join sees the join done, and a join sent after publishes finds them answered.
    conn.enqueue(async () => {
      try {
        await conn.answered;
        if (conn.state === 'handshake' || conn.state === 'open') await this.dispatch(conn, frame);
      } catch (error) {
        this.deps.failures.fail(conn, frame.rid, error);
      } finally {
        conn.endRequest();
      }
    });
  }

  /**
   * A publish starts as soon as the request before it has started, instead
   * of after it was answered: consecutive publishes are pipelined. Their
   * store and bus commands still go out in request order on one connection
   * per lane, so their effects keep that order; their answers are chained,
   * so they leave in request order too. Without this a connection's publish
   * rate is one store round trip per message, and every node receives its
   * messages one TCP read at a time, which defeats write batching.
   */
  private pipelinePublish(conn: Connection, frame: PublishFrame): void {
    conn.enqueue(() => {
      const outcome: Promise<() => void> =
        conn.state === 'open'
          ? this.deps.messages.publish(conn, frame).then(
              (ack) => () => {
                if (ack) conn.answer(ack);
              },
              (error: unknown) => () => this.deps.failures.fail(conn, frame.rid, error),
            )
          : Promise.resolve(() => {
              if (conn.state === 'handshake') this.deps.failures.fail(conn, frame.rid, new NerveError(ErrorCode.NotConnected, 'send connect first'));
            });
      conn.answerInTurn(outcome);
    });
  }

  /** Every request but `publish`, which is pipelined (pipelinePublish). */
  private async dispatch(conn: Connection, frame: Exclude<ClientFrame, PublishFrame>): Promise<void> {
    const { handshake, rooms, messages } = this.deps;
    if (frame.op === 'connect') return handshake.connect(conn, frame);
    if (conn.state !== 'open') throw new NerveError(ErrorCode.NotConnected, 'send connect first');
    switch (frame.op) {
      case 'join':
        return rooms.join(conn, frame);
      case 'leave':
        return rooms.leave(conn, frame);
      case 'signal':
        return messages.signal(conn, frame);
      case 'presence':
        return rooms.presenceQuery(conn, frame);
      case 'presence_set':
        return this.deps.presenceStates.set(conn, frame);
      case 'ping':
        conn.answer({ op: 'pong', rid: frame.rid, ts: Date.now() });
        return undefined;
      case 'refresh':
        return handshake.refresh(conn, frame);
      case 'history':
        return this.deps.historyPages.page(conn, frame);
      case 'edit':
      case 'delete':
      case 'react':
        return messages.act(conn, frame);
      case 'call':
        return this.deps.calls.request(conn, frame);
      case 'read':
        return this.deps.readReceipts.read(conn, frame);
    }
  }

  /**
   * A refusal decided on arrival (rate limit, invalid frame, full queue).
   * It is counted at once, so a flood is cut without waiting, but answered
   * in request order, after the answers of every request before it (the
   * pipelined publishes included). The answer that crosses the error limit
   * goes at once, with the close.
   */
  private refuse(conn: Connection, rid: RequestId | undefined, error: NerveError): void {
    const failure = this.deps.failures.failure(conn, rid, error);
    if (conn.pending === 0 || failure.closes) {
      failure.send();
      return;
    }
    conn.enqueue(async () => {
      await conn.answered;
      try {
        failure.send();
      } catch (sendError) {
        // Never reject: every later request of the connection waits on this chain.
        conn.log.error({ err: errorText(sendError) }, 'answering a refusal failed');
      }
    });
  }
}
