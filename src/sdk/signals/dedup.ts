/**
 * Each SET is processed once. Every delivery method may deliver a SET more
 * than once: push retries until it sees a 202 (RFC 8935 section 2.3), poll
 * re-delivers what was not acknowledged (RFC 8936 section 2.4), the
 * WebSocket stream replays after the last acknowledged cursor. The `jti` is
 * unique per issuer (RFC 8417 section 2.2), so it is the key.
 *
 * Bounded in both count and age: a full cache forgets its oldest entry, so
 * a flood of distinct SETs costs memory up to `maxEntries` and no more.
 */

export interface JtiCacheOptions {
  /** Default 10 000. */
  readonly maxEntries?: number;
  /** How long a processed jti is remembered. Default 24 h: longer than transmitters retry. */
  readonly ttlMs?: number;
  /** Milliseconds since the epoch. Default Date.now. */
  readonly now?: () => number;
}

const DEFAULT_MAX_ENTRIES = 10_000;
const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;

export class JtiDeduplicator {
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** jti -> when it may be forgotten; Map order is insertion order, so the oldest comes first. */
  readonly #done = new Map<string, number>();
  readonly #inFlight = new Map<string, Promise<void>>();

  constructor(options: JtiCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Runs `work` for a jti not processed yet and remembers the jti once it
   * resolved; a jti already processed gives 'duplicate' without running
   * anything; a jti being processed waits for that work and shares its
   * outcome (a failure is not remembered, so a retry runs again).
   */
  async once(jti: string, work: () => Promise<void>): Promise<'processed' | 'duplicate'> {
    this.#prune();
    if (this.#done.has(jti)) return 'duplicate';
    const running = this.#inFlight.get(jti);
    if (running !== undefined) {
      await running;
      return 'duplicate';
    }
    const attempt = work().then(() => this.#remember(jti));
    this.#inFlight.set(jti, attempt);
    try {
      await attempt;
    } finally {
      this.#inFlight.delete(jti);
    }
    return 'processed';
  }

  /** Whether `jti` was processed and is still remembered. */
  has(jti: string): boolean {
    this.#prune();
    return this.#done.has(jti);
  }

  #remember(jti: string): void {
    this.#done.set(jti, this.#now() + this.#ttlMs);
    while (this.#done.size > this.#maxEntries) this.#done.delete(this.#done.keys().next().value!);
  }

  #prune(): void {
    const now = this.#now();
    for (const [jti, expires] of this.#done) {
      if (expires > now) break;
      this.#done.delete(jti);
    }
  }
}
