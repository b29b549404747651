/**
 * A bare protocol client over `ws`, for tests that must send exactly the
 * bytes they choose (malformed frames, spoofed fields) and see every frame.
 */
import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { op: string };

export class RawClient {
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private nextRid = 1;
  private readonly waiters = new Set<() => void>();
  readonly closed: Promise<number>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: WebSocket.RawData) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.notify();
        resolve(code);
      });
    });
    socket.on('error', () => {});
  }

  static open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, options);
      socket.once('open', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
    });
  }

  /** Open and authenticate as `user` with the dev authenticator. */
  static async connect(url: string, user: string): Promise<RawClient> {
    const client = await RawClient.open(url);
    const welcome = await client.request({ op: 'connect', v: 1, user });
    if (welcome.op !== 'welcome') throw new Error(`connect failed: ${JSON.stringify(welcome)}`);
    return client;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  sendRaw(data: string | Buffer, options: { binary?: boolean } = {}): void {
    this.socket.send(data, { binary: options.binary ?? false });
  }

  send(frame: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  rid(): number {
    return this.nextRid++;
  }

  /** Send a request with a fresh rid and wait for the frame answering it. */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const rid = frame.rid ?? this.rid();
    this.send({ ...frame, rid });
    return this.waitFor((f) => f.rid === rid && f.op !== 'message', timeoutMs, `answer to rid ${JSON.stringify(rid)}`);
  }

  /** Wait for a frame matching `predicate` (frames already received count). Removes and returns it. */
  waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const index = this.frames.findIndex(predicate);
        if (index === -1) return false;
        const [frame] = this.frames.splice(index, 1);
        cleanup();
        resolve(frame as Frame);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; have ${JSON.stringify(this.frames.slice(-5))}`));
      }, timeoutMs);
      const waiter = () => {
        if (!check() && this.closeCode !== undefined) {
          cleanup();
          reject(new Error(`socket closed (${this.closeCode} ${this.closeReason}) while waiting for ${what}`));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      if (!check() && this.closeCode !== undefined) waiter();
    });
  }

  /** Wait until the server closes the socket; resolves with the close code. */
  waitClose(timeoutMs = 5000): Promise<number> {
    return Promise.race([
      this.closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs)),
    ]);
  }

  close(): void {
    this.socket.close(1000);
  }
}
