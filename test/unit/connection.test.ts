import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { ROOM_RIGHTS, rightsIn, type RoomGrant } from '../../src/auth/grants.js';
import { Connection, ConnectionState, type ConnectionContext } from '../../src/gateway/connection.js';
import { createLogger } from '../../src/logger.js';
import { NodeMetrics } from '../../src/metrics.js';
import { WriteBatch } from '../../src/write-batch.js';

/** A socket that records closes; enough for the state machine (nothing is sent). */
function fakeSocket(): WebSocket & { closedWith?: [number, string]; terminated: boolean } {
  const socket = {
    extensions: '',
    bufferedAmount: 0,
    terminated: false,
    closedWith: undefined as [number, string] | undefined,
    close(code: number, reason: string) {
      socket.closedWith = [code, reason];
    },
    terminate() {
      socket.terminated = true;
    },
    ping() {},
  };
  return socket as unknown as WebSocket & { closedWith?: [number, string]; terminated: boolean };
}

function connection(): { conn: Connection; socket: ReturnType<typeof fakeSocket>; metrics: NodeMetrics } {
  const metrics = new NodeMetrics({ nodeId: 'test', processMetrics: false });
  const context: ConnectionContext = {
    log: createLogger('silent'),
    limits: { ratePerSecond: 100, rateBurst: 100, sendBufferSoftBytes: 1 << 20, sendBufferHardBytes: 1 << 22 },
    writes: new WriteBatch(),
    metrics,
  };
  const socket = fakeSocket();
  return { conn: new Connection('c1', socket, '127.0.0.1', context, {} as Duplex), socket, metrics };
}

describe('Connection state machine', () => {
  it('goes handshake → open → closing → closed, each step once', () => {
    const { conn, socket } = connection();
    assert.equal(conn.state, ConnectionState.Handshake);
    conn.open();
    assert.equal(conn.state, ConnectionState.Open);
    conn.close(4000, 'bye');
    assert.equal(conn.state, ConnectionState.Closing);
    assert.deepEqual(socket.closedWith, [4000, 'bye']);
    conn.close(4001, 'again');
    assert.deepEqual(socket.closedWith, [4000, 'bye'], 'a second close is a no-op');
    assert.equal(conn.closed(), true);
    assert.equal(conn.state, ConnectionState.Closed);
    assert.equal(conn.closed(), false, 'closed only once');
    conn.open();
    assert.equal(conn.state, ConnectionState.Closed, 'never reopened');
  });

  it('counts requests in flight up to a cap', () => {
    const { conn } = connection();
    assert.equal(conn.startRequest(2), true);
    assert.equal(conn.startRequest(2), true);
    assert.equal(conn.startRequest(2), false);
    conn.endRequest();
    assert.equal(conn.pending, 1);
  });

  it('answers a missed heartbeat with false', () => {
    const { conn } = connection();
    assert.equal(conn.ping(), true);
    assert.equal(conn.ping(), false);
    conn.pong();
    assert.equal(conn.ping(), true);
  });
});

describe('Connection.hasRight', () => {
  const grants: RoomGrant[] = [
    { room: 'lobby', rights: ['join', 'presence'] },
    { prefix: 'team-', rights: ['publish'] },
    { prefix: '', rights: ['presence'] },
  ];

  it('agrees with rightsIn for every room and right, with and without a join token', () => {
    for (const tokenGrants of [undefined, grants, []]) {
      const { conn } = connection();
      conn.identify({ user: 'u', tenant: 't', ...(tokenGrants === undefined ? {} : { grants: tokenGrants }) });
      conn.grant('team-x', new Set(['signal']));
      for (const room of ['lobby', 'team-x', 'team-y', 'other']) {
        const joined = room === 'team-x' ? ['signal'] : [];
        for (const right of ROOM_RIGHTS) {
          const expected = rightsIn(tokenGrants, room).has(right) || joined.includes(right);
          assert.equal(conn.hasRight(room, right), expected, `${room} ${right} with ${JSON.stringify(tokenGrants)}`);
        }
      }
    }
  });
});
