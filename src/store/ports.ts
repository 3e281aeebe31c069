/**
 * Storage ports: the only way the rest of Portcullis reaches persisted state.
 *
 * Two families, because they have different promises:
 *
 * - {@link DurableStore}: records that must survive restarts and are the
 *   system of record (users, clients, grants, keys, audit entries). Drivers:
 *   `sqlite` (embedded default) and `postgres` (scale-out).
 * - {@link HotStore}: small, expiring values that are read and written on the
 *   hot path (sessions, revocation lists, rate-limit counters, replay caches,
 *   one-time codes). Drivers: `memory`, `sqlite` and `redis`.
 *
 * Features do not call {@link RecordStore} with casts: they reach records
 * through typed collections (collections.ts), each with a codec, its
 * secondary indexes and `mutate`, the one compare-and-set loop.
 *
 * Every driver runs the same contract suite (test/store/*.contract.ts); the
 * promises below are written in MUST terms so that the drivers cannot drift.
 */

import type { OutboxStore, OutboxWriter } from './outbox-ports.ts';
export type * from './outbox-ports.ts';

/** Milliseconds since the Unix epoch. Injected so tests can freeze time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export type DurableDriverName = 'sqlite' | 'postgres';
export type HotDriverName = 'memory' | 'sqlite' | 'redis';

/** A versioned JSON document in a durable collection. */
export interface StoredRecord<T = unknown> {
  readonly collection: string;
  readonly id: string;
  /** Starts at 1 on create and grows by exactly 1 on every successful update. */
  readonly version: number;
  readonly data: T;
  /** Milliseconds since the epoch, set by the store's clock. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ListOptions {
  /** Return only ids strictly greater than this one (keyset pagination). */
  readonly after?: string;
  /** At most this many records; drivers MUST cap it at 1000. */
  readonly limit?: number;
}

/**
 * Secondary-index entries of one record: index name -> the values the record
 * is found under (a record may have several values, or none, per index).
 * Names and values are plain strings; an empty list means "not indexed".
 */
export type IndexEntries = Readonly<Record<string, readonly string[]>>;

export interface WriteOptions {
  /**
   * The record's complete index entries after this write. The store MUST
   * replace the record's previous entries with exactly these, in the same
   * atomic operation as the record write (so no reader ever sees the new
   * data under old entries, nor the reverse); omitted means "no entries".
   */
  readonly index?: IndexEntries;
}

/**
 * Generic versioned documents, the durable store's general-purpose table.
 * Later features add their own tables through migrations; this one carries
 * what needs no schema of its own.
 *
 * Contract:
 * - `create` MUST insert only if no record with (collection, id) exists, as
 *   one atomic operation: of any number of concurrent creates of the same id,
 *   across processes sharing the database, exactly one returns `true`.
 * - `update` MUST be a compare-and-set on `version`: it writes only when the
 *   stored version equals `expectedVersion`, and of any number of concurrent
 *   updates from the same version exactly one succeeds.
 * - `delete` with `expectedVersion` is conditional in the same way.
 * - Data is stored as JSON: what `get` returns deep-equals what was written.
 */
export interface ReadOptions {
  /**
   * Inside a transaction, a row lock held until it ends (PostgreSQL; SQLite
   * runs one writing transaction at a time, so there it changes nothing;
   * outside a transaction it is a plain read):
   * - `share`: the record cannot be deleted meanwhile; a transaction that
   *   deletes (or locks it for update) waits for this one, and this read
   *   waits for one that already did and then sees the outcome. Ordinary
   *   updates of the record do not wait (`FOR KEY SHARE`).
   * - `update`: this transaction is about to change or delete the record;
   *   every other lock waits (`FOR UPDATE`). Two transactions that both lock
   *   for update take turns, where two share locks followed by deletes
   *   would deadlock.
   */
  readonly lock?: 'share' | 'update';
}

export interface RecordStore {
  get<T = unknown>(collection: string, id: string, options?: ReadOptions): Promise<StoredRecord<T> | null>;
  /** Returns false, and changes nothing, when the record already exists. */
  create(collection: string, id: string, data: unknown, options?: WriteOptions): Promise<boolean>;
  /** Returns the new version, or null (and changes nothing) on a version mismatch or a missing record. */
  update(collection: string, id: string, expectedVersion: number, data: unknown, options?: WriteOptions): Promise<number | null>;
  /** Returns whether a record was deleted. */
  delete(collection: string, id: string, expectedVersion?: number): Promise<boolean>;
  /** Records of one collection in ascending id order. */
  list<T = unknown>(collection: string, options?: ListOptions): Promise<StoredRecord<T>[]>;
  /**
   * Records of one collection that were written with `value` among their
   * entries for `index`, in ascending id order (keyset pagination as
   * `list`). A deleted record MUST NOT be returned; the entries are dropped
   * with it, in the same atomic operation.
   */
  findBy<T = unknown>(collection: string, index: string, value: string, options?: ListOptions): Promise<StoredRecord<T>[]>;
}

export interface AppliedMigration {
  readonly version: number;
  readonly name: string;
}

export interface MigrationReport {
  /** Migrations this call applied (empty when the schema was already current). */
  readonly applied: readonly AppliedMigration[];
  /** The schema version after the call. */
  readonly currentVersion: number;
}

/**
 * Contract:
 * - `migrate` MUST apply each pending migration exactly once, in version
 *   order, even when several processes call it at the same moment (Postgres:
 *   an advisory lock held for the transaction; SQLite: an exclusive
 *   transaction). A database whose schema is newer than this build, or whose
 *   applied migration differs from this build's (checksum), MUST be refused
 *   with a {@link import('./errors.ts').StoreSchemaError}.
 * - `ping` MUST resolve only when the database answers a query.
 * - `close` MUST release every connection; it is safe to call twice.
 */
export interface DurableStore {
  readonly driver: DurableDriverName;
  readonly records: RecordStore;
  readonly auditLog: AuditLogStore;
  /** The outbox's delivery side (the writing side is `transaction`'s `tx.outbox`). */
  readonly outbox: OutboxStore;
  /** Runs `fn` in one transaction; see {@link DurableTransactionRunner}. */
  transaction<T>(fn: (tx: DurableTransaction) => Promise<T>): Promise<T>;
  migrate(): Promise<MigrationReport>;
  /** The highest applied migration version (0 for an empty database). */
  schemaVersion(): Promise<number>;
  ping(): Promise<void>;
  /**
   * Makes deleted data unrecoverable from the database's files, as far as
   * the engine allows (an erasure, GDPR Art. 17). SQLite: deleted content
   * is zeroed as it is deleted (`secure_delete`), and this checkpoints the
   * WAL into the database and truncates it, so no old page stays in the
   * WAL file. PostgreSQL: nothing here (dead rows are invisible to every
   * query and reclaimed by (auto)vacuum; the operator's VACUUM policy and
   * backups decide how long they stay on disk).
   */
  reclaim(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Address of a complete subtree of the audit log's Merkle tree (RFC 9162
 * section 2.1): the hash of leaves [index * 2^level, (index + 1) * 2^level).
 * Level 0 holds the leaf hashes.
 */
export interface TreeNodeAddress {
  readonly level: number;
  readonly index: number;
}

export interface TreeNode extends TreeNodeAddress {
  readonly hash: Uint8Array;
}

/**
 * How an append computes the tree nodes it stores. The ledger supplies it;
 * drivers only persist (the hashing rules live in src/audit/, once).
 * Both functions are synchronous and pure.
 */
export interface AuditAppendPlan {
  /** Addresses of the stored nodes needed to extend a log of `size` entries. */
  frontier(size: number): readonly TreeNodeAddress[];
  /** Given the frontier's hashes (same order), every node to store for entries [size, size + count), leaves included. */
  extend(size: number, frontierHashes: readonly Uint8Array[], entries: readonly Uint8Array[]): readonly TreeNode[];
}

export interface AuditEntryRow {
  readonly index: number;
  /** The canonical (RFC 8785) JSON bytes the leaf hash is computed over. */
  readonly entry: Uint8Array;
  readonly recordedAt: number;
}

export interface StoredCheckpoint {
  /** Store-assigned, increasing in the order checkpoints were added. */
  readonly id: number;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** The signed note (C2SP tlog-checkpoint), log signature only. */
  readonly note: string;
  readonly createdAt: number;
}

export interface StoredCosignature {
  readonly checkpointId: number;
  /** The witness key as `name+hex key id`. */
  readonly witness: string;
  /** The C2SP signed-note signature line, without its newline. */
  readonly signatureLine: string;
  /** The witness's cosignature timestamp (seconds). */
  readonly cosignedAt: number;
  readonly receivedAt: number;
}

/**
 * The audit ledger's persistence: entries, the stored Merkle tree nodes,
 * signed checkpoints and witness cosignatures.
 *
 * Contract:
 * - `append` MUST be ONE atomic operation that holds the log's write lock
 *   from reading the current size to commit (PostgreSQL: a row lock on the
 *   head row; SQLite: an immediate transaction). Concurrent appends, also
 *   from other processes sharing the database, therefore receive disjoint,
 *   consecutive index ranges: no gap, no duplicate, no lost entry. It
 *   resolves only once the entries and their nodes are committed (durable).
 * - Entries are never updated or deleted through this port; drivers SHOULD
 *   also refuse it at the database (append-only triggers).
 * - `entries(start, end)` returns the stored rows with start <= index < end
 *   in index order, at most 1000 of them.
 * - `nodes` answers in the order asked, `undefined` where no node is stored.
 * - `addCosignature` stores one line per (checkpoint, witness); a repeat
 *   returns false and changes nothing.
 * - The subject index (which entries name which person, by pseudonym) is
 *   written by `append` in the same transaction as the entries: a reader
 *   never sees an entry without its index rows, nor the reverse. It is not
 *   part of the signed tree, and it alone may lose rows (`forgetSubject`,
 *   on erasure). `indexSubject` adds rows only for entries that exist, and
 *   a row that exists already is left as it is.
 */
export interface AuditLogStore {
  /**
   * Appends entries at the end; resolves with the index of the first.
   * `subjects`, parallel to `entries`, names the subjects (audit pseudonyms)
   * each entry is about, for the subject index; omitted, none.
   */
  append(entries: readonly Uint8Array[], recordedAt: number, plan: AuditAppendPlan, subjects?: readonly (readonly string[])[]): Promise<number>;
  size(): Promise<number>;
  entries(start: number, end: number): Promise<AuditEntryRow[]>;
  nodes(addresses: readonly TreeNodeAddress[]): Promise<(Uint8Array | undefined)[]>;
  addCheckpoint(checkpoint: Omit<StoredCheckpoint, 'id'>): Promise<StoredCheckpoint>;
  latestCheckpoint(): Promise<StoredCheckpoint | null>;
  /** The newest checkpoint of exactly this size, if any. */
  checkpointOfSize(size: number): Promise<StoredCheckpoint | null>;
  /** Checkpoints in id order, after `afterId`, at most `limit` (capped at 1000). */
  checkpoints(options?: { readonly afterId?: number; readonly limit?: number }): Promise<StoredCheckpoint[]>;
  addCosignature(cosignature: StoredCosignature): Promise<boolean>;
  cosignatures(checkpointId: number): Promise<StoredCosignature[]>;
  /** The entries indexed under `subject`, in index order, with index > `after`, at most `limit` (default 100, capped at 1000). */
  subjectEntries(subject: string, options?: { readonly after?: number; readonly limit?: number }): Promise<AuditEntryRow[]>;
  /** Indexes the existing entries `indices` under `subject` (an upgrade's backfill); resolves with how many rows were new. */
  indexSubject(subject: string, indices: readonly number[]): Promise<number>;
  /** Deletes every index row of `subject` (never an entry); resolves with how many there were. */
  forgetSubject(subject: string): Promise<number>;
}

export interface VersionedValue {
  readonly value: string;
  /**
   * 1 when the key is created (by any write to an absent or expired key);
   * every later write to the live key (`set`, `compareAndSet`, `increment`)
   * adds exactly 1, so a compare-and-set never succeeds on a stale read.
   */
  readonly version: number;
}

export interface CounterValue {
  /** The value after this increment. */
  readonly value: number;
  /** Milliseconds until the counter (and its window) expires. */
  readonly ttlMs: number;
}

export interface BoundedSetMember {
  readonly member: string;
  /** When this member stops counting (ms since the epoch). */
  readonly expiresAt: number;
}

export interface BoundedSetAddResult {
  /** Members removed to keep the set within its limit, soonest-expiring first. */
  readonly evicted: readonly string[];
}

/**
 * Hot, expiring key/value data. Every key has a time to live: nothing in the
 * hot store is kept forever. Values are strings (callers store JSON).
 *
 * Keys name one object each. Value keys (`get`, `set`, `delete`,
 * `setIfAbsent`, `consume`, `getVersioned`, `compareAndSet`, `increment`)
 * share one keyspace and see each other's writes: a counter reads through
 * `get` as its decimal string. Bounded-set keys (`boundedSet*`) are sets;
 * using one key both as a value and as a set is a programming error that a
 * driver may reject. `delete` removes either kind.
 *
 * Contract, for every driver:
 * - A key whose TTL has passed MUST read as absent from every method.
 * - Each method is ONE atomic operation: concurrent callers, including other
 *   processes sharing the store, never observe or produce a half-applied
 *   state. In particular:
 *   - `setIfAbsent`: of concurrent calls for one absent key, exactly one
 *     returns true and its value is the one stored.
 *   - `consume` (get-and-delete): of concurrent calls, exactly one receives
 *     the value; the others receive null.
 *   - `compareAndSet`: writes only when the current version equals
 *     `expectedVersion` (0 means "absent"); of concurrent calls from the same
 *     version exactly one succeeds.
 *   - `increment`: N concurrent increments of one key return N distinct
 *     values and leave the counter at its start + N. The TTL is set when the
 *     counter is created and not extended by later increments (a fixed
 *     window), so a counter cannot be kept alive forever by an attacker.
 *   - `boundedSetAdd`: adds (or re-scores) a member, drops members whose
 *     `expiresAt` has passed, and, while the set holds more than `limit`
 *     members, evicts the one expiring soonest (the least recently renewed).
 *     Of N concurrent adds of distinct members to a set of limit L, exactly
 *     L remain and every other member is reported evicted by exactly one call.
 * - `ttlMs` MUST be a positive integer; drivers reject anything else with a
 *   TypeError before touching the store.
 */
export interface HotStore {
  readonly driver: HotDriverName;
  get(key: string): Promise<string | null>;
  /** Writes the value and (re)sets the TTL. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  consume(key: string): Promise<string | null>;
  getVersioned(key: string): Promise<VersionedValue | null>;
  /** Returns the new version, or null when the version did not match. */
  compareAndSet(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number | null>;
  /** Adds `by` (default 1) to an integer value, creating it at 0 with `ttlMs` first; a non-integer value is a TypeError. */
  increment(key: string, ttlMs: number, by?: number): Promise<CounterValue>;
  boundedSetAdd(key: string, member: string, expiresAt: number, limit: number): Promise<BoundedSetAddResult>;
  boundedSetRemove(key: string, member: string): Promise<boolean>;
  /** Live members, soonest-expiring first. */
  boundedSetMembers(key: string): Promise<BoundedSetMember[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type MessageBusDriverName = 'memory' | 'redis';

/** What a bus subscriber is told. */
export interface MessageListener {
  /** One message, as published. */
  message(text: string): void;
  /**
   * Delivery was interrupted (the connection dropped, or came back): messages
   * published meanwhile are lost, so whatever was cached on their promise
   * must be read again.
   */
  interrupted(): void;
}

/**
 * Messages between the processes of one deployment: the transport of the
 * events port (src/events). One channel per deployment (per key prefix).
 *
 * Contract:
 * - `publish` MUST hand the message to every listener subscribed at that
 *   moment in every process the bus reaches, this one included; delivery is
 *   at most once (a message published while a listener's connection is down
 *   is lost, and the listener is told through `interrupted`).
 * - `reach` says which processes that is: `deployment` when every instance
 *   sharing the stores is reached (Redis pub/sub), `process` when only this
 *   one is (in-process: another process sharing the SQLite file, such as
 *   the CLI, is not). Caches that may wait for messages instead of polling
 *   MUST poll as before unless the reach is `deployment` and `connected`.
 * - `connected` is false while messages cannot be received.
 * - `close` MUST release its connections; it is safe to call twice.
 */
export interface MessageBus {
  readonly driver: MessageBusDriverName;
  readonly reach: 'process' | 'deployment';
  readonly connected: boolean;
  publish(text: string): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribe(listener: MessageListener): () => void;
  close(): Promise<void>;
}

/** What a running Portcullis holds: one durable and one hot store, and the bus between its instances. */
export interface Stores {
  readonly durable: DurableStore;
  readonly hot: HotStore;
  readonly bus: MessageBus;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Transactions and the transactional outbox (issue 11, section 5); the outbox
// ports themselves are in outbox-ports.ts.
// ---------------------------------------------------------------------------

/**
 * What a transaction's function receives: the same ports, bound to the
 * transaction. Everything written through it commits together or not at all.
 */
export interface DurableTransaction {
  readonly records: RecordStore;
  readonly outbox: OutboxWriter;
}

/**
 * `durable.transaction(fn)`.
 *
 * Contract:
 * - Every write made through `tx` commits when `fn`'s promise fulfils, and
 *   none of them when it rejects: the store rolls back and rejects with
 *   `fn`'s own error. If COMMIT itself fails, the transaction rejects with
 *   that failure (a lost connection during COMMIT leaves the outcome unknown,
 *   as with any database).
 * - Isolation: PostgreSQL READ COMMITTED on one pooled connection, so the
 *   records' compare-and-set (`update` from a version) still decides races
 *   between concurrent transactions (a racing UPDATE waits for the row lock
 *   and re-checks the version); SQLite `BEGIN IMMEDIATE` on the store's one
 *   connection, so transactions run one at a time (serializable), also
 *   against other processes on the same file.
 * - While `fn` runs, the outer store (`durable.records`, `durable.transaction`)
 *   MUST NOT be used from inside `fn`: a nested `transaction` and an outer
 *   operation called from `fn`'s async context are refused with a
 *   {@link import('./errors.ts').TransactionUsageError} on every driver
 *   (on SQLite they would otherwise deadlock on the one connection).
 *   Operations from elsewhere (other requests) wait on SQLite until the
 *   transaction ends, and never see or join its uncommitted writes.
 * - `tx` is dead once the transaction has ended: using it afterwards is a
 *   TransactionUsageError, never a write on some other connection.
 * - An operation through `tx` that rejects dooms the transaction: it rolls
 *   back (and rejects with that error) even if `fn` caught it, on every
 *   driver (PostgreSQL has aborted it by then anyway).
 * - On the embedded deployment the SQLite hot store shares the file, whose
 *   one writer the transaction holds: hot-store writes from inside `fn` are
 *   refused too (its reads work), and from elsewhere they wait.
 * - Keep `fn` short and free of network calls: on SQLite it holds the file's
 *   write lock, so other processes' writers wait (busy_timeout) meanwhile.
 *   Side effects belong in the outbox, delivered after the commit.
 */
export type DurableTransactionRunner = <T>(fn: (tx: DurableTransaction) => Promise<T>) => Promise<T>;
