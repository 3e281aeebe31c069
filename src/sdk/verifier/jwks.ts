/**
 * The issuer's signing keys, fetched and cached by this module rather than
 * by jose's createRemoteJWKSet, because the cache must:
 *
 * - keep keys as long as the JWKS response's Cache-Control allows (RFC 9111
 *   section 5.2.2.1), within the caller's bounds;
 * - refetch when a token names a kid it does not know (the issuer rotated,
 *   RFC 7517 section 5 leaves rollover to the kid), but at most once per
 *   `refetchIntervalSeconds`, so that a flood of tokens with random kids
 *   costs the issuer one request per interval, not one per token;
 * - keep serving the keys it has when a refetch fails;
 * - drop a key the issuer's signals say was revoked (`revoke(kid)`, fed
 *   by Portcullis's `key-rotated` event with `state: 'revoked'`) at once,
 *   and keep refusing it even if a JWKS still lists it (a cached copy,
 *   an issuer that publishes it until the old tokens expire): a revoked
 *   key's signature proves nothing (RFC 7517 section 5 leaves rollover to
 *   the kid, and a kid never comes back).
 *
 * The JWKS URI is the issuer's `jwks_uri` (RFC 8414 section 2) from
 * `<issuer>/.well-known/oauth-authorization-server`, whose `issuer` must be
 * the configured one (RFC 8414 section 3.3), unless the caller names it.
 */
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { freshSeconds, type MaxAgeBounds } from './cache-control.ts';
import { VerifyError } from './errors.ts';

/** The part of `fetch` the verifier uses; inject one to test or to route through a proxy. */
export type FetchLike = (input: string, init: { headers: Record<string, string>; redirect: 'error'; signal: AbortSignal }) => Promise<Response>;

export interface JwksCacheOptions {
  readonly issuer: string;
  /** Skips discovery. */
  readonly jwksUri?: string;
  /** The JWS algorithms a key may be used with. */
  readonly algorithms: readonly string[];
  readonly fetch?: FetchLike;
  /** Milliseconds since the epoch; `Date.now` by default. */
  readonly clock?: () => number;
  /** Seconds; default min 60, max 86400. */
  readonly maxAge?: Partial<MaxAgeBounds>;
  /** Seconds between two fetches at most (default 30): what an unknown kid may trigger. */
  readonly refetchIntervalSeconds?: number;
  /** Milliseconds for one HTTP request (default 5000). */
  readonly timeoutMs?: number;
}

/** A JWKS or metadata document larger than this is refused. */
const MAX_DOCUMENT_BYTES = 512 * 1024;
/** Keys beyond this many in one set are ignored. */
const MAX_KEYS = 100;
/** Revoked kids remembered at most; past that the oldest is forgotten (it is long gone from the JWKS by then). */
const MAX_REVOKED_KIDS = 1000;
/** JWK members that only a private or symmetric key has (RFC 7518 section 6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** The key type each signature algorithm needs (RFC 7518 section 3.1, RFC 8037 section 3.1). */
const ALGORITHM_KEY_TYPES: Readonly<Record<string, string>> = { EdDSA: 'OKP', Ed25519: 'OKP', ES256: 'EC', ES384: 'EC', RS256: 'RSA', PS256: 'RSA' };

interface KeyEntry {
  readonly jwk: JWK;
  /** alg -> the imported key (a promise until imported). */
  readonly imported: Map<string, CryptoKey | Promise<CryptoKey>>;
}

const unavailable = (cause?: unknown) => new VerifyError('temporarily_unavailable', "the issuer's signing keys are unavailable", { cause });

export class JwksCache {
  readonly #options: JwksCacheOptions;
  readonly #fetch: FetchLike;
  readonly #clock: () => number;
  readonly #bounds: MaxAgeBounds;
  readonly #intervalMs: number;
  #jwksUri: string | undefined;
  /** kid -> key; keys without a kid under ''-prefixed synthetic names. */
  #keys = new Map<string, KeyEntry>();
  /** kids the issuer revoked: never used, whatever a JWKS says. */
  readonly #revoked = new Set<string>();
  #loaded = false;
  #expiresAt = 0;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;
  #fetches = 0;

  constructor(options: JwksCacheOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#clock = options.clock ?? Date.now;
    this.#bounds = { min: options.maxAge?.min ?? 60, max: options.maxAge?.max ?? 86_400 };
    if (!(this.#bounds.min >= 0 && this.#bounds.max >= this.#bounds.min)) throw new TypeError('maxAge needs 0 <= min <= max (seconds)');
    const interval = options.refetchIntervalSeconds ?? 30;
    if (!(interval >= 0)) throw new TypeError('refetchIntervalSeconds must be >= 0');
    this.#intervalMs = interval * 1000;
    this.#jwksUri = options.jwksUri;
  }

  /** Drops the key `kid` at once and refuses it from now on, also when a later JWKS lists it. */
  revoke(kid: string): void {
    this.#revoked.delete(kid);
    this.#revoked.add(kid);
    if (this.#revoked.size > MAX_REVOKED_KIDS) this.#revoked.delete(this.#revoked.values().next().value!);
    this.#keys.delete(kid);
  }

  /** How many JWKS fetches were attempted (for tests and metrics). */
  get fetches(): number {
    return this.#fetches;
  }

  /**
   * The key that verifies a token with this header. Throws VerifyError:
   * invalid_token when the issuer publishes no such key (after the refetch
   * the rate limit allows), temporarily_unavailable when no keys could be
   * fetched at all.
   */
  key(header: { readonly kid?: string | undefined; readonly alg?: string | undefined }): CryptoKey | Promise<CryptoKey> {
    // The hot path: fresh keys, a known kid, the key imported; no promise in between.
    const alg = header.alg;
    if (alg !== undefined && this.#loaded && this.#clock() < this.#expiresAt && this.#options.algorithms.includes(alg)) {
      const imported = this.#find(header.kid, alg)?.imported.get(alg);
      if (imported !== undefined && !(imported instanceof Promise)) return imported;
    }
    return this.#slowKey(header);
  }

  async #slowKey(header: { readonly kid?: string | undefined; readonly alg?: string | undefined }): Promise<CryptoKey> {
    const alg = header.alg;
    if (alg === undefined || !this.#options.algorithms.includes(alg)) throw new VerifyError('invalid_token', 'the token is signed with an algorithm that is not accepted');
    // Known revoked: refused without a refetch, so tokens under it cannot make the cache fetch.
    if (header.kid !== undefined && this.#revoked.has(header.kid)) throw new VerifyError('invalid_token', 'the token is signed with a key the issuer revoked');
    const now = this.#clock();
    if ((!this.#loaded || now >= this.#expiresAt) && this.#mayFetch(now)) await this.#refreshKeepingOld();
    if (!this.#loaded) throw unavailable();
    let entry = this.#find(header.kid, alg);
    if (entry === undefined && this.#mayFetch(this.#clock())) {
      await this.#refreshKeepingOld();
      entry = this.#find(header.kid, alg);
    }
    if (entry === undefined) throw new VerifyError('invalid_token', 'the token is signed with a key the issuer does not publish');
    return this.#import(entry, alg);
  }

  #mayFetch(now: number): boolean {
    return this.#inFlight !== undefined || now - this.#lastAttempt >= this.#intervalMs;
  }

  /** A failed refetch keeps the keys already known; only a cache that never loaded reports it. */
  async #refreshKeepingOld(): Promise<void> {
    try {
      await this.#refresh();
    } catch (error) {
      if (!this.#loaded) throw error instanceof VerifyError ? error : unavailable(error);
    }
  }

  #refresh(): Promise<void> {
    // Concurrent callers share one request.
    this.#inFlight ??= this.#load().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #load(): Promise<void> {
    this.#lastAttempt = this.#clock();
    this.#jwksUri ??= await this.#discover();
    this.#fetches++;
    const response = await this.#get(this.#jwksUri);
    const document = await readJson(response);
    const keys = new Map<string, KeyEntry>();
    const listed = typeof document === 'object' && document !== null && Array.isArray((document as { keys?: unknown }).keys) ? ((document as { keys: unknown[] }).keys) : undefined;
    if (listed === undefined) throw unavailable();
    for (const [index, jwk] of listed.slice(0, MAX_KEYS).entries()) {
      if (!isPublicSigningJwk(jwk)) continue;
      const kid = typeof jwk.kid === 'string' ? jwk.kid : `\u0000${index}`;
      if (keys.has(kid) || this.#revoked.has(kid)) continue;
      // An unchanged key keeps what was imported for it.
      const known = this.#keys.get(kid);
      keys.set(kid, { jwk, imported: known !== undefined && JSON.stringify(known.jwk) === JSON.stringify(jwk) ? known.imported : new Map<string, CryptoKey | Promise<CryptoKey>>() });
    }
    this.#keys = keys;
    this.#loaded = true;
    this.#expiresAt = this.#clock() + freshSeconds(response.headers.get('cache-control'), response.headers.get('age'), this.#bounds) * 1000;
  }

  async #discover(): Promise<string> {
    const issuer = this.#options.issuer;
    const metadata = await readJson(await this.#get(`${issuer.replace(/\/+$/, '')}/.well-known/oauth-authorization-server`));
    const { issuer: named, jwks_uri: jwksUri } = (typeof metadata === 'object' && metadata !== null ? metadata : {}) as { issuer?: unknown; jwks_uri?: unknown };
    // RFC 8414 section 3.3: metadata naming another issuer must not be used.
    if (named !== issuer || typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) throw unavailable();
    return jwksUri;
  }

  async #get(url: string): Promise<Response> {
    const response = await this.#fetch(url, {
      headers: { accept: 'application/jwk-set+json, application/json' },
      // A redirect could lead anywhere; the issuer's documents are where it says they are.
      redirect: 'error',
      signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw unavailable();
    }
    return response;
  }

  #find(kid: string | undefined, alg: string): KeyEntry | undefined {
    // RFC 7517 section 4.4: a key that names its alg is used with that alg only.
    const fits = (entry: KeyEntry) => (entry.jwk.alg === undefined || entry.jwk.alg === alg) && entry.jwk.kty === ALGORITHM_KEY_TYPES[alg];
    if (kid !== undefined) {
      const entry = this.#keys.get(kid);
      return entry !== undefined && fits(entry) ? entry : undefined;
    }
    // No kid: only an unambiguous key will do.
    const candidates = [...this.#keys.values()].filter(fits);
    return candidates.length === 1 ? candidates[0] : undefined;
  }

  async #import(entry: KeyEntry, alg: string): Promise<CryptoKey> {
    let key = entry.imported.get(alg);
    if (key === undefined) {
      key = importJWK(entry.jwk, alg) as Promise<CryptoKey>;
      entry.imported.set(alg, key);
      key.then(
        (imported) => entry.imported.set(alg, imported),
        () => entry.imported.delete(alg),
      );
    }
    try {
      return await key;
    } catch {
      // A key whose type does not fit the token's alg (an EC key named by an EdDSA token).
      throw new VerifyError('invalid_token', "the token's algorithm does not fit its key");
    }
  }
}

async function readJson(response: Response): Promise<unknown> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw unavailable();
  }
  const text = await response.text();
  if (text.length > MAX_DOCUMENT_BYTES) throw unavailable();
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw unavailable(error);
  }
}

/** A public key for signatures: an asymmetric kty, no private members, not marked for encryption only. */
function isPublicSigningJwk(value: unknown): value is JWK {
  if (typeof value !== 'object' || value === null) return false;
  const jwk = value as Record<string, unknown>;
  if (jwk['kty'] !== 'OKP' && jwk['kty'] !== 'EC' && jwk['kty'] !== 'RSA') return false;
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig') return false;
  if (jwk['alg'] !== undefined && typeof jwk['alg'] !== 'string') return false;
  return PRIVATE_MEMBERS.every((member) => !(member in jwk));
}
