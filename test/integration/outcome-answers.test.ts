/**
 * Honest answers (docs/protocol.md, Error codes): a lane command that was
 * sent but not answered (`OutcomeUnknownError`, src/lane-errors.ts) is
 * `outcome_unknown` for chat, ephemeral publishes and signals, distinct from
 * a refusal where nothing happened; a chat re-sent with the same cmid then
 * gets exactly one ack. And `internal` answers count in the error window.
 *
 * In-process node; the memory lanes are wrapped so each fault is chosen by
 * the test: the command takes effect, then its answer is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import type { BusEnvelope } from '../../src/bus/bus.js';
import type { AppendResult, AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { MemoryHistory } from '../../src/history/memory.js';
import { OutcomeUnknownError } from '../../src/lane-errors.js';
import { createLogger } from '../../src/logger.js';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';

type Fault = 'none' | 'lost_reply' | 'crash';

/** Stores, then (when told) loses the reply: the message is stored, the caller hears a timeout. Or throws a plain Error. */
class FaultyHistory extends MemoryHistory {
  fault: Fault = 'none';

  override async append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    if (this.fault === 'crash') throw new Error('a bug in the history');
    const stored = await super.append(room, draft, target);
    if (this.fault === 'lost_reply') throw new OutcomeUnknownError('Command timed out');
    return stored;
  }
}

/** Publishes, then (when told) loses the reply. */
class FaultyBus extends MemoryBus {
  fault: Fault = 'none';

  override async publish(channel: string, envelope: BusEnvelope): Promise<number> {
    const receivers = await super.publish(channel, envelope);
    if (this.fault === 'lost_reply') throw new OutcomeUnknownError('Command timed out');
    return receivers;
  }
}

const API_KEY = 'outcome-answers-key-'.padEnd(32, 'k');

describe('answers when the outcome is unknown', () => {
  const bus = new FaultyBus();
  const history = new FaultyHistory({ bus });
  let node: NerveNode;
  let url: string;
  let base: string;

  before(async () => {
    node = new NerveNode(
      { port: 0, host: '127.0.0.1', demo: false, apiKey: API_KEY, limits: { maxErrorsPer10s: 5 } },
      { lanes: { bus, history }, logger: createLogger('silent') },
    );
    const address = await node.start();
    url = `ws://127.0.0.1:${address.port}/ws`;
    base = `http://127.0.0.1:${address.port}`;
  });

  after(async () => {
    await node.stop();
  });

  it('chat: outcome_unknown when stored but unanswered; the re-send with the same cmid is one duplicate ack', async () => {
    const room = 'chat-unknown';
    const sender = await RawClient.connect(url, 'sender');
    const reader = await RawClient.connect(url, 'reader');
    for (const client of [sender, reader]) await client.request({ op: 'join', room, history: 0 });
    history.fault = 'lost_reply';
    const first = await sender.request({ op: 'publish', room, class: 'chat', data: 'hello', cmid: 'm-1' });
    assert.equal(first.op, 'error');
    assert.equal(first.code, 'outcome_unknown', JSON.stringify(first));
    history.fault = 'none';
    const retry = await sender.request({ op: 'publish', room, class: 'chat', data: 'hello', cmid: 'm-1' });
    assert.equal(retry.op, 'ack', JSON.stringify(retry));
    assert.equal(retry.duplicate, true, 'it had been stored');
    assert.equal(retry.offset, 1);
    // The reader got the message once: a ping answered after it shows nothing else is coming.
    await reader.waitFor((f) => f.op === 'message' && f.cmid === 'm-1', 5000, 'the message at the reader');
    await reader.request({ op: 'ping' });
    assert.equal(reader.frames.filter((f) => f.op === 'message').length, 0, 'delivered once');
    sender.close();
    reader.close();
  });

  it('ephemeral and signal: outcome_unknown, and no second local copy', async () => {
    const room = 'eph-unknown';
    const sender = await RawClient.connect(url, 'eph-sender');
    const peer = await RawClient.connect(url, 'eph-peer');
    for (const client of [sender, peer]) await client.request({ op: 'join', room, history: 0 });
    bus.fault = 'lost_reply';
    try {
      const ephemeral = await sender.request({ op: 'publish', room, class: 'ephemeral', data: 'typing', key: 'typing' });
      assert.equal(ephemeral.code, 'outcome_unknown', JSON.stringify(ephemeral));
      const signal = await sender.request({ op: 'signal', to: 'eph-peer', kind: 'custom', data: 1 });
      assert.equal(signal.code, 'outcome_unknown', JSON.stringify(signal));
    } finally {
      bus.fault = 'none';
    }
    // The bus did carry both (the reply was lost, not the publish): the peer has each once.
    await peer.request({ op: 'ping' });
    assert.equal(peer.frames.filter((f) => f.op === 'message' && f.class === 'ephemeral').length, 1);
    assert.equal(peer.frames.filter((f) => f.op === 'signal').length, 1);
    sender.close();
    peer.close();
  });

  it('server API: 504 outcome_unknown for a chat publish or a signal whose store or bus did not answer', async () => {
    history.fault = 'lost_reply';
    try {
      const response = await fetch(`${base}/api/rooms/api-unknown/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: 1, cmid: 'api-1' }),
      });
      assert.equal(response.status, 504);
      assert.equal(((await response.json()) as { code: string }).code, 'outcome_unknown');
    } finally {
      history.fault = 'none';
    }
    bus.fault = 'lost_reply';
    try {
      const response = await fetch(`${base}/api/users/someone/signal`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'custom', data: 1 }),
      });
      assert.equal(response.status, 504, 'not 404 peer_offline: the bus may have delivered it');
      assert.equal(((await response.json()) as { code: string }).code, 'outcome_unknown');
    } finally {
      bus.fault = 'none';
    }
  });

  it('internal answers count in the error window', async () => {
    const room = 'crashing';
    const client = await RawClient.connect(url, 'crasher');
    await client.request({ op: 'join', room, history: 0 });
    history.fault = 'crash';
    try {
      for (let i = 0; i < 5; i += 1) assert.equal((await client.request({ op: 'publish', room, class: 'chat', data: i })).code, 'internal');
      // The sixth error within 10 s crosses maxErrorsPer10s (5): answered, then closed with 4008.
      client.send({ op: 'publish', rid: 'sixth', room, class: 'chat', data: 6 });
      assert.equal(await client.closed, 4008);
    } finally {
      history.fault = 'none';
    }
  });
});
