/**
 * `@nerve-rt/react`: React hooks over `@nerve-rt/client`. `NerveProvider`
 * puts a client in context; `useNerve` reads its connection, `useRoom` and
 * `usePresence` a room (joined while shown), `useCall` this user's 1:1 or
 * group call. Every hook reads with `useSyncExternalStore` and is safe under
 * StrictMode (one socket, one join). Guide: docs/sdk.md, "React".
 *
 * @packageDocumentation
 */
export { NerveProvider, useNerve, useNerveClient, type NerveProviderProps, type NerveConnection } from './connection.js';
export { useRoom, usePresence, useCall, type UseRoom, type UsePresence, type UseCall } from './hooks.js';
export type { RoomOptions, RoomSnapshot, RoomStatus } from './room-store.js';
export type { CallEnd, CallOptions, CallParticipant, CallSnapshot } from './call-store.js';
