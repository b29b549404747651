/**
 * The `call` op on one in-process node (memory lanes): server-stamped
 * call.started / call.ended on the cold lane, the leaves a room leave or a
 * disconnect makes, and the typed refusals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { eventData } from '../../src/events/events.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { MAX_CALLS_PER_CONNECTION } from '../../src/gateway/call-participation.js';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

describe('calls on one node', () => {
  const events: LifecycleEvent[] = [];
  const log = new MemoryEventLog();
  let node: NerveNode;
  let url: string;
  const clients: RawClient[] = [];

  const connect = async (user: string, room = 'standup'): Promise<RawClient> => {
    const client = await RawClient.connect(url, user);
    clients.push(client);
    assert.equal((await client.request({ op: 'join', room })).op, 'joined');
    return client;
  };
  const ofCall = (call: string, type: string) => events.filter((e) => e.type === type && (e.data as { call: string }).call === call);

  before(async () => {
    node = new NerveNode({ port: 0, host: '127.0.0.1', nodeId: testNamespace('calls'), logLevel: 'silent', demo: false }, { lanes: { events: log } });
    const { port } = await node.start();
    url = `ws://127.0.0.1:${port}/ws`;
    await log.consume({ queue: 'observer', bindings: ['call.*', 'participant.left'] }, async (event) => {
      events.push(event);
      return 'ack';
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await node.stop();
  });

  it('times a call by the server: one call.started, one call.ended with every participant', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const joinA = await alice.request({ op: 'call', room: 'standup', call: 'c1', action: 'join' });
    assert.equal(joinA.op, 'call');
    assert.equal(joinA.action, 'join');
    const joinB = await bob.request({ op: 'call', room: 'standup', call: 'c1', action: 'join' });
    const leaveB = await bob.request({ op: 'call', room: 'standup', call: 'c1', action: 'leave' });
    const leaveA = await alice.request({ op: 'call', room: 'standup', call: 'c1', action: 'leave' });
    await waitFor(() => ofCall('c1', 'call.ended').length === 1, { timeoutMs: 5000, what: 'call.ended' });
    const [started] = ofCall('c1', 'call.started');
    assert.ok(started);
    const startedData = eventData(started, 'call.started');
    assert.equal(startedData.startedBy, 'alice');
    assert.equal(startedData.startedAt, joinA.ts);
    const ended = eventData(ofCall('c1', 'call.ended')[0]!, 'call.ended');
    assert.equal(ended.callSession, startedData.callSession);
    assert.equal(ended.startedAt, joinA.ts);
    assert.equal(ended.endedAt, leaveA.ts);
    assert.equal(ended.ms, Number(leaveA.ts) - Number(joinA.ts));
    assert.equal(ended.reason, 'left');
    assert.equal(ended.peakParticipants, 2);
    assert.deepEqual(ended.participants, [
      { user: 'alice', ms: Number(leaveA.ts) - Number(joinA.ts) },
      { user: 'bob', ms: Number(leaveB.ts) - Number(joinB.ts) },
    ]);
    assert.equal(started.tenant, 'default');
    assert.equal(started.room, 'standup');
    assert.equal(ofCall('c1', 'call.ended')[0]!.session, started.session, 'the room session of both events');
    assert.equal(ofCall('c1', 'call.started').length, 1);
  });

  it('ends the call when its last participant leaves the room or disconnects', async () => {
    const carol = await connect('carol');
    const dave = await connect('dave');
    await carol.request({ op: 'call', room: 'standup', call: 'c2', action: 'join' });
    await dave.request({ op: 'call', room: 'standup', call: 'c2', action: 'join' });
    assert.equal((await carol.request({ op: 'leave', room: 'standup' })).op, 'left');
    dave.close();
    await waitFor(() => ofCall('c2', 'call.ended').length === 1, { timeoutMs: 5000, what: 'call.ended after a disconnect' });
    const ended = eventData(ofCall('c2', 'call.ended')[0]!, 'call.ended');
    assert.equal(ended.reason, 'disconnected');
    assert.deepEqual(
      ended.participants.map((p) => p.user),
      ['carol', 'dave'],
    );
    // The call's end goes out before the participant's leave of the room.
    const endedAt = events.indexOf(ofCall('c2', 'call.ended')[0]!);
    await waitFor(() => events.some((e) => e.type === 'participant.left' && (e.data as { user: string }).user === 'dave'), {
      timeoutMs: 5000,
      what: 'dave left',
    });
    assert.ok(events.findIndex((e) => e.type === 'participant.left' && (e.data as { user: string }).user === 'dave') > endedAt);
  });

  it('refuses bad calls with typed codes and counts them', async () => {
    const erin = await connect('erin');
    const refused = async (frame: Record<string, unknown>) => (await erin.request({ op: 'call', room: 'standup', call: 'c3', action: 'join', ...frame })).code;
    assert.equal(await refused({ call: 'no spaces' }), 'invalid_call');
    assert.equal(await refused({ call: '' }), 'invalid_call');
    assert.equal(await refused({ room: 'elsewhere' }), 'not_joined');
    assert.equal(await refused({ room: 'bad room' }), 'invalid_room');
    assert.equal(await refused({ action: 'hold' }), 'invalid_frame');
    assert.equal(await refused({ call: 42 }), 'invalid_frame');
    for (let i = 0; i < MAX_CALLS_PER_CONNECTION; i++)
      assert.equal((await erin.request({ op: 'call', room: 'standup', call: `many-${i}`, action: 'join' })).op, 'call');
    assert.equal(await refused({ call: 'one-more' }), 'too_many_calls');
    assert.equal((await erin.request({ op: 'call', room: 'standup', call: 'many-0', action: 'join' })).op, 'call', 'joining a call again is not one more');
    assert.equal((await erin.request({ op: 'call', room: 'standup', call: 'never-joined', action: 'leave' })).op, 'call', 'leaving is idempotent');
    const metrics = await (await fetch(url.replace('ws://', 'http://').replace('/ws', '/metrics'))).text();
    assert.match(metrics, /nerve_errors_total\{[^}]*code="invalid_call"[^}]*\} 2\n/);
    assert.match(metrics, /nerve_errors_total\{[^}]*code="too_many_calls"[^}]*\} 1\n/);
  });
});
