/**
 * Reading a body with a limit. A SET, a key set and a configuration
 * document are all small; a peer that sends more is refused before the
 * excess is buffered.
 */
import type { Readable } from 'node:stream';

/** The body was longer than the limit. */
export class BodyTooLargeError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(`the body is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
    this.limit = limit;
  }
}

/** Reads a Fetch body (a web stream) up to `limit` bytes; cancels the stream and throws BodyTooLargeError past it. */
export async function readWebBody(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLargeError(limit);
    }
    chunks.push(value);
  }
  return concat(chunks, length);
}

/**
 * Reads a node:http request up to `limit` bytes; past it, stops reading
 * (pauses the request, which is not destroyed, so the caller can still
 * answer 413 and close the connection) and throws BodyTooLargeError.
 */
export function readNodeBody(stream: Readable, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let length = 0;
    const detach = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Uint8Array | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      length += bytes.byteLength;
      if (length > limit) {
        detach();
        stream.pause();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = () => {
      detach();
      resolve(concat(chunks, length));
    };
    const onError = (error: Error) => {
      detach();
      reject(error);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
