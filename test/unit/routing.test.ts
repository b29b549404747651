/** The routing table: what each class is promised, and the channel it travels on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelNamer } from '../../src/bus/channels.js';
import { channelOf, ROUTES } from '../../src/routing.js';

test('chat is kept, acked, echoed and emitted cold; ephemeral is droppable and not echoed', () => {
  assert.equal(ROUTES.chat.keep, 'history');
  assert.equal(ROUTES.chat.ack, true);
  assert.equal(ROUTES.chat.echoToSender, true);
  assert.equal(ROUTES.chat.coldEvent, 'message.created');
  assert.equal(ROUTES.ephemeral.keep, 'none');
  assert.equal(ROUTES.ephemeral.ack, false);
  assert.equal(ROUTES.ephemeral.droppable, true);
  assert.equal(ROUTES.ephemeral.echoToSender, false);
  assert.equal(ROUTES.presence.recipientRight, 'presence');
  assert.equal(ROUTES.signal.channel, 'user');
  assert.equal(ROUTES.lifecycle.lane, 'cold');
});

test('channelOf names the room or the user channel, and refuses a class off the bus', () => {
  const namer = new ChannelNamer({ env: 'e', service: 's' });
  assert.equal(channelOf(ROUTES.chat, namer, 't', 'r1'), namer.room('t', 'r1'));
  assert.equal(channelOf(ROUTES.ephemeral, namer, 't', 'r1'), namer.room('t', 'r1'));
  assert.equal(channelOf(ROUTES.signal, namer, 't', 'u1'), namer.user('t', 'u1'));
  assert.throws(() => channelOf(ROUTES.lifecycle, namer, 't', 'x'), { code: 'internal' });
});
