/**
 * Edit, delete and react on one node with memory lanes (docs/protocol.md,
 * "Editing, deleting and reacting"): the entries on the wire, who may
 * (author, `moderate` grant), every refusal with its code, idempotency by
 * `cmid`, and the SDK's folded `room.messages` through a resume from a
 * position and a page back to targets it had not loaded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { NerveClient, NerveClientError, type RoomChatMessage } from '../../packages/client/src/index.js';
import { hs256Token } from '../helpers/jwt.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'message-actions-secret-'.padEnd(40, 'x');
const ROOM = 'lobby';
const MEMBER = [{ prefix: '', rights: ['join', 'publish', 'presence'] }];
const MODERATOR = [{ prefix: '', rights: ['join', 'publish', 'moderate'] }];

describe('edit, delete and react on one node', { timeout: 60_000 }, () => {
  let node: NodeProcess;
  const raws: RawClient[] = [];
  const sdks: NerveClient[] = [];
  let alice: RawClient;
  let bob: RawClient;
  let m1: Frame;
  let m2: Frame;
  let epoch: string;

  function token(user: string, rooms: unknown, tenant = 'acme'): Promise<string> {
    return hs256Token(SECRET, user, { claims: { tenant, rooms } });
  }

  async function member(user: string, rooms: unknown = MEMBER, tenant = 'acme'): Promise<RawClient> {
    const client = await RawClient.open(node.wsUrl);
    raws.push(client);
    const welcome = await client.request({ op: 'connect', v: 1, token: await token(user, rooms, tenant) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    assert.equal((await client.request({ op: 'join', room: ROOM, history: 0 })).op, 'joined');
    return client;
  }

  const target = (m: Frame) => ({ id: m.id, offset: m.offset });

  before(async () => {
    node = await startNode({ args: ['--auth-secret', SECRET, '--rate-burst', '500'] });
    alice = await member('alice');
    bob = await member('bob');
    m1 = await alice.request({ op: 'publish', room: ROOM, class: 'chat', data: { text: 'hello' } });
    m2 = await alice.request({ op: 'publish', room: ROOM, class: 'chat', data: { text: 'second' } });
    assert.deepEqual([m1.offset, m2.offset], [1, 2]);
    epoch = String(m1.epoch);
  });

  after(async () => {
    await Promise.all(sdks.map((client) => client.close()));
    for (const client of raws) client.close();
    await node?.stop();
  });

  it('an edit is a chat entry of the room log, delivered with action and target', async () => {
    const ack = await alice.request({ op: 'edit', room: ROOM, target: target(m1), data: { text: 'hello, fixed' }, cmid: 'e-1' });
    assert.equal(ack.op, 'ack', JSON.stringify(ack));
    assert.deepEqual([ack.offset, ack.epoch], [3, epoch]);
    const seen = await bob.waitFor((f) => f.op === 'message' && f.offset === 3);
    assert.deepEqual(seen, {
      op: 'message',
      class: 'chat',
      room: ROOM,
      id: ack.id,
      from: 'alice',
      ts: ack.ts,
      data: { text: 'hello, fixed' },
      cmid: 'e-1',
      action: 'edit',
      target: { id: m1.id, offset: 1 },
      offset: 3,
      epoch,
    });
    const again = await alice.request({ op: 'edit', room: ROOM, target: target(m1), data: { text: 'hello, fixed' }, cmid: 'e-1' });
    assert.deepEqual([again.op, again.offset, again.duplicate], ['ack', 3, true], 'a retry with the same cmid is stored once');
  });

  it('only the author or a moderator may edit or delete; anyone who may publish may react', async () => {
    for (const op of ['edit', 'delete']) {
      const refused = await bob.request({ op, room: ROOM, target: target(m1), data: 'mine now' });
      assert.deepEqual([refused.op, refused.code], ['error', 'forbidden'], op);
    }
    const react = await bob.request({ op: 'react', room: ROOM, target: target(m1), emoji: '👍' });
    assert.deepEqual([react.op, react.offset], ['ack', 4]);
    const mod = await member('mod', MODERATOR);
    const deleted = await mod.request({ op: 'delete', room: ROOM, target: target(m2) });
    assert.deepEqual([deleted.op, deleted.offset], ['ack', 5]);
    const entry = await bob.waitFor((f) => f.op === 'message' && f.offset === 5);
    assert.deepEqual([entry.from, entry.action, entry.data, entry.target], ['mod', 'delete', null, { id: m2.id, offset: 2 }]);
    // A token without grants never implies `moderate`; a reader without `publish` may not react.
    const reader = await member('reader', [{ prefix: '', rights: ['join'] }]);
    assert.equal((await reader.request({ op: 'react', room: ROOM, target: target(m1), emoji: '👍' })).code, 'forbidden');
  });

  it('refuses a target it cannot find, a stale epoch, a room not joined, and bad frames, each with its code', async () => {
    const ask = (frame: Record<string, unknown>) => bob.request({ room: ROOM, op: 'react', emoji: '👍', ...frame });
    // The delete entry at offset 5: an entry is no target.
    const page = await bob.request({ op: 'history', room: ROOM, before: 6, limit: 1 });
    const deleteEntry = (page.messages as Frame[])[0]!;
    assert.equal(deleteEntry.action, 'delete');
    const answers = {
      wrongId: await ask({ target: { id: 'nope', offset: 1 } }),
      beyond: await ask({ target: { id: m1.id, offset: 99 } }),
      anEntry: await ask({ target: target(deleteEntry) }),
      stale: await ask({ target: { ...target(m1), epoch: 'an-older-epoch' } }),
      notJoined: await ask({ room: 'elsewhere', target: target(m1) }),
      offsetZero: await ask({ target: { id: m1.id, offset: 0 } }),
      longEmoji: await ask({ target: target(m1), emoji: 'x'.repeat(33) }),
      noData: await alice.request({ op: 'edit', room: ROOM, target: target(m1) }),
    };
    assert.deepEqual(Object.fromEntries(Object.entries(answers).map(([name, frame]) => [name, frame.code])), {
      wrongId: 'message_not_found',
      beyond: 'message_not_found',
      anEntry: 'message_not_found',
      stale: 'epoch_mismatch',
      notJoined: 'not_joined',
      offsetZero: 'invalid_frame',
      longEmoji: 'invalid_frame',
      noData: 'invalid_frame',
    });
    // Another tenant's room of the same id is another log: alice's message is not in it.
    const eve = await member('eve', MEMBER, 'globex');
    assert.equal((await eve.request({ op: 'react', room: ROOM, target: target(m1), emoji: '👍' })).code, 'message_not_found');
    assert.equal((await bob.request({ op: 'ping' })).op, 'pong', 'the connection is fine');
  });

  it('the SDK folds the entries into room.messages, after a resume and a page back', async () => {
    const client = new NerveClient({ url: node.wsUrl, token: await token('carol', MEMBER), WebSocket, requestTimeoutMs: 5000 });
    sdks.push(client);
    await client.connect();
    const room = client.room<{ text: string }>(ROOM);
    const list = room.messages;
    // Resume from offset 2: the replay holds the entries only, whose targets are not loaded yet.
    const joined = await room.join({ since: { offset: 2, epoch } });
    assert.deepEqual(
      joined.history.map((m) => m.offset),
      [3, 4, 5],
    );
    assert.deepEqual(list.items, [], 'entries are never listed');
    assert.equal(list.pendingCount, 3);
    assert.equal(await list.loadOlder(), false);
    const shown = (items: readonly RoomChatMessage<{ text: string }>[]) =>
      items.map((m) => [m.offset, m.data, m.deleted ?? false, m.reactions?.map((r) => `${r.emoji}:${r.users.join('+')}`).join() ?? '']);
    assert.deepEqual(shown(list.items), [
      [1, { text: 'hello, fixed' }, false, '👍:bob'],
      [2, null, true, ''],
    ]);

    // Live entries fold as they come, from the SDK's own calls too.
    const first = list.items[0]!;
    await room.react(first, '🎉');
    await alice.request({ op: 'edit', room: ROOM, target: target(m1), data: { text: 'hello, again' } });
    await waitFor(() => list.items[0]!.data.text === 'hello, again' && (list.items[0]!.reactions?.length ?? 0) === 2, {
      what: 'the live edit and reaction folded',
    });
    assert.deepEqual(shown(list.items), [
      [1, { text: 'hello, again' }, false, '👍:bob,🎉:carol'],
      [2, null, true, ''],
    ]);
    await room.react(first, '🎉', false);
    await waitFor(() => list.items[0]!.reactions?.length === 1, { what: 'the reaction taken back' });

    // Typed errors: carol is neither the author nor a moderator.
    await assert.rejects(room.edit(first, { text: 'carol was here' }), (error: unknown) => error instanceof NerveClientError && error.code === 'forbidden');
    await assert.rejects(room.delete({ id: 'nope', offset: 1 }), (error: unknown) => error instanceof NerveClientError && error.code === 'message_not_found');
  });
});
