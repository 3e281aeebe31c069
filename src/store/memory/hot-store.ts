import { systemClock, type BoundedSetAddResult, type BoundedSetMember, type Clock, type CounterValue, type HotStore, type VersionedValue } from '../ports.ts';
import { assertExpectedVersion, assertIncrement, assertLimit, assertTtl } from '../errors.ts';

interface Entry {
  value: string;
  version: number;
  expiresAt: number;
}

export interface MemoryHotStoreOptions {
  readonly clock?: Clock;
  /** How often expired keys are swept (ms). Reads never see them either way. */
  readonly sweepIntervalMs?: number;
}

/**
 * The in-process hot store: for tests and single-instance deployments that
 * accept losing sessions on restart. Every method runs synchronously inside
 * one turn of the event loop, which is what makes each one atomic here.
 */
export function openMemoryHotStore(options: MemoryHotStoreOptions = {}): HotStore {
  return new MemoryHotStore(options.clock ?? systemClock, options.sweepIntervalMs ?? 60_000);
}

class MemoryHotStore implements HotStore {
  readonly driver = 'memory' as const;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  readonly #sets = new Map<string, Map<string, number>>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(clock: Clock, sweepIntervalMs: number) {
    this.#clock = clock;
    this.#sweeper = setInterval(() => this.#sweep(), sweepIntervalMs);
    this.#sweeper.unref();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#clock()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #write(key: string, value: string, ttlMs: number): number {
    const version = (this.#live(key)?.version ?? 0) + 1;
    this.#entries.set(key, { value, version, expiresAt: this.#clock() + ttlMs });
    return version;
  }

  async get(key: string): Promise<string | null> {
    return this.#live(key)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    this.#write(key, value, ttlMs);
  }

  async delete(key: string): Promise<boolean> {
    const hadValue = this.#live(key) !== undefined;
    const hadSet = (this.#liveSet(key)?.size ?? 0) > 0;
    this.#entries.delete(key);
    this.#sets.delete(key);
    return hadValue || hadSet;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    if (this.#live(key) !== undefined) return false;
    this.#write(key, value, ttlMs);
    return true;
  }

  async consume(key: string): Promise<string | null> {
    const entry = this.#live(key);
    if (entry === undefined) return null;
    this.#entries.delete(key);
    return entry.value;
  }

  async getVersioned(key: string): Promise<VersionedValue | null> {
    const entry = this.#live(key);
    return entry === undefined ? null : { value: entry.value, version: entry.version };
  }

  async compareAndSet(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number | null> {
    assertExpectedVersion(expectedVersion);
    assertTtl(ttlMs);
    if ((this.#live(key)?.version ?? 0) !== expectedVersion) return null;
    return this.#write(key, value, ttlMs);
  }

  async increment(key: string, ttlMs: number, by = 1): Promise<CounterValue> {
    assertTtl(ttlMs);
    assertIncrement(by);
    const now = this.#clock();
    const entry = this.#live(key);
    if (entry === undefined) {
      this.#entries.set(key, { value: String(by), version: 1, expiresAt: now + ttlMs });
      return { value: by, ttlMs };
    }
    const current = parseCounter(entry.value);
    entry.value = String(current + by);
    entry.version += 1;
    return { value: current + by, ttlMs: entry.expiresAt - now };
  }

  #liveSet(key: string): Map<string, number> | undefined {
    const members = this.#sets.get(key);
    if (members === undefined) return undefined;
    const now = this.#clock();
    for (const [member, expiresAt] of members) if (expiresAt <= now) members.delete(member);
    if (members.size === 0) {
      this.#sets.delete(key);
      return undefined;
    }
    return members;
  }

  async boundedSetAdd(key: string, member: string, expiresAt: number, limit: number): Promise<BoundedSetAddResult> {
    assertLimit(limit);
    let members = this.#liveSet(key);
    if (expiresAt <= this.#clock()) {
      members?.delete(member);
      return { evicted: [] };
    }
    if (members === undefined) {
      members = new Map();
      this.#sets.set(key, members);
    }
    members.set(member, expiresAt);
    const evicted: string[] = [];
    if (members.size > limit) {
      const soonestFirst = [...members].sort(compareMembers);
      for (const [evictee] of soonestFirst.slice(0, members.size - limit)) {
        members.delete(evictee);
        evicted.push(evictee);
      }
    }
    return { evicted };
  }

  async boundedSetRemove(key: string, member: string): Promise<boolean> {
    return this.#liveSet(key)?.delete(member) ?? false;
  }

  async boundedSetMembers(key: string): Promise<BoundedSetMember[]> {
    const members = this.#liveSet(key);
    if (members === undefined) return [];
    return [...members].sort(compareMembers).map(([member, expiresAt]) => ({ member, expiresAt }));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
  }

  #sweep(): void {
    const now = this.#clock();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
    for (const key of this.#sets.keys()) this.#liveSet(key);
  }
}

/** Soonest expiry first; ties broken by member so every driver agrees. */
export function compareMembers(a: readonly [string, number], b: readonly [string, number]): number {
  return a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

export function parseCounter(value: string): number {
  const parsed = Number(value);
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(parsed)) {
    throw new TypeError('increment: the stored value is not an integer');
  }
  return parsed;
}
