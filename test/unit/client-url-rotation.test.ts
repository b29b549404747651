/**
 * The node list of the SDK: which URL each connection attempt takes. The
 * rotation itself runs on an injected clock and random source; one case
 * drives a NerveClient over fake sockets to show the connection reports
 * what happened to each URL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COOLDOWN_MS, UrlRotation } from '../../packages/client/src/url-rotation.js';
import { harness } from '../helpers/fake-server.js';
import { waitFor } from '../helpers/wait.js';

function clock(start = 1_000_000) {
  const state = { now: start, draws: [] as number[] };
  return {
    state,
    clock: { now: () => state.now, random: () => state.draws.shift() ?? 0 },
  };
}

test('the first attempt takes the first URL; later ones a fresh URL at random', () => {
  const { state, clock: c } = clock();
  const rotation = new UrlRotation(['ws://a/ws', 'ws://b/ws', 'ws://c/ws'], c);
  assert.equal(rotation.next(), 'ws://a/ws');
  rotation.answered('ws://a/ws');
  rotation.failed('ws://a/ws', true);
  // a failed: the draw picks among b and c only.
  state.draws = [0, 0.99];
  assert.equal(rotation.next(), 'ws://b/ws');
  assert.equal(rotation.next(), 'ws://c/ws');
});

test('a failed URL sits out the cooldown while another is fresh, then is a candidate again', () => {
  const { state, clock: c } = clock();
  const rotation = new UrlRotation(['ws://a/ws', 'ws://b/ws'], c);
  rotation.next();
  rotation.failed('ws://a/ws', false);
  for (let i = 0; i < 5; i++) {
    state.draws = [0];
    assert.equal(rotation.next(), 'ws://b/ws', 'a dead node is not retried while another is fresh');
  }
  state.now += COOLDOWN_MS;
  state.draws = [0];
  assert.equal(rotation.next(), 'ws://a/ws', 'after the cooldown a is fresh again (and first in the list)');
});

test('when every URL failed: one that opened goes before one that never did, the longest-failed first', () => {
  const { state, clock: c } = clock();
  const rotation = new UrlRotation(['ws://dead/ws', 'ws://slow/ws', 'ws://busy/ws'], c);
  rotation.next();
  rotation.failed('ws://dead/ws', false);
  state.now += 10;
  rotation.failed('ws://slow/ws', true);
  state.now += 10;
  rotation.failed('ws://busy/ws', true);
  assert.equal(rotation.next(), 'ws://slow/ws');
  state.now += 10;
  rotation.failed('ws://slow/ws', true);
  assert.equal(rotation.next(), 'ws://busy/ws');
  rotation.answered('ws://dead/ws');
  assert.equal(rotation.next(), 'ws://dead/ws', 'a URL that answered is fresh at once');
  assert.throws(() => new UrlRotation([]), TypeError);
});

test('a client keeps away from a node that never opened while a reachable one is left', async () => {
  const dead = 'ws://10.0.0.1:1/ws';
  const alive = 'ws://10.0.0.2:1/ws';
  const { client, sockets, accept } = harness({ url: [dead, alive] });
  void client.connect();
  const first = await waitFor(() => sockets[0], { what: 'socket #0' });
  assert.equal(first.url, dead);
  first.drop(1006, 'refused');
  await accept(1);
  assert.equal(sockets[1]!.url, alive);
  for (let round = 2; round <= 5; round++) {
    // The reachable node drops the connection (a restart, a blip): the retry goes to it again, not to the dead one.
    sockets[round - 1]!.drop(1006, 'lost');
    const next = await waitFor(() => sockets[round], { what: `socket #${round}` });
    assert.equal(next.url, alive, `attempt ${round} went to the node that never opened`);
    await accept(round);
  }
  await client.close();
});
