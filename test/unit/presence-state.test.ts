/**
 * `presence_set` on a node (src/gateway/presence-state.ts, docs/protocol.md
 * "presence_set"): the rate limit is taken before the state is built, so a
 * flood of large states is refused `rate_limited` without building or
 * measuring each one; what is stored and sent is the merged state, its JSON
 * text kept from the one serialization that measured it.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ChannelNamer } from '../../src/bus/channels.js';
import type { Connection } from '../../src/gateway/connection.js';
import { PresenceStates } from '../../src/gateway/presence-state.js';
import { presenceState } from '../../src/presence/state.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { PRESENCE_LIMITS, type PresenceState, type ServerFrame } from '../../packages/protocol/src/frames.js';

function setup(t: TestContext, claim?: PresenceState) {
  // A frozen clock: the bucket refills only when the test says so.
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const stored: string[] = [];
  const announced: string[] = [];
  const answers: ServerFrame[] = [];
  const states = new PresenceStates({
    presence: {
      setState: async (_ref, _entry, state) => {
        stored.push(state);
        return true;
      },
    },
    namer: new ChannelNamer({ env: 'test', service: 'nerve' }),
    maxRoomIdLength: 64,
    maxStateBytes: 64,
    announce: async (_channel, payload) => {
      announced.push(payload);
    },
  });
  const conn = {
    id: 'c1',
    user: 'alice',
    tenant: 't',
    rooms: new Set(['lobby']),
    identity: claim === undefined ? {} : { presence: claim },
    answer: (frame: ServerFrame) => answers.push(frame),
  } as unknown as Connection;
  const builds = t.mock.method(states, 'stateOf');
  const set = async (state: PresenceState, room = 'lobby'): Promise<string> => {
    try {
      await states.set(conn, { op: 'presence_set', rid: 1, room, state });
      return 'ok';
    } catch (error) {
      assert.ok(error instanceof NerveError);
      return error.code;
    }
  };
  return { states, conn, stored, announced, answers, builds, set };
}

test('a flood of large states is refused rate_limited once the bucket is empty, without building them', async (t) => {
  const { builds, set } = setup(t);
  const large = { blob: 'x'.repeat(200) };
  const codes: string[] = [];
  for (let i = 0; i < PRESENCE_LIMITS.setBurst + 5; i++) codes.push(await set(large));
  assert.deepEqual(codes, [...Array<string>(PRESENCE_LIMITS.setBurst).fill('presence_too_large'), ...Array<string>(5).fill('rate_limited')]);
  assert.equal(builds.mock.callCount(), PRESENCE_LIMITS.setBurst, 'a refused frame builds no state');
  // Too large keeps its token (else a flood of them never runs dry): a small state waits too.
  assert.equal(await set({ ok: true }), 'rate_limited');
  t.mock.timers.tick(1000 / PRESENCE_LIMITS.setPerSecond);
  assert.equal(await set({ ok: true }), 'ok');
});

test('the cheap refusals take no token', async (t) => {
  const { builds, set } = setup(t);
  for (let i = 0; i < PRESENCE_LIMITS.setBurst * 2; i++) {
    assert.equal(await set({}, 'elsewhere'), 'not_joined');
    assert.equal(await set({}, 'bad room!'), 'invalid_room');
  }
  assert.equal(builds.mock.callCount(), 0);
  for (let i = 0; i < PRESENCE_LIMITS.setBurst; i++) assert.equal(await set({ i }), 'ok');
  assert.equal(await set({}), 'rate_limited');
});

test('stores the merged state as JSON text and sends the same state, claim keys winning', async (t) => {
  const { stored, answers, announced, set } = setup(t, { name: 'Alice' });
  assert.equal(await set({ status: 'away', name: 'Mallory', '1': 'é' }), 'ok');
  const text = JSON.stringify({ '1': 'é', status: 'away', name: 'Alice' });
  assert.deepEqual(stored, [text]);
  assert.deepEqual(answers, [{ op: 'presence_set', rid: 1, room: 'lobby', state: { '1': 'é', status: 'away', name: 'Alice' } }]);
  const pushed = JSON.parse(announced[0]!) as { op: string; state: unknown };
  assert.equal(pushed.op, 'member_updated');
  assert.equal(JSON.stringify(pushed.state), text, 'sent as stored, key order included');
});

test('the size bound counts UTF-8 bytes of the merged JSON, one serialization kept', () => {
  assert.deepEqual(presenceState({ a: 'é' }, undefined, 10), { state: { a: 'é' }, text: '{"a":"é"}' });
  assert.throws(() => presenceState({ a: 'éé' }, undefined, 10), { code: 'presence_too_large' });
  assert.throws(() => presenceState({ a: 1 }, { name: 'a long signed name' }, 16), { code: 'presence_too_large' });
  assert.equal(presenceState(undefined, undefined, 10), undefined);
});
