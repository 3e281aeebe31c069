import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { StoreUnavailableError } from '../errors.ts';
import { TransactionScope, assertOutsideTransaction, runInScope } from '../transaction-scope.ts';

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
 *
 * An async transaction (`asyncTransaction`) spans many turns of the event
 * loop, and everything on this connection between its BEGIN and COMMIT would
 * be part of it. So the durable store runs its operations through `run`,
 * which waits behind an open async transaction (a FIFO gate), while the
 * transaction's own view runs directly.
 */
export class SqliteDatabase {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #gate = new Gate();
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
   * Runs a synchronous operation of the outer store: at once when no async
   * transaction holds the connection (the common case costs nothing more),
   * otherwise after it and everything queued before this call.
   */
  run<T>(work: () => T): T | Promise<T> {
    if (this.#gate.free) return work();
    assertOutsideTransaction(this);
    return this.#runQueued(work);
  }

  async #runQueued<T>(work: () => T): Promise<T> {
    await this.#gate.acquire();
    try {
      return work();
    } finally {
      this.#gate.release();
    }
  }

  /**
   * Runs async `work` in one `BEGIN IMMEDIATE` transaction holding the
   * connection: commit when it fulfils, roll back and rethrow when it rejects.
   * `work` receives the scope its view must check on every operation.
   */
  async asyncTransaction<T>(work: (scope: TransactionScope) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this);
    await this.#gate.acquire();
    const scope = new TransactionScope(this);
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      let result: T;
      try {
        result = await runInScope(scope, () => work(scope));
        scope.end();
        if (scope.failure !== undefined) throw scope.failure.error;
        this.#db.exec('COMMIT');
      } catch (error) {
        scope.end();
        if (this.isOpen && this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
      return result;
    } finally {
      scope.end();
      this.#gate.release();
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

/**
 * A FIFO mutex whose holder is handed over directly on release, so a caller
 * that arrived later cannot overtake one already waiting.
 */
class Gate {
  #held = false;
  readonly #waiters: (() => void)[] = [];

  /** Nobody holds the gate and nobody waits for it. */
  get free(): boolean {
    return !this.#held;
  }

  acquire(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next === undefined) this.#held = false;
    else next();
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
