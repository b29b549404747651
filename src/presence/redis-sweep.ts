/**
 * The sweep of dead instances of the Redis presence. A room whose members
 * were all on a dead node may never be touched by a room script again, so
 * each instance lists its rooms in its node index, and a survivor finds the
 * registrations that expired, sweeps each of their rooms and forgets them.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RoomRef } from '../history/history.js';
import { forgetNodeScript, unlockScript } from './redis-scripts.js';

/** Dead instances looked at per heartbeat; the next heartbeat takes the rest. */
const DEAD_NODES_PER_BEAT = 16;
/** Rooms of a dead instance swept per round trip (SSCAN COUNT), and rooms per index update. */
export const SWEEP_BATCH = 100;

/** What the sweep needs of the presence. */
export interface SweepAccess {
  client: Redis | Cluster;
  instanceId: string;
  ttlMs: number;
  registryKey: string;
  nodeKey(instanceId: string, suffix: 'rooms' | 'sweep'): string;
  /** One index command while the presence runs; a store failure becomes `unavailable`. */
  command<T>(call: () => Promise<T>): Promise<T>;
  /** Run the room script that removes expired entries (and reports their leaves). */
  sweepRoom(room: RoomRef, now: number): Promise<unknown>;
  recordFailure: (error: unknown) => void;
}

/** Sweep the instances whose registration expired by `now`. */
export async function sweepDeadNodes(access: SweepAccess, now: number): Promise<void> {
  const dead = await access.command(() => access.client.zrangebyscore(access.registryKey, '-inf', now, 'LIMIT', 0, DEAD_NODES_PER_BEAT));
  await Promise.all(dead.filter((id) => id !== access.instanceId).map((id) => sweepNode(access, id, now)));
}

/**
 * Sweep every room of dead instance `id`, then forget it. The lock only
 * saves survivors from doing the same work twice: the leaves themselves
 * are reported once by the room scripts whatever happens. It expires
 * after `ttlMs` if this survivor dies mid-sweep.
 */
async function sweepNode(access: SweepAccess, id: string, now: number): Promise<void> {
  const { client } = access;
  const lock = access.nodeKey(id, 'sweep');
  const taken = await access.command(() => client.set(lock, access.instanceId, 'PX', access.ttlMs, 'NX'));
  if (taken !== 'OK') return;
  try {
    const roomsKey = access.nodeKey(id, 'rooms');
    let cursor = '0';
    do {
      const [next, members] = await access.command(() => client.sscan(roomsKey, cursor, 'COUNT', SWEEP_BATCH));
      cursor = next;
      await Promise.all(
        members.map((member) => {
          const room = parseRoomMember(member);
          return room ? access.sweepRoom(room, now) : Promise.resolve();
        }),
      );
      // SSCAN still returns every member present for the whole scan after earlier ones are removed.
      if (members.length > 0) await access.command(() => client.srem(roomsKey, ...members));
    } while (cursor !== '0');
    await access.command(() => forgetNodeScript.run(client, [access.registryKey], [id, now]));
  } finally {
    await unlockScript.run(client, [lock], [access.instanceId]).catch(access.recordFailure);
  }
}

/** A room as a member of an instance's room set. */
export function roomMember(room: RoomRef): string {
  return JSON.stringify([room.tenant, room.room]);
}

function parseRoomMember(member: string): RoomRef | undefined {
  try {
    const value: unknown = JSON.parse(member);
    if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'string') return { tenant: value[0], room: value[1] };
  } catch {
    // Not ours: skipped, and removed with the rest of the set.
  }
  return undefined;
}
