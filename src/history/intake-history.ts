/**
 * History for `--bus rabbitmq --chat-path worker`: `append` sends the message
 * to the chat intake and waits for the chat-store worker's reply (stored,
 * published, then answered); `recent` and `since` read PostgreSQL through
 * `reads`. Broker down: `unavailable`, nothing sent; no reply in time:
 * `OutcomeUnknownError` (a retry with the same `cmid` gets the original); a
 * worker failure: its code. docs/architecture.md, "The chat intake".
 */
import { Connection } from 'rabbitmq-client';
import { errorText } from '../errors.js';
import { silentLogger, type LaneLogger } from '../log-types.js';
import { closeWithin } from '../close-within.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { integer } from '../config/validate.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';
import { CHAT_INTAKE_ROUTING_KEY, chatIntakeNames, intakeRequest, intakeTopology, parseIntakeReply, type ChatIntakeNames } from './chat-intake.js';
import type { AppendResult, AppendTarget, ChatDraft, History, HistoryPage, PageQuery, RecentResult, RecoveryResult, RoomRef } from './history.js';
import { IntakeRpc, RpcTimeoutError } from './intake-rpc.js';
import { OutcomeUnknownError } from '../lane-errors.js';

export interface IntakeHistoryOptions {
  /** AMQP URL. Required. */
  url: string;
  /** First and second part of the intake's exchange and queue names. Defaults `dev`, `nerve`. */
  env?: string;
  service?: string;
  /** This node's id: the `origin` of the envelopes the worker publishes for it. Required. */
  nodeId: string;
  /** Where `recent` and `since` read (a PostgresHistory on the worker's schema). Started and closed with this one. */
  reads: History;
  /** How long `append` waits for the worker's reply; also the request's expiration in the queue, ms. Default 5000. */
  timeoutMs?: number;
  /** How long `start` waits for the broker, ms. Default 10000. */
  startTimeoutMs?: number;
  /** How often the intake queue's consumer count is read for `health`, ms; 0 = never. Default 5000. */
  consumerPollMs?: number;
  logger?: LaneLogger;
}

export class IntakeHistory implements History {
  readonly driver = 'postgres-via-worker';
  private readonly names: ChatIntakeNames;
  private readonly reads: History;
  private readonly nodeId: string;
  private readonly timeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly consumerPollMs: number;
  private readonly log: LaneLogger;
  private readonly connection: Connection;
  private rpc: IntakeRpc | undefined;
  private state: 'idle' | 'running' | 'closed' = 'idle';
  /** Consumers of the intake queue at the last poll; undefined before the first. */
  private consumers: number | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: IntakeHistoryOptions) {
    if (!options?.reads) throw new ConfigError('reads', 'a History to read from', undefined);
    this.names = chatIntakeNames(options.env ?? 'dev', options.service ?? 'nerve');
    this.reads = options.reads;
    this.nodeId = options.nodeId;
    this.timeoutMs = integer('chatIntakeTimeoutMs', options.timeoutMs ?? 5000, 1, 600_000);
    this.startTimeoutMs = integer('startTimeoutMs', options.startTimeoutMs ?? 10_000, 1, 600_000);
    this.consumerPollMs = integer('consumerPollMs', options.consumerPollMs ?? 5000, 0, 3_600_000);
    this.log = options.logger ?? silentLogger;
    this.connection = new Connection({
      url: options.url,
      connectionName: `nerve-chat-intake-${options.nodeId}`,
      retryLow: 50,
      retryHigh: 2000,
      heartbeat: 10,
      acquireTimeout: this.timeoutMs,
    });
    // rabbitmq-client reconnects by itself; without a listener an `error` event would crash the process.
    this.connection.on('error', (err: unknown) => {
      if (this.state === 'closed') return;
      this.lastError = errorText(err);
      this.log.warn({ lane: 'history', err: errorText(err) }, 'chat intake connection error');
    });
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
    await this.reads.start();
    try {
      await this.connection.onConnect(this.startTimeoutMs, true);
    } catch (error) {
      await this.close();
      throw new NerveError(ErrorCode.Unavailable, `chat intake: broker not reachable within ${this.startTimeoutMs} ms`, { cause: error });
    }
    // Declared again on every reconnect. No publisher confirms: the worker's
    // reply is the end-to-end confirmation, and a lost request times out.
    this.rpc = new IntakeRpc(this.connection, intakeTopology(this.names), this.timeoutMs);
    this.state = 'running';
    await this.pollConsumers();
    if (this.consumerPollMs > 0) {
      this.pollTimer = setInterval(() => void this.pollConsumers(), this.consumerPollMs);
      this.pollTimer.unref();
    }
  }

  async append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    const rpc = this.rpc;
    if (this.state !== 'running' || !rpc) throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
    if (!this.connection.ready) throw new NerveError(ErrorCode.Unavailable, 'chat intake: broker connection is down');
    let response;
    try {
      response = await rpc.send(
        // Persistent: a request the broker accepted survives a broker restart within its expiration.
        { exchange: this.names.exchange, routingKey: CHAT_INTAKE_ROUTING_KEY, durable: true },
        intakeRequest(room, target.channel, this.nodeId, draft),
      );
    } catch (error) {
      // Sent and unanswered: a worker may have stored it (the answer must not say it was not).
      if (error instanceof RpcTimeoutError) {
        throw new OutcomeUnknownError(
          `no answer from the chat-store worker within ${this.timeoutMs} ms${this.consumers === 0 ? ' (no worker consumes the chat intake)' : ''}; retry with the same cmid`,
          { cause: error },
        );
      }
      throw new NerveError(ErrorCode.Unavailable, `chat intake request failed: ${errorText(error)}`, { cause: error });
    }
    const reply = parseIntakeReply(response.body);
    if (!reply) throw new NerveError(ErrorCode.Internal, 'chat intake: malformed reply from the chat-store worker');
    if (!reply.ok) throw new NerveError(reply.code, reply.message);
    return { message: reply.message, duplicate: reply.duplicate };
  }

  recent(room: RoomRef, limit: number): Promise<RecentResult> {
    return this.reads.recent(room, limit);
  }

  since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    return this.reads.since(room, position, limit);
  }

  page(room: RoomRef, query: PageQuery): Promise<HistoryPage> {
    return this.reads.page(room, query);
  }

  /** Reads the intake queue's consumer count (passive declare); never throws. */
  private async pollConsumers(): Promise<void> {
    if (this.state !== 'running' || !this.connection.ready) return;
    try {
      const declared = await this.connection.queueDeclare({ queue: this.names.queue, passive: true });
      this.consumers = declared.consumerCount;
    } catch (error) {
      this.lastError = `intake queue: ${errorText(error)}`;
    }
  }

  health(): LaneHealth {
    const base = { lane: 'history', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `history is ${this.state}` };
    if (!this.connection.ready) return { ...base, ok: false, detail: `chat intake: broker connection down${this.lastError ? ` (${this.lastError})` : ''}` };
    const reads = this.reads.health();
    if (!reads.ok) return { ...base, ok: false, ...(reads.detail ? { detail: reads.detail } : {}) };
    // Not a readiness failure: signals and room messages work without the worker; chat answers `unavailable`.
    if (this.consumers === 0) return { ...base, ok: true, detail: 'no chat-store worker consumes the chat intake: chat publishes time out' };
    return reads.detail ? { ...base, ok: true, detail: reads.detail } : { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed';
      if (this.pollTimer) clearInterval(this.pollTimer);
      const rpc = this.rpc;
      if (rpc) await closeWithin(() => rpc.close(), 2000);
      await closeWithin(
        () => this.connection.close(),
        2000,
        () => this.connection.unsafeDestroy(),
      );
      await this.reads.close();
    })();
    return this.closing;
  }
}
