/**
 * The transactional outbox's ports (issue 11, section 5): the writing side a
 * transaction gets as `tx.outbox`, and the delivery side the worker
 * (outbox-worker.ts) leases. Re-exported by ports.ts; the promises are in
 * MUST terms so that the drivers cannot drift (test/store/outbox*.test.ts).
 */

export interface OutboxMessageInput {
  /** What the message is about, for the deliverer to route on (e.g. `privacy.erasure`). 1..200 characters. */
  readonly topic: string;
  /** JSON-serialisable body. */
  readonly payload: unknown;
  /**
   * Names the message for its receivers, who deduplicate on it (delivery is
   * at least once). One key names one message: adding a key that is already
   * in the outbox adds nothing. Default: a random UUID. 1..200 characters.
   */
  readonly idempotencyKey?: string;
}

export interface OutboxAddResult {
  /** The message's key (the given one, or the generated one). */
  readonly idempotencyKey: string;
  /** False when a message with this key was already in the outbox (nothing added). */
  readonly added: boolean;
}

/** The writing side of the outbox, only inside a transaction. */
export interface OutboxWriter {
  add(message: OutboxMessageInput): Promise<OutboxAddResult>;
}

/** A message as stored, handed to the deliverer. */
export interface OutboxMessage {
  /** Store-assigned, increasing in insertion order (per database). */
  readonly id: number;
  readonly topic: string;
  readonly payload: unknown;
  /** Stable for the message's whole life: the same on every retry and after a restart. */
  readonly idempotencyKey: string;
  /** Delivery attempts already made (0 on the first). */
  readonly attempts: number;
  readonly createdAt: number;
}

/** What a lease holder may do to the outbox (see {@link OutboxStore.withLease}). */
export interface OutboxLease {
  /** Undelivered messages whose next attempt is due at `now`, oldest due first, at most `limit` (capped at 1000). */
  due(now: number, limit: number): Promise<OutboxMessage[]>;
  /** Records a successful delivery (the message is never handed out again). */
  markDelivered(id: number, now: number): Promise<void>;
  /** Records a failed attempt: attempts + 1, the next attempt not before `nextAttemptAt`. */
  markFailed(id: number, nextAttemptAt: number, error: string): Promise<void>;
  /**
   * Extends a time-bound lease (SQLite) to `now + leaseMs`; resolves false
   * when the lease was lost (it expired and another holder took it).
   */
  renew(now: number): Promise<boolean>;
}

export interface OutboxLeaseOptions {
  /** Names this holder (unique per worker). */
  readonly holder: string;
  readonly now: number;
  /** How long a time-bound lease lasts without renewal (SQLite; PostgreSQL holds it for the session). */
  readonly leaseMs: number;
}

export interface OutboxCounts {
  readonly pending: number;
  readonly delivered: number;
}

/**
 * The delivery side of the outbox.
 *
 * Contract:
 * - `withLease` runs `work` only while this caller is the one delivery
 *   worker of the database, and resolves `{ acquired: false }` at once when
 *   another holder has the lease. PostgreSQL: a session advisory lock
 *   (pg_try_advisory_lock) on one pooled connection, keyed by schema, released
 *   after `work` or when the session dies (a killed process frees it
 *   immediately). SQLite: a lease row taken under BEGIN IMMEDIATE, held until
 *   `now + leaseMs` and renewed per message, so a dead holder's lease lapses
 *   after `leaseMs` (single writer across processes on one file).
 * - Two holders therefore never hold the lease at once (unless a SQLite lease
 *   lapsed while its holder still worked: delivery is at least once, and the
 *   idempotency key is how receivers drop the duplicate).
 * - `pruneDelivered(before)` deletes delivered messages delivered before
 *   `before`, at most `limit`, and returns how many.
 */
export interface OutboxStore {
  withLease<T>(options: OutboxLeaseOptions, work: (lease: OutboxLease) => Promise<T>): Promise<{ readonly acquired: true; readonly result: T } | { readonly acquired: false }>;
  counts(): Promise<OutboxCounts>;
  pruneDelivered(before: number, limit?: number): Promise<number>;
  /**
   * Rewrites with `redact(payload)` the payload of every message (pending or
   * delivered) whose JSON text contains `needle` (case-insensitive, ASCII:
   * the candidates) and that `redact` changes; resolves with how many were
   * rewritten. For an erasure: queued and kept
   * messages must not go on naming the person. Keys, topics and delivery
   * state are left alone.
   */
  redactPayloads(needle: string, redact: (payload: unknown) => unknown): Promise<number>;
}
