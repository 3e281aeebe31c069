/**
 * Errors a store raises that the rest of the system must tell apart. Their
 * messages are safe to show an operator: they never carry a password, a query
 * or a stack, only what is wrong and where.
 */

/** The database or cache cannot be reached or refused the connection. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly driver: string;
  /** When the store's breaker (breaker.ts) lets a call through again; absent when no breaker answered. */
  readonly retryAfterSeconds: number | undefined;
  constructor(driver: string, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.driver = driver;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** The database schema cannot be used by this build (newer, or altered). */
export class StoreSchemaError extends Error {
  override readonly name = 'StoreSchemaError';
}

/**
 * A transaction used the wrong way: nested, the outer store called from
 * inside the transaction's function, or its view used after it ended. A
 * programming error, refused on every driver alike.
 */
export class TransactionUsageError extends Error {
  override readonly name = 'TransactionUsageError';
}

/** Rejects a TTL that is not a positive integer number of milliseconds. */
export function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new TypeError(`ttlMs must be a positive integer, got ${String(ttlMs)}`);
  }
}

export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new TypeError(`limit must be a positive integer, got ${String(limit)}`);
  }
}

export function assertExpectedVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new TypeError(`expectedVersion must be a non-negative integer, got ${String(version)}`);
  }
}

export function assertIncrement(by: number): void {
  if (!Number.isSafeInteger(by)) {
    throw new TypeError(`increment must be an integer, got ${String(by)}`);
  }
}

/** Upper bound on `list` page size for every driver. */
export const MAX_LIST_LIMIT = 1000;

export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return 100;
  if (!Number.isSafeInteger(limit) || limit <= 0) throw new TypeError(`limit must be a positive integer, got ${String(limit)}`);
  return Math.min(limit, MAX_LIST_LIMIT);
}
