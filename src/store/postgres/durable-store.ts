import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { systemClock, type Clock, type AuditLogStore, type DurableStore, type ListOptions, type MigrationReport, type RecordStore, type StoredRecord, type WriteOptions } from '../ports.ts';
import { CREATE_SQL, DELETE_SQL, DELETE_VERSIONED_SQL, FIND_BY_AFTER_SQL, FIND_BY_SQL, UPDATE_SQL, indexArrays, statementName } from './record-index-sql.ts';
import { StoreSchemaError, StoreUnavailableError, assertExpectedVersion, listLimit } from '../errors.ts';
import { migrationChecksum, pendingMigrations, type AppliedRow } from '../migrations/index.ts';
import { PostgresAuditLog } from './audit-log.ts';

export interface PostgresDurableStoreOptions {
  readonly url: string; // postgres://user[:pass]@host:port/db
  /** when set, every pooled connection uses this schema (search_path); the schema must already exist */
  readonly schema?: string;
  readonly clock?: () => number; // ms since epoch for created_at/updated_at; default Date.now
  readonly poolSize?: number; // default 10
  readonly connectTimeoutMs?: number; // default 5000
}

const DRIVER = 'postgres';
const DEFAULT_POOL_SIZE = 10;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
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
  const pool = new pg.Pool({
    connectionString: options.url,
    max: positiveInteger(options.poolSize ?? DEFAULT_POOL_SIZE, 'poolSize'),
    connectionTimeoutMillis: positiveInteger(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs'),
    application_name: 'portcullis',
    // A startup option rather than a SET after connect: it is in force before
    // the first statement on every pooled connection, with no race to lose.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle client whose server goes away emits 'error' on the pool; without a
  // listener Node would crash the process. The next query reports the outage.
  pool.on('error', ignoreIdleClientError);

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
  return new PostgresDurableStore(pool, target, options.clock ?? systemClock);
}

class PostgresDurableStore implements DurableStore {
  readonly driver = DRIVER;
  readonly records: RecordStore;
  readonly auditLog: AuditLogStore;
  readonly #pool: Pool;
  readonly #target: string;
  readonly #clock: Clock;
  #closing: Promise<void> | undefined;

  constructor(pool: Pool, target: string, clock: Clock) {
    this.#pool = pool;
    this.#target = target;
    this.#clock = clock;
    this.records = new PostgresRecordStore((sql, params, options) => this.#query(sql, params, options), clock);
    this.auditLog = new PostgresAuditLog(
      (sql, params) => this.#query(sql, params),
      (work) => this.#transaction(work),
    );
  }

  async migrate(): Promise<MigrationReport> {
    return this.#transaction(async (client) => {
      await lockMigrations(client);
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

  async close(): Promise<void> {
    // pg throws when a pool is ended twice; callers may close from several
    // shutdown paths, so the first call's promise answers every later one.
    this.#closing ??= this.#pool.end();
    return this.#closing;
  }

  async #query<R extends QueryResultRow>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    this.#assertOpen();
    try {
      return await this.#pool.query<R>(options?.prepared === true ? { name: statementName(sql), text: sql, values: params as unknown[] } : { text: sql, values: params as unknown[] | undefined });
    } catch (error) {
      throw this.#translate(error);
    }
  }

  async #transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    this.#assertOpen();
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.#translate(error);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // A failed ROLLBACK means the connection itself is gone: destroy it
      // instead of returning it to the pool.
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw this.#translate(error);
    } finally {
      client.release(broken);
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

interface QueryOptions {
  /**
   * Run as a named prepared statement, planned once per connection: for the
   * record writes whose CTEs would otherwise be planned again on every call.
   */
  readonly prepared?: boolean;
}

type Query = <R extends QueryResultRow>(sql: string, params?: readonly unknown[], options?: QueryOptions) => Promise<QueryResult<R>>;

const PREPARED: QueryOptions = { prepared: true };

interface RecordRow {
  collection: string;
  id: string;
  version: string;
  data: unknown;
  created_at: string;
  updated_at: string;
}

const RECORD_COLUMNS = 'collection, id, version, data, created_at, updated_at';


class PostgresRecordStore implements RecordStore {
  readonly #query: Query;
  readonly #clock: Clock;

  constructor(query: Query, clock: Clock) {
    this.#query = query;
    this.#clock = clock;
  }

  async get<T>(collection: string, id: string): Promise<StoredRecord<T> | null> {
    if (!storableKey(collection, id)) return null;
    const { rows } = await this.#query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM records WHERE collection = $1 AND id = $2`, [collection, id]);
    const row = rows[0];
    return row === undefined ? null : toRecord<T>(row);
  }

  async create(collection: string, id: string, data: unknown, options?: WriteOptions): Promise<boolean> {
    if (!storableKey(collection, id)) throw new TypeError('record collection and id cannot contain NUL characters in PostgreSQL');
    const { names, values } = indexArrays(options);
    const now = this.#clock();
    // ON CONFLICT DO NOTHING makes "insert if absent" one statement: of racing
    // creates, the primary key lets exactly one row in, with no error for the
    // rest. The index entries are written by the same statement, so they
    // exist exactly when the record does; `purge` drops entries a racing
    // delete of an earlier record with this id may have left behind.
    const { rows } = await writeData(() =>
      this.#query<{ created: number }>(
        CREATE_SQL,
        [collection, id, toJson(data), now, names, values],
        PREPARED,
      ),
    );
    return rows[0]?.created === 1;
  }

  async update(collection: string, id: string, expectedVersion: number, data: unknown, options?: WriteOptions): Promise<number | null> {
    assertExpectedVersion(expectedVersion);
    const json = toJson(data);
    const { names, values } = indexArrays(options);
    if (!storableKey(collection, id)) return null;
    // Under READ COMMITTED a racing UPDATE waits for the row lock and then
    // re-checks `version` against the committed row, so only one writer wins;
    // the index CTEs act only through `upd`, so only the winner's entries land.
    const { rows } = await writeData(() =>
      this.#query<{ version: string }>(
        UPDATE_SQL,
        [collection, id, expectedVersion, names, values, json, this.#clock()],
        PREPARED,
      ),
    );
    const row = rows[0];
    return row === undefined ? null : Number(row.version);
  }

  async delete(collection: string, id: string, expectedVersion?: number): Promise<boolean> {
    if (expectedVersion !== undefined) assertExpectedVersion(expectedVersion);
    if (!storableKey(collection, id)) return false;
    // The entries go with the record, in the same statement.
    const { rows } =
      expectedVersion === undefined
        ? await this.#query<{ deleted: number }>(DELETE_SQL, [collection, id], PREPARED)
        : await this.#query<{ deleted: number }>(DELETE_VERSIONED_SQL, [collection, id, expectedVersion], PREPARED);
    return rows[0]?.deleted === 1;
  }

  async findBy<T>(collection: string, index: string, value: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const limit = listLimit(options.limit);
    if (!storableKey(collection, index, value)) return [];
    const { rows } =
      options.after === undefined
        ? await this.#query<RecordRow>(FIND_BY_SQL, [collection, index, value, limit])
        : await this.#query<RecordRow>(FIND_BY_AFTER_SQL, [collection, index, value, storableAfter(options.after), limit]);
    return rows.map((row) => toRecord<T>(row));
  }

  async list<T>(collection: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const limit = listLimit(options.limit);
    if (!storableKey(collection)) return [];
    // COLLATE "C" orders by code point, as SQLite's BINARY does, so pages come
    // in the same order whatever collation the database was created with.
    const { rows } =
      options.after === undefined
        ? await this.#query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM records WHERE collection = $1 ORDER BY id COLLATE "C" LIMIT $2`, [
            collection,
            limit,
          ])
        : await this.#query<RecordRow>(
            `SELECT ${RECORD_COLUMNS} FROM records WHERE collection = $1 AND id COLLATE "C" > $2 ORDER BY id COLLATE "C" LIMIT $3`,
            [collection, storableAfter(options.after), limit],
          );
    return rows.map((row) => toRecord<T>(row));
  }
}


/**
 * Two instances on one schema must serialise their migrations; test runs in
 * different schemas of one database must not. So the advisory lock key is
 * derived from the schema the connection actually writes to.
 */
async function lockMigrations(client: PoolClient): Promise<void> {
  const { rows } = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  const schema = rows[0]?.schema ?? null;
  if (schema === null) throw new StoreSchemaError('no PostgreSQL schema is selected (the search_path names no existing schema)');
  await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(schema)]);
}

/** A stable signed 64-bit key (as a decimal string) for one schema's migrations. */
function migrationLockKey(schema: string): string {
  return createHash('sha256').update(`portcullis:migrations:${schema}`).digest().readBigInt64BE(0).toString();
}

function toRecord<T>(row: RecordRow): StoredRecord<T> {
  // bigint columns arrive as strings (pg will not guess at precision); every
  // value we store is a safe integer, so Number is exact.
  return {
    collection: row.collection,
    id: row.id,
    version: Number(row.version),
    data: row.data as T,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/**
 * Serialised here, not by pg: pg would turn a top-level array into a
 * PostgreSQL array literal instead of JSON.
 */
function toJson(data: unknown): string {
  const json = JSON.stringify(data);
  if (json === undefined) throw new TypeError('record data must be JSON-serialisable');
  return json;
}

/** jsonb refuses some valid JSON text (\u0000, lone surrogates): that is the caller's data, not an outage. */
async function writeData<R>(write: () => Promise<R>): Promise<R> {
  try {
    return await write();
  } catch (error) {
    const state = sqlState(error);
    if (state === '22P05' || state === '22P02') {
      throw new TypeError('record data cannot be stored as PostgreSQL jsonb (it contains \\u0000 or an unpaired surrogate)', { cause: error });
    }
    throw error;
  }
}

/** PostgreSQL text cannot hold NUL, so no stored record has such a key. */
function storableKey(...parts: string[]): boolean {
  return parts.every((part) => !part.includes('\0'));
}

/**
 * No stored id contains NUL, so "ids after p + NUL + rest" are exactly the
 * ids after p (code point order): truncating keeps the page boundary exact.
 */
function storableAfter(after: string): string {
  const nul = after.indexOf('\0');
  return nul === -1 ? after : after.slice(0, nul);
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

function sqlState(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? error.code : undefined;
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
  return /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(message);
}

function ignoreIdleClientError(): void {
  // Deliberately empty: see the listener's registration.
}

async function endQuietly(pool: Pool): Promise<void> {
  await pool.end().catch(() => {});
}
