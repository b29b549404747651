import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { canWriteDirectly, TextFrame } from '../../src/gateway/text-frame.js';

// Around each boundary of the WebSocket length encoding (7-bit, 16-bit, 64-bit).
const SIZES = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
const text = (size: number) => Array.from({ length: size }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

describe('TextFrame', () => {
  it('builds an unmasked, final text frame with the shortest length encoding', () => {
    for (const size of SIZES) {
      const payload = Buffer.from(text(size));
      const wire = new TextFrame(payload).wire;
      assert.equal(wire[0], 0x81, `FIN + text opcode at ${size}`);
      const header = size < 126 ? 2 : size < 65_536 ? 4 : 10;
      assert.equal(wire.length, header + size, `header length at ${size}`);
      const lengthField = wire[1]! & 0x7f;
      assert.equal(wire[1]! & 0x80, 0, 'server frames are not masked');
      if (size < 126) assert.equal(lengthField, size);
      else if (size < 65_536) assert.deepEqual([lengthField, wire.readUInt16BE(2)], [126, size]);
      else assert.deepEqual([lengthField, Number(wire.readBigUInt64BE(2))], [127, size]);
      assert.ok(wire.subarray(header).equals(payload), `payload bytes unchanged at ${size}`);
    }
  });

  it('of(text) builds the same bytes as framing Buffer.from(text), multibyte text included', () => {
    for (const body of [...SIZES.map(text), 'é', `${'ü'.repeat(40)}😀`, '€'.repeat(30_000)]) {
      const frame = TextFrame.of(body);
      assert.ok(frame.wire.equals(new TextFrame(Buffer.from(body)).wire), `wire of ${body.length} chars`);
      assert.equal(frame.payload.toString(), body);
    }
  });

  it('is built once however often it is written', () => {
    const frame = new TextFrame(Buffer.from('{"op":"message"}'));
    assert.equal(frame.wire, frame.wire);
  });
});

describe('TextFrame written beside ws, read by a real ws client', () => {
  let http: Server;
  let wss: WebSocketServer;
  let url: string;
  const served: Array<{ ws: WebSocket; socket: Duplex }> = [];

  before(async () => {
    http = createServer();
    wss = new WebSocketServer({ noServer: true, perMessageDeflate: true });
    http.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => served.push({ ws, socket })));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const { ws } of served) ws.terminate();
    wss.close();
    await new Promise((resolve) => http.close(resolve));
  });

  async function open(options: WebSocket.ClientOptions): Promise<{ client: WebSocket; server: { ws: WebSocket; socket: Duplex }; received: string[] }> {
    const before = served.length;
    const client = new WebSocket(url, options);
    const received: string[] = [];
    client.on('message', (data, isBinary) => {
      assert.equal(isBinary, false);
      received.push(data.toString());
    });
    await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject));
    while (served.length === before) await new Promise((resolve) => setImmediate(resolve));
    return { client, server: served[served.length - 1]!, received };
  }

  it('delivers every size intact and in order, interleaved with ws.send', async () => {
    const { client, server, received } = await open({ perMessageDeflate: false });
    assert.equal(canWriteDirectly(server.ws), true);
    const expected: string[] = [];
    for (const size of SIZES) {
      const body = text(size);
      server.socket.write(new TextFrame(Buffer.from(body)).wire);
      server.ws.send(`via ws ${size}`);
      expected.push(body, `via ws ${size}`);
    }
    while (received.length < expected.length) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(received, expected);
    client.close();
  });

  it('is not used once compression is negotiated or the socket is closing', async () => {
    const { client, server } = await open({ perMessageDeflate: true });
    assert.match(server.ws.extensions, /permessage-deflate/);
    assert.equal(canWriteDirectly(server.ws), false);
    client.close();
    const plain = await open({ perMessageDeflate: false });
    plain.server.ws.close();
    assert.equal(canWriteDirectly(plain.server.ws), false);
    assert.equal(canWriteDirectly(plain.server.ws, true), false, 'a plain socket that is closing is not written to either');
    plain.client.close();
  });
});
