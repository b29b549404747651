/**
 * In-process read positions, for a single node and for unit tests: shared by
 * nothing, kept until the process ends (no expiry: a dev node's rooms are few).
 */
import { escapeComponent } from '../bus/channels.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';
import { advances, type AdvanceResult, type ReadPositions, type ReadSnapshot } from './receipts.js';

export class MemoryReadPositions implements ReadPositions {
  readonly driver = 'memory';
  private readonly rooms = new Map<string, Map<string, StreamPosition>>();
  private state: 'idle' | 'running' | 'closed' = 'idle';

  async open(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'read positions are closed');
    this.state = 'running';
  }

  async advance(room: RoomRef, user: string, position: StreamPosition): Promise<AdvanceResult> {
    this.assertRunning();
    const key = roomKey(room);
    let users = this.rooms.get(key);
    if (!users) {
      users = new Map();
      this.rooms.set(key, users);
    }
    const stored = users.get(user);
    if (!advances(stored, position)) return { position: { ...stored! }, advanced: false };
    users.set(user, { offset: position.offset, epoch: position.epoch });
    return { position: { offset: position.offset, epoch: position.epoch }, advanced: true };
  }

  async read(room: RoomRef, user: string, listMax: number): Promise<ReadSnapshot> {
    this.assertRunning();
    const users = this.rooms.get(roomKey(room));
    const own = users?.get(user);
    const size = users?.size ?? 0;
    const all = listMax > 0 && size <= listMax ? new Map([...(users ?? [])].map(([name, at]) => [name, { ...at }])) : undefined;
    return { own: own && { ...own }, all };
  }

  health(): LaneHealth {
    const ok = this.state === 'running';
    return ok ? { lane: 'receipts', driver: this.driver, ok } : { lane: 'receipts', driver: this.driver, ok, detail: `read positions are ${this.state}` };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.rooms.clear();
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `read positions are ${this.state}`);
  }
}

function roomKey(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}
