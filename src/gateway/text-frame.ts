/**
 * A WebSocket text frame built once and written to many sockets.
 *
 * A broadcast sends the same bytes to every member of a room. `ws.send`
 * would frame them again for each socket (a header allocated, two writes,
 * a cork and uncork); a server frame is never masked, so the whole frame —
 * header and payload — is the same for every socket and can be built once
 * (by `ws`'s own `Sender.frame`) and written with one `write` each.
 *
 * Writing beside `ws` onto its socket is only safe while `ws` has nothing
 * queued of its own: `canWriteDirectly` says when (no extension negotiated,
 * so no compression queue; socket open). Anything else goes through `ws.send`.
 */
import * as wsModule from 'ws';
import WebSocket from 'ws';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

/** `ws`'s public framing function (lib/sender.js); @types/ws does not declare it. */
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } };
if (typeof Sender?.frame !== 'function') throw new Error('this version of ws has no Sender.frame');
const frameOf = Sender.frame.bind(Sender);

const TEXT = 0x1;

export class TextFrame {
  #wire: Buffer | undefined;

  constructor(
    readonly payload: Buffer,
    wire?: Buffer,
  ) {
    this.#wire = wire;
  }

  /**
   * The frame of an encoded server frame, header and UTF-8 text written into
   * one buffer: one allocation and one encoding per fan-out, where
   * `new TextFrame(Buffer.from(text)).wire` makes two of each (the payload,
   * then header + payload). The header is RFC 6455 §5.2's for an unmasked
   * final text frame; the tests check it against `ws`'s own.
   */
  static of(text: string): TextFrame {
    const length = Buffer.byteLength(text);
    const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
    const wire = Buffer.allocUnsafe(head + length);
    wire[0] = 0x80 | TEXT;
    if (head === 2) wire[1] = length;
    else if (head === 4) {
      wire[1] = 126;
      wire.writeUInt16BE(length, 2);
    } else {
      wire[1] = 127;
      wire.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
      wire.writeUInt32BE(length >>> 0, 6);
    }
    wire.write(text, head, length, 'utf8');
    return new TextFrame(wire.subarray(head), wire);
  }

  /** Header and payload as one buffer, built on first use. */
  get wire(): Buffer {
    this.#wire ??= Buffer.concat(frameOf(this.payload, { fin: true, opcode: TEXT, mask: false, readOnly: true, rsv1: false }));
    return this.#wire;
  }
}

/**
 * True when bytes written straight to `socket`'s TCP stream cannot interleave
 * with anything `ws` queued. `plain`: no extension was negotiated. That is
 * fixed by the handshake, and reading `extensions` costs an `Object.keys` and
 * a `join`, so a caller that writes for every delivery reads it once
 * (`socket.extensions === ''`) and passes it in.
 */
export function canWriteDirectly(socket: WebSocket, plain = socket.extensions === ''): boolean {
  return plain && socket.readyState === WebSocket.OPEN;
}
