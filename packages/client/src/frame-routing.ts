/**
 * Where each server frame and client event goes. Pushed frames (messages,
 * signals, member, read, room_ended and resync frames) update the rooms'
 * state and become the app's events; answers go to the requests; and every
 * event about a room is emitted on its `Room` handle as well as on the
 * client. Its own module so that NerveClient keeps its public methods and
 * the wiring of its parts, and the routing table is read in one place.
 */
import type { JoinedFrame, ServerFrame } from '../../protocol/src/frames.js';
import type { Requests } from './requests.js';
import { Room, roomEmitter, roomOf, roomReads, type RoomEmit, type RoomHost } from './room.js';
import type { Rooms } from './rooms.js';
import type { Emit, NerveClientEvents } from './types.js';

/** What the router needs of its client. */
export interface FrameRouterHost {
  /** Emit on the client itself (its `emit` is protected). */
  emit: Emit;
  /** The user of the current connection, to tell one's own reads from others'. */
  user(): string | undefined;
  /** Read a room's member list again (`member_count` with `listed`: member frames resume). */
  relist(room: string): void;
}

export class FrameRouter {
  readonly #host: FrameRouterHost;
  readonly #rooms: Rooms;
  readonly #requests: Requests;
  /** The `Room` objects the app asked for, by name, with the function that emits on each. */
  readonly #handles = new Map<string, { room: Room; emit: RoomEmit }>();

  constructor(host: FrameRouterHost, rooms: Rooms, requests: Requests) {
    this.#host = host;
    this.#rooms = rooms;
    this.#requests = requests;
  }

  /** The `Room` object of `name`, made on first use (one per name, so listeners stay on it). */
  handle(name: string, client: RoomHost): Room {
    let handle = this.#handles.get(name);
    if (!handle) {
      const room = new Room(client, name);
      handle = { room, emit: roomEmitter(room) };
      this.#handles.set(name, handle);
    }
    return handle.room;
  }

  /** The `Room` object of `name`, if the app made one. */
  room(name: string): Room | undefined {
    return this.#handles.get(name)?.room;
  }

  /** A join or rejoin was answered: reset the room object's members and reads before the answer or `rejoined` reaches the app. */
  joined(frame: JoinedFrame): void {
    const room = this.room(frame.room);
    if (!room) return;
    room.members.reset(frame);
    roomReads(room).reset(frame, this.#host.user());
  }

  /** Emit a client event, then the same event on the `Room` object it concerns, if one was made. */
  dispatch<K extends keyof NerveClientEvents>(name: K, value: NerveClientEvents[K]): void {
    this.#host.emit(name, value);
    const room = roomOf(name, value);
    if (room === undefined) return;
    const handle = this.#handles.get(room);
    if (handle) (handle.emit as (name: K, value: NerveClientEvents[K]) => void)(name, value);
  }

  /** Route one frame from the server (after the handshake). */
  route(frame: ServerFrame): void {
    switch (frame.op) {
      case 'message':
        this.#rooms.onMessage(frame);
        return;
      case 'signal':
        this.dispatch('signal', frame);
        return;
      case 'member_joined':
        this.room(frame.room)?.members.apply(frame);
        this.dispatch('member_joined', frame);
        return;
      case 'member_left':
        this.room(frame.room)?.members.apply(frame);
        this.dispatch('member_left', frame);
        return;
      case 'member_updated':
        this.room(frame.room)?.members.apply(frame);
        this.dispatch('member_updated', frame);
        return;
      case 'member_count':
        this.room(frame.room)?.members.apply(frame);
        // Back below the server's threshold: member events resume, and the list is read again.
        if (frame.listed) this.#host.relist(frame.room);
        this.dispatch('member_count', frame);
        return;
      case 'welcome':
        return;
      case 'room_ended':
        this.#rooms.delete(frame.room);
        this.dispatch('room_ended', frame);
        return;
      case 'resync':
        this.#rooms.onResync(frame);
        return;
      case 'read': {
        // The answer to `markRead` has a `rid`; a push names the user who read.
        if (!('user' in frame)) {
          this.#requests.onAnswer(frame);
          return;
        }
        const room = this.room(frame.room);
        if (room && !roomReads(room).onPush(frame, this.#host.user())) return;
        this.dispatch('read', frame);
        return;
      }
      default:
        this.#requests.onAnswer(frame);
    }
  }
}
