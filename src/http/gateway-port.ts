/** What src/http asks of the nerve gateway, as interfaces, so that it does not import the gateway's class (src/node.ts hands the gateway in). */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Publisher } from '../gateway/publish.js';

/** The operations the server API and the admin actions take on the cluster. */
export interface ServerOperations extends Pick<Publisher, 'serverPublish' | 'serverSignal'> {
  endRoom(tenant: string, room: string, reason: string): Promise<number>;
  disconnectUser(tenant: string, user: string, conn: string | undefined, reason: string): Promise<number>;
}

/** The WebSocket endpoint upgrades are handed to, and what `/readyz` reads of it. */
export interface UpgradeTarget {
  readonly state: string;
  connectionCount(): number;
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
}
