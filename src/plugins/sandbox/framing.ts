/**
 * Length-delimited messages over a byte stream (the plugin channel, issue 14):
 * each frame is a 4-byte big-endian length followed by that many bytes of
 * UTF-8 JSON text. A frame larger than the maximum is refused as soon as its
 * length is read (its body is never buffered), and the channel closes.
 *
 * This file imports only `node:` built-ins: the child-side runtime loads it
 * inside the sandbox, where it may read nothing but the sandbox directory.
 */
import type { Readable, Writable } from 'node:stream';

/** 1 MiB: far more than any hook's parameters or answer. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
const HEADER_BYTES = 4;

export type FramingErrorCode = 'message_too_large';

/** The other side stopped reading: more than the limit waits to be written to it. */
export class NotReadingError extends Error {
  constructor(buffered: number, limit: number) {
    super(`${buffered} bytes wait to be written, more than the limit of ${limit}: the other side does not read`);
    this.name = 'NotReadingError';
  }
}

export class FramingError extends Error {
  readonly code: FramingErrorCode;
  readonly size: number;
  constructor(code: FramingErrorCode, size: number, max: number) {
    super(`a message of ${size} bytes is larger than the maximum of ${max}`);
    this.name = 'FramingError';
    this.code = code;
    this.size = size;
  }
}

/** One frame: the header and the UTF-8 bytes of `text`. Throws `FramingError` past the maximum. */
export function encodeFrame(text: string, maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES): Uint8Array {
  const body = Buffer.from(text, 'utf8');
  if (body.length > maxBytes) throw new FramingError('message_too_large', body.length, maxBytes);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies, whatever the chunking: a chunk may
 * hold part of a header, several frames, or a frame's end and the next one's
 * start. After a refused frame the decoder stays failed and yields nothing.
 */
export class FrameDecoder {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Header and body bytes of the frame being read, once its header is known: chunks are joined only when it is complete (linear, not once per chunk). */
  #needed: number | undefined;
  #failed: FramingError | undefined;

  constructor(maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The complete frame bodies (as text) this chunk finishes. Throws `FramingError` on an oversized frame. */
  push(chunk: Uint8Array): string[] {
    if (this.#failed) throw this.#failed;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#buffered += chunk.byteLength;
    const out: string[] = [];
    for (;;) {
      if (this.#needed === undefined) {
        if (this.#buffered < HEADER_BYTES) return out;
        const length = this.#take().readUInt32BE(0);
        if (length > this.#maxBytes) {
          this.#failed = new FramingError('message_too_large', length, this.#maxBytes);
          this.#chunks = [];
          this.#buffered = 0;
          throw this.#failed;
        }
        this.#needed = HEADER_BYTES + length;
      }
      if (this.#buffered < this.#needed) return out;
      const buffer = this.#take();
      out.push(buffer.toString('utf8', HEADER_BYTES, this.#needed));
      const rest = buffer.subarray(this.#needed);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
      this.#needed = undefined;
    }
  }

  /** Joins the buffered chunks into one buffer (kept as the only chunk). */
  #take(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
    return this.#chunks[0]!;
  }
}

export interface FrameChannelOptions {
  readonly input: Readable;
  readonly output: Writable;
  readonly maxMessageBytes?: number;
  /**
   * How many bytes may wait to be written before the other side is taken
   * to have stopped reading (the channel closes with NotReadingError). A
   * peer that sends requests but never reads the answers would otherwise
   * grow this side's memory without end. Unbounded when absent.
   */
  readonly maxBufferedBytes?: number;
  /** Each complete frame body, in order. */
  readonly onMessage: (text: string) => void;
  /** Once, when the channel closes: `error` set for an oversized frame or a stream failure. */
  readonly onClose: (error?: Error) => void;
}

/**
 * A framed, bidirectional text channel over two streams. It closes (and stops
 * reading) on an oversized incoming frame, at the end of input, or on a stream
 * error; `send` of an oversized message throws `FramingError` and leaves the
 * channel open.
 *
 * The frames sent during one turn of the event loop go out together, in
 * order, in one write once the turn's I/O callbacks have run (setImmediate).
 * A busy server makes many hook calls per turn, one per request; a write
 * per frame woke the plugin's process for each, and each wake-up could take
 * the core from the writer (bench/README.md, plugin-tokens.ts). Frames
 * still waiting when the channel closes are dropped.
 */
export class FrameChannel {
  readonly #options: FrameChannelOptions;
  readonly #decoder: FrameDecoder;
  readonly #maxBytes: number;
  #closed = false;
  #outgoing: Uint8Array[] = [];
  #flushing = false;

  constructor(options: FrameChannelOptions) {
    this.#options = options;
    this.#maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#decoder = new FrameDecoder(this.#maxBytes);
    options.input.on('data', this.#onData);
    options.input.on('end', this.#onEnd);
    options.input.on('error', this.#onError);
    options.output.on('error', this.#onError);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues one frame for this turn's write; throws `FramingError` at once for an oversized message. */
  send(text: string): void {
    if (this.#closed) return;
    this.#outgoing.push(encodeFrame(text, this.#maxBytes));
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushing = false;
    const frames = this.#outgoing;
    this.#outgoing = [];
    const { output } = this.#options;
    if (this.#closed || frames.length === 0 || output.writableEnded || output.destroyed) return;
    output.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    const limit = this.#options.maxBufferedBytes;
    if (limit !== undefined && output.writableLength > limit) this.close(new NotReadingError(output.writableLength, limit));
  };

  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outgoing = [];
    const { input, output } = this.#options;
    input.off('data', this.#onData);
    input.off('end', this.#onEnd);
    input.destroy();
    output.end();
    this.#options.onClose(error);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#closed) return;
    let messages: string[];
    try {
      messages = this.#decoder.push(chunk);
    } catch (error) {
      this.close(error as Error);
      return;
    }
    for (const message of messages) {
      if (this.#closed) return;
      this.#options.onMessage(message);
    }
  };

  readonly #onEnd = (): void => this.close();
  readonly #onError = (error: Error): void => this.close(error);
}
