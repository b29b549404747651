/**
 * Presence state and large rooms on one node (docs/protocol.md, "Presence
 * state", "Large rooms"): a state from `join`, `presence_set` and the
 * token's `presence` claim reaches `joined.members`, `member_joined`,
 * `member_updated`, the `presence` answer and the server API; its refusals
 * are typed; above `--presence-list-max` members get `member_count` instead
 * of member frames, and member frames come back below it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hs256Token } from '../helpers/jwt.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { testNamespace } from '../helpers/wait.js';

const SECRET = 'presence-state-test-secret-0123456789abcdef';
const API_KEY = 'presence-state-test-api-key-0123456789';

describe('presence state and large rooms (single node)', () => {
  let node: NodeProcess;
  const clients: RawClient[] = [];

  async function connect(user: string, claims: Record<string, unknown> = {}): Promise<RawClient> {
    const client = await RawClient.open(node.wsUrl);
    clients.push(client);
    const welcome = await client.request({ op: 'connect', v: 1, token: await hs256Token(SECRET, user, { claims }) });
    assert.equal(welcome.op, 'welcome', JSON.stringify(welcome));
    return client;
  }

  before(async () => {
    node = await startNode({
      args: [
        '--auth-secret',
        SECRET,
        '--api-key',
        API_KEY,
        '--presence-list-max',
        '3',
        '--presence-count-interval-ms',
        '50',
        '--presence-state-max-bytes',
        '64',
      ],
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await node.stop();
  });

  it('shows the state of join, presence_set and the token claim in every view of the members', async () => {
    const room = testNamespace('st');
    const alice = await connect('alice', { presence: { name: 'Alice' } });
    const bob = await connect('bob');
    const joinedA = await alice.request({ op: 'join', room, state: { status: 'here', name: 'Mallory' } });
    assert.equal(joinedA.op, 'joined', JSON.stringify(joinedA));
    // The claim's keys win over what the client sent.
    assert.deepEqual(joinedA.members, [
      { user: 'alice', since: (joinedA.members as Array<{ since: number }>)[0]?.since, state: { status: 'here', name: 'Alice' } },
    ]);
    assert.equal(joinedA.count, 1);

    const joinedB = await bob.request({ op: 'join', room });
    const members = joinedB.members as Array<{ user: string; state?: unknown }>;
    assert.deepEqual(
      members.map((m) => [m.user, m.state]),
      [
        ['alice', { status: 'here', name: 'Alice' }],
        ['bob', undefined],
      ],
    );
    assert.equal(joinedB.count, 2);
    const bobJoined = await alice.waitFor((f) => f.op === 'member_joined' && f.user === 'bob', 5000, 'member_joined of bob');
    assert.equal(bobJoined.count, 2);
    assert.equal(bobJoined.state, undefined);

    const set = await alice.request({ op: 'presence_set', room, state: { status: 'away' } });
    assert.deepEqual(set, { op: 'presence_set', rid: set.rid, room, state: { status: 'away', name: 'Alice' } });
    const updated = await bob.waitFor((f) => f.op === 'member_updated', 5000, 'member_updated at bob');
    assert.deepEqual([updated.room, updated.user, updated.state], [room, 'alice', { status: 'away', name: 'Alice' }]);
    assert.equal(
      alice.frames.some((f) => f.op === 'member_updated'),
      false,
      'the setter gets the answer, not the push',
    );

    const answer = await bob.request({ op: 'presence', room });
    assert.equal(answer.count, 2);
    assert.deepEqual((answer.members as Array<{ state?: unknown }>)[0]?.state, { status: 'away', name: 'Alice' });

    const api = await fetch(`${node.url}/api/rooms/${room}/presence`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(api.status, 200);
    const body = (await api.json()) as { count: number; members: Array<{ user: string; state?: unknown }> };
    assert.equal(body.count, 2);
    assert.deepEqual(body.members[0]?.state, { status: 'away', name: 'Alice' });
  });

  it('refuses bad states with typed errors and changes nothing', async () => {
    const room = testNamespace('bad');
    const carol = await connect('carol');
    const tooLarge = await carol.request({ op: 'join', room, state: { blob: 'x'.repeat(80) } });
    assert.equal(tooLarge.code, 'presence_too_large', JSON.stringify(tooLarge));
    assert.equal((await carol.request({ op: 'presence', room })).code, 'not_joined', 'the refused join left nothing behind');
    assert.equal((await carol.request({ op: 'presence_set', room, state: {} })).code, 'not_joined');
    assert.equal((await carol.request({ op: 'join', room })).op, 'joined');
    assert.equal((await carol.request({ op: 'presence_set', room, state: ['not', 'an', 'object'] })).code, 'invalid_frame');
    assert.equal((await carol.request({ op: 'presence_set', room, state: { blob: 'x'.repeat(80) } })).code, 'presence_too_large');
    // 10 in a burst per connection and room, then rate_limited with a retry time.
    const answers: Frame[] = [];
    for (let i = 0; i < 12; i++) answers.push(await carol.request({ op: 'presence_set', room, state: { i } }));
    const limited = answers.filter((f) => f.code === 'rate_limited');
    assert.ok(limited.length >= 1, JSON.stringify(answers.map((f) => f.op)));
    assert.ok(Number(limited[0]?.retryAfterMs) > 0);
    const tokenWithBadClaim = await RawClient.open(node.wsUrl);
    clients.push(tokenWithBadClaim);
    const refused = await tokenWithBadClaim.request({
      op: 'connect',
      v: 1,
      token: await hs256Token(SECRET, 'dave', { claims: { presence: 'not an object' } }),
    });
    assert.equal(refused.code, 'auth_failed');
  });

  it('sends member_count instead of member frames above --presence-list-max, and member frames again below it', async () => {
    const room = testNamespace('big');
    const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
    const members = await Promise.all(users.map((user) => connect(user)));
    for (const member of members.slice(0, 3)) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const first = members[0]!;
    await first.waitFor((f) => f.op === 'member_joined' && f.user === 'u3', 5000, 'member_joined while small');

    const joined4 = await members[3]!.request({ op: 'join', room, state: { n: 4 } });
    const joined5 = await members[4]!.request({ op: 'join', room });
    assert.equal(joined5.count, 5);
    assert.equal((joined5.members as unknown[]).length, 3, 'a large room lists only the first presence-list-max');
    assert.equal(joined4.count, 4);
    const count5 = await first.waitFor((f) => f.op === 'member_count' && f.count === 5, 5000, 'member_count of 5');
    assert.equal(count5.listed, false);
    assert.equal(
      first.frames.some((f) => f.op === 'member_joined' && (f.user === 'u4' || f.user === 'u5')),
      false,
      'no member_joined in a large room',
    );
    const presence = await first.request({ op: 'presence', room });
    assert.deepEqual([presence.count, (presence.members as unknown[]).length], [5, 3]);
    // Updates are not pushed in a large room.
    assert.equal((await members[3]!.request({ op: 'presence_set', room, state: { n: 44 } })).op, 'presence_set');

    assert.equal((await members[4]!.request({ op: 'leave', room })).op, 'left');
    assert.equal((await members[3]!.request({ op: 'leave', room })).op, 'left');
    const listed = await first.waitFor((f) => f.op === 'member_count' && f.listed === true, 5000, 'member_count listed: true');
    assert.equal(listed.count, 3);
    assert.equal(
      first.frames.some((f) => f.op === 'member_updated'),
      false,
      'no member_updated reached a member of the large room',
    );
    // Member frames are back: a leave is told one by one again.
    assert.equal((await members[2]!.request({ op: 'leave', room })).op, 'left');
    await first.waitFor((f) => f.op === 'member_left' && f.user === 'u3', 5000, 'member_left of u3 in a small room');
  });
});
