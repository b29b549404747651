import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { WriteBatch } from '../../src/write-batch.js';

/** A socket stand-in that records how its bytes arrive: one entry per write call into the OS. */
function recordingSocket(): { socket: Writable; calls: string[][] } {
  const calls: string[][] = [];
  const socket = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      calls.push([chunk.toString()]);
      callback();
    },
    writev(chunks, callback) {
      calls.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
      callback();
    },
  });
  return { socket, calls };
}

const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe('WriteBatch', () => {
  it('sends everything written to a socket in one tick as one write, after the tick', async () => {
    const batch = new WriteBatch();
    const { socket, calls } = recordingSocket();
    for (const frame of ['a', 'b', 'c']) {
      batch.hold(socket);
      socket.write(frame);
    }
    assert.equal(socket.writableCorked, 1, 'corked once, however often held');
    assert.equal(socket.writableLength, 3, 'held bytes count in writableLength (bufferedAmount)');
    assert.deepEqual(calls, []);
    await nextTick();
    assert.deepEqual(calls, [['a', 'b', 'c']]);
    assert.equal(socket.writableCorked, 0);
    assert.equal(batch.size, 0);
  });

  it('flushes every socket it holds, and holds again in the next tick', async () => {
    const batch = new WriteBatch();
    const one = recordingSocket();
    const two = recordingSocket();
    batch.hold(one.socket);
    one.socket.write('1');
    batch.hold(two.socket);
    two.socket.write('2');
    two.socket.write('3');
    assert.equal(batch.size, 2);
    await nextTick();
    assert.deepEqual([one.calls, two.calls], [[['1']], [['2', '3']]]);
    batch.hold(one.socket);
    one.socket.write('4');
    one.socket.write('5');
    await nextTick();
    assert.deepEqual(one.calls, [['1'], ['4', '5']]);
  });

  it('lets end() flush a held socket at once', async () => {
    const batch = new WriteBatch();
    const { socket, calls } = recordingSocket();
    batch.hold(socket);
    socket.write('bye');
    socket.end();
    await new Promise((resolve) => socket.on('finish', resolve));
    assert.deepEqual(calls, [['bye']]);
    await nextTick(); // the batch's own uncork of an ended socket is harmless
  });
});
