/**
 * The receiving end of push delivery (RFC 8935): the transmitter POSTs one
 * SET per request. The steps, in order, each answering on its own:
 *
 * 1. method POST, else 405;
 * 2. the Authorization header, when one is expected (RFC 8935 section 4.1):
 *    missing -> 401 authentication_failed, different -> 403 access_denied,
 *    compared in constant time; checked before the body is read, so an
 *    unauthenticated caller cannot make the receiver read or verify;
 * 3. `Content-Type: application/secevent+jwt` (RFC 8935 section 2.2), else 415;
 * 4. the body, at most `maxBodyBytes`, else 413;
 * 5. verifySecurityEventToken: a refused SET -> 400 `{ err, description }`
 *    (RFC 8935 sections 2.3, 2.4); keys out of reach, or a kid the cached
 *    key set lacks during its refetch cool-down -> 503 with Retry-After, so
 *    the transmitter retries instead of dropping the SET;
 * 6. once per jti: a SET seen before -> 202 without calling the listeners
 *    again; otherwise the listeners are awaited, and only then 202.
 *
 * When a listener fails the answer is 500. RFC 8935 section 2.3 has the
 * recipient answer 202 once it validated the SET and took responsibility
 * for it; a receiver that keeps no queue of its own has not taken
 * responsibility until its listeners ran, so it lets the transmitter retry.
 * The jti is not remembered then, so the retry runs the listeners again.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SET_MEDIA_TYPE } from '../security-events.ts';
import { BodyTooLargeError, readNodeBody, readWebBody } from './body.ts';
import { JtiDeduplicator, type JtiCacheOptions } from './dedup.ts';
import { SET_ERROR_CODES, SetVerificationError, SignalsUnavailableError, type SetErrorCode } from './errors.ts';
import type { HttpOptions } from './fetch.ts';
import { createSsfKeySet, type SetKeySource } from './keys.ts';
import { EventListeners, type SecurityEventListener, type SignalSource } from './listeners.ts';
import { verifySecurityEventToken } from './verify.ts';

export interface PushHandlerOptions extends HttpOptions {
  /** The transmitter's issuer identifier. */
  readonly issuer: string;
  /** This receiver's audience, as the stream's `aud`. */
  readonly audience: string;
  /** The transmitter's keys. Default: discovered from `issuer` (createSsfKeySet). */
  readonly keys?: SetKeySource;
  /** The exact Authorization header the transmitter sends (the stream's `authorization_header`, SSF 1.0 section 8.1.1). Strongly recommended. */
  readonly authorization?: string;
  /** A first listener; more with `onEvent(listener)`. */
  readonly onEvent?: SecurityEventListener;
  /** Default 65 536. */
  readonly maxBodyBytes?: number;
  readonly dedup?: JtiCacheOptions;
  /** Told about every refused request and failed listener (for logs and metrics); never about key material. */
  readonly onError?: (error: Error) => void;
}

/** A node:http request listener (also Express and Connect), with `fetch` for Fetch-API servers. */
export interface PushHandler extends SignalSource {
  (req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The same endpoint as a Fetch-API handler (Deno, Bun, Hono, Next.js route handlers, undici). */
  fetch(request: Request): Promise<Response>;
}

/** What the pipeline needs from a request, whatever the server. */
interface PushRequest {
  readonly method: string;
  readonly contentType: string | null;
  readonly contentLength: string | null;
  readonly authorization: string | null;
  readBody(limit: number): Promise<Uint8Array>;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** The body was not read to its end: close the connection rather than read what is left. */
  readonly unread?: boolean;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

export function createPushHandler(options: PushHandlerOptions): PushHandler {
  const listeners = new EventListeners(options.onEvent);
  const seen = new JtiDeduplicator(options.dedup);
  const keys = options.keys ?? createSsfKeySet({ issuer: options.issuer, fetch: options.fetch, dispatcher: options.dispatcher, timeoutMs: options.timeoutMs });
  const authorized = options.authorization === undefined ? undefined : constantTimeMatcher(options.authorization);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const report = (error: Error) => options.onError?.(error);

  async function receive(request: PushRequest): Promise<Answer> {
    if (request.method !== 'POST') return { status: 405, headers: { allow: 'POST' }, unread: true };
    if (authorized !== undefined) {
      if (request.authorization === null) {
        return refuse('authentication_failed', 'an Authorization header is required', { 'www-authenticate': scheme(options.authorization!) });
      }
      if (!authorized(request.authorization)) return refuse('access_denied', 'the Authorization header is not the one this endpoint accepts');
    }
    const mediaType = request.contentType?.split(';')[0]!.trim().toLowerCase();
    if (mediaType !== SET_MEDIA_TYPE) return { ...errorAnswer('invalid_request', `the Content-Type must be ${SET_MEDIA_TYPE} (RFC 8935 section 2.2)`), status: 415, unread: true };
    if (request.contentLength !== null && Number(request.contentLength) > limit) return tooLarge();
    let body: Uint8Array;
    try {
      body = await request.readBody(limit);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return tooLarge();
      throw error;
    }
    let jws: string;
    try {
      jws = new TextDecoder('utf-8', { fatal: true }).decode(body).trim();
    } catch {
      return refuse('invalid_request', 'the body is not UTF-8');
    }
    try {
      const event = await verifySecurityEventToken(jws, { issuer: options.issuer, audience: options.audience, keys });
      await seen.once(event.jti, () => listeners.dispatch(event));
      return { status: 202, headers: {} };
    } catch (error) {
      if (error instanceof SetVerificationError) return refuse(error.code, error.message, {}, error);
      report(error as Error);
      // RFC 8935 section 2.3: not a refusal; the transmitter retries (RFC 9110 section 10.2.3 Retry-After).
      if (error instanceof SignalsUnavailableError) return { status: 503, headers: { 'retry-after': String(Math.max(1, Math.ceil((error.retryAfterMs ?? 30_000) / 1000))) } };
      return { status: 500, headers: {} };
    }
  }

  function refuse(code: SetErrorCode, description: string, headers: Record<string, string> = {}, error?: Error): Answer {
    report(error ?? new SetVerificationError(code, description));
    const answer = errorAnswer(code, description);
    return { ...answer, headers: { ...answer.headers, ...headers }, unread: SET_ERROR_CODES[code].status !== 400 };
  }

  function tooLarge(): Answer {
    const description = `the SET is larger than ${limit} bytes`;
    report(new BodyTooLargeError(limit));
    return { ...errorAnswer('invalid_request', description), status: 413, unread: true };
  }

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let answer: Answer;
    try {
      answer = await receive({
        method: req.method ?? '',
        contentType: req.headers['content-type'] ?? null,
        contentLength: req.headers['content-length'] ?? null,
        authorization: req.headers.authorization ?? null,
        readBody: (max) => readNodeBody(req, max),
      });
    } catch (error) {
      report(error as Error);
      answer = { status: 500, headers: {}, unread: true };
    }
    // An unread body is left unread: Node would otherwise read and discard it to keep the connection alive.
    res.writeHead(answer.status, answer.unread === true ? { ...answer.headers, connection: 'close' } : answer.headers);
    res.end(answer.body);
  };

  return Object.assign(handler, {
    async fetch(request: Request): Promise<Response> {
      let answer: Answer;
      try {
        answer = await receive({
          method: request.method,
          contentType: request.headers.get('content-type'),
          contentLength: request.headers.get('content-length'),
          authorization: request.headers.get('authorization'),
          readBody: (max) => readWebBody(request.body, max),
        });
      } catch (error) {
        report(error as Error);
        answer = { status: 500, headers: {} };
      }
      if (answer.unread === true) await request.body?.cancel().catch(() => undefined);
      return new Response(answer.body ?? null, { status: answer.status, headers: answer.headers });
    },
    onEvent: (listener: SecurityEventListener) => listeners.onEvent(listener),
  });
}

/** RFC 8935 section 2.3: the error body. */
function errorAnswer(code: SetErrorCode, description: string): Answer {
  return {
    status: SET_ERROR_CODES[code].status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify({ err: code, description }),
  };
}

/**
 * Compares a presented header with the expected one without leaking where
 * they differ or how long the expected one is: both go through an HMAC
 * under a key made here, and the equal-length digests are compared with
 * timingSafeEqual.
 */
export function constantTimeMatcher(expected: string): (presented: string) => boolean {
  const key = randomBytes(32);
  const digest = (value: string) => createHmac('sha256', key).update(value, 'utf8').digest();
  const want = digest(expected);
  return (presented) => timingSafeEqual(digest(presented), want);
}

/** The auth-scheme of the expected header, for WWW-Authenticate (RFC 9110 section 11.6.1). */
function scheme(authorization: string): string {
  const name = authorization.trim().split(/\s+/)[0] ?? 'Bearer';
  return `${name} realm="security-events"`;
}
