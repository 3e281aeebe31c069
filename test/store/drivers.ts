/**
 * Every storage driver this run can test, behind one shape, so that the
 * contract suites are written once and run per driver (sqlite and memory
 * always; PostgreSQL and Redis when their test URLs are set).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as wait } from 'node:timers/promises';
import type { DurableStore, HotStore } from '../../src/store/ports.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { openSqliteHotStore } from '../../src/store/sqlite/hot-store.ts';
import { ManualClock } from '../support/clock.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from '../support/services.ts';

export interface HotFixture {
  /** Several handles on one shared state, as separate instances would hold. */
  readonly stores: readonly HotStore[];
  readonly store: HotStore;
  /** Lets time pass for this driver: a frozen clock moves, a real server waits. */
  advance(ms: number): Promise<void>;
  /** The time the store compares bounded-set expiries against. */
  now(): number;
  close(): Promise<void>;
}

export interface HotDriver {
  readonly name: string;
  open(peers?: number): Promise<HotFixture>;
}

export interface DurableFixture {
  readonly stores: readonly DurableStore[];
  readonly store: DurableStore;
  close(): Promise<void>;
}

export interface DurableDriver {
  readonly name: string;
  open(peers?: number): Promise<DurableFixture>;
}

function tempSqlitePath(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  return { path: join(dir, 'portcullis.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const memoryHot: HotDriver = {
  name: 'memory',
  async open() {
    const clock = new ManualClock();
    const store = openMemoryHotStore({ clock: clock.now });
    return {
      stores: [store],
      store,
      advance: async (ms) => clock.advance(ms),
      now: clock.now,
      close: () => store.close(),
    };
  },
};

const sqliteHot: HotDriver = {
  name: 'sqlite',
  async open(peers = 1) {
    const clock = new ManualClock();
    const file = tempSqlitePath();
    const databases = Array.from({ length: peers }, () => new SqliteDatabase({ path: file.path }));
    await openSqliteDurableStore(databases[0]!, clock.now).migrate();
    const stores = databases.map((db) => openSqliteHotStore(db, { clock: clock.now }));
    return {
      stores,
      store: stores[0]!,
      advance: async (ms) => clock.advance(ms),
      now: clock.now,
      close: async () => {
        for (const store of stores) await store.close();
        for (const db of databases) db.close();
        file.remove();
      },
    };
  },
};

function redisHot(url: string): HotDriver {
  return {
    name: 'redis',
    async open(peers = 1) {
      const { openRedisHotStore } = await import('../../src/store/redis/hot-store.ts');
      const keyPrefix = redisTestPrefix();
      const stores: HotStore[] = [];
      for (let i = 0; i < peers; i++) stores.push(await openRedisHotStore({ url, keyPrefix }));
      return {
        stores,
        store: stores[0]!,
        // Redis expires keys by its own clock: real time has to pass.
        advance: (ms) => wait(ms + 5),
        now: () => Date.now(),
        close: async () => {
          for (const store of stores) await store.close();
          await deleteRedisKeys(url, keyPrefix);
        },
      };
    },
  };
}

const sqliteDurable: DurableDriver = {
  name: 'sqlite',
  async open(peers = 1) {
    const file = tempSqlitePath();
    const stores = Array.from({ length: peers }, () => openSqliteDurableStore(new SqliteDatabase({ path: file.path })));
    await stores[0]!.migrate();
    return {
      stores,
      store: stores[0]!,
      close: async () => {
        for (const store of stores) await store.close();
        file.remove();
      },
    };
  },
};

function postgresDurable(url: string): DurableDriver {
  return {
    name: 'postgres',
    async open(peers = 1) {
      const { openPostgresDurableStore } = await import('../../src/store/postgres/durable-store.ts');
      const { schema, drop } = await createTestSchema(url);
      const stores: DurableStore[] = [];
      // The contract tests check what the store does, not how long a call waits: hundreds of concurrent
      // calls queue for the pool's connections, for longer than the 5 s default on a loaded machine.
      for (let i = 0; i < peers; i++) stores.push(await openPostgresDurableStore({ url, schema, connectTimeoutMs: 60_000 }));
      await stores[0]!.migrate();
      return {
        stores,
        store: stores[0]!,
        close: async () => {
          for (const store of stores) await store.close();
          await drop();
        },
      };
    },
  };
}

export const hotDrivers: readonly HotDriver[] = [memoryHot, sqliteHot, ...(testRedisUrl ? [redisHot(testRedisUrl)] : [])];
export const durableDrivers: readonly DurableDriver[] = [sqliteDurable, ...(testDatabaseUrl ? [postgresDurable(testDatabaseUrl)] : [])];
