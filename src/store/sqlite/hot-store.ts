import { systemClock, type BoundedSetAddResult, type BoundedSetMember, type Clock, type CounterValue, type HotStore, type VersionedValue } from '../ports.ts';
import { assertExpectedVersion, assertIncrement, assertLimit, assertTtl } from '../errors.ts';
import { parseCounter } from '../memory/hot-store.ts';
import type { SqliteDatabase } from './database.ts';

interface EntryRow {
  value: string;
  version: number;
  expires_at: number;
}

export interface SqliteHotStoreOptions {
  readonly clock?: Clock;
  /** How often expired rows are deleted (ms). Reads never see them either way. */
  readonly sweepIntervalMs?: number;
}

/**
 * The embedded hot store: expiring values in the same SQLite file as the
 * durable data, so sessions survive a restart of a single instance. It needs
 * migration 2 applied. Closing it does not close the shared database.
 */
export function openSqliteHotStore(database: SqliteDatabase, options: SqliteHotStoreOptions = {}): HotStore {
  return gated(new SqliteHotStore(database, options.clock ?? systemClock, options.sweepIntervalMs ?? 60_000), database);
}

/** Which operations only read (they never wait for a durable transaction on the file; see SqliteDatabase). */
const ACCESS = {
  get: 'read',
  set: 'write',
  delete: 'write',
  setIfAbsent: 'write',
  consume: 'write',
  getVersioned: 'read',
  compareAndSet: 'write',
  increment: 'write',
  boundedSetAdd: 'write',
  boundedSetRemove: 'write',
  boundedSetMembers: 'read',
  ping: 'read',
} as const satisfies Record<Exclude<keyof HotStore, 'driver' | 'close'>, 'read' | 'write'>;

/**
 * Every method runs through the file's gate: a durable transaction open on
 * the same file holds the write lock across turns of the event loop, and a
 * write here must wait for it rather than block the loop in SQLite's busy
 * handler. Each method does all its database work synchronously, before its
 * first await, so running its call inside the gate covers all of it.
 */
function gated(store: SqliteHotStore, database: SqliteDatabase): HotStore {
  const wrapped: Record<string, unknown> = { driver: store.driver, close: () => store.close() };
  for (const [name, access] of Object.entries(ACCESS)) {
    const method = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name]!;
    wrapped[name] = (...args: unknown[]) => database.run(() => method.apply(store, args), access);
  }
  return wrapped as unknown as HotStore;
}

class SqliteHotStore implements HotStore {
  readonly driver = 'sqlite' as const;
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;
  readonly #sweeper: NodeJS.Timeout;

  constructor(database: SqliteDatabase, clock: Clock, sweepIntervalMs: number) {
    this.#db = database;
    this.#clock = clock;
    this.#sweeper = setInterval(() => this.#sweep(), sweepIntervalMs);
    this.#sweeper.unref();
  }

  #live(key: string, now: number): EntryRow | undefined {
    return this.#db.statement('SELECT value, version, expires_at FROM hot_entries WHERE key = ? AND expires_at > ?').get(key, now) as
      | EntryRow
      | undefined;
  }

  /** Writes a value, bumping the version of a live key or starting at 1. */
  #write(key: string, value: string, ttlMs: number, now: number): number {
    const row = this.#db
      .statement(
        `INSERT INTO hot_entries (key, value, version, expires_at) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (key) DO UPDATE SET
           value = excluded.value,
           version = CASE WHEN hot_entries.expires_at > ?4 THEN hot_entries.version + 1 ELSE 1 END,
           expires_at = excluded.expires_at
         RETURNING version`,
      )
      .get(key, value, now + ttlMs, now) as { version: number };
    return row.version;
  }

  async get(key: string): Promise<string | null> {
    return this.#live(key, this.#clock())?.value ?? null;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    this.#write(key, value, ttlMs, this.#clock());
  }

  async delete(key: string): Promise<boolean> {
    const now = this.#clock();
    return this.#db.transaction(() => {
      const value = this.#db.statement('DELETE FROM hot_entries WHERE key = ? RETURNING expires_at').get(key) as { expires_at: number } | undefined;
      const members = this.#db.statement('DELETE FROM hot_set_members WHERE set_key = ? RETURNING expires_at').all(key) as { expires_at: number }[];
      return (value !== undefined && value.expires_at > now) || members.some((m) => m.expires_at > now);
    });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const now = this.#clock();
    const result = this.#db
      .statement(
        `INSERT INTO hot_entries (key, value, version, expires_at) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = 1, expires_at = excluded.expires_at
         WHERE hot_entries.expires_at <= ?4`,
      )
      .run(key, value, now + ttlMs, now);
    return result.changes === 1;
  }

  async consume(key: string): Promise<string | null> {
    const row = this.#db.statement('DELETE FROM hot_entries WHERE key = ? RETURNING value, expires_at').get(key) as
      | { value: string; expires_at: number }
      | undefined;
    return row !== undefined && row.expires_at > this.#clock() ? row.value : null;
  }

  async getVersioned(key: string): Promise<VersionedValue | null> {
    const row = this.#live(key, this.#clock());
    return row === undefined ? null : { value: row.value, version: Number(row.version) };
  }

  async compareAndSet(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number | null> {
    assertExpectedVersion(expectedVersion);
    assertTtl(ttlMs);
    const now = this.#clock();
    return this.#db.transaction(() => {
      const current = Number(this.#live(key, now)?.version ?? 0);
      if (current !== expectedVersion) return null;
      return this.#write(key, value, ttlMs, now);
    });
  }

  async increment(key: string, ttlMs: number, by = 1): Promise<CounterValue> {
    assertTtl(ttlMs);
    assertIncrement(by);
    const now = this.#clock();
    return this.#db.transaction(() => {
      const row = this.#live(key, now);
      if (row === undefined) {
        this.#db
          .statement('INSERT OR REPLACE INTO hot_entries (key, value, version, expires_at) VALUES (?, ?, 1, ?)')
          .run(key, String(by), now + ttlMs);
        return { value: by, ttlMs };
      }
      const value = parseCounter(row.value) + by;
      this.#db.statement('UPDATE hot_entries SET value = ?, version = version + 1 WHERE key = ?').run(String(value), key);
      return { value, ttlMs: Number(row.expires_at) - now };
    });
  }

  async boundedSetAdd(key: string, member: string, expiresAt: number, limit: number): Promise<BoundedSetAddResult> {
    assertLimit(limit);
    const now = this.#clock();
    return this.#db.transaction(() => {
      this.#db.statement('DELETE FROM hot_set_members WHERE set_key = ? AND expires_at <= ?').run(key, now);
      if (expiresAt <= now) {
        this.#db.statement('DELETE FROM hot_set_members WHERE set_key = ? AND member = ?').run(key, member);
        return { evicted: [] };
      }
      this.#db
        .statement('INSERT INTO hot_set_members (set_key, member, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (set_key, member) DO UPDATE SET expires_at = ?3')
        .run(key, member, expiresAt);
      const { size } = this.#db.statement('SELECT COUNT(*) AS size FROM hot_set_members WHERE set_key = ?').get(key) as { size: number };
      if (size <= limit) return { evicted: [] };
      const evicted = this.#db
        .statement('SELECT member FROM hot_set_members WHERE set_key = ? ORDER BY expires_at, member LIMIT ?')
        .all(key, size - limit) as { member: string }[];
      const remove = this.#db.statement('DELETE FROM hot_set_members WHERE set_key = ? AND member = ?');
      for (const { member: evictee } of evicted) remove.run(key, evictee);
      return { evicted: evicted.map((row) => row.member) };
    });
  }

  async boundedSetRemove(key: string, member: string): Promise<boolean> {
    const row = this.#db.statement('DELETE FROM hot_set_members WHERE set_key = ? AND member = ? RETURNING expires_at').get(key, member) as
      | { expires_at: number }
      | undefined;
    return row !== undefined && row.expires_at > this.#clock();
  }

  async boundedSetMembers(key: string): Promise<BoundedSetMember[]> {
    const rows = this.#db
      .statement('SELECT member, expires_at FROM hot_set_members WHERE set_key = ? AND expires_at > ? ORDER BY expires_at, member')
      .all(key, this.#clock()) as { member: string; expires_at: number }[];
    return rows.map((row) => ({ member: row.member, expiresAt: Number(row.expires_at) }));
  }

  async ping(): Promise<void> {
    this.#db.statement('SELECT 1').get();
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
  }

  #sweep(): void {
    // Busy: a durable transaction holds the file; the next sweep will do.
    if (!this.#db.isOpen || this.#db.busy) return;
    const now = this.#clock();
    this.#db.statement('DELETE FROM hot_entries WHERE expires_at <= ?').run(now);
    this.#db.statement('DELETE FROM hot_set_members WHERE expires_at <= ?').run(now);
  }
}
