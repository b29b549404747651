/**
 * The few words every area of frames shares: the request id, the message
 * classes and the chat position. Their own module so the area modules
 * (connection-, room-, chat-, presence-, call-frames.ts) import them without
 * importing each other or frames.ts, which gathers them all (no cycle).
 */

/** Request id chosen by the client; echoed on the answer. */
export type RequestId = string | number;

/** Classes a client may publish into a room. `signal` goes to a user, `lifecycle` is server-only. */
export type PublishClass = 'chat' | 'ephemeral';
/** Every message class the server routes (see src/routing.ts). */
export type MessageClass = 'signal' | 'ephemeral' | 'chat' | 'presence' | 'lifecycle';

/** A client's position in a room's chat log, used to resume. */
export interface StreamPosition {
  /** Offset of the last message the client has seen (0 = nothing yet). */
  offset: number;
  /** Identifies one incarnation of the room log; a new epoch means the log was reset. */
  epoch: string;
}
