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
  {
    version: 3,
    name: 'audit ledger',
    // The log is append-only at the database too: a trigger refuses UPDATE
    // and DELETE of entries, so a slip in code or a careless admin cannot
    // rewrite history by accident (a deliberate intruder can drop the
    // trigger; the signed checkpoints are what catch that).
    sqlite: `
      CREATE TABLE audit_entries (
        idx INTEGER PRIMARY KEY,
        entry BLOB NOT NULL,
        recorded_at INTEGER NOT NULL
      );
      CREATE TABLE audit_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
      ) WITHOUT ROWID;
      CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        size INTEGER NOT NULL
      );
      INSERT INTO audit_head (id, size) VALUES (1, 0);
      CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        size INTEGER NOT NULL,
        root_hash BLOB NOT NULL,
        note TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size, id);
      CREATE TABLE audit_cosignatures (
        checkpoint_id INTEGER NOT NULL REFERENCES audit_checkpoints (id),
        witness TEXT NOT NULL,
        signature_line TEXT NOT NULL,
        cosigned_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (checkpoint_id, witness)
      ) WITHOUT ROWID;
      CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
      CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
      -- REPLACE deletes the old row without firing DELETE triggers (unless
      -- recursive_triggers is on, which a sqlite3 shell does not set).
      CREATE TRIGGER audit_entries_no_replace BEFORE INSERT ON audit_entries
        WHEN EXISTS (SELECT 1 FROM audit_entries WHERE idx = NEW.idx)
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;`,
    postgres: `
      CREATE TABLE audit_entries (
        idx bigint PRIMARY KEY,
        entry bytea NOT NULL,
        recorded_at bigint NOT NULL
      );
      CREATE TABLE audit_nodes (
        level smallint NOT NULL,
        idx bigint NOT NULL,
        hash bytea NOT NULL,
        PRIMARY KEY (level, idx)
      );
      CREATE TABLE audit_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        size bigint NOT NULL
      );
      INSERT INTO audit_head (id, size) VALUES (1, 0);
      CREATE TABLE audit_checkpoints (
        id bigserial PRIMARY KEY,
        size bigint NOT NULL,
        root_hash bytea NOT NULL,
        note text NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size, id);
      CREATE TABLE audit_cosignatures (
        checkpoint_id bigint NOT NULL REFERENCES audit_checkpoints (id),
        witness text NOT NULL,
        signature_line text NOT NULL,
        cosigned_at bigint NOT NULL,
        received_at bigint NOT NULL,
        PRIMARY KEY (checkpoint_id, witness)
      );
      CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS
        'BEGIN RAISE EXCEPTION ''audit entries are append-only''; END';
      CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
        FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
      CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
        FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only();`,
  },
  {
    version: 4,
    name: 'outbox',
    // The transactional outbox: a message is inserted in the same transaction
    // as the change that causes it, and a delivery worker hands it on later
    // (at least once). New messages are due at once (next_attempt_at 0), so
    // no clock decides whether a fresh message may go; a failed attempt sets
    // the time of the next one. The pending index holds only undelivered rows.
    // SQLite also gets the lease row of its single delivery worker; PostgreSQL
    // leases through an advisory lock and needs no table for it.
    sqlite: `
      CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at INTEGER
      );
      CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
      CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
      CREATE TABLE outbox_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;`,
    postgres: `
      CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        payload jsonb NOT NULL,
        idempotency_key text COLLATE "C" NOT NULL UNIQUE,
        created_at bigint NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at bigint NOT NULL DEFAULT 0,
        last_error text,
        delivered_at bigint
      );
      CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
      CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;`,
  },
  {
    version: 5,
    name: 'record indexes',
    // Secondary indexes of `records` (by user, by client, ...): one row per
    // (record, index, value), written by the store in the same atomic
    // operation as the record. The backfill indexes what earlier versions
    // stored, with the same rules as the collections that define these
    // indexes (src/oauth: refresh families and consents by user and client).
    sqlite: `
      CREATE TABLE record_index (
        collection TEXT NOT NULL,
        index_name TEXT NOT NULL,
        index_value TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (collection, index_name, index_value, id)
      ) WITHOUT ROWID;
      CREATE INDEX record_index_by_record ON record_index (collection, id);
      -- A changed or deleted record loses its entries inside the same
      -- statement (the writer then adds the new ones in its transaction), so
      -- a write that indexes nothing stays one statement.
      CREATE TRIGGER records_unindex_on_update AFTER UPDATE ON records
        BEGIN DELETE FROM record_index WHERE collection = OLD.collection AND id = OLD.id; END;
      CREATE TRIGGER records_unindex_on_delete AFTER DELETE ON records
        BEGIN DELETE FROM record_index WHERE collection = OLD.collection AND id = OLD.id; END;
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'user', json_extract(data, '$.grant.userId'), id FROM records
        WHERE collection = 'refresh-families' AND json_type(data, '$.grant.userId') = 'text';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'client', json_extract(data, '$.grant.clientId'), id FROM records
        WHERE collection = 'refresh-families' AND json_type(data, '$.grant.clientId') = 'text';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'user', json_extract(data, '$.userId'), id FROM records
        WHERE collection = 'consents' AND json_type(data, '$.userId') = 'text';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'client', json_extract(data, '$.clientId'), id FROM records
        WHERE collection = 'consents' AND json_type(data, '$.clientId') = 'text';`,
    postgres: `
      CREATE TABLE record_index (
        collection text COLLATE "C" NOT NULL,
        index_name text COLLATE "C" NOT NULL,
        index_value text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        PRIMARY KEY (collection, index_name, index_value, id)
      );
      CREATE INDEX record_index_by_record ON record_index (collection, id);
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'user', data->'grant'->>'userId', id FROM records
        WHERE collection = 'refresh-families' AND jsonb_typeof(data->'grant'->'userId') = 'string';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'client', data->'grant'->>'clientId', id FROM records
        WHERE collection = 'refresh-families' AND jsonb_typeof(data->'grant'->'clientId') = 'string';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'user', data->>'userId', id FROM records
        WHERE collection = 'consents' AND jsonb_typeof(data->'userId') = 'string';
      INSERT INTO record_index (collection, index_name, index_value, id)
        SELECT collection, 'client', data->>'clientId', id FROM records
        WHERE collection = 'consents' AND jsonb_typeof(data->'clientId') = 'string';`,
  },
  {
    version: 6,
    name: 'audit subject index',
    // Which entries name which person (by their audit pseudonym): the
    // ledger writes these rows in the same transaction as the entries, so a
    // person's export reads their entries without scanning the log. Not part
    // of the signed tree: erasure deletes a person's rows while the entries
    // stay. No backfill here: entries are JSON the SQL cannot safely parse
    // for every version, and the pseudonyms only the ledger computes;
    // `Ledger.indexSubject(userId)` indexes one person's older entries.
    sqlite: `
      CREATE TABLE audit_subjects (
        subject TEXT NOT NULL,
        idx INTEGER NOT NULL,
        PRIMARY KEY (subject, idx)
      ) WITHOUT ROWID;`,
    postgres: `
      CREATE TABLE audit_subjects (
        subject text COLLATE "C" NOT NULL,
        idx bigint NOT NULL,
        PRIMARY KEY (subject, idx)
      );`,
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
