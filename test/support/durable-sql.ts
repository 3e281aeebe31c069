/**
 * A migrated durable store together with a raw SQL connection of its own on
 * the same database, as an administrator with `sqlite3` or `psql` would
 * have: for tests that check what the database itself refuses (append-only
 * triggers) and what a migration created, below the store port.
 *
 * Unknown driver names throw, so a new durable driver fails the suites that
 * use this until it gets raw access here, instead of skipping them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import type { DurableStore } from '../../src/store/ports.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { createTestSchema } from './services.ts';

export interface DurableSqlFixture {
  readonly store: DurableStore;
  /** Runs one statement on the raw connection; rejects with the database's own error. */
  query<R = Record<string, unknown>>(sql: string): Promise<R[]>;
  /** Column names of a table in the store's schema, in declaration order. */
  columns(table: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function openDurableWithSql(driver: string, url?: string): Promise<DurableSqlFixture> {
  if (driver === 'sqlite') return openSqlite();
  if (driver === 'postgres') {
    if (url === undefined) throw new Error('the postgres raw-SQL fixture needs PORTCULLIS_TEST_DATABASE_URL');
    return openPostgres(url);
  }
  throw new Error(`no raw-SQL fixture for durable driver "${driver}": add one to test/support/durable-sql.ts`);
}

async function openSqlite(): Promise<DurableSqlFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const path = join(dir, 'portcullis.db');
  const store = openSqliteDurableStore(new SqliteDatabase({ path }));
  await store.migrate();
  // A second connection, as the sqlite3 shell would open: no pragmas beyond
  // the defaults, so foreign keys and recursive triggers are off here.
  const raw = new DatabaseSync(path);
  raw.exec('PRAGMA busy_timeout = 5000');
  return {
    store,
    query: async <R>(sql: string) => raw.prepare(sql).all() as unknown as R[],
    columns: async (table) => (raw.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').all(table) as { name: string }[]).map((row) => row.name),
    close: async () => {
      raw.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function openPostgres(url: string): Promise<DurableSqlFixture> {
  const { openPostgresDurableStore } = await import('../../src/store/postgres/durable-store.ts');
  const { schema, drop } = await createTestSchema(url);
  let store: DurableStore | undefined;
  const raw = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  try {
    store = await openPostgresDurableStore({ url, schema, poolSize: 2 });
    await store.migrate();
    await raw.connect();
  } catch (error) {
    await store?.close();
    await raw.end().catch(() => {});
    await drop();
    throw error;
  }
  const opened = store;
  return {
    store: opened,
    query: async <R>(sql: string) => (await raw.query(sql)).rows as R[],
    columns: async (table) =>
      (
        await raw.query<{ column_name: string }>(
          'SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position',
          [table],
        )
      ).rows.map((row) => row.column_name),
    close: async () => {
      await raw.end();
      await opened.close();
      await drop();
    },
  };
}
