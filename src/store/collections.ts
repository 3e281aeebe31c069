/**
 * Typed collections over a {@link RecordStore}: one named set of records
 * with a codec (what a record is), secondary indexes (how it is found
 * besides its id) and `mutate` (how it changes under concurrency).
 *
 * A collection holds no state of its own beyond its definition, so it is
 * cheap to make and can be re-bound to another RecordStore with `on`
 * (a transaction's, when the store offers one).
 */
import type { IndexEntries, ListOptions, RecordStore, StoredRecord } from './ports.ts';
import { CodecError, RecordCodecError, type Codec } from './codecs.ts';
import { compareAndSetLoop, type Decision } from './collections-mutate.ts';

/** The values a record is found under in one index (none: undefined, null or []). */
export type IndexKey<T> = (value: T) => string | readonly string[] | null | undefined;

export interface CollectionDefinition<T, I extends string = never> {
  /** The `records` collection name: part of the stored data, never renamed. */
  readonly name: string;
  readonly codec: Codec<T>;
  /**
   * Secondary indexes. An index whose rows earlier builds did not write
   * needs a migration that backfills them (see migration 5).
   */
  readonly indexes?: { readonly [K in I]: IndexKey<T> };
}

export interface MutateOptions<R> {
  /** Conditional writes to try before `exhausted` decides. */
  readonly attempts: number;
  /** Every write lost its race: throw the feature's error (or settle with a result). */
  readonly exhausted: () => R | Promise<R>;
}

export interface MutateOutcome<T, R> {
  readonly result: R;
  /** Whether this call wrote. */
  readonly written: boolean;
  /**
   * The record as written (its new version and data; `updatedAt` as read
   * before an update) when `written`, else as last read (null: absent).
   */
  readonly record: StoredRecord<T> | null;
}

export class Collection<T, I extends string = never> {
  readonly name: string;
  readonly #records: RecordStore;
  readonly #definition: CollectionDefinition<T, I>;

  constructor(records: RecordStore, definition: CollectionDefinition<T, I>) {
    this.#records = records;
    this.#definition = definition;
    this.name = definition.name;
  }

  /** The same collection over another RecordStore (for example a transaction's). */
  on(records: RecordStore): Collection<T, I> {
    return new Collection(records, this.#definition);
  }

  async get(id: string): Promise<StoredRecord<T> | null> {
    const record = await this.#records.get(this.name, id);
    return record === null ? null : this.#decode(record);
  }

  /** Creates the record if `id` is free; false (nothing written) when it exists. */
  async create(id: string, value: T): Promise<boolean> {
    return this.#records.create(this.name, id, this.#encode(value), { index: this.#index(value) });
  }

  /** Compare-and-set on the version: the new version, or null on a conflict or a missing record. */
  async update(id: string, expectedVersion: number, value: T): Promise<number | null> {
    return this.#records.update(this.name, id, expectedVersion, this.#encode(value), { index: this.#index(value) });
  }

  async delete(id: string, expectedVersion?: number): Promise<boolean> {
    return this.#records.delete(this.name, id, expectedVersion);
  }

  /** A page of records in id order. */
  async list(options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    return (await this.#records.list(this.name, options)).map((record) => this.#decode(record));
  }

  /** A page of the records found under `value` in `index`, in id order. */
  async findBy(index: I, value: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    return (await this.#records.findBy(this.name, index, value, options)).map((record) => this.#decode(record));
  }

  /** Every record found under `value` in `index` (for indexes with few records per value: a user's, a client's). */
  async findAllBy(index: I, value: string, pageSize = 200): Promise<StoredRecord<T>[]> {
    const found: StoredRecord<T>[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.findBy(index, value, { limit: pageSize, ...(after !== undefined && { after }) });
      found.push(...page);
      if (page.length < pageSize) return found;
      after = page.at(-1)!.id;
    }
  }

  /**
   * Read, decide, compare-and-set, retry. `decide` sees the current record
   * (null when absent) and answers `write(value, result)`, which creates or
   * updates on the version read, or `keep(result)`, which changes nothing.
   * A lost race reads again and decides again, at most `attempts` times;
   * then `exhausted` decides. `decide` may throw to abort.
   */
  async mutate<R>(
    id: string,
    decide: (current: StoredRecord<T> | null, attempt: number) => Decision<T, R> | Promise<Decision<T, R>>,
    options: MutateOptions<R>,
  ): Promise<MutateOutcome<T, R>> {
    let written: StoredRecord<T> | null = null;
    const outcome = await compareAndSetLoop<StoredRecord<T> | null, T, R>({
      attempts: options.attempts,
      read: () => this.get(id),
      decide,
      write: async (current, value) => {
        const version = current === null ? ((await this.create(id, value)) ? 1 : null) : await this.update(id, current.version, value);
        if (version === null) return false;
        // The store's clock stamps the write; an update keeps the created
        // time read, a create reads its stamps back (once, when it wins).
        const created = current === null ? await this.get(id) : null;
        written = current !== null ? { ...current, version, data: value } : created?.version === version ? created : { collection: this.name, id, version, data: value, createdAt: Number.NaN, updatedAt: Number.NaN };
        return true;
      },
      exhausted: options.exhausted,
    });
    return { result: outcome.result, written: outcome.written, record: outcome.written ? written : (outcome.snapshot ?? null) };
  }

  /**
   * Creates `value` under a fresh id from `newId`, trying `attempts` ids (a
   * collision of random ids is not expected, but `create` never overwrites,
   * so one is survived). Resolves with the id used, or null when every id
   * was taken.
   */
  async createWithFreshId(newId: () => string, value: T, attempts: number): Promise<string | null> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      const id = newId();
      if (await this.create(id, value)) return id;
    }
    return null;
  }

  #decode(record: StoredRecord): StoredRecord<T> {
    let data: T;
    try {
      data = this.#definition.codec.decode(record.data);
    } catch (error) {
      throw error instanceof CodecError ? new RecordCodecError(this.name, 'decode', error) : error;
    }
    return { ...record, data };
  }

  #encode(value: T): unknown {
    try {
      return this.#definition.codec.encode(value);
    } catch (error) {
      throw error instanceof CodecError ? new RecordCodecError(this.name, 'encode', error) : error;
    }
  }

  #index(value: T): IndexEntries | undefined {
    const indexes = this.#definition.indexes;
    if (indexes === undefined) return undefined;
    const entries: Record<string, readonly string[]> = {};
    for (const name of Object.keys(indexes) as I[]) {
      const key = indexes[name](value);
      entries[name] = key === null || key === undefined ? [] : typeof key === 'string' ? [key] : key;
    }
    return entries;
  }
}

export function collection<T, I extends string = never>(records: RecordStore, definition: CollectionDefinition<T, I>): Collection<T, I> {
  return new Collection(records, definition);
}
