import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * CSRF defence for the server-rendered pages (OWASP CSRF Prevention Cheat
 * Sheet): a synchronizer token bound to the session (an HMAC of its handle,
 * so nothing extra is stored), checked on every state-changing request,
 * together with the browser's own statement of where the request came from
 * (Origin, else Sec-Fetch-Site). Before sign-in the token is bound to a
 * short-lived pre-session cookie instead, which stops login CSRF.
 */
export class CsrfTokens {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** The token for a session handle (or a pre-session value), for a hidden form field. */
  token(binding: string): string {
    return createHmac('sha256', this.#key).update(`portcullis/csrf/${binding}`).digest('base64url');
  }

  verify(binding: string, presented: unknown): boolean {
    if (typeof presented !== 'string' || presented.length !== 43) return false;
    return timingSafeEqual(Buffer.from(this.token(binding)), Buffer.from(presented));
  }
}

/**
 * Whether a state-changing request comes from our own pages. Origin, when a
 * browser sends it (every POST from a modern browser), must be ours exactly;
 * without it, Sec-Fetch-Site must say same-origin (or none: typed by the
 * user). A request with neither is not from a browser page and is left to
 * the token.
 */
export function sameOrigin(headers: Record<string, string | string[] | undefined>, ownOrigin: string): boolean {
  const origin = headers['origin'];
  if (typeof origin === 'string') return origin === ownOrigin;
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none';
  return true;
}
