/**
 * In-process RoomSessions, for a single node and for unit tests: exact on
 * one node, shared by nothing. A session lives until its `end` (a single
 * node always runs it: presence and the gateway share the process).
 */
import { randomUUID } from 'node:crypto';
import { escapeComponent } from '../bus/channels.js';
import type { ParticipantTime } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { START_SKEW_MS, type EndedSession, type RoomSessions, type RoomSessionsOptions } from './sessions.js';

interface Participant {
  /** Milliseconds accumulated in finished stays. */
  ms: number;
  /** Start of the current stay, when the user is in the room now. */
  since: number | undefined;
}

interface Session {
  id: string;
  startedAt: number;
  /** When this record was made (by `start`, or by a join or read that came first). */
  createdAt: number;
  peak: number;
  present: number;
  participants: Map<string, Participant>;
}

export class MemoryRoomSessions implements RoomSessions {
  readonly driver = 'memory';
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;
  private state: 'idle' | 'running' | 'closed' = 'idle';

  constructor(options: RoomSessionsOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  async open(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'room sessions are closed');
    this.state = 'running';
  }

  async start(room: RoomRef, now: number): Promise<string> {
    this.assertRunning();
    const key = roomKey(room);
    const existing = this.sessions.get(key);
    if (existing && existing.createdAt >= now - START_SKEW_MS) {
      existing.startedAt = Math.min(existing.startedAt, now);
      return existing.id;
    }
    return this.create(key, now).id;
  }

  async current(room: RoomRef): Promise<string> {
    this.assertRunning();
    return this.ensure(roomKey(room), this.now()).id;
  }

  async joined(room: RoomRef, user: string, now: number): Promise<string> {
    this.assertRunning();
    const session = this.ensure(roomKey(room), now);
    let participant = session.participants.get(user);
    if (!participant) {
      participant = { ms: 0, since: undefined };
      session.participants.set(user, participant);
    }
    if (participant.since === undefined) {
      participant.since = now;
      session.present += 1;
      session.peak = Math.max(session.peak, session.present);
    }
    return session.id;
  }

  async left(room: RoomRef, user: string, now: number): Promise<number | undefined> {
    this.assertRunning();
    const session = this.sessions.get(roomKey(room));
    const participant = session?.participants.get(user);
    if (!session || !participant) return undefined;
    if (participant.since !== undefined) {
      participant.ms += Math.max(0, now - participant.since);
      participant.since = undefined;
      session.present = Math.max(0, session.present - 1);
    }
    return participant.ms;
  }

  async end(room: RoomRef, now: number): Promise<EndedSession> {
    this.assertRunning();
    const key = roomKey(room);
    const session = this.sessions.get(key) ?? newSession(now);
    this.sessions.delete(key);
    const participants: ParticipantTime[] = [];
    for (const [user, participant] of session.participants) {
      const open = participant.since === undefined ? 0 : Math.max(0, now - participant.since);
      participants.push({ user, ms: participant.ms + open });
    }
    return {
      id: session.id,
      startedAt: session.startedAt,
      durationMs: Math.max(0, now - session.startedAt),
      participants,
      peakParticipants: session.peak,
    };
  }

  health(): LaneHealth {
    const base = { lane: 'sessions', driver: this.driver };
    return this.state === 'running' ? { ...base, ok: true } : { ...base, ok: false, detail: `room sessions are ${this.state}` };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.sessions.clear();
  }

  /** Sessions held (tests). */
  size(): number {
    return this.sessions.size;
  }

  private ensure(key: string, now: number): Session {
    return this.sessions.get(key) ?? this.create(key, now);
  }

  private create(key: string, now: number): Session {
    const session = newSession(now);
    this.sessions.set(key, session);
    return session;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `room sessions are ${this.state}`);
  }
}

function newSession(now: number): Session {
  return { id: randomUUID(), startedAt: now, createdAt: now, peak: 0, present: 0, participants: new Map() };
}

function roomKey(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}
