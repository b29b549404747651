/**
 * NerveClient: a rejoin after a reconnect that the server refuses for a
 * moment (`unavailable`: a lane timed out; found by the chaos soak) must not
 * drop the room. The client keeps the room, says so with an `error` event,
 * and joins again from the same position after the backoff, so the app
 * receives every missed message once. A refusal that is final (`forbidden`)
 * still drops the room. Scripted fake WebSocket, no server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NerveClient, NerveClientError, type NerveClientOptions, type WebSocketLike } from '../../packages/client/src/index.js';
import type { ChatMessage, JoinedFrame, ServerFrame } from '../../packages/protocol/src/frames.js';
import { waitFor } from '../helpers/wait.js';

type Sent = Record<string, unknown> & { op: string; rid: string | number };

class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly sent: Sent[] = [];
  onopen: ((event: never) => void) | null = null;
  onmessage: ((event: never) => void) | null = null;
  onclose: ((event: never) => void) | null = null;
  onerror: ((event: never) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data) as Sent);
  }

  close(code?: number, reason?: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.#fire('onclose', { code: code ?? 1005, reason: reason ?? '' }));
  }

  open(): void {
    this.readyState = 1;
    this.#fire('onopen', {});
  }

  receive(frame: ServerFrame | Record<string, unknown>): void {
    this.#fire('onmessage', { data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.#fire('onclose', { code, reason });
  }

  ops(op: string): Sent[] {
    return this.sent.filter((frame) => frame.op === op);
  }

  #fire(name: 'onopen' | 'onmessage' | 'onclose', event: unknown): void {
    const handler = this[name] as ((event: unknown) => void) | null;
    handler?.(event);
  }
}

const EPOCH = 'e1';

function chat(offset: number, epoch = EPOCH, room = 'lobby'): ChatMessage {
  return { op: 'message', class: 'chat', room, id: `m${epoch}-${offset}`, from: 'bob', ts: 1, offset, epoch, data: offset };
}

function joined(rid: string | number, position: { offset: number; epoch: string }, history: ChatMessage[] = [], recovered?: boolean): JoinedFrame {
  return { op: 'joined', rid, room: 'lobby', members: [], history, position, ...(recovered === undefined ? {} : { recovered }) };
}

async function setup(options: Partial<NerveClientOptions> = {}, start = 2) {
  const sockets: FakeSocket[] = [];
  class TestSocket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  const client = new NerveClient({
    url: 'ws://127.0.0.1:1/ws',
    user: 'alice',
    WebSocket: TestSocket,
    requestTimeoutMs: 2000,
    reconnect: { minDelayMs: 1, maxDelayMs: 2 },
    ...options,
  });
  const accept = async (index: number): Promise<FakeSocket> => {
    const socket = await waitFor(() => sockets[index], { what: `socket #${index}` });
    socket.open();
    const connect = await waitFor(() => socket.ops('connect')[0], { what: 'connect frame' });
    socket.receive({
      op: 'welcome',
      rid: connect.rid,
      v: 1,
      connId: `c-${index}`,
      nodeId: 'n1',
      user: 'alice',
      tenant: 'default',
      limits: { maxFrameBytes: 65536, maxRoomsPerConnection: 32, maxRoomIdLength: 128, ratePerSecond: 50, rateBurst: 100, heartbeatMs: 25000 },
      iceServers: [],
    });
    return socket;
  };
  /** The n-th `join` sent on `socket`. */
  const join = (socket: FakeSocket, nth: number) => waitFor(() => socket.ops('join')[nth], { what: `join #${nth}` });
  void client.connect();
  const socket = await accept(0);
  const joining = client.join('lobby');
  socket.receive(joined((await join(socket, 0)).rid, { offset: start, epoch: EPOCH }));
  await joining;
  const offsets: string[] = [];
  client.on('message', (message) => {
    if (message.class === 'chat') offsets.push(message.epoch === EPOCH ? String(message.offset) : `${message.epoch}:${message.offset}`);
  });
  const failures: JoinedFrame[] = [];
  client.on('recovery_failed', ({ joined: answer }) => failures.push(answer));
  const errors: NerveClientError[] = [];
  client.on('error', (error) => errors.push(error));
  return { client, socket, sockets, accept, join, offsets, failures, errors };
}

test('a rejoin answered unavailable is retried from the same position: nothing is lost, the room is kept', async () => {
  const { client, socket, accept, join, offsets, errors } = await setup();
  socket.receive(chat(3));
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH });
  second.receive({ op: 'error', rid: rejoin.rid, code: 'unavailable', message: 'history store unavailable' });
  await waitFor(() => errors.some((error) => error.room === 'lobby' && error.code === 'unavailable'), { what: 'the error event' });
  assert.deepEqual(client.rooms().map((entry) => entry.room), ['lobby'], 'the room is kept');
  const retry = await join(second, 1);
  assert.deepEqual(retry.since, { offset: 3, epoch: EPOCH }, 'the retry resumes from the same position');
  second.receive(joined(retry.rid, { offset: 5, epoch: EPOCH }, [chat(4), chat(5)], true));
  await waitFor(() => offsets.length === 3, { what: 'the missed messages' });
  second.receive(chat(6));
  await waitFor(() => offsets.length === 4, { what: 'live chat again' });
  assert.deepEqual(offsets, ['3', '4', '5', '6']);
  assert.deepEqual(client.position('lobby'), { offset: 6, epoch: EPOCH });
  await client.close();
});

test('a rejoin refused for good (forbidden) drops the room and says so', async () => {
  const { client, socket, accept, join, errors } = await setup();
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  second.receive({ op: 'error', rid: rejoin.rid, code: 'forbidden', message: 'no grant' });
  await waitFor(() => errors.some((error) => error.room === 'lobby' && error.code === 'forbidden'), { what: 'the error event' });
  assert.deepEqual(client.rooms(), [], 'the room is dropped');
  assert.equal(second.ops('join').length, 1, 'no retry');
  await client.close();
});
