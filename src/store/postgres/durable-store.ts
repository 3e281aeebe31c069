import pg from 'pg';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { systemClock, type Clock, type AuditLogStore, type DurableStore, type DurableTransaction, type MigrationReport, type OutboxStore, type RecordStore } from '../ports.ts';
import { StoreSchemaError, StoreUnavailableError } from '../errors.ts';
import { migrationChecksum, pendingMigrations, type AppliedRow } from '../migrations/index.ts';
import { TransactionScope, assertOutsideTransaction, runInScope, scopedView } from '../transaction-scope.ts';
import { PostgresAuditLog } from './audit-log.ts';
import { PostgresOutboxStore, PostgresOutboxWriter } from './outbox.ts';
import { PostgresRecordStore } from './records.ts';
import { isQueryTimeout, queryConfig, schemaLockKey, sqlState, type Query, type QueryOptions } from './sql.ts';

export interface PostgresDurableStoreOptions {
  readonly url: string; // postgres://user[:pass]@host:port/db
  /** when set, every pooled connection uses this schema (search_path); the schema must already exist */
  readonly schema?: string;
  readonly clock?: () => number; // ms since epoch for created_at/updated_at; default Date.now
  readonly poolSize?: number; // default 10
  /** Longest wait for a pooled connection (a new one, or a free one when all are busy). Default 5000. */
  readonly connectTimeoutMs?: number;
  /**
   * Longest wait for the answer to one statement (client-side, so it holds
   * when the network, not the server, is what stopped answering). A statement
   * that runs out fails with StoreUnavailableError and its connection is
   * destroyed, never pooled again. Migrations are not bounded by it. Default 5000.
   */
  readonly queryTimeoutMs?: number;
}

const DRIVER = 'postgres';
const DEFAULT_POOL_SIZE = 10;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_QUERY_TIMEOUT_MS = 5000;
/** The schema name goes into a startup option and a lock key, never through quoting: only plain identifiers. */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS portcullis_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at bigint NOT NULL
)`;

/**
 * Opens a pool and proves the server answers before returning, so a
 * misconfigured deployment fails at start rather than on its first request.
 */
export async function openPostgresDurableStore(options: PostgresDurableStoreOptions): Promise<DurableStore> {
  const target = describeTarget(options.url);
  const schema = options.schema === undefined ? undefined : checkSchemaName(options.schema);
  const connection: pg.ClientConfig = {
    connectionString: options.url,
    connectionTimeoutMillis: positiveInteger(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs'),
    application_name: 'portcullis',
    // A startup option rather than a SET after connect: it is in force before
    // the first statement on every pooled connection, with no race to lose.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  };
  const pool = new pg.Pool({
    ...connection,
    max: positiveInteger(options.poolSize ?? DEFAULT_POOL_SIZE, 'poolSize'),
    // Client-side: bounds a statement whose answer never comes (a partition,
    // a black-holed route), which a server-side statement_timeout cannot.
    query_timeout: positiveInteger(options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS, 'queryTimeoutMs'),
  });
  // An idle client whose server goes away emits 'error' on the pool; without a
  // listener Node would crash the process. The next query reports the outage.
  pool.on('error', ignoreIdleClientError);
  // A checked-out client whose server goes away emits 'error' on the client
  // itself, and pg-pool listens only while it is idle: a transaction holding
  // its connection between statements (its work awaits other things) would
  // crash the process when PostgreSQL stops (issue 16, test/faults/crash).
  // Every client gets a listener for its whole life; the failed statement,
  // or the next one, reports the outage, and release(true) drops the client.
  pool.on('connect', (client) => client.on('error', ignoreIdleClientError));

  let currentSchema: string | null;
  try {
    const { rows } = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
    currentSchema = rows[0]?.schema ?? null;
  } catch (error) {
    await endQuietly(pool);
    throw new StoreUnavailableError(DRIVER, `cannot reach PostgreSQL at ${target}: ${shortReason(error, options.url)}`, { cause: error });
  }
  if (schema !== undefined && currentSchema !== schema) {
    await endQuietly(pool);
    // null: the schema does not exist; anything else: an `options` parameter
    // in the URL replaced our search_path, and we would write elsewhere.
    throw new StoreSchemaError(
      currentSchema === null
        ? `PostgreSQL schema "${schema}" does not exist in ${target}; create it first`
        : `PostgreSQL connection options override the search_path: expected schema "${schema}", got "${currentSchema}"`,
    );
  }
  return new PostgresDurableStore(pool, connection, target, options.clock ?? systemClock);
}

class PostgresDurableStore implements DurableStore {
  readonly driver = DRIVER;
  readonly records: RecordStore;
  readonly auditLog: AuditLogStore;
  readonly outbox: OutboxStore;
  readonly #pool: Pool;
  /** How to open a connection outside the pool (migrations), without the pool's query timeout. */
  readonly #connection: pg.ClientConfig;
  readonly #target: string;
  readonly #clock: Clock;
  #closing: Promise<void> | undefined;

  constructor(pool: Pool, connection: pg.ClientConfig, target: string, clock: Clock) {
    this.#pool = pool;
    this.#connection = connection;
    this.#target = target;
    this.#clock = clock;
    this.records = new PostgresRecordStore((sql, params, options) => this.#query(sql, params, options), clock);
    this.auditLog = new PostgresAuditLog(
      (sql, params) => this.#query(sql, params),
      (work) => this.#transaction(work),
    );
    this.outbox = new PostgresOutboxStore(
      (sql, params) => this.#query(sql, params),
      () => this.#checkout(),
      (error) => this.#translate(error),
    );
  }

  /**
   * One pooled connection, BEGIN ... COMMIT (READ COMMITTED). `fn`'s own
   * error is rethrown as it is; the store's failures are translated as
   * everywhere else.
   */
  async transaction<T>(fn: (tx: DurableTransaction) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this.#pool);
    const client = await this.#checkout();
    const scope = new TransactionScope(this.#pool);
    // A connection that lost its server, or whose statement ran out of time
    // (pg then still waits for that statement's answer, and every later
    // statement would queue behind it: node-postgres #3399), is destroyed,
    // never pooled again; no ROLLBACK is sent on it, since it would only wait
    // too (the server rolls back when the session ends).
    let broken = false;
    const note = (error: unknown) => {
      if (isQueryTimeout(error) || isConnectionFailure(error)) broken = true;
    };
    const lost = () => {
      broken = true;
    };
    // Checked out, a client has no pool listener: its socket's 'error' must not crash the process.
    client.on('error', lost);
    const rollback = () =>
      broken
        ? Promise.resolve()
        : client.query('ROLLBACK').catch(() => {
            broken = true; // the connection itself is gone: destroy it, do not pool it
          });
    try {
      try {
        await client.query('BEGIN');
      } catch (error) {
        broken = true;
        throw this.#translate(error);
      }
      let result: T;
      try {
        result = await runInScope(scope, () => fn(this.#view(client, scope, note)));
      } catch (error) {
        scope.end();
        await rollback();
        throw error;
      }
      scope.end();
      if (scope.failure !== undefined) {
        await rollback();
        throw scope.failure.error;
      }
      let committed: QueryResult;
      try {
        committed = await client.query('COMMIT');
      } catch (error) {
        note(error);
        await rollback();
        throw this.#translate(error);
      }
      // PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK, not an error.
      if (committed.command === 'ROLLBACK') throw new Error('the transaction was aborted by a failed statement and rolled back');
      return result;
    } finally {
      scope.end();
      client.off('error', lost);
      client.release(broken);
    }
  }

  #view(client: PoolClient, scope: TransactionScope, note: (error: unknown) => void): DurableTransaction {
    const query: Query = async (sql, params, options) => {
      try {
        return await client.query(queryConfig(sql, params, options));
      } catch (error) {
        note(error);
        throw this.#translate(error);
      }
    };
    return scopedView(scope, { records: new PostgresRecordStore(query, this.#clock), outbox: new PostgresOutboxWriter(query, this.#clock) });
  }

  async #checkout(): Promise<PoolClient> {
    this.#assertOpen();
    try {
      return await this.#pool.connect();
    } catch (error) {
      throw this.#translate(error);
    }
  }

  /**
   * On a connection of its own, outside the pool and without the per-statement
   * timeout: a migration may rightly run for minutes.
   */
  async migrate(): Promise<MigrationReport> {
    this.#assertOpen();
    assertOutsideTransaction(this.#pool);
    const client = new pg.Client(this.#connection);
    client.on('error', ignoreIdleClientError);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => {});
      throw this.#translate(error);
    }
    try {
      return await this.#migrateOn(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async #migrateOn(client: pg.ClientBase): Promise<MigrationReport> {
    return this.#inTransaction(client, async () => {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [await schemaLockKey(client, 'migrations')]);
      await client.query(MIGRATIONS_TABLE);
      const { rows: applied } = await client.query<AppliedRow>('SELECT version, checksum FROM portcullis_migrations ORDER BY version');
      const pending = pendingMigrations(applied, 'postgres');
      for (const migration of pending) {
        // No parameters: pg then uses the simple protocol, which accepts a
        // migration made of several statements.
        await client.query(migration.postgres);
        await client.query('INSERT INTO portcullis_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)', [
          migration.version,
          migration.name,
          migrationChecksum(migration, 'postgres'),
          this.#clock(),
        ]);
      }
      const currentVersion = Math.max(0, ...applied.map((row) => row.version), ...pending.map((m) => m.version));
      return { applied: pending.map(({ version, name }) => ({ version, name })), currentVersion };
    });
  }

  async schemaVersion(): Promise<number> {
    try {
      const { rows } = await this.#query<{ version: number | null }>('SELECT max(version) AS version FROM portcullis_migrations');
      return rows[0]?.version ?? 0;
    } catch (error) {
      // undefined_table: nothing has been migrated in this schema yet.
      if (sqlState(error) === '42P01') return 0;
      throw error;
    }
  }

  async ping(): Promise<void> {
    await this.#query('SELECT 1');
  }

  async reclaim(): Promise<void> {
    // Dead rows are invisible to every query; (auto)vacuum reclaims their space (see the port).
  }

  async close(): Promise<void> {
    // pg throws when a pool is ended twice; callers may close from several
    // shutdown paths, so the first call's promise answers every later one.
    this.#closing ??= this.#pool.end();
    return this.#closing;
  }

  async #query<R extends QueryResultRow>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    this.#assertOpen();
    assertOutsideTransaction(this.#pool);
    try {
      return await this.#pool.query<R>(queryConfig(sql, params, options));
    } catch (error) {
      throw this.#translate(error);
    }
  }

  async #transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this.#pool);
    const client = await this.#checkout();
    const lost = () => undefined; // the failing statement reports it
    client.on('error', lost);
    let broken = false;
    try {
      return await this.#inTransaction(client, () => work(client), () => {
        broken = true;
      });
    } finally {
      client.off('error', lost);
      client.release(broken);
    }
  }

  /** BEGIN, `work`, COMMIT on `client`; `broken` is told when the connection must not be used again. */
  async #inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>, broken: () => void = () => undefined): Promise<T> {
    try {
      await client.query('BEGIN');
      const result = await work();
      await client.query('COMMIT');
      return result;
    } catch (error) {
      if (isQueryTimeout(error) || isConnectionFailure(error)) {
        // Stuck behind its unanswered statement, or gone: a ROLLBACK would
        // only wait; destroying the connection ends the transaction.
        broken();
      } else {
        // A failed ROLLBACK means the connection itself is gone: destroy it
        // instead of returning it to the pool.
        await client.query('ROLLBACK').catch(broken);
      }
      throw this.#translate(error);
    }
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new StoreUnavailableError(DRIVER, `the PostgreSQL store for ${this.#target} is closed`);
  }

  /** Outages become StoreUnavailableError; everything else (schema refusals, bugs) passes through. */
  #translate(error: unknown): unknown {
    if (error instanceof StoreSchemaError || error instanceof StoreUnavailableError || !isConnectionFailure(error)) return error;
    return new StoreUnavailableError(DRIVER, `lost PostgreSQL at ${this.#target}: ${shortReason(error)}`, { cause: error });
  }
}

function checkSchemaName(schema: string): string {
  if (!SCHEMA_PATTERN.test(schema)) throw new TypeError('PostgreSQL schema must be a plain lowercase identifier (a-z, 0-9, _; at most 63 characters)');
  return schema;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

/** host:port/db for messages: never the user's password. */
function describeTarget(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError('PostgreSQL URL must look like postgres://user[:password]@host:port/database');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new TypeError('PostgreSQL URL must start with postgres:// or postgresql://');
  }
  const host = parsed.hostname || parsed.searchParams.get('host') || 'localhost';
  const database = safeDecode(parsed.pathname.slice(1)) || safeDecode(parsed.username) || '';
  return `${host}:${parsed.port || '5432'}/${database}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
};

/**
 * One line an operator can act on. Server messages (unknown database or
 * role, failed authentication) name at most the user and database; the
 * password is scrubbed anyway in case a library ever echoes its configuration.
 */
function shortReason(error: unknown, url?: string): string {
  const code = errorCode(error);
  let reason: string;
  if (code !== undefined && NETWORK_REASONS[code] !== undefined) reason = NETWORK_REASONS[code];
  else if (error instanceof Error && error.message !== '') reason = error.message.split('\n')[0] ?? error.message;
  else reason = code ?? 'unknown error';
  const password = url === undefined ? '' : passwordOf(url);
  if (password !== '') reason = reason.split(password).join('****');
  return reason.length > 200 ? `${reason.slice(0, 197)}...` : reason;
}

function passwordOf(url: string): string {
  try {
    return safeDecode(new URL(url).password);
  } catch {
    return '';
  }
}

/** Node network errors and SQLSTATEs share `code`; an AggregateError (IPv4 + IPv6 attempts) carries it too. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}

/**
 * SQLSTATE class 08 (connection exception), 57P01-57P03 (server shutting
 * down or starting), 53300 (too many connections), the network errno codes,
 * and pg's own messages for a dropped or timed-out connection.
 */
function isConnectionFailure(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined) {
    if (code in NETWORK_REASONS || code === 'EPIPE') return true;
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
  }
  const message = error instanceof Error ? error.message : '';
  return isQueryTimeout(error) || /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(message);
}

function ignoreIdleClientError(): void {
  // Deliberately empty: see the listeners' registration.
}

async function endQuietly(pool: Pool): Promise<void> {
  await pool.end().catch(() => {});
}
