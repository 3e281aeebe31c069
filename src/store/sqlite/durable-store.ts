import {
  systemClock,
  type Clock,
  type AuditLogStore,
  type DurableStore,
  type DurableTransaction,
  type ListOptions,
  type MigrationReport,
  type OutboxStore,
  type RecordStore,
  type StoredRecord,
  type WriteOptions,
} from '../ports.ts';
import { setTimeout as wait } from 'node:timers/promises';
import { indexRows, type IndexRow } from '../collections-index.ts';
import { listLimit } from '../errors.ts';
import { migrationChecksum, pendingMigrations, type AppliedRow } from '../migrations/index.ts';
import { scopedView } from '../transaction-scope.ts';
import type { SqliteDatabase } from './database.ts';
import { SqliteAuditLog } from './audit-log.ts';
import { SqliteOutboxStore, SqliteOutboxWriter } from './outbox.ts';

/** A checkpoint another connection blocks is tried this many times, waiting a little longer each time. */
const RECLAIM_ATTEMPTS = 5;
const RECLAIM_BACKOFF_MS = 20;

/**
 * How a store runs a synchronous operation on the connection: the outer
 * store waits behind an open transaction (`database.run`), a transaction's
 * view runs at once (it is the transaction).
 */
export type SqliteRunner = <T>(work: () => T, access?: 'read' | 'write') => T | Promise<T>;
const direct: SqliteRunner = (work) => work();

interface RecordRow {
  collection: string;
  id: string;
  version: number;
  data: string;
  created_at: number;
  updated_at: number;
}

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS portcullis_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at INTEGER NOT NULL
)`;

/** The embedded durable store. Closing it closes the shared database. */
export function openSqliteDurableStore(database: SqliteDatabase, clock: Clock = systemClock): DurableStore {
  return new SqliteDurableStore(database, clock);
}

class SqliteDurableStore implements DurableStore {
  readonly driver = 'sqlite' as const;
  readonly records: RecordStore;
  readonly auditLog: AuditLogStore;
  readonly outbox: OutboxStore;
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;

  constructor(database: SqliteDatabase, clock: Clock) {
    this.#db = database;
    this.#clock = clock;
    const gated: SqliteRunner = (work, access) => database.run(work, access);
    this.records = new SqliteRecordStore(database, clock, gated);
    this.auditLog = new SqliteAuditLog(database);
    this.outbox = new SqliteOutboxStore(database);
  }

  /**
   * BEGIN IMMEDIATE takes the file's write lock at the start, so a
   * transaction never fails half-way on a lock upgrade, and other processes'
   * writers wait (busy_timeout) until it ends.
   */
  async transaction<T>(fn: (tx: DurableTransaction) => Promise<T>): Promise<T> {
    return this.#db.asyncTransaction((scope) =>
      fn(
        scopedView(scope, {
          records: new SqliteRecordStore(this.#db, this.#clock, direct),
          outbox: new SqliteOutboxWriter(this.#db, this.#clock),
        }),
      ),
    );
  }

  async migrate(): Promise<MigrationReport> {
    // BEGIN IMMEDIATE takes the database's write lock before reading what is
    // applied, so two processes starting together apply each migration once.
    return this.#db.run(() => this.#db.transaction(() => {
      this.#db.exec(MIGRATIONS_TABLE);
      const applied = this.#db.statement('SELECT version, checksum FROM portcullis_migrations ORDER BY version').all() as unknown as AppliedRow[];
      const pending = pendingMigrations(applied, 'sqlite');
      for (const migration of pending) {
        this.#db.exec(migration.sqlite);
        this.#db
          .statement('INSERT INTO portcullis_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)')
          .run(migration.version, migration.name, migrationChecksum(migration, 'sqlite'), this.#clock());
      }
      const currentVersion = Math.max(0, ...applied.map((row) => row.version), ...pending.map((m) => m.version));
      return { applied: pending.map(({ version, name }) => ({ version, name })), currentVersion };
    }));
  }

  async schemaVersion(): Promise<number> {
    return this.#db.run(() => {
      const table = this.#db.statement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'portcullis_migrations'").get();
      if (table === undefined) return 0;
      const row = this.#db.statement('SELECT MAX(version) AS version FROM portcullis_migrations').get() as { version: number | null };
      return row.version ?? 0;
    }, 'read');
  }

  async ping(): Promise<void> {
    await this.#db.run(() => this.#db.statement('SELECT 1').get(), 'read');
  }

  async reclaim(): Promise<void> {
    // TRUNCATE: copy every WAL frame into the database, then cut the WAL file to zero bytes. Another process
    // reading the database (a CLI command beside the server) can stop it; SQLite then answers busy = 1 and the
    // WAL keeps its frames, so the checkpoint is tried again, and a last failure is an error, not silence.
    for (let attempt = 1; ; attempt++) {
      // node:sqlite is synchronous: with the connection's busy_timeout a blocked checkpoint would hold the event
      // loop for seconds. Here it answers at once, and the wait between attempts is on a timer.
      const result = (await this.#db.run(() => {
        this.#db.exec('PRAGMA busy_timeout = 0');
        try {
          return this.#db.statement('PRAGMA wal_checkpoint(TRUNCATE)').get();
        } finally {
          this.#db.exec(`PRAGMA busy_timeout = ${this.#db.busyTimeoutMs}`);
        }
      })) as { busy?: number } | undefined;
      if (result?.busy !== 1) return;
      if (attempt === RECLAIM_ATTEMPTS) throw new Error('the WAL could not be checkpointed: another connection holds it');
      await wait(RECLAIM_BACKOFF_MS * attempt);
    }
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}

class SqliteRecordStore implements RecordStore {
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;
  readonly #run: SqliteRunner;

  constructor(database: SqliteDatabase, clock: Clock, run: SqliteRunner) {
    this.#db = database;
    this.#clock = clock;
    this.#run = run;
  }

  async get<T>(collection: string, id: string): Promise<StoredRecord<T> | null> {
    return this.#run(() => {
      const row = this.#db.statement('SELECT * FROM records WHERE collection = ? AND id = ?').get(collection, id) as RecordRow | undefined;
      return row === undefined ? null : toRecord<T>(row);
    }, 'read');
  }

  async create(collection: string, id: string, data: unknown, options?: WriteOptions): Promise<boolean> {
    const json = toJson(data);
    const entries = indexRows(options?.index);
    return this.#run(() => {
      const now = this.#clock();
      const insert = () =>
        this.#db
          .statement('INSERT INTO records (collection, id, version, data, created_at, updated_at) VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT DO NOTHING')
          .run(collection, id, json, now, now).changes === 1;
      // A record's entries are written with it or not at all; with none to
      // write, the insert alone is atomic (a delete drops entries with the record).
      if (entries.length === 0) return insert();
      return this.#db.atomic(() => {
        if (!insert()) return false;
        this.#writeIndex(collection, id, entries);
        return true;
      });
    });
  }

  async update(collection: string, id: string, expectedVersion: number, data: unknown, options?: WriteOptions): Promise<number | null> {
    const json = toJson(data);
    const entries = indexRows(options?.index);
    return this.#run(() => {
      // The update trigger (migration 5) drops the old entries in the same
      // statement; new ones are added in the same transaction.
      const update = () =>
        this.#db
          .statement('UPDATE records SET version = version + 1, data = ?, updated_at = ? WHERE collection = ? AND id = ? AND version = ?')
          .run(json, this.#clock(), collection, id, expectedVersion).changes === 1;
      if (entries.length === 0) return update() ? expectedVersion + 1 : null;
      return this.#db.atomic(() => {
        if (!update()) return null;
        this.#writeIndex(collection, id, entries);
        return expectedVersion + 1;
      });
    });
  }

  async delete(collection: string, id: string, expectedVersion?: number): Promise<boolean> {
    // The delete trigger (migration 5) drops the entries in the same statement.
    return this.#run(() => {
      const result =
        expectedVersion === undefined
          ? this.#db.statement('DELETE FROM records WHERE collection = ? AND id = ?').run(collection, id)
          : this.#db.statement('DELETE FROM records WHERE collection = ? AND id = ? AND version = ?').run(collection, id, expectedVersion);
      return result.changes === 1;
    });
  }

  async findBy<T>(collection: string, index: string, value: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const limit = listLimit(options.limit);
    const select =
      'SELECT r.* FROM record_index i JOIN records r ON r.collection = i.collection AND r.id = i.id WHERE i.collection = ? AND i.index_name = ? AND i.index_value = ?';
    return this.#run(() => {
      const rows = (
        options.after === undefined
          ? this.#db.statement(`${select} ORDER BY i.id LIMIT ?`).all(collection, index, value, limit)
          : this.#db.statement(`${select} AND i.id > ? ORDER BY i.id LIMIT ?`).all(collection, index, value, options.after, limit)
      ) as unknown as RecordRow[];
      return rows.map((row) => toRecord<T>(row));
    }, 'read');
  }

  #writeIndex(collection: string, id: string, entries: readonly IndexRow[]): void {
    const insert = this.#db.statement('INSERT INTO record_index (collection, index_name, index_value, id) VALUES (?, ?, ?, ?)');
    for (const entry of entries) insert.run(collection, entry.name, entry.value, id);
  }

  async list<T>(collection: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const limit = listLimit(options.limit);
    return this.#run(() => {
      const rows = (
        options.after === undefined
          ? this.#db.statement('SELECT * FROM records WHERE collection = ? ORDER BY id LIMIT ?').all(collection, limit)
          : this.#db.statement('SELECT * FROM records WHERE collection = ? AND id > ? ORDER BY id LIMIT ?').all(collection, options.after, limit)
      ) as unknown as RecordRow[];
      return rows.map((row) => toRecord<T>(row));
    }, 'read');
  }
}

function toJson(data: unknown): string {
  const json = JSON.stringify(data);
  if (json === undefined) throw new TypeError('record data must be JSON-serialisable');
  return json;
}

function toRecord<T>(row: RecordRow): StoredRecord<T> {
  return {
    collection: row.collection,
    id: row.id,
    version: Number(row.version),
    data: JSON.parse(row.data) as T,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
