/**
 * The transmitter's signing keys: its JWKS, found through the SSF
 * configuration's `jwks_uri` (SSF 1.0 section 7.1), cached, and fetched
 * again when a SET names a key the cache does not hold (a rotation), but
 * at most once per cool-down, so a stream of SETs with made-up `kid`s
 * cannot turn the receiver into a load generator against the transmitter.
 *
 * An unknown `kid` inside the cool-down is SignalsUnavailableError (with
 * `retryAfterMs`), not `invalid_key`: the receivers answer 503 (push),
 * leave it unacknowledged (poll) or do not ack it (socket), so the SET
 * comes again and is verified after the next fetch. Only a kid missing
 * from the key set fetched for it is refused.
 */
import type { KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors, type CryptoKey, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import { fetchSsfConfiguration } from './configuration.ts';
import { SetVerificationError, SignalsUnavailableError } from './errors.ts';
import { isObject, requestJson, type HttpOptions } from './fetch.ts';
import { checkSecureUrl } from './url.ts';

/** Where verifySecurityEventToken takes the key of a SET from. */
export interface SetKeySource {
  /**
   * The key for this protected header. Throws SetVerificationError('invalid_key') only when a
   * key set fetched for this lookup has no such key (or the key does not fit the header),
   * SignalsUnavailableError when the keys cannot be had now: not fetched, or an
   * unknown kid during the refetch cool-down. A SET must never be refused for a state of the cache.
   */
  getKey(header: JWSHeaderParameters): Promise<CryptoKey | KeyObject>;
}

export interface SsfKeySetOptions extends HttpOptions {
  /** The transmitter's issuer: its configuration names the `jwks_uri`. */
  readonly issuer: string;
  /** Skips discovery and reads the keys from here. */
  readonly jwksUri?: string;
  /** Milliseconds since the epoch. Default Date.now. */
  readonly now?: () => number;
  /** After a fetch, an unknown `kid` fetches again only this much later. Default 30 000 ms. */
  readonly cooldownMs?: number;
  /** A cached key set older than this is fetched again before use (and used stale if that fails). Default 600 000 ms. */
  readonly maxAgeMs?: number;
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

const JWKS_LIMIT = 256 * 1024;
const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_MAX_AGE_MS = 600_000;

/** A SetKeySource over a fixed key set (keys distributed out of band, tests). */
export function staticKeySet(jwks: JSONWebKeySet): SetKeySource {
  const local = createLocalJWKSet(jwks);
  return { getKey: (header) => lookUp(local, header) };
}

export class SsfKeySet implements SetKeySource {
  readonly #options: SsfKeySetOptions;
  readonly #now: () => number;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  #jwksUri: string | undefined;
  #local: LocalKeySet | undefined;
  /** When the last fetch was started, successful or not: the cool-down counts from there. */
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  /** One fetch at a time: concurrent lookups share it. */
  #pending: Promise<void> | undefined;

  constructor(options: SsfKeySetOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.#jwksUri = options.jwksUri === undefined ? undefined : checkSecureUrl(options.jwksUri, 'jwksUri').href;
  }

  async getKey(header: JWSHeaderParameters): Promise<CryptoKey | KeyObject> {
    if (this.#local === undefined) {
      // No keys yet and the last attempt failed: the same cool-down, so a stream of SETs does not become a stream of fetches.
      const wait = this.#coolingDownFor();
      if (wait > 0 && this.#pending === undefined) throw new SignalsUnavailableError(`the transmitter's key set could not be fetched; next attempt in ${wait} ms`);
      await this.#refresh();
    } else if (this.#now() - this.#fetchedAt >= this.#maxAgeMs && this.#coolingDownFor() === 0) {
      // Stale but present: a failed refresh keeps the old keys rather than refusing every SET.
      await this.#refresh().catch(() => undefined);
    }
    try {
      return await lookUp(this.#local!, header);
    } catch (error) {
      if (!(error instanceof SetVerificationError && error.cause instanceof errors.JWKSNoMatchingKey)) throw error;
      const wait = this.#coolingDownFor();
      // Not the SET's fault: the kid may be a rotation this cache has not seen yet. Refusing it
      // (invalid_key) would make the transmitter drop it for good (RFC 8935 section 2.4, RFC 8936
      // section 2.4); unavailable makes it come again, and it is verified once a fetch is allowed.
      if (wait > 0) throw new SignalsUnavailableError(`no key ${describe(header)} in the cached key set; not fetched again for ${wait} ms`, { cause: error.cause, retryAfterMs: wait });
      await this.#refresh();
      return lookUp(this.#local!, header);
    }
  }

  #coolingDownFor(): number {
    return Math.max(0, this.#attemptedAt + this.#cooldownMs - this.#now());
  }

  #refresh(): Promise<void> {
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #fetch(): Promise<void> {
    this.#attemptedAt = this.#now();
    this.#jwksUri ??= (await fetchSsfConfiguration(this.#options.issuer, this.#options)).jwks_uri;
    let answer;
    try {
      answer = await requestJson(this.#jwksUri, { method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' } }, this.#options, JWKS_LIMIT);
    } catch (error) {
      throw new SignalsUnavailableError(`the key set at ${this.#jwksUri} could not be fetched`, { cause: error });
    }
    if (answer.status !== 200) throw new SignalsUnavailableError(`the key set at ${this.#jwksUri} answered ${answer.status}`);
    if (!isObject(answer.json)) throw new SignalsUnavailableError(`the key set at ${this.#jwksUri} is not a JSON object`);
    try {
      this.#local = createLocalJWKSet(answer.json as unknown as JSONWebKeySet);
    } catch (error) {
      throw new SignalsUnavailableError(`the key set at ${this.#jwksUri} is not a JWKS (RFC 7517 section 5)`, { cause: error });
    }
    this.#fetchedAt = this.#now();
  }
}

/** A SetKeySource that discovers the transmitter's keys from its issuer; share one per transmitter. */
export function createSsfKeySet(options: SsfKeySetOptions): SsfKeySet {
  return new SsfKeySet(options);
}

async function lookUp(local: LocalKeySet, header: JWSHeaderParameters): Promise<CryptoKey> {
  try {
    return await local(header);
  } catch (error) {
    if (error instanceof errors.JWKSNoMatchingKey) throw new SetVerificationError('invalid_key', `no key ${describe(header)} in the transmitter's key set`, { cause: error });
    if (error instanceof errors.JWKSMultipleMatchingKeys) throw new SetVerificationError('invalid_key', `several keys match ${describe(header)}: the SET must name its kid`, { cause: error });
    throw new SetVerificationError('invalid_key', `the key ${describe(header)} is unusable`, { cause: error });
  }
}

const describe = (header: JWSHeaderParameters) => `(kid ${JSON.stringify(header.kid ?? null)}, alg ${String(header.alg)})`;
