import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { FrameChannel, FrameDecoder, FramingError, NotReadingError, encodeFrame } from '../../src/plugins/sandbox/framing.ts';

const concat = (...parts: Uint8Array[]) => Buffer.concat(parts);

describe('framing: 4-byte big-endian length + UTF-8 JSON', () => {
  it('encodes the length big-endian, then the UTF-8 bytes', () => {
    const frame = Buffer.from(encodeFrame('{"a":"é"}'));
    assert.equal(frame.readUInt32BE(0), Buffer.byteLength('{"a":"é"}'));
    assert.equal(frame.subarray(4).toString('utf8'), '{"a":"é"}');
  });

  it('decodes frames split at every byte, the header included', () => {
    const bytes = concat(encodeFrame('{"n":1}'), encodeFrame('{"text":"héllo"}'));
    const decoder = new FrameDecoder();
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...decoder.push(bytes.subarray(i, i + 1)));
    assert.deepEqual(out, ['{"n":1}', '{"text":"héllo"}']);
  });

  it('decodes several frames merged in one chunk, and a frame finished in the next chunk', () => {
    const a = encodeFrame('"a"');
    const b = encodeFrame('"b"');
    const c = Buffer.from(encodeFrame('"cccc"'));
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(concat(a, b, c.subarray(0, 6))), ['"a"', '"b"']);
    assert.deepEqual(decoder.push(c.subarray(6)), ['"cccc"']);
  });

  it('decodes an empty frame', () => {
    assert.deepEqual(new FrameDecoder().push(encodeFrame('')), ['']);
  });

  it('refuses an oversized frame as soon as its header arrives, and stays failed', () => {
    const decoder = new FrameDecoder(16);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1024 ** 3);
    assert.throws(() => decoder.push(header), (error: unknown) => error instanceof FramingError && error.code === 'message_too_large' && error.size === 1024 ** 3);
    assert.throws(() => decoder.push(encodeFrame('"ok"')), FramingError);
  });

  it('accepts a frame of exactly the maximum and refuses one byte more', () => {
    assert.deepEqual(new FrameDecoder(4).push(encodeFrame('"ab"', 4)), ['"ab"']);
    assert.throws(() => encodeFrame('"abc"', 4), FramingError);
  });
});

describe('FrameChannel', () => {
  function pair(maxMessageBytes?: number) {
    const input = new PassThrough();
    const output = new PassThrough();
    const received: string[] = [];
    const closes: (Error | undefined)[] = [];
    const channel = new FrameChannel({ input, output, maxMessageBytes, onMessage: (text) => received.push(text), onClose: (error) => closes.push(error) });
    return { input, output, received, closes, channel };
  }

  it('delivers the frames written to its input and frames what it sends', async () => {
    const { input, output, received, channel } = pair();
    input.write(encodeFrame('{"x":1}'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(received, ['{"x":1}']);
    channel.send('{"y":2}');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(new FrameDecoder().push(output.read() as Buffer), ['{"y":2}']);
  });

  it('sends the frames of one turn of the event loop in one write, in order', async () => {
    const { output, channel } = pair();
    const writes: Buffer[] = [];
    output.on('data', (chunk: Buffer) => writes.push(chunk));
    channel.send('{"a":1}');
    channel.send('{"b":2}');
    channel.send('{"c":3}');
    assert.deepEqual(writes, [], 'nothing written before the turn ends');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writes.length, 1);
    assert.deepEqual(new FrameDecoder().push(writes[0]!), ['{"a":1}', '{"b":2}', '{"c":3}']);
    channel.send('{"d":4}');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(new FrameDecoder().push(writes[1]!), ['{"d":4}']);
  });

  it('drops the frames still waiting when it closes', async () => {
    const { output, channel } = pair();
    const writes: Buffer[] = [];
    output.on('data', (chunk: Buffer) => writes.push(chunk));
    channel.send('{"a":1}');
    channel.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(writes, []);
  });

  it('closes on an oversized incoming frame: input destroyed, onClose told once with the error, later frames ignored', async () => {
    const { input, received, closes, channel } = pair(8);
    input.write(encodeFrame('"this is far too long"', 1024));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(channel.closed, true);
    assert.equal(input.destroyed, true);
    assert.equal(closes.length, 1);
    assert.ok(closes[0] instanceof FramingError);
    assert.deepEqual(received, []);
  });

  it('refuses to send an oversized message without closing', () => {
    const { channel } = pair(8);
    assert.throws(() => channel.send('"this is far too long"'), FramingError);
    assert.equal(channel.closed, false);
  });

  it('closes with NotReadingError when the other side stops reading (more than maxBufferedBytes wait), and writes no more', async () => {
    // A peer that never takes what is written: each write stays buffered.
    const stuck = new Writable({ highWaterMark: 16, write: () => undefined });
    const closes: (Error | undefined)[] = [];
    const channel = new FrameChannel({ input: new PassThrough(), output: stuck, maxBufferedBytes: 1000, onMessage: () => undefined, onClose: (error) => void closes.push(error) });
    for (let turn = 0; turn < 10 && !channel.closed; turn++) {
      channel.send('x'.repeat(300));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(channel.closed, true);
    assert.equal(closes.length, 1);
    assert.ok(closes[0] instanceof NotReadingError);
    assert.ok(stuck.writableLength <= 1000 + 304, `stopped writing at ${stuck.writableLength} bytes`);
  });

  it('closes without an error at the end of input', async () => {
    const { input, closes, channel } = pair();
    input.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(channel.closed, true);
    assert.deepEqual(closes, [undefined]);
  });
});
