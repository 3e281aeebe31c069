/**
 * The rows a record's secondary-index entries become, shared by the drivers
 * so that SQLite and PostgreSQL accept and refuse the same entries.
 */
import type { IndexEntries } from './ports.ts';

export interface IndexRow {
  readonly name: string;
  readonly value: string;
}

/** Index names are identifiers chosen in code, never input. */
const INDEX_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
/** Values are ids (user, client, ...); the bound keeps an index row small. */
const MAX_INDEX_VALUE_LENGTH = 512;

/**
 * Distinct (name, value) pairs of `entries`, validated. NUL is refused on
 * every driver because PostgreSQL text cannot hold it: an entry that one
 * driver would store and the other refuse would make the drivers drift.
 */
export function indexRows(entries: IndexEntries | undefined): IndexRow[] {
  if (entries === undefined) return [];
  const rows: IndexRow[] = [];
  const seen = new Set<string>();
  for (const [name, values] of Object.entries(entries)) {
    if (!INDEX_NAME.test(name)) throw new TypeError(`index name must match ${String(INDEX_NAME)}, got ${JSON.stringify(name.slice(0, 70))}`);
    if (!Array.isArray(values)) throw new TypeError(`index ${name}: values must be an array of strings`);
    for (const value of values as readonly unknown[]) {
      if (typeof value !== 'string' || value.length === 0 || value.length > MAX_INDEX_VALUE_LENGTH || value.includes('\0')) {
        throw new TypeError(`index ${name}: each value must be a non-empty string of at most ${MAX_INDEX_VALUE_LENGTH} characters without NUL`);
      }
      const key = `${name}\0${value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      rows.push({ name, value });
    }
  }
  return rows;
}
