import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ClientBase, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { StoreSchemaError } from '../errors.ts';

/** Runs one statement: on the pool, or on a transaction's connection. */
export type Query = <R extends QueryResultRow>(sql: string, params?: readonly unknown[], options?: QueryOptions) => Promise<QueryResult<R>>;

export interface QueryOptions {
  /**
   * Run as a named prepared statement, planned once per connection: for the
   * record writes whose CTEs (record-index-sql.ts) would otherwise be planned
   * again on every call.
   */
  readonly prepared?: boolean;
}

/** What pg runs for one statement; a prepared one is named after its text, so the same text gets the same name on every connection. */
export function queryConfig(sql: string, params: readonly unknown[] | undefined, options: QueryOptions | undefined): QueryConfig {
  return options?.prepared === true ? { name: statementName(sql), text: sql, values: params as unknown[] } : { text: sql, values: params as unknown[] | undefined };
}

const statementNames = new Map<string, string>();
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `portcullis_${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`;
    statementNames.set(sql, name);
  }
  return name;
}

/**
 * Serialised here, not by pg: pg would turn a top-level array into a
 * PostgreSQL array literal instead of JSON.
 */
export function toJson(data: unknown): string {
  const json = JSON.stringify(data);
  if (json === undefined) throw new TypeError('record data must be JSON-serialisable');
  return json;
}

/** jsonb refuses some valid JSON text (\u0000, lone surrogates): that is the caller's data, not an outage. */
export async function writeData<R>(write: () => Promise<R>): Promise<R> {
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


/**
 * pg's client-side query_timeout ran out. The statement may still be on the
 * wire and pg waits for its answer, so the connection is no longer usable
 * (node-postgres #3399): whoever holds it must destroy it.
 */
export function isQueryTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}

export function sqlState(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? error.code : undefined;
}

/**
 * A stable signed 64-bit advisory lock key (as a decimal string) for one
 * purpose in the schema this connection writes to. Two instances on one
 * schema must serialise (migrations) or exclude each other (the outbox
 * worker); test runs in different schemas of one database must not.
 */
export async function schemaLockKey(client: ClientBase, purpose: 'migrations' | 'outbox'): Promise<string> {
  const { rows } = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  const schema = rows[0]?.schema ?? null;
  if (schema === null) throw new StoreSchemaError('no PostgreSQL schema is selected (the search_path names no existing schema)');
  return createHash('sha256').update(`portcullis:${purpose}:${schema}`).digest().readBigInt64BE(0).toString();
}
