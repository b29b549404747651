/**
 * A minimal Chrome DevTools Protocol client for one server started with
 * `--inspect=127.0.0.1:0`: force a full GC and read the V8 heap, so memory
 * per connection can be measured without the noise of RSS (pages first
 * touched, heap capacity growing in steps). Loopback only; no domain is
 * enabled, so the server pays nothing between the calls.
 */
import WebSocket from 'ws';
import { Calls } from './calls.js';

/** The line Node prints on stderr when the inspector listens; group 1 is the session URL. */
export const INSPECTOR_LINE = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/;

interface Answer {
  id: number;
  result?: unknown;
  error?: { message: string };
}

export class Inspector {
  private readonly calls = new Calls();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const answer = JSON.parse(data.toString()) as Partial<Answer>;
      // Answers carry the id of their call; events (none: no domain is enabled) carry none.
      if (typeof answer.id !== 'number') return;
      this.calls.answer(answer.id, answer.error ? { error: new Error(`inspector: ${answer.error.message}`) } : { value: answer.result });
    });
    socket.on('close', () => this.calls.failAll(new Error('inspector socket closed')));
  }

  static connect(url: string, timeoutMs = 10_000): Promise<Inspector> {
    const socket = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        socket.off('error', reject);
        // A later socket error only fails the calls in flight (through 'close').
        socket.on('error', () => {});
        resolve(new Inspector(socket));
      });
      socket.once('error', reject);
    });
  }

  /** One CDP call; rejects on a protocol error, a closed socket, or no answer within `timeoutMs`. */
  call<T>(method: string, params: object = {}, timeoutMs = 60_000): Promise<T> {
    return this.calls.call<T>(
      (id) => this.socket.send(JSON.stringify({ id, method, params })),
      timeoutMs,
      `inspector: no answer to ${method} within ${timeoutMs} ms`,
    );
  }

  /**
   * `process.memoryUsage().heapUsed` after a full GC. Collected twice: the
   * first collection runs the finalizers and weak callbacks of what it frees,
   * which can release more for the second.
   *
   * The V8 heap only, not `external` (Buffers and ArrayBuffers; `arrayBuffers`
   * is a part of it, not an addition): an idle connection holds no Buffer
   * (measured: 5–36 B of external per connection on both systems, under 1 % of
   * the heap figure), and external moves in 8 KiB steps as Node's Buffer pool
   * takes a new slab, so adding it would add noise, not information.
   */
  async heapUsed(): Promise<number> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const { result, exceptionDetails } = await this.call<{ result: { value?: unknown }; exceptionDetails?: { text: string } }>('Runtime.evaluate', {
      expression: 'process.memoryUsage().heapUsed',
      returnByValue: true,
    });
    if (exceptionDetails) throw new Error(`inspector: evaluate failed: ${exceptionDetails.text}`);
    if (typeof result.value !== 'number') throw new Error('inspector: heapUsed is not a number');
    return result.value;
  }

  /** Close the session; resolves once the socket is closed (a server with a session attached may wait for it at exit). */
  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.terminate();
        resolve();
      }, 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.close();
    });
  }
}
