/**
 * Pushed authorization requests (RFC 9126): the client posts its request
 * parameters, authenticated, and gets a one-time `request_uri` that lives a
 * short while (section 2.2: "expires_in"). Only a hash of the URI's random
 * part is stored; `take` consumes it atomically, so it works once, and only
 * for the client that pushed it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { HotStore } from '../../store/index.ts';
import type { OAuthParams } from '../params.ts';

const PREFIX = 'urn:ietf:params:oauth:request_uri:';
const REFERENCE = /^[A-Za-z0-9_-]{43}$/;
const key = (reference: string) => `oauth:par:${createHash('sha256').update(reference).digest('base64url')}`;

export interface PushedRequest {
  readonly clientId: string;
  readonly params: OAuthParams;
}

export class PushedRequests {
  readonly #hot: HotStore;
  readonly #ttlSeconds: number;

  constructor(options: { hot: HotStore; ttlSeconds: number }) {
    this.#hot = options.hot;
    this.#ttlSeconds = options.ttlSeconds;
  }

  get ttlSeconds(): number {
    return this.#ttlSeconds;
  }

  async push(request: PushedRequest): Promise<string> {
    const reference = randomBytes(32).toString('base64url');
    await this.#hot.set(key(reference), JSON.stringify(request), this.#ttlSeconds * 1000);
    return `${PREFIX}${reference}`;
  }

  /**
   * The pushed request, consumed, when `clientId` is the client that pushed
   * it (RFC 9126 section 4). A request naming another client gets null and
   * leaves it in place: whoever merely saw the request_uri cannot burn it.
   */
  async take(requestUri: string, clientId: string | undefined): Promise<PushedRequest | null> {
    if (!requestUri.startsWith(PREFIX)) return null;
    const reference = requestUri.slice(PREFIX.length);
    if (!REFERENCE.test(reference)) return null;
    // Read, compare, then consume: the consume stays the one atomic step, so
    // of two requests by the right client exactly one gets it.
    const peeked = await this.#hot.get(key(reference));
    if (peeked === null || (JSON.parse(peeked) as PushedRequest).clientId !== clientId) return null;
    const stored = await this.#hot.consume(key(reference));
    return stored === null ? null : (JSON.parse(stored) as PushedRequest);
  }
}
