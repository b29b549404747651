/**
 * The SDK's issue-17 features against a real node (in process, JWT auth with
 * `authGrantsRequired`, so a room needs a join token): `room.join({ token })`
 * with a token from `POST /api/tokens/join`, a fresh one from `getToken` on
 * the rejoin after the connection is cut by a TCP proxy, the refusal without
 * one; and `room.history()` paging back through a room's chat to its first
 * message.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { ClientState, ErrorCode, NerveClient, NerveClientError, type RoomChatMessage } from '../../packages/client/src/index.js';
import { NerveNode } from '../../src/node.js';
import { hs256Token } from '../helpers/jwt.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { once, testNamespace, waitFor } from '../helpers/wait.js';

const SECRET = 'sdk-fit-secret-'.padEnd(40, 's');
const API_KEY = 'sdk-fit-api-key-'.padEnd(32, 'k');

interface ChatPayload {
  text: string;
  n: number;
}

describe('SDK join tokens and history against a node with JWT auth', () => {
  let node: NerveNode;
  let base: string;
  let proxy: TcpProxy;
  const clients: NerveClient[] = [];

  before(async () => {
    node = new NerveNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: false, authSecret: SECRET, authGrantsRequired: true, apiKey: API_KEY });
    const { port } = await node.start();
    base = `http://127.0.0.1:${port}`;
    proxy = await startTcpProxy(port);
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await proxy.close();
    await node.stop();
  });

  /** A connection token for `user`: no `rooms` claim, so (with authGrantsRequired) no room rights of its own. */
  function connectionToken(user: string): Promise<string> {
    return hs256Token(SECRET, user);
  }

  /** A join token minted by the server API, as an application backend would. */
  async function mintJoinToken(user: string, room: string): Promise<string> {
    const response = await fetch(`${base}/api/tokens/join`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user, room }),
    });
    const body = (await response.json()) as { token?: string };
    assert.equal(response.status, 200, JSON.stringify(body));
    return body.token!;
  }

  function client(user: string, url: string): NerveClient {
    const created = new NerveClient({
      url,
      WebSocket,
      getToken: () => connectionToken(user),
      requestTimeoutMs: 5000,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    });
    clients.push(created);
    return created;
  }

  it('joins with a minted join token, and is refused without one', async () => {
    const room = testNamespace('vip');
    const alice = client('alice', `ws://127.0.0.1:${proxy.port}/ws`);
    await alice.connect();
    await assert.rejects(alice.join(room), (error: unknown) => {
      assert.ok(error instanceof NerveClientError);
      assert.equal(error.code, ErrorCode.Forbidden);
      return true;
    });
    const vip = alice.room<ChatPayload>(room);
    const joined = await vip.join({ token: await mintJoinToken('alice', room) });
    assert.equal(joined.room, room);
    const ack = await vip.publish({ text: 'in', n: 1 });
    assert.equal(ack.offset, joined.position.offset + 1, 'the join token granted publish too');
    // A token minted for another user is refused.
    await assert.rejects(alice.join(testNamespace('other'), { token: await mintJoinToken('bob', room) }), { code: 'forbidden' });
  });

  it('rejoins after a cut with a fresh join token from getToken, and resumes', async () => {
    const room = testNamespace('call');
    const alice = client('alice', `ws://127.0.0.1:${proxy.port}/ws`);
    const bob = client('bob', `ws://127.0.0.1:${proxy.port}/ws`);
    await Promise.all([alice.connect(), bob.connect()]);
    const minted: string[] = [];
    const getToken = async (name: string) => {
      minted.push(name);
      return mintJoinToken('alice', name);
    };
    const aliceRoom = alice.room<ChatPayload>(room);
    await aliceRoom.join({ getToken });
    await bob.room<ChatPayload>(room).join({ token: await mintJoinToken('bob', room) });

    const received: RoomChatMessage<ChatPayload>[] = [];
    aliceRoom.on('message', (message) => {
      if (message.class === 'chat') received.push(message);
    });
    const rejoined = once(aliceRoom, 'rejoined', 10_000);
    assert.ok(proxy.cut() >= 2, 'both connections cut');
    // While alice is away bob (also cut, reconnecting) publishes; alice must get it on resume.
    await bob.publish(room, { text: 'while away', n: 1 } satisfies ChatPayload);
    const answer = await rejoined;
    assert.equal(answer.room, room);
    assert.deepEqual(minted, [room, room], 'a fresh token for the join and for the rejoin');
    await waitFor(() => received.some((message) => message.data.text === 'while away'), { what: 'the message sent while away' });
    await aliceRoom.publish({ text: 'back', n: 2 });
    assert.equal(alice.state, ClientState.Connected);
  });

  it('pages back through the history to the first message', async () => {
    const room = testNamespace('hist');
    const alice = client('alice', `ws://127.0.0.1:${proxy.port}/ws`);
    await alice.connect();
    const chat = alice.room<ChatPayload>(room);
    await chat.join({ getToken: (name) => mintJoinToken('alice', name) });
    for (let n = 1; n <= 23; n += 1) await chat.publish({ text: `m${n}`, n });

    const bob = client('bob', `ws://127.0.0.1:${proxy.port}/ws`);
    await bob.connect();
    const bobChat = bob.room<ChatPayload>(room);
    const joined = await bobChat.join({ token: await mintJoinToken('bob', room), history: 3 });
    assert.deepEqual(
      joined.history.map((message) => message.data.n),
      [21, 22, 23],
    );
    // Page back from the oldest message held, 5 at a time, until `more` is false.
    const seen = joined.history.map((message) => message.data.n);
    let oldest = joined.history[0]!.offset;
    let pages = 0;
    for (;;) {
      const page = await bobChat.history({ before: oldest, limit: 5, epoch: joined.position.epoch });
      pages += 1;
      assert.ok(page.messages.length <= 5);
      assert.equal(page.epoch, joined.position.epoch);
      seen.unshift(...page.messages.map((message) => message.data.n));
      if (!page.more) break;
      oldest = page.messages[0]!.offset;
      assert.ok(pages < 10, 'paging ends');
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 23 }, (_, index) => index + 1),
    );
    // Without `before`: the newest page.
    const newest = await bobChat.history({ limit: 2 });
    assert.deepEqual(
      newest.messages.map((message) => message.data.n),
      [22, 23],
    );
    await assert.rejects(bobChat.history({ epoch: 'not-the-epoch' }), { code: 'epoch_mismatch' });
  });
});
