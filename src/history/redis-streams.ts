/**
 * History on Redis Streams: one stream per room, stored and published by one
 * Lua script (XADD then PUBLISH, or SPUBLISH on Redis Cluster, where the room
 * channel must share the slot of the room's keys: a ChannelNamer with
 * `hashTags`), so every node delivers a room's messages in offset order. The
 * script fills the offset and epoch into the published bytes. Keys, under
 * the room's hash tag: `{prefix}:{tenant}:room:{{tenant}:{room}}:history:`
 * `meta` (hash { epoch, last }), `stream` (entries `0-<offset>`), `idem:{from}:{cmid}`;
 * a room log with no append for `ttlMs` expires. Scripts: redis-scripts.ts.
 */
import { randomBytes } from 'node:crypto';
import { escapeComponent, hashTag } from '../bus/channels.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { keySlot } from '../redis/key-slot.js';
import { RedisScriptLane } from '../redis/script-lane.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import type { AppendResult, AppendTarget, ChatDraft, History, HistoryPage, PageQuery, RecentResult, RecoveryResult, RoomRef } from './history.js';
import { pageAcross, pageLimit, type ChatArchive } from './paging.js';
import { clampLimit, newEpoch } from './recovery.js';
import { appendScripts, pageScript, readScript, storeOnlyAppendScript } from './redis-scripts.js';
import { historySettings, type HistorySettings, type RedisStreamsHistoryOptions } from './redis-streams-options.js';
import { ReplicaWait } from './redis-wait.js';

/**
 * Placeholders the append script swaps for the offset and epoch. They only
 * have to be impossible for a client to put in its own message: a secret
 * random prefix per process makes them so, and a counter makes each one
 * unique, at a fraction of the cost of fresh random bytes per message.
 */
const PLACEHOLDER_PREFIX = `n${randomBytes(16).toString('hex')}`;
let placeholders = 0;
function placeholder(): string {
  placeholders = (placeholders + 1) % Number.MAX_SAFE_INTEGER;
  return PLACEHOLDER_PREFIX + placeholders.toString(36);
}

export class RedisStreamsHistory extends RedisScriptLane implements History {
  readonly driver = 'redis-streams';
  private readonly settings: HistorySettings;
  /** WAIT mode (`waitReplicas` > 0), else undefined. */
  private readonly wait: ReplicaWait | undefined;
  private readonly archive: ChatArchive | undefined;

  constructor(options: RedisStreamsHistoryOptions) {
    const settings = historySettings(options);
    super(options, { lane: 'history', subject: 'history is', connectFor: 'history', store: 'history store' });
    this.settings = settings;
    this.archive = options.archive;
    if (settings.waitReplicas > 0) {
      this.wait = new ReplicaWait({
        client: this.client,
        waitReplicas: settings.waitReplicas,
        waitTimeoutMs: settings.waitTimeoutMs,
        waitAllReplicas: settings.waitAllReplicas,
        failoverWatch: options.failoverWatch,
        running: () => this.state === 'running',
        report: (problem) => {
          this.lastError = problem;
        },
      });
    }
  }

  start(): Promise<void> {
    return this.startLane();
  }

  protected override async starting(): Promise<void> {
    try {
      await this.wait?.start();
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, 'cannot subscribe to the sentinels for history', { cause: error });
    }
  }

  protected override async stopping(): Promise<void> {
    this.wait?.stop();
  }

  async append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    this.assertRunning();
    // Nothing sent yet: a plain refusal, the client retries with the same cmid.
    const wait = this.wait;
    if (wait?.fenced !== undefined) throw new NerveError(ErrorCode.Unavailable, wait.fenced);
    const generation = wait?.generation;
    const offsetToken = placeholder();
    const epochToken = placeholder();
    // The offset placeholder is a string in the template; the script swaps the quoted token for a bare number.
    const template = { ...draft, offset: offsetToken, epoch: epochToken } as unknown as ChatMessage;
    const envelope = target.envelope(template);
    for (const field of [envelope.id, envelope.origin, envelope.trace, envelope.except]) {
      // Those fields may be length-prefixed on the wire: a substitution there would corrupt the envelope.
      if (field !== undefined && (field.includes(offsetToken) || field.includes(epochToken))) {
        throw new NerveError(ErrorCode.Internal, 'the envelope may carry the offset and epoch only inside its payload');
      }
    }
    const keys = [this.key(room, 'meta'), this.key(room, 'stream')];
    // WAIT mode: the room's pending envelopes (offset → bytes) until a WAIT covers them.
    if (wait) keys.push(this.key(room, 'pending'));
    const { publishCommand, idempotencyWindowMs } = this.settings;
    if (publishCommand === 'SPUBLISH' && keySlot(target.channel) !== keySlot(keys[0]!)) {
      // The cluster would refuse the script (a script touches one slot); say why here.
      throw new NerveError(
        ErrorCode.Internal,
        `channel ${target.channel} does not hash to the slot of room ${room.tenant}/${room.room}: SPUBLISH from the history script needs a ChannelNamer with hashTags`,
      );
    }
    if (draft.cmid !== undefined && idempotencyWindowMs > 0) {
      keys.push(this.key(room, `idem:${escapeComponent(draft.from)}:${escapeComponent(draft.cmid)}`));
    }
    const policy = this.policyFor(room);
    const reply = await this.call('append', () =>
      (wait ? storeOnlyAppendScript : appendScripts[publishCommand]).run(this.client, keys, [
        newEpoch(),
        policy.ttlMs,
        offsetToken,
        epochToken,
        JSON.stringify(template),
        target.channel,
        this.settings.encode(envelope),
        policy.maxMessages,
        this.settings.trim,
        this.settings.now(),
        idempotencyWindowMs,
      ]),
    );
    if (!Array.isArray(reply) || reply.length !== 2 || typeof reply[1] !== 'string') {
      throw new NerveError(ErrorCode.Internal, 'unexpected reply from the history append script');
    }
    const result = { message: JSON.parse(reply[1]) as ChatMessage, duplicate: reply[0] === 1 };
    if (!wait) return result;
    await wait.replicated();
    if (wait.generation !== generation) {
      // Replicas acknowledged it, but perhaps not the one being promoted: neither acked nor published.
      throw new OutcomeUnknownError('history append stored while a Redis failover began: a failover may lose it; retry with the same cmid');
    }
    // Durable now: publish every pending envelope of the room up to this
    // offset, in offset order (a duplicate's original too, if its own WAIT
    // fell short; otherwise nothing is pending and nothing goes out). The ack
    // waits for it: reads end at the last offset published, and an acked
    // message must be readable.
    try {
      await wait.publishPending([keys[0]!, keys[2]!], target.channel, result.message.offset);
    } catch (error) {
      throw new OutcomeUnknownError('history append stored and replicated but not yet published; retry with the same cmid', { cause: error });
    }
    // And that the publish (`pub` moved on) is on the replicas too: after a
    // crash, the promoted replica must not read an acked message as pending.
    await wait.replicated();
    return result;
  }

  async recent(room: RoomRef, limit: number): Promise<RecentResult> {
    const { messages, position } = await this.read(room, 'recent', clampLimit(limit, Math.max(this.policyFor(room).maxMessages, 0)), { offset: 0, epoch: '' });
    return { messages, position };
  }

  since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    return this.read(room, 'since', clampLimit(limit, this.settings.recoveryLimit), position);
  }

  async page(room: RoomRef, query: PageQuery): Promise<HistoryPage> {
    this.assertRunning();
    const reply = await this.call('read', () =>
      pageScript.run(
        this.client,
        [this.key(room, 'meta'), this.key(room, 'stream')],
        [newEpoch(), this.policyFor(room).ttlMs, query.before ?? 0, pageLimit(query)],
      ),
    );
    if (!Array.isArray(reply) || reply.length < 3 || typeof reply[0] !== 'string' || typeof reply[1] !== 'number' || typeof reply[2] !== 'number') {
      throw new NerveError(ErrorCode.Internal, 'unexpected reply from the history page script');
    }
    const messages = reply.slice(3).map((text) => JSON.parse(String(text)) as ChatMessage);
    return pageAcross(room, { epoch: reply[0], last: reply[1], oldest: reply[2], messages }, query, this.archive);
  }

  /** The bounds that apply to `room`: its longest matching policy, else the defaults. */
  policyFor(room: RoomRef): { maxMessages: number; ttlMs: number } {
    const policy = this.settings.policies.find((candidate) => room.room.startsWith(candidate.prefix));
    return { maxMessages: policy?.maxMessages ?? this.settings.maxMessages, ttlMs: policy?.ttlMs ?? this.settings.ttlMs };
  }

  /** The room's key for `suffix`; tests use it to delete what they created. */
  key(room: RoomRef, suffix: string): string {
    return `${this.settings.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:history:${suffix}`;
  }

  private async read(room: RoomRef, mode: 'recent' | 'since', limit: number, position: StreamPosition): Promise<RecoveryResult> {
    this.assertRunning();
    const reply = await this.call('read', () =>
      readScript.run(
        this.client,
        [this.key(room, 'meta'), this.key(room, 'stream')],
        [newEpoch(), this.policyFor(room).ttlMs, mode, limit, position.offset, position.epoch],
      ),
    );
    if (!Array.isArray(reply) || reply.length < 3 || typeof reply[1] !== 'string' || typeof reply[2] !== 'number') {
      throw new NerveError(ErrorCode.Internal, 'unexpected reply from the history read script');
    }
    const messages = reply.slice(3).map((text) => JSON.parse(String(text)) as ChatMessage);
    return { messages, position: { offset: reply[2], epoch: reply[1] }, recovered: reply[0] === 1 };
  }

  /**
   * A store failure: `unavailable` when nothing happened (not sent, or a
   * read); an append sent and not answered may be stored, and says so.
   */
  private async call<T>(what: 'append' | 'read', command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      if (what === 'append' && error instanceof OutcomeUnknownError) {
        throw new OutcomeUnknownError('history append sent, no reply: the message may be stored; retry with the same cmid', { cause: error });
      }
      throw this.storeUnavailable(error);
    }
  }
}
