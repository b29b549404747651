/**
 * A scripted fake server for the SDK's unit tests: `FakeSocket` stands in for
 * the WebSocket, the test plays the server by answering the frames the client
 * sent. No network, no timing thresholds: reconnect delays are made tiny and
 * every wait is for a condition.
 */
import { NerveClient, type NerveClientError, type NerveClientOptions, type StateChange, type WebSocketLike } from '../../packages/client/src/index.js';
import type { ChatMessage, JoinedFrame, ServerFrame } from '../../packages/protocol/src/frames.js';
import { waitFor } from './wait.js';

export type Sent = Record<string, unknown> & { op: string; rid: string | number };

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly sent: Sent[] = [];
  closedWith: number | undefined;
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
    this.closedWith = code;
    queueMicrotask(() => this.#fire('onclose', { code: code ?? 1005, reason: reason ?? '' }));
  }

  // ---- test controls
  open(): void {
    this.readyState = 1;
    this.#fire('onopen', {});
  }

  receive(frame: ServerFrame | Record<string, unknown>): void {
    this.#fire('onmessage', { data: JSON.stringify(frame) });
  }

  /** The server side drops the connection. */
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.#fire('onclose', { code, reason });
  }

  ops(op: string): Sent[] {
    return this.sent.filter((frame) => frame.op === op);
  }

  last(op: string): Sent | undefined {
    return this.ops(op).at(-1);
  }

  #fire(name: 'onopen' | 'onmessage' | 'onclose', event: unknown): void {
    const handler = this[name] as ((event: unknown) => void) | null;
    handler?.(event);
  }
}

export const EPOCH = 'e1';

export function welcome(rid: string | number, user = 'alice', connId = 'c-1'): ServerFrame {
  return {
    op: 'welcome',
    rid,
    v: 1,
    connId,
    nodeId: 'n1',
    user,
    tenant: 'default',
    limits: { maxFrameBytes: 65536, maxRoomsPerConnection: 32, maxRoomIdLength: 128, ratePerSecond: 50, rateBurst: 100, heartbeatMs: 25000 },
    iceServers: [],
  };
}

/** A client wired to fake sockets; `sockets` lists every socket it created, newest last. */
export function harness(options: Partial<NerveClientOptions> = {}) {
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
  const states: StateChange[] = [];
  client.on('state', (change) => states.push(change));
  const socketAt = (index: number) => waitFor(() => sockets[index], { what: `socket #${index}` });
  /** Open socket #index and answer its connect frame with a welcome. */
  const accept = async (index: number, connId = `c-${index}`): Promise<FakeSocket> => {
    const socket = await socketAt(index);
    socket.open();
    const connect = await waitFor(() => socket.last('connect'), { what: 'connect frame' });
    socket.receive(welcome(connect.rid, 'alice', connId));
    return socket;
  };
  /** Wait for a request `op` on `socket` (the n-th of that op, default the first) and return it. */
  const request = (socket: FakeSocket, op: string, nth = 0) => waitFor(() => socket.ops(op)[nth], { what: `${op} #${nth}` });
  return { client, sockets, states, accept, request };
}

/** Chat message `offset` of room `lobby` (by default), its data the offset. */
export function chat(offset: number, epoch = EPOCH, room = 'lobby'): ChatMessage {
  return { op: 'message', class: 'chat', room, id: `m${epoch}-${offset}`, from: 'bob', ts: 1, offset, epoch, data: offset };
}

export function joined(rid: string | number, position: { offset: number; epoch: string }, history: ChatMessage[] = [], recovered?: boolean): JoinedFrame {
  return { op: 'joined', rid, room: 'lobby', members: [], count: 0, history, position, ...(recovered === undefined ? {} : { recovered }) };
}

/**
 * A client connected on socket #0 and joined to `lobby` at offset `start`,
 * recording the chat offsets it delivers (`epoch:offset` outside EPOCH), its
 * `recovery_failed` answers and its errors.
 */
export async function joinedLobby(options: Partial<NerveClientOptions> = {}, start = 2) {
  const { client, sockets, accept, request } = harness(options);
  /** The n-th `join` sent on `socket`. */
  const join = (socket: FakeSocket, nth: number) => request(socket, 'join', nth);
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
