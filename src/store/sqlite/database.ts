import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { StoreUnavailableError } from '../errors.ts';

export interface SqliteDatabaseOptions {
  /** A file path, or ':memory:' for tests. */
  readonly path: string;
  /** How long a writer waits for another process's lock before failing (ms). */
  readonly busyTimeoutMs?: number;
  /**
   * FULL (default): a commit is fsynced, it survives power loss. NORMAL (in
   * WAL mode): a commit survives a crash of the process, not of the machine;
   * for hot, expiring data, where that is the promise Redis makes too.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
}

/**
 * One SQLite connection shared by the embedded durable and hot stores.
 * node:sqlite is synchronous, so every store method runs to completion inside
 * one turn of the event loop: within this process that alone serialises
 * writers ("one writer"). Multi-statement operations still run in
 * `BEGIN IMMEDIATE` transactions so that a second process opening the same
 * file (an admin CLI next to a running server) cannot interleave with them.
 */
export class SqliteDatabase {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  constructor(options: SqliteDatabaseOptions) {
    this.path = options.path;
    try {
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      this.#db = new DatabaseSync(options.path);
      // WAL lets readers proceed during a write; FULL sync makes a committed
      // transaction survive power loss, which "durable" promises.
      this.#db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
      this.#db.exec('PRAGMA journal_mode = WAL');
      this.#db.exec(`PRAGMA synchronous = ${options.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
      this.#db.exec('PRAGMA foreign_keys = ON');
    } catch (error) {
      throw new StoreUnavailableError('sqlite', `cannot open SQLite database ${options.path}: ${reason(error)}`, { cause: error });
    }
  }

  /** A cached prepared statement. */
  statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  /** Runs `work` in an immediate (write-locking) transaction. */
  transaction<T>(work: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * Runs `work` atomically: in its own immediate transaction, or, when a
   * transaction is already open on this connection (a caller's unit of
   * work), in a savepoint of it, so that a multi-statement write joins the
   * caller's transaction instead of failing on a nested BEGIN.
   */
  atomic<T>(work: () => T): T {
    if (!this.#db.isTransaction) return this.transaction(work);
    this.#db.exec('SAVEPOINT portcullis_atomic');
    try {
      const result = work();
      this.#db.exec('RELEASE portcullis_atomic');
      return result;
    } catch (error) {
      this.#db.exec('ROLLBACK TO portcullis_atomic');
      this.#db.exec('RELEASE portcullis_atomic');
      throw error;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements.clear();
    this.#db.close();
  }

  get isOpen(): boolean {
    return !this.#closed;
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
