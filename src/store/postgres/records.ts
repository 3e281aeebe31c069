import type { Clock, ListOptions, RecordStore, StoredRecord } from '../ports.ts';
import { assertExpectedVersion, listLimit } from '../errors.ts';
import { toJson, writeData, type Query } from './sql.ts';

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

  async get<T>(collection: string, id: string): Promise<StoredRecord<T> | null> {
    if (!storableKey(collection, id)) return null;
    const { rows } = await this.#query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM records WHERE collection = $1 AND id = $2`, [collection, id]);
    const row = rows[0];
    return row === undefined ? null : toRecord<T>(row);
  }

  async create(collection: string, id: string, data: unknown): Promise<boolean> {
    if (!storableKey(collection, id)) throw new TypeError('record collection and id cannot contain NUL characters in PostgreSQL');
    const now = this.#clock();
    // ON CONFLICT DO NOTHING makes "insert if absent" one statement: of racing
    // creates, the primary key lets exactly one row in, with no error for the rest.
    const result = await writeData(() =>
      this.#query(
        `INSERT INTO records (${RECORD_COLUMNS}) VALUES ($1, $2, 1, $3::jsonb, $4, $4) ON CONFLICT (collection, id) DO NOTHING`,
        [collection, id, toJson(data), now],
      ),
    );
    return result.rowCount === 1;
  }

  async update(collection: string, id: string, expectedVersion: number, data: unknown): Promise<number | null> {
    assertExpectedVersion(expectedVersion);
    const json = toJson(data);
    if (!storableKey(collection, id)) return null;
    // Under READ COMMITTED a racing UPDATE waits for the row lock and then
    // re-checks `version` against the committed row, so only one writer wins.
    const { rows } = await writeData(() =>
      this.#query<{ version: string }>(
        'UPDATE records SET version = version + 1, data = $4::jsonb, updated_at = $5 WHERE collection = $1 AND id = $2 AND version = $3 RETURNING version',
        [collection, id, expectedVersion, json, this.#clock()],
      ),
    );
    const row = rows[0];
    return row === undefined ? null : Number(row.version);
  }

  async delete(collection: string, id: string, expectedVersion?: number): Promise<boolean> {
    if (expectedVersion !== undefined) assertExpectedVersion(expectedVersion);
    if (!storableKey(collection, id)) return false;
    const result =
      expectedVersion === undefined
        ? await this.#query('DELETE FROM records WHERE collection = $1 AND id = $2', [collection, id])
        : await this.#query('DELETE FROM records WHERE collection = $1 AND id = $2 AND version = $3', [collection, id, expectedVersion]);
    return result.rowCount === 1;
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

