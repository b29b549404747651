/** What every part of the Pusher side (gateway.ts, channels.ts, events.ts) is given, and the two replies they share. */
import type { IncomingMessage } from 'node:http';
import type { Bus } from '../bus/bus.js';
import type { ChannelNamer } from '../bus/channels.js';
import type { History } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../config/options.js';
import type { Presence } from '../presence/presence.js';
import type { TenantGuard } from '../quotas/guard.js';
import type { PusherApp } from '../config/pusher-apps.js';
import { PusherCode, errorFrame } from './protocol.js';
import type { PusherSocket } from './socket.js';
import type { PusherStore } from './store.js';

/**
 * Facts the Pusher side reports as they happen, for Pusher-format webhooks
 * (docs/pusher.md). `member_added` / `member_removed` are cluster-wide (one
 * node reports each, from the presence lane); `client_event` is reported by
 * the sender's node.
 */
export type PusherFact =
  | { type: 'channel_occupied' | 'channel_vacated'; app: PusherApp; channel: string }
  | { type: 'member_added' | 'member_removed'; app: PusherApp; channel: string; userId: string }
  | { type: 'client_event'; app: PusherApp; channel: string; event: string; data: unknown; socketId: string; userId?: string };

/**
 * The little the Pusher side asks of the nerve gateway (src/gateway), as an
 * interface so that it does not depend on the gateway's class: the node's
 * per-address cap, shared with /ws, and publishing an event into a room.
 */
export interface NerveGatewayPort {
  admitAddress(request: IncomingMessage): { address: string | undefined; max: number };
  countAddress(address: string, open: boolean): void;
  serverPublish(input: { tenant: string; room: string; class: 'ephemeral'; data: unknown; from: string; except: string | undefined }): Promise<unknown>;
}

export interface PusherDeps {
  apps: readonly PusherApp[];
  options: NodeOptions;
  /** Pusher events are published through the nerve gateway's `serverPublish` (its per-room rate limit and metrics apply). */
  gateway: NerveGatewayPort;
  bus: Bus;
  presence: Presence;
  /** The chat history: `nerve:resume` (docs/pusher.md, "Extensions") reads the missed `nerve-chat` events from it. */
  history: History;
  store: PusherStore;
  namer: ChannelNamer;
  metrics: NodeMetrics;
  log: Logger;
  /** Tenant quotas and usage metering (src/quotas/): connections count against the app's tenant like nerve's; absent: neither. */
  tenants?: TenantGuard | undefined;
  /** Told of each PusherFact; must not throw. */
  onFact?: (fact: PusherFact) => void;
}

/** Answer a message the client should not have sent with a counted `pusher:error`; the connection stays open. */
export function answerInvalid(deps: PusherDeps, socket: PusherSocket, message: string, code: PusherCode = PusherCode.InvalidMessage): void {
  deps.metrics.errors.inc({ code: `pusher_${code}` });
  socket.send(errorFrame(code, message));
}

export function reportFact(deps: PusherDeps, fact: PusherFact): void {
  try {
    deps.onFact?.(fact);
  } catch {
    // A listener's failure is its own.
  }
}
