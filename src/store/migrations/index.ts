import { createHash } from 'node:crypto';
import { StoreSchemaError } from '../errors.ts';

/**
 * Versioned schema migrations. Each version has the same meaning on SQLite
 * and PostgreSQL; the SQL differs only where the dialects do. A migration is
 * never edited once released: its checksum is recorded when applied, and a
 * database whose recorded checksum differs is refused (someone changed
 * history, or runs a mismatched build).
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sqlite: string;
  readonly postgres: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'records',
    // Ids order by their bytes on both engines (SQLite's BINARY collation,
    // PostgreSQL's "C"), so keyset pagination agrees across drivers.
    sqlite: `
      CREATE TABLE records (
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (collection, id)
      ) WITHOUT ROWID;`,
    postgres: `
      CREATE TABLE records (
        collection text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        data jsonb NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (collection, id)
      );`,
  },
  {
    version: 2,
    name: 'embedded hot store',
    // In the embedded deployment the hot store shares the SQLite file; in
    // scale-out it lives in Redis, so PostgreSQL has nothing to create here.
    sqlite: `
      CREATE TABLE hot_entries (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX hot_entries_expiry ON hot_entries (expires_at);
      CREATE TABLE hot_set_members (
        set_key TEXT NOT NULL,
        member TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (set_key, member)
      ) WITHOUT ROWID;
      CREATE INDEX hot_set_members_expiry ON hot_set_members (set_key, expires_at);`,
    postgres: `SELECT 1;`,
  },
];

export type Dialect = 'sqlite' | 'postgres';

export function migrationChecksum(migration: Migration, dialect: Dialect): string {
  return createHash('sha256').update(migration[dialect]).digest('hex');
}

export interface AppliedRow {
  readonly version: number;
  readonly checksum: string;
}

/**
 * Decides what to apply, given what the database says it has. Pure, so the
 * refusal rules are tested without a database.
 */
export function pendingMigrations(
  applied: readonly AppliedRow[],
  dialect: Dialect,
  known: readonly Migration[] = migrations,
): Migration[] {
  const byVersion = new Map(known.map((m) => [m.version, m]));
  const latestKnown = known.at(-1)?.version ?? 0;
  for (const row of applied) {
    const migration = byVersion.get(row.version);
    if (migration === undefined) {
      throw new StoreSchemaError(
        `database schema version ${row.version} is newer than this Portcullis build (latest ${latestKnown}); upgrade Portcullis`,
      );
    }
    if (migrationChecksum(migration, dialect) !== row.checksum) {
      throw new StoreSchemaError(
        `migration ${row.version} (${migration.name}) recorded in the database differs from this build's; refusing to run`,
      );
    }
  }
  const done = new Set(applied.map((row) => row.version));
  return known.filter((m) => !done.has(m.version));
}
