/**
 * The DPoP proofs already seen (RFC 9449 section 11.1): a proof's `jti` is
 * kept until its `iat` leaves the acceptance window, after which the proof
 * is refused for its age anyway, so the cache only has to span the window.
 *
 * It is bounded: when every slot holds a proof still inside the window, a
 * new proof is refused (the verifier answers 503) rather than an old entry
 * evicted, because eviction would reopen that proof to replay. Size it above
 * (DPoP requests per second) x (window in seconds). Only proofs that passed
 * every other check, signature and token binding included, take a slot, so
 * filling it takes valid tokens and their private keys.
 */
export type ReplayAnswer = 'fresh' | 'replayed' | 'full';

export class ReplayCache {
  readonly #maxEntries: number;
  /** key -> expiry (ms); insertion order is close to expiry order. */
  readonly #entries = new Map<string, number>();

  constructor(maxEntries: number) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new TypeError('the replay cache needs a positive whole number of entries');
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Records `key` until `expiresAt` unless it is already there and not expired. */
  use(key: string, expiresAt: number, now: number): ReplayAnswer {
    const seen = this.#entries.get(key);
    if (seen !== undefined && seen > now) return 'replayed';
    this.#dropExpired(now);
    if (this.#entries.size >= this.#maxEntries) {
      this.#sweep(now);
      if (this.#entries.size >= this.#maxEntries) return 'full';
    }
    this.#entries.delete(key);
    this.#entries.set(key, expiresAt);
    return 'fresh';
  }

  /** Drops expired entries from the front (cheap, amortised). */
  #dropExpired(now: number): void {
    for (const [key, expiresAt] of this.#entries) {
      if (expiresAt > now) return;
      this.#entries.delete(key);
    }
  }

  /** Drops every expired entry, wherever it sits (only when full). */
  #sweep(now: number): void {
    for (const [key, expiresAt] of this.#entries) if (expiresAt <= now) this.#entries.delete(key);
  }
}
