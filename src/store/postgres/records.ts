import type { Clock, ListOptions, ReadOptions, RecordStore, StoredRecord, WriteOptions } from '../ports.ts';
import { assertExpectedVersion, listLimit } from '../errors.ts';
import { toJson, writeData, type Query, type QueryOptions } from './sql.ts';
import { CREATE_SQL, DELETE_SQL, DELETE_VERSIONED_SQL, FIND_BY_AFTER_SQL, FIND_BY_SQL, UPDATE_SQL, indexArrays } from './record-index-sql.ts';

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

/**
 * The generic records table on PostgreSQL. It only runs statements through
 * the `query` it is given: the pool's for the outer store, one connection's
 * for a transaction's view.
 */
export class PostgresRecordStore implements RecordStore {
  readonly #query: Query;
  readonly #clock: Clock;

  constructor(query: Query, clock: Clock) {
    this.#query = query;
    this.#clock = clock;
  }

  async get<T>(collection: string, id: string, options?: ReadOptions): Promise<StoredRecord<T> | null> {
    if (!storableKey(collection, id)) return null;
    const lock = options?.lock === 'share' ? ' FOR KEY SHARE' : options?.lock === 'update' ? ' FOR UPDATE' : '';
    const { rows } = await this.#query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM records WHERE collection = $1 AND id = $2${lock}`, [collection, id]);
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
    const { rows } = await writeData(() => this.#query<{ created: number }>(CREATE_SQL, [collection, id, toJson(data), now, names, values], PREPARED));
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
      this.#query<{ version: string }>(UPDATE_SQL, [collection, id, expectedVersion, names, values, json, this.#clock()], PREPARED),
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

