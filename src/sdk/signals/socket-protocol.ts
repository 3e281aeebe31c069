/**
 * The frames of Portcullis's WebSocket delivery (`/signals/ws`,
 * DELIVERY_METHODS.websocket), one JSON object per text frame:
 *
 *   server -> client  {"type":"ready","stream_id":"...","cursor":string|null}   once, after the upgrade
 *                     {"type":"set","cursor":"<opaque>","set":"<compact JWS>"}   per SET, in order
 *   client -> server  {"type":"ack","cursor":"<cursor>"}                         everything up to it is processed
 *
 * URL query: `stream_id` (required), `after` (resume after this cursor).
 */

export type ServerFrame =
  | { readonly type: 'ready'; readonly stream_id: string; readonly cursor: string | null }
  | { readonly type: 'set'; readonly cursor: string; readonly set: string };

/** A frame from the server that breaks the protocol. */
export class SocketProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketProtocolError';
  }
}

/**
 * A server frame, or undefined for a well-formed frame of a type this
 * client does not know (a newer server may add some; ignoring them keeps
 * old clients working). Throws SocketProtocolError for anything else.
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new SocketProtocolError('a frame that is not JSON');
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new SocketProtocolError('a frame that is not a JSON object');
  const { type } = frame as { type?: unknown };
  if (type === 'ready') {
    const { stream_id: streamId, cursor } = frame as { stream_id?: unknown; cursor?: unknown };
    if (typeof streamId !== 'string' || !(cursor === null || typeof cursor === 'string')) throw new SocketProtocolError('a ready frame without stream_id or cursor');
    return { type, stream_id: streamId, cursor };
  }
  if (type === 'set') {
    const { cursor, set } = frame as { cursor?: unknown; set?: unknown };
    if (typeof cursor !== 'string' || cursor === '' || typeof set !== 'string') throw new SocketProtocolError('a set frame without cursor or set');
    return { type, cursor, set };
  }
  if (typeof type !== 'string') throw new SocketProtocolError('a frame without a type');
  return undefined;
}

export function ackFrame(cursor: string): string {
  return JSON.stringify({ type: 'ack', cursor });
}

/** The URL to connect to: `url` with `after` set to `cursor` (or as given when there is none yet). */
export function streamUrl(url: URL, cursor: string | undefined): URL {
  const next = new URL(url);
  if (cursor !== undefined) next.searchParams.set('after', cursor);
  return next;
}
