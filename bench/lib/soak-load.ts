/**
 * The soak's mixed, bounded load, driven through the SDK (what an app
 * sees): members publishing chat (one message at a time each, re-sent with
 * the same `cmid` after an answer that is not a final refusal), direct
 * signals, ephemerals, clients joining and leaving rooms, sockets dropped
 * under clients (the SDK reconnects and resumes), and clients that stop
 * reading. Probe clients, one pinned to each node, measure cross-node
 * delivery and chat acks for the recovery times.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { NerveClient, isNerveClientError, type JoinedFrame } from '../../packages/client/src/index.js';
import { between } from './soak-plan.js';
import type { SoakChecker } from './soak-checker.js';
import type { SoakEnv } from './soak-env.js';

/** Answers after which the app tries the same `cmid` again: the outcome is unknown or the refusal temporary. */
const RETRYABLE = new Set(['unavailable', 'bus_unavailable', 'outcome_unknown', 'timeout', 'internal', 'rate_limited', 'disconnected', 'not_joined']);
/** How long the app keeps trying one chat message before giving up on it. */
const CHAT_GIVE_UP_MS = 60_000;

export interface LoadOptions {
  env: SoakEnv;
  checker: SoakChecker;
  random: () => number;
  log: (line: string) => void;
  /** Chat members (each in one room). */
  members: number;
  rooms: number;
  /** Pause between one member's chat messages, ms (jittered ±50 %). */
  chatPeriodMs: number;
  /** Members that also signal the next member, every `signalPeriodMs`. */
  signalers: number;
  signalPeriodMs: number;
  ephemeralPeriodMs: number;
  /** Clients that keep joining and leaving rooms. */
  churners: number;
  /** A random member's socket is dropped this often, ms. */
  reconnectEveryMs: number;
}

interface SoakClient {
  name: string;
  client: NerveClient;
  room: string | undefined;
  /** The socket the SDK uses now, and its TCP socket once upgraded. */
  sockets: { ws?: WebSocket; tcp?: Socket };
}

export interface ProbeArrival {
  src: number;
  dst: number;
  sentAt: number;
  at: number;
}

export interface ProbeAck {
  slot: number;
  attemptAt: number;
  at: number;
  id: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class SoakLoad {
  private readonly clients: SoakClient[] = [];
  private readonly members: SoakClient[] = [];
  private readonly probes: SoakClient[] = [];
  private readonly slow: SoakClient[] = [];
  private readonly flooders: SoakClient[] = [];
  private running = false;
  private readonly loops: Array<Promise<void>> = [];
  private readonly inFlight = new Set<Promise<void>>();
  readonly rooms: string[];
  readonly probeRoom: string;
  readonly arrivals: ProbeArrival[] = [];
  readonly probeAcks: ProbeAck[] = [];
  /** Clients currently not reading. */
  private slowUntil = 0;
  private nextEphemeral = new Map<string, number>();
  /** Flood message number, across every slow-client fault of the run, so no `cmid` is ever used twice. */
  private floodSeq = 0;

  constructor(private readonly options: LoadOptions) {
    this.rooms = Array.from({ length: options.rooms }, (_, i) => `room-${i}`);
    this.probeRoom = 'probe';
  }

  /** A client whose sockets are tracked (to drop or pause them); `pinned` keeps it on one node slot. */
  private makeClient(name: string, pinned?: number): SoakClient {
    const { env } = this.options;
    const sockets: SoakClient['sockets'] = {};
    const Tracked = class extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets.ws = this;
        sockets.tcp = undefined;
        this.once('upgrade', (response) => {
          sockets.tcp = response.socket;
        });
      }
    };
    const slots = env.slots.length;
    const lastKnown: string[] = env.slots.map((s) => s.process?.wsUrl ?? 'ws://127.0.0.1:9/ws');
    let cursor = between(this.options.random, 0, slots - 1);
    const url = (): string => {
      env.slots.forEach((s, i) => {
        if (s.process) lastKnown[i] = s.process.wsUrl;
      });
      if (pinned !== undefined) return env.slots[pinned]?.process?.wsUrl ?? lastKnown[pinned]!;
      // A load balancer: round robin over the nodes that are up.
      for (let tried = 0; tried < slots; tried += 1) {
        const candidate = env.wsUrl(cursor++ % slots);
        if (candidate) return candidate;
      }
      return lastKnown[cursor++ % slots]!;
    };
    const entry: SoakClient = {
      name,
      room: undefined,
      sockets,
      client: new NerveClient({
        url,
        user: name,
        WebSocket: Tracked,
        requestTimeoutMs: 15_000,
        reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
      }),
    };
    const { checker } = this.options;
    entry.client.on('message', (message) => {
      if (message.room === this.probeRoom) {
        if (message.class === 'ephemeral' && pinned !== undefined) {
          const data = message.data as { slot?: number; t?: number };
          if (typeof data.slot === 'number' && typeof data.t === 'number') this.arrivals.push({ src: data.slot, dst: pinned, sentAt: data.t, at: Date.now() });
        }
        if (message.class === 'chat') checker.chatReceived(name, message);
        return;
      }
      if (message.class === 'chat') checker.chatReceived(name, message);
      else checker.ephemeralReceived(name, message);
    });
    entry.client.on('signal', (delivery) => checker.signalReceived(name, delivery));
    entry.client.on('recovery_failed', ({ joined }) => {
      checker.events.recoveryFailed += 1;
      this.options.log(`recovery_failed: ${name} in ${joined.room} (resync from ${joined.history.length} recent)`);
      for (const message of joined.history) checker.chatReceived(name, message, true);
    });
    entry.client.on('rejoined', () => void (checker.events.rejoined += 1));
    entry.client.on('disconnected', (info) => {
      checker.events.disconnects += 1;
      if (info.code === 4009) checker.events.slowConsumerCloses += 1;
    });
    entry.client.on('error', (error) => {
      // A room named in an SDK error is one the SDK could not rejoin or refill: the app is told here only.
      if (error.room === undefined) return;
      const what = error.message.startsWith('rejoining') ? 'rejoin' : error.message.startsWith('fetching missed') ? 'gap fill' : 'other';
      const key = `${what} ${error.code}`;
      checker.events.roomErrors.set(key, (checker.events.roomErrors.get(key) ?? 0) + 1);
      this.options.log(`SDK error for ${name} in ${error.room}: ${error.code} ${error.message}`);
    });
    this.clients.push(entry);
    return entry;
  }

  async start(): Promise<void> {
    const { options } = this;
    for (let i = 0; i < options.members; i += 1) this.members.push(this.makeClient(`u${i}`));
    for (let i = 0; i < options.env.slots.length; i += 1) this.probes.push(this.makeClient(`probe-${i}`, i));
    for (let i = 0; i < Math.min(2, this.rooms.length); i += 1) {
      this.slow.push(this.makeClient(`slow-${i}`));
      this.flooders.push(this.makeClient(`flood-${i}`));
    }
    const churners = Array.from({ length: options.churners }, (_, i) => this.makeClient(`churn-${i}`));
    await Promise.all(this.clients.map((c) => c.client.connect()));
    const join = async (c: SoakClient, room: string): Promise<JoinedFrame> => {
      options.checker.joining(c.name, room);
      const joined = await c.client.join(room, { history: 0 });
      c.room = room;
      options.checker.joined(c.name, room, joined.position);
      return joined;
    };
    await Promise.all([
      ...this.members.map((c, i) => join(c, this.rooms[i % this.rooms.length]!)),
      ...this.probes.map((c) => join(c, this.probeRoom)),
      ...this.slow.map((c, i) => join(c, this.rooms[i]!)),
      ...this.flooders.map((c, i) => join(c, this.rooms[i]!)),
    ]);
    this.running = true;
    for (const c of this.members) this.loops.push(this.chatLoop(c, c.room!, options.chatPeriodMs));
    for (const c of this.members) this.loops.push(this.ephemeralLoop(c));
    for (let i = 0; i < Math.min(options.signalers, this.members.length); i += 1) {
      this.loops.push(this.signalLoop(this.members[i]!, this.members[(i + 1) % this.members.length]!));
    }
    this.probes.forEach((c, i) => {
      this.loops.push(this.probeLoop(c, i));
      this.loops.push(this.chatLoop(c, this.probeRoom, 1000, i));
    });
    for (const c of churners) this.loops.push(this.churnLoop(c));
    this.loops.push(this.reconnectLoop());
  }

  /** Stop sending; wait for every chat message in flight to be acked or given up. */
  async stop(): Promise<void> {
    this.running = false;
    this.releaseSlow();
    await Promise.all(this.loops);
    await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients.map((c) => c.client.close()));
  }

  /** Memberships still open and how far each client has seen (for the catch-up wait). */
  positions(): Array<{ name: string; room: string; offset: number | undefined }> {
    const out: Array<{ name: string; room: string; offset: number | undefined }> = [];
    for (const c of this.clients) for (const { room, position } of c.client.rooms()) out.push({ name: c.name, room, offset: position?.offset });
    return out;
  }

  /** Send one chat message until it is acked, refused for good, or CHAT_GIVE_UP_MS passed. */
  private sendChat(c: SoakClient, room: string, cmid: string, data: unknown, probeSlot?: number): Promise<void> {
    const { checker } = this.options;
    const task = (async () => {
      const started = Date.now();
      for (;;) {
        checker.chatSent(cmid, room, c.name);
        const attemptAt = Date.now();
        try {
          const ack = await c.client.publish(room, data, { cmid });
          checker.chatAcked(cmid, ack);
          if (probeSlot !== undefined) this.probeAcks.push({ slot: probeSlot, attemptAt, at: Date.now(), id: ack.id });
          return;
        } catch (error) {
          const code = isNerveClientError(error) ? error.code : 'exception';
          checker.chatError(cmid, code);
          if (!RETRYABLE.has(code) || Date.now() - started > CHAT_GIVE_UP_MS) {
            checker.chatGaveUp(cmid, code);
            return;
          }
          const wait = isNerveClientError(error) && error.retryAfterMs !== undefined ? error.retryAfterMs : between(this.options.random, 100, 400);
          await sleep(wait);
        }
      }
    })();
    this.inFlight.add(task);
    void task.finally(() => this.inFlight.delete(task));
    return task;
  }

  private async chatLoop(c: SoakClient, room: string, periodMs: number, probeSlot?: number): Promise<void> {
    let n = 0;
    await sleep(between(this.options.random, 0, periodMs));
    while (this.running) {
      const cmid = `${c.name}-${n++}`;
      const data = probeSlot === undefined ? { by: c.name, n } : { probe: probeSlot, t: Date.now() };
      await this.sendChat(c, room, cmid, data, probeSlot);
      await sleep(between(this.options.random, periodMs / 2, (periodMs * 3) / 2));
    }
  }

  private async ephemeralLoop(c: SoakClient): Promise<void> {
    await sleep(between(this.options.random, 0, this.options.ephemeralPeriodMs));
    while (this.running) {
      const room = c.room;
      if (room && c.client.state === 'connected') {
        const key = `${c.name}\u0000${room}`;
        const seq = this.nextEphemeral.get(key) ?? 0;
        this.nextEphemeral.set(key, seq + 1);
        this.options.checker.ephemeralSent(c.name, room, seq);
        await c.client.publish(room, { seq }, { class: 'ephemeral', key: 'typing' }).catch(() => undefined);
      }
      await sleep(between(this.options.random, this.options.ephemeralPeriodMs / 2, (this.options.ephemeralPeriodMs * 3) / 2));
    }
  }

  private async signalLoop(from: SoakClient, to: SoakClient): Promise<void> {
    const { checker } = this.options;
    let seq = 0;
    await sleep(between(this.options.random, 0, this.options.signalPeriodMs));
    while (this.running) {
      const n = seq++;
      checker.signalSent(from.name, to.name, n);
      try {
        const ack = await from.client.signal(to.name, 'custom', { seq: n });
        checker.signalOutcome(from.name, to.name, n, ack.queued ? 'queued' : 'ack');
      } catch (error) {
        checker.signalOutcome(from.name, to.name, n, isNerveClientError(error) ? error.code : 'exception');
      }
      await sleep(between(this.options.random, this.options.signalPeriodMs / 2, (this.options.signalPeriodMs * 3) / 2));
    }
  }

  private async probeLoop(c: SoakClient, slot: number): Promise<void> {
    while (this.running) {
      if (c.client.state === 'connected') {
        await c.client.publish(this.probeRoom, { slot, t: Date.now() }, { class: 'ephemeral', key: `p${slot}` }).catch(() => undefined);
      }
      await sleep(200);
    }
  }

  /** Join a room, stay 2-6 s, leave (recording how far it had seen), pause, again. */
  private async churnLoop(c: SoakClient): Promise<void> {
    const { checker, random } = this.options;
    while (this.running) {
      const room = this.rooms[between(random, 0, this.rooms.length - 1)]!;
      checker.joining(c.name, room);
      try {
        const joined = await c.client.join(room, { history: 0 });
        checker.joined(c.name, room, joined.position);
        c.room = room;
      } catch {
        checker.joinFailed(c.name, room);
        await sleep(500);
        continue;
      }
      await sleep(between(random, 2000, 6000));
      checker.left(c.name, room, c.client.position(room));
      c.room = undefined;
      await c.client.leave(room).catch(() => undefined);
      await sleep(between(random, 300, 1500));
    }
  }

  /** Drop a random member's socket now and then, as a network would: the SDK reconnects and resumes. */
  private async reconnectLoop(): Promise<void> {
    const { random } = this.options;
    while (this.running) {
      await sleep(between(random, this.options.reconnectEveryMs / 2, (this.options.reconnectEveryMs * 3) / 2));
      if (!this.running) return;
      const victim = this.members[between(random, 0, this.members.length - 1)];
      victim?.sockets.ws?.terminate();
    }
  }

  // ---------------------------------------------------------------- slow clients

  /** The slow clients stop reading and their rooms get a burst of 32 KiB chat, for `ms`. Resolves when the burst is sent. */
  async slowFault(ms: number): Promise<{ paused: number; closed: number; burst: number }> {
    const { checker } = this.options;
    const closedBefore = checker.events.slowConsumerCloses;
    let paused = 0;
    for (const c of this.slow) {
      if (c.sockets.tcp) {
        c.sockets.tcp.pause();
        paused += 1;
      }
    }
    this.slowUntil = Date.now() + ms;
    // 32 KiB messages: loopback TCP buffers take about 4 MiB before the node's own send buffer grows.
    const pad = 'x'.repeat(32 * 1024);
    const burstBefore = this.floodSeq;
    await Promise.all(
      this.flooders.map(async (f, i) => {
        const room = this.rooms[i]!;
        const inFlight = new Set<Promise<void>>();
        let sent = 0;
        while (Date.now() < this.slowUntil && this.running && sent++ < 200) {
          // At most 32 in flight, 100 per second and 200 (6.4 MiB) per flooder: bounded.
          if (inFlight.size >= 32) await Promise.race(inFlight);
          const task = this.sendChat(f, room, `${f.name}-${this.floodSeq++}`, { pad });
          inFlight.add(task);
          void task.finally(() => inFlight.delete(task));
          await sleep(10);
        }
        await Promise.all(inFlight);
      }),
    );
    this.releaseSlow();
    return { paused, closed: checker.events.slowConsumerCloses - closedBefore, burst: this.floodSeq - burstBefore };
  }

  private releaseSlow(): void {
    this.slowUntil = 0;
    for (const c of this.slow) c.sockets.tcp?.resume();
  }

  /** The newest acked offset of `room` (0 when none). */
  lastAcked(room: string): number {
    return this.options.checker.lastAcked(room)?.offset ?? 0;
  }

  /** Whether every slow client has seen its room up to `marks` (room → offset). */
  slowCaughtUp(marks: Map<string, number>): boolean {
    return this.slow.every((c) => {
      const room = c.room;
      if (!room) return true;
      const mark = marks.get(room) ?? 0;
      return (c.client.position(room)?.offset ?? 0) >= mark;
    });
  }

  slowRooms(): string[] {
    return this.slow.flatMap((c) => (c.room ? [c.room] : []));
  }
}
