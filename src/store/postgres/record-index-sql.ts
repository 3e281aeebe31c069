/**
 * The PostgreSQL statements of records with secondary-index entries
 * (migration 5): each write is one statement, so a record and its entries
 * change together under any caller (a pool connection or a transaction's).
 */
import type { WriteOptions } from '../ports.ts';
import { indexRows } from '../collections-index.ts';

const RECORD_COLUMNS = 'collection, id, version, data, created_at, updated_at';

/*
 * Record writes with their index entries, each one statement. $1 is the
 * collection, $2 the id; the entries arrive as two parallel text arrays.
 */
export const CREATE_SQL = `WITH ins AS (
    INSERT INTO records (${RECORD_COLUMNS}) VALUES ($1, $2, 1, $3::jsonb, $4, $4) ON CONFLICT (collection, id) DO NOTHING RETURNING id
  ), ${indexCtes('ins', '$5', '$6')}
  SELECT count(*)::int AS created FROM ins`;
export const UPDATE_SQL = `WITH upd AS (
    UPDATE records SET version = version + 1, data = $6::jsonb, updated_at = $7
    WHERE collection = $1 AND id = $2 AND version = $3 RETURNING id, version
  ), ${indexCtes('upd', '$4', '$5')}
  SELECT version FROM upd`;
export const DELETE_SQL = `WITH del AS (DELETE FROM records WHERE collection = $1 AND id = $2 RETURNING id),
    idx AS (DELETE FROM record_index WHERE collection = $1 AND id IN (SELECT id FROM del))
  SELECT count(*)::int AS deleted FROM del`;
export const DELETE_VERSIONED_SQL = `WITH del AS (DELETE FROM records WHERE collection = $1 AND id = $2 AND version = $3 RETURNING id),
    idx AS (DELETE FROM record_index WHERE collection = $1 AND id IN (SELECT id FROM del))
  SELECT count(*)::int AS deleted FROM del`;

const FIND_BY = `SELECT r.collection, r.id, r.version, r.data, r.created_at, r.updated_at
  FROM record_index i JOIN records r ON r.collection = i.collection AND r.id = i.id
  WHERE i.collection = $1 AND i.index_name = $2 AND i.index_value = $3`;
export const FIND_BY_SQL = `${FIND_BY} ORDER BY i.id COLLATE "C" LIMIT $4`;
export const FIND_BY_AFTER_SQL = `${FIND_BY} AND i.id COLLATE "C" > $4 ORDER BY i.id COLLATE "C" LIMIT $5`;

/**
 * The index CTEs of a write whose CTE `source` returns the written record's
 * id (no row when the write did not happen). `purge` drops the record's
 * entries that are not in the new set and `idx` adds the missing ones: the
 * two never touch the same row, which one statement could not do safely
 * (both CTEs see the same snapshot). $1 is the collection.
 */
function indexCtes(source: string, names: string, values: string): string {
  return `purge AS (
      DELETE FROM record_index WHERE collection = $1 AND id IN (SELECT id FROM ${source})
      AND (index_name, index_value) NOT IN (SELECT n, v FROM unnest(${names}::text[], ${values}::text[]) AS e(n, v))
    ), idx AS (
      INSERT INTO record_index (collection, index_name, index_value, id)
      SELECT $1, e.n, e.v, ${source}.id FROM ${source}, unnest(${names}::text[], ${values}::text[]) AS e(n, v)
      ON CONFLICT DO NOTHING
    )`;
}

export function indexArrays(options: WriteOptions | undefined): { names: string[]; values: string[] } {
  const rows = indexRows(options?.index);
  return { names: rows.map((row) => row.name), values: rows.map((row) => row.value) };
}
