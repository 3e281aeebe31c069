/**
 * Failure counts kept in this process while the hot store is away (issue
 * 16: token issuance that does not need the hot store goes on, and every
 * credential check still goes through a throttle). The keys and windows are
 * the hot store's; each instance counts alone, so while the store is down N
 * instances let N times a limit through: the price of staying up, said in
 * the README.
 *
 * Bounded: at most `maxKeys` live counters. When every slot holds a live
 * window, a key without one reads as over every limit, so a flood of
 * networks during an outage is refused rather than let through uncounted.
 */
export class LocalCounters {
  readonly #entries = new Map<string, { value: number; expiresAt: number }>();
  readonly #maxKeys: number;

  constructor(maxKeys = 10_000) {
    this.#maxKeys = maxKeys;
  }

  /** Adds one and answers the count (Infinity when no slot is free). */
  increment(key: string, ttlMs: number, now: number): number {
    const entry = this.#live(key, now);
    if (entry !== undefined) return (entry.value += 1);
    if (!this.#hasRoom(now)) return Number.POSITIVE_INFINITY;
    this.#entries.set(key, { value: 1, expiresAt: now + ttlMs });
    return 1;
  }

  /** The count (0 when none; Infinity when none and no slot is free). */
  get(key: string, now: number): number {
    return this.#live(key, now)?.value ?? (this.#hasRoom(now) ? 0 : Number.POSITIVE_INFINITY);
  }

  get size(): number {
    return this.#entries.size;
  }

  #live(key: string, now: number): { value: number; expiresAt: number } | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.expiresAt > now) return entry;
    this.#entries.delete(key);
    return undefined;
  }

  #hasRoom(now: number): boolean {
    if (this.#entries.size < this.#maxKeys) return true;
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
    return this.#entries.size < this.#maxKeys;
  }
}
