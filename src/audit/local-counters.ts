/**
 * Failure counts kept in this process while the hot store is away (issue
 * 16: token issuance that does not need the hot store goes on, and every
 * credential check still goes through a throttle). The keys and windows are
 * the hot store's; each instance counts alone, so while the store is down N
 * instances let N times a limit through: the price of staying up, said in
 * the README.
 *
 * Bounded: at most `maxKeys` live counters. A new key in a full table
 * evicts the counter with the fewest failures (after the expired ones): a
 * flood of fresh networks or client ids then resets only counts as low as
 * its own, never the high count of a network or client under attack, and
 * nobody is refused for the table being full.
 */
export class LocalCounters {
  readonly #entries = new Map<string, { value: number; expiresAt: number }>();
  readonly #maxKeys: number;

  constructor(maxKeys = 10_000) {
    this.#maxKeys = maxKeys;
  }

  /** Adds one and answers the count. */
  increment(key: string, ttlMs: number, now: number): number {
    const entry = this.#live(key, now);
    if (entry !== undefined) return (entry.value += 1);
    this.#makeRoom(now);
    this.#entries.set(key, { value: 1, expiresAt: now + ttlMs });
    return 1;
  }

  /** The count (0 when none). */
  get(key: string, now: number): number {
    return this.#live(key, now)?.value ?? 0;
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

  #makeRoom(now: number): void {
    if (this.#entries.size < this.#maxKeys) return;
    let smallest: [string, number] | undefined;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
      else if (smallest === undefined || entry.value < smallest[1]) smallest = [key, entry.value];
    }
    if (this.#entries.size >= this.#maxKeys && smallest !== undefined) this.#entries.delete(smallest[0]);
  }
}
