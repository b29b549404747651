/**
 * Consecutive publishes of one connection are pipelined (docs/protocol.md,
 * "Ordering of requests"): each reaches the store before the one before it
 * was answered, their answers still leave in request order whatever order
 * the store finishes them in, and any other request waits for them.
 *
 * In-process node with memory lanes; the history is wrapped so the test
 * decides when each stored append is reported done.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import type { AppendResult, AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { MemoryHistory } from '../../src/history/memory.js';
import { createLogger } from '../../src/logger.js';
import { NerveNode } from '../../src/node.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';

/** Stores at once (in call order), but reports each append done only when the test releases its cmid. */
class GatedHistory extends MemoryHistory {
  readonly started: string[] = [];
  private readonly gates = new Map<string, () => void>();

  override append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    const cmid = draft.cmid ?? '';
    this.started.push(cmid);
    const stored = super.append(room, draft, target);
    const released = new Promise<void>((resolve) => this.gates.set(cmid, resolve));
    return released.then(() => stored);
  }

  release(cmid: string): void {
    const open = this.gates.get(cmid);
    assert.ok(open, `no append waiting for ${cmid}`);
    open();
  }
}

/** The answers (frames with a request id) the client got, as [op, rid, code]. */
function answers(client: RawClient): Array<[unknown, unknown, unknown]> {
  return client.frames.filter((f) => f.rid !== undefined).map((f) => [f.op, f.rid, f.code]);
}

/** Wait for `count` answers, then return them in arrival order. */
async function awaitAnswers(client: RawClient, count: number): Promise<Array<[unknown, unknown, unknown]>> {
  await waitFor(() => answers(client).length === count, { timeoutMs: 5000, what: `${count} answers` });
  return answers(client);
}

describe('pipelined publishes', () => {
  const bus = new MemoryBus();
  const history = new GatedHistory({ bus });
  let node: NerveNode;
  let url: string;

  before(async () => {
    node = new NerveNode({ port: 0, host: '127.0.0.1', demo: false }, { lanes: { bus, history }, logger: createLogger('silent') });
    const address = await node.start();
    url = `ws://127.0.0.1:${address.port}/ws`;
  });

  after(async () => {
    await node.stop();
  });

  it('stores each publish before the one before it is answered, and answers in request order', async () => {
    const client = await RawClient.connect(url, 'pipeliner');
    await client.request({ op: 'join', room: 'pipe', history: 0 });
    const cmids = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const rids = cmids.map((cmid) => {
      const rid = client.rid();
      client.send({ op: 'publish', rid, room: 'pipe', class: 'chat', data: { cmid }, cmid });
      return rid;
    });
    const pingRid = client.rid();
    client.send({ op: 'ping', rid: pingRid });

    // All five are in the store while none is answered: pipelined, in request order.
    await waitFor(() => history.started.length === cmids.length, { timeoutMs: 5000, what: 'five appends started' });
    assert.deepEqual(history.started, cmids);
    const answered = () => client.frames.filter((f) => f.op === 'ack' || f.op === 'pong');
    assert.deepEqual(answered(), [], 'nothing answered before the store reports back');

    // The store reports back newest first; the answers must not follow it.
    for (const cmid of [...cmids].reverse()) history.release(cmid);
    await waitFor(() => answered().length === cmids.length + 1, { timeoutMs: 5000, what: 'five acks and the pong' });
    const got: Frame[] = answered();
    assert.deepEqual(
      got.map((f) => [f.op, f.rid]),
      [...rids.map((rid) => ['ack', rid]), ['pong', pingRid]],
      'acks in request order, the ping answered after every publish',
    );
    assert.deepEqual(
      got.slice(0, -1).map((f) => f.offset),
      [1, 2, 3, 4, 5],
      'offsets follow request order',
    );
    client.close();
  });

  it('answers a frame refused on arrival after the publishes sent before it', async () => {
    const client = await RawClient.connect(url, 'refused-on-arrival');
    await client.request({ op: 'join', room: 'pipe3', history: 0 });
    const first = client.rid();
    client.send({ op: 'publish', rid: first, room: 'pipe3', class: 'chat', data: {}, cmid: 'a1' });
    // Invalid (a number where the room id goes): refused on arrival, before any queue.
    const invalid = client.rid();
    client.send({ op: 'publish', rid: invalid, room: 42, class: 'chat', data: {} });
    const ping = client.rid();
    client.send({ op: 'ping', rid: ping });
    await waitFor(() => history.started.includes('a1'), { timeoutMs: 5000, what: 'a1 started' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(answers(client), [], 'nothing answered while the first publish is in the store');
    history.release('a1');
    assert.deepEqual(await awaitAnswers(client, 3), [
      ['ack', first, undefined],
      ['error', invalid, 'invalid_frame'],
      ['pong', ping, undefined],
    ]);
    client.close();
  });

  it('answers a refused publish in its place among the acks', async () => {
    const client = await RawClient.connect(url, 'mixed');
    await client.request({ op: 'join', room: 'pipe2', history: 0 });
    const first = client.rid();
    client.send({ op: 'publish', rid: first, room: 'pipe2', class: 'chat', data: {}, cmid: 'm1' });
    const refused = client.rid();
    client.send({ op: 'publish', rid: refused, room: 'not-joined', class: 'chat', data: {}, cmid: 'm2' });
    const last = client.rid();
    client.send({ op: 'publish', rid: last, room: 'pipe2', class: 'chat', data: {}, cmid: 'm3' });
    await waitFor(() => history.started.includes('m3'), { timeoutMs: 5000, what: 'm3 started' });
    history.release('m3');
    history.release('m1');
    assert.deepEqual(await awaitAnswers(client, 3), [
      ['ack', first, undefined],
      ['error', refused, 'not_joined'],
      ['ack', last, undefined],
    ]);
    client.close();
  });
});
