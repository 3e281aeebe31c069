import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StoreUnavailableError } from '../errors.ts';
import { TransactionScope, assertOutsideTransaction, insideTransaction, runInScope, usedInside } from '../transaction-scope.ts';

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
 * loop and holds the file's write lock all along. Two things must then wait
 * for it, asynchronously (a FIFO gate), instead of running:
 * - anything on this connection, which would become part of it;
 * - a write on another connection to the same file in this process (the hot
 *   store's, a second store's): SQLite's busy handler would block the event
 *   loop, so the transaction could never finish, until busy_timeout failed it.
 * The gate is therefore shared by every connection to one file in this
 * process. Reads on other connections need no gate (WAL readers see the last
 * commit and take no lock). Other processes are kept apart by SQLite's own
 * locks (busy_timeout), as before.
 */
export class SqliteDatabase {
  readonly path: string;
  /** How long a statement waits for another connection's lock (SQLite `busy_timeout`). */
  readonly busyTimeoutMs: number;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #gate: Gate;
  readonly #gateKey: string;
  /** This connection has an async transaction open (its own reads must wait too). */
  #holdsTransaction = false;
  #closed = false;

  constructor(options: SqliteDatabaseOptions) {
    this.path = options.path;
    this.busyTimeoutMs = Math.trunc(options.busyTimeoutMs ?? 5000);
    try {
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      this.#db = new DatabaseSync(options.path);
      // WAL lets readers proceed during a write; FULL sync makes a committed
      // transaction survive power loss, which "durable" promises.
      this.#db.exec(`PRAGMA busy_timeout = ${this.busyTimeoutMs}`);
      this.#db.exec('PRAGMA journal_mode = WAL');
      this.#db.exec(`PRAGMA synchronous = ${options.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
      this.#db.exec('PRAGMA foreign_keys = ON');
      // Deleted content is overwritten with zeros, not left in free pages: an
      // erased person's data must not be readable from the file (GDPR Art. 17).
      this.#db.exec('PRAGMA secure_delete = ON');
    } catch (error) {
      throw new StoreUnavailableError('sqlite', `cannot open SQLite database ${options.path}: ${reason(error)}`, { cause: error });
    }
    this.#gateKey = options.path === ':memory:' ? `:memory:${++memoryDatabases}` : fileKey(options.path);
    this.#gate = openGate(this.#gateKey);
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
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const result = work();
        this.#db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    } catch (error) {
      throw unavailableOr(error, this.path);
    }
  }

  /**
   * Runs a synchronous operation of a store (not of a transaction's view): at
   * once when no async transaction holds the file in this process (the
   * common case costs one check), otherwise after it and everything queued
   * before this call. A read on another connection than the transaction's
   * runs at once. Called from inside the transaction's function, where it
   * would wait forever, it is refused (TransactionUsageError).
   */
  run<T>(work: () => T, access: 'read' | 'write' = 'write'): T | Promise<T> {
    if (this.#gate.free || (access === 'read' && !this.#holdsTransaction)) {
      try {
        return work();
      } catch (error) {
        throw unavailableOr(error, this.path);
      }
    }
    // Callers may be plain functions returning a promise: reject, never throw.
    if (insideTransaction(this.#gate)) return Promise.reject(usedInside());
    return this.#runQueued(work);
  }

  /** An async transaction holds the file in this process (a timer's work should wait for the next turn). */
  get busy(): boolean {
    return !this.#gate.free;
  }

  async #runQueued<T>(work: () => T): Promise<T> {
    await this.#gate.acquire();
    try {
      return work();
    } catch (error) {
      throw unavailableOr(error, this.path);
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
    assertOutsideTransaction(this.#gate);
    await this.#gate.acquire();
    const scope = new TransactionScope(this.#gate);
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      this.#holdsTransaction = true;
      let result: T;
      try {
        result = await runInScope(scope, () => work(scope));
        scope.end();
        if (scope.failure !== undefined) throw scope.failure.error;
        this.#db.exec('COMMIT');
      } catch (error) {
        scope.end();
        if (this.isOpen && this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw unavailableOr(error, this.path);
      }
      return result;
    } finally {
      scope.end();
      this.#holdsTransaction = false;
      this.#gate.release();
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
    closeGate(this.#gateKey);
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

/** One gate per database file in this process, shared by its connections. */
const gates = new Map<string, { readonly gate: Gate; users: number }>();
let memoryDatabases = 0;

function openGate(key: string): Gate {
  const entry = gates.get(key) ?? { gate: new Gate(), users: 0 };
  entry.users++;
  gates.set(key, entry);
  return entry.gate;
}

function closeGate(key: string): void {
  const entry = gates.get(key);
  if (entry !== undefined && --entry.users === 0) gates.delete(key);
}

/** The file's real path once it exists, so two spellings of one file share a gate. */
function fileKey(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * SQLite's primary result codes that mean "the file cannot be used right
 * now", not "this request is wrong": BUSY and LOCKED (another process held
 * it past busy_timeout), READONLY, IOERR, FULL (the disk is full) and
 * CANTOPEN (https://sqlite.org/rescode.html). They become
 * StoreUnavailableError: a 503, and the store's breaker counts them.
 */
const UNAVAILABLE_CODES = new Map<number, string>([
  [5, 'the database is locked by another process'],
  [6, 'a table is locked'],
  [8, 'the database file is read-only'],
  [10, 'a disk I/O error'],
  [13, 'the disk is full'],
  [14, 'the database file cannot be opened'],
]);

/** `error` as StoreUnavailableError when SQLite says the file cannot be used now; otherwise unchanged. */
function unavailableOr(error: unknown, path: string): unknown {
  const { code, errcode } = (error ?? {}) as { code?: unknown; errcode?: unknown };
  if (code !== 'ERR_SQLITE_ERROR' || typeof errcode !== 'number') return error;
  const reason = UNAVAILABLE_CODES.get(errcode & 0xff);
  return reason === undefined ? error : new StoreUnavailableError('sqlite', `SQLite ${path}: ${reason}`, { cause: error });
}
