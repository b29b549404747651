/**
 * A resuming `join` never gets live chat at or below the position its
 * `joined` answered (docs/protocol.md, `join`: "without a gap and without a
 * duplicate"). On Redis the history read and the bus subscription are two
 * connections: a message stored just before the read is in the answer, but
 * its copy on the bus may reach the node a moment after the answer left.
 * With another member of the room on the node (so the room's delivery
 * cursor is behind the answer), that copy used to go to the resumed
 * connection too. Here one client publishes at a high rate while another
 * leaves and resumes with `since` over and over, on a node backed by the
 * shared Redis (its own key namespace). The node reaches Redis through a
 * proxy that holds what Redis sends to a subscribing connection for 5 ms,
 * so the bus copy of every message always arrives after the history
 * reply: without the per-connection floor, every resume in flowing chat
 * got duplicates.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { NerveNode } from '../../src/node.js';
import { createLogger } from '../../src/logger.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;

/**
 * A TCP proxy to the shared Redis that delays, by `delayMs`, the bytes Redis
 * sends on any connection that sent a SUBSCRIBE (the bus subscriber), in
 * order; every other connection passes untouched.
 */
async function startSubscriberDelayProxy(target: URL, delayMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    let subscriber = false;
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', teardown);
      socket.on('close', teardown);
    }
    client.on('data', (chunk: Buffer) => {
      if (!subscriber && /subscribe/i.test(chunk.toString('latin1'))) subscriber = true;
      upstream.write(chunk);
    });
    // Timers of one delay fire in the order they were set: the stream keeps its order.
    upstream.on('data', (chunk: Buffer) => {
      if (subscriber) setTimeout(() => client.write(chunk), delayMs);
      else client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${address.port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Position {
  offset: number;
  epoch: string;
}

describe('resuming join on Redis', { skip }, () => {
  const env = testNamespace('jr');
  let node: NerveNode;
  let url: string;
  let proxy: Awaited<ReturnType<typeof startSubscriberDelayProxy>>;
  const clients: RawClient[] = [];

  before(async () => {
    proxy = await startSubscriberDelayProxy(new URL(SHARED_REDIS_URL), 5);
    node = new NerveNode(
      {
        port: 0,
        host: '127.0.0.1',
        demo: false,
        redisUrl: proxy.url,
        env,
        limits: { ratePerSecond: 100_000, rateBurst: 100_000, roomRatePerSecond: 100_000, roomRateBurst: 100_000 },
      },
      { logger: createLogger('silent') },
    );
    const address = await node.start();
    url = `ws://127.0.0.1:${address.port}/ws`;
  });

  after(async () => {
    for (const client of clients) client.close();
    await node?.stop();
    await proxy?.close();
    if (!skip) await deleteNamespace(SHARED_REDIS_URL, env);
  });

  async function connect(user: string): Promise<RawClient> {
    const client = await RawClient.connect(url, user);
    clients.push(client);
    return client;
  }

  it('sends no live chat at or below the position joined returned, and none is missing after it', async () => {
    const room = 'resume-race';
    const anchor = await connect('anchor'); // keeps the node subscribed, with a delivery cursor of its own
    const publisher = await connect('publisher');
    const resumer = await connect('resumer');
    for (const client of [anchor, publisher, resumer]) assert.equal((await client.request({ op: 'join', room, history: 0 })).op, 'joined');

    // Every frame the resumer gets, in arrival order (RawClient's own list is spliced by its waits).
    const seen: Frame[] = [];
    resumer.socket.on('message', (data: WebSocket.RawData) => seen.push(JSON.parse(data.toString()) as Frame));

    // The publisher keeps up to 8 chat publishes in flight until told to stop (bounded: 20,000 messages).
    let stop = false;
    let published = 0;
    const publishing = (async () => {
      const inFlight = new Set<number>();
      while (!stop && published < 20_000) {
        while (inFlight.size < 8 && published < 20_000) {
          const rid = publisher.rid();
          inFlight.add(rid);
          published += 1;
          publisher.send({ op: 'publish', rid, room, class: 'chat', data: { n: published } });
        }
        const answer = await publisher.waitFor((f) => typeof f.rid === 'number' && inFlight.has(f.rid), 10_000, 'an ack');
        assert.equal(answer.op, 'ack', JSON.stringify(answer));
        inFlight.delete(answer.rid as number);
        // The publisher's own echoes are not needed here: drop them, keep the answers.
        const answers = publisher.frames.filter((f) => f.op !== 'message');
        publisher.frames.length = 0;
        publisher.frames.push(...answers);
      }
      while (inFlight.size > 0) {
        const answer = await publisher.waitFor((f) => typeof f.rid === 'number' && inFlight.has(f.rid), 10_000, 'an ack');
        inFlight.delete(answer.rid as number);
      }
    })();

    // Leave and resume with `since` over and over while chat flows (bounded in count and time).
    let position: Position = { offset: 0, epoch: '' };
    await waitFor(() => published > 200, { timeoutMs: 10_000, what: 'chat flowing' });
    const deadline = Date.now() + 4000;
    let resumes = 0;
    for (; resumes < 100 && Date.now() < deadline; resumes += 1) {
      // The resumer's position: the last chat it saw.
      for (const frame of seen)
        if (frame.op === 'message' && frame.class === 'chat') position = { offset: frame.offset as number, epoch: frame.epoch as string };
      assert.equal((await resumer.request({ op: 'leave', room })).op, 'left');
      const joined = await resumer.request({ op: 'join', room, since: position });
      assert.equal(joined.op, 'joined', JSON.stringify(joined));
    }
    // Live chat after the last resume too, so the walk below has enough to check however fast the resumes went.
    const target = Math.min(20_000, published + 300);
    await waitFor(() => published >= target, { timeoutMs: 10_000, what: 'more chat after the last resume' });
    stop = true;
    await publishing;
    // Let the last live frames arrive: the anchor sees the final message, and so does the resumer, which is in the room.
    const hasLast = (f: Frame) => (f.op === 'message' && f.offset === published) || (f.op === 'joined' && (f.position as Position).offset >= published);
    await waitFor(() => seen.some(hasLast), { timeoutMs: 10_000, what: 'the last message at the resumer' });

    // Walk the frames in order: after each `joined`, live chat continues at position + 1, one by one.
    let expected: number | undefined;
    let epoch = '';
    let duplicates = 0;
    let gaps = 0;
    let checked = 0;
    const problems: string[] = [];
    for (const frame of seen) {
      if (frame.op === 'joined') {
        const answerPosition = frame.position as Position;
        expected = answerPosition.offset + 1;
        epoch = answerPosition.epoch;
      } else if (frame.op === 'left') {
        expected = undefined;
      } else if (frame.op === 'message' && frame.class === 'chat' && expected !== undefined) {
        assert.equal(frame.epoch, epoch);
        const offset = frame.offset as number;
        if (offset < expected) duplicates += 1;
        else if (offset > expected) gaps += 1;
        if (offset !== expected) problems.push(`${offset} where ${expected} was due`);
        expected = Math.max(expected, offset + 1);
        checked += 1;
      }
    }
    const detail = `over ${resumes} resumes, ${published} messages: ${problems.slice(0, 5).join(', ')}`;
    assert.equal(duplicates, 0, `${duplicates} live chat frames at or below an earlier position (${detail})`);
    assert.equal(gaps, 0, `${gaps} gaps after a joined answer (${detail})`);
    assert.ok(resumes >= 5, `only ${resumes} resumes`);
    assert.ok(checked > 100, `only ${checked} live messages checked`);
  });
});
