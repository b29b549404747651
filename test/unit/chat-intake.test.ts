import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chatEnvelope, decodeEnvelope, encodeEnvelope } from '../../src/bus/envelope.js';
import {
  chatIntakeNames,
  failedReply,
  intakeQueueDeclaration,
  intakeRequest,
  parseIntakeReply,
  parseIntakeRequest,
  storedReply,
} from '../../src/history/chat-intake.js';
import type { ChatDraft } from '../../src/history/history.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

const draft: ChatDraft = { op: 'message', class: 'chat', room: 'r1', id: 'm-1', from: 'alice', ts: 1_700_000_000_000, data: { text: 'hi' }, cmid: 'c1' };
const stored: ChatMessage = { ...draft, offset: 7, epoch: 'e1' };

describe('chat intake wire format', () => {
  it('names every broker object under env.service.chat and dead-letters the incoming queue', () => {
    const names = chatIntakeNames('prod', 'nerve');
    assert.deepEqual(names, {
      exchange: 'prod.nerve.chat.incoming',
      queue: 'prod.nerve.chat.incoming',
      deadLetterExchange: 'prod.nerve.chat.dlx',
      deadLetterQueue: 'prod.nerve.chat.incoming.dlq',
    });
    const declared = intakeQueueDeclaration(names);
    assert.equal(declared.durable, true);
    assert.equal(declared.arguments['x-single-active-consumer'], true);
    assert.equal(declared.arguments['x-dead-letter-exchange'], names.deadLetterExchange);
  });

  it('round-trips a request through JSON and refuses malformed ones with a field path', () => {
    const request = intakeRequest({ tenant: 't', room: 'r1' }, 'dev:nerve:t:room:r1', 'node-1', draft);
    const parsed = parseIntakeRequest(JSON.parse(JSON.stringify(request)));
    assert.deepEqual(parsed, { ok: true, request });
    const bad = parseIntakeRequest({ ...request, draft: { ...draft, ts: 'yesterday' } });
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.reason : '', /^draft\.ts: /);
    assert.equal(parseIntakeRequest('not json at all').ok, false);
    assert.equal(parseIntakeRequest({ ...request, v: 2 }).ok, false, 'another version is refused, not guessed at');
  });

  it('round-trips replies and refuses unknown error codes', () => {
    assert.deepEqual(parseIntakeReply(JSON.parse(JSON.stringify(storedReply({ message: stored, duplicate: true })))), {
      v: 1,
      ok: true,
      message: stored,
      duplicate: true,
    });
    assert.deepEqual(parseIntakeReply(failedReply('unavailable', 'down')), { v: 1, ok: false, code: 'unavailable', message: 'down' });
    assert.equal(parseIntakeReply({ v: 1, ok: false, code: 'teapot', message: 'x' }), undefined);
    assert.equal(parseIntakeReply({ v: 1, ok: true, message: { ...stored, offset: 0 }, duplicate: false }), undefined);
  });

  it('builds the chat envelope the gateway publishes: the stored frame, the sending node as origin', () => {
    const envelope = chatEnvelope(stored, 'node-1');
    assert.deepEqual(decodeEnvelope(encodeEnvelope(envelope)), envelope);
    assert.deepEqual([envelope.type, envelope.class, envelope.id, envelope.origin], ['deliver', 'chat', 'm-1', 'node-1']);
    assert.deepEqual(JSON.parse(envelope.payload), stored);
  });
});
