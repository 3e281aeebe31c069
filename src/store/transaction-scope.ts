import { AsyncLocalStorage } from 'node:async_hooks';
import { TransactionUsageError } from './errors.ts';
import type { DurableTransaction, OutboxWriter, RecordStore } from './ports.ts';

/**
 * One open durable transaction, as its own async context sees it. Drivers
 * use it for the two rules every driver must keep alike (ports.ts,
 * DurableTransactionRunner): a transaction's view dies with it, and the
 * outer store is not used from inside the transaction's function.
 *
 * The context travels with AsyncLocalStorage, so "inside the function"
 * means "in an async continuation of it", which is exactly where an outer
 * call would wait forever for the one SQLite connection the transaction holds.
 */
export class TransactionScope {
  /** What the transaction holds: the SQLite file's gate (shared by its connections in this process) or the PostgreSQL pool. */
  readonly owner: object;
  #open = true;
  #failure: { readonly error: unknown } | undefined;

  constructor(owner: object) {
    this.owner = owner;
  }

  get open(): boolean {
    return this.#open;
  }

  end(): void {
    this.#open = false;
  }

  /**
   * The first error an operation of the view rejected with, if any. Such a
   * transaction never commits, even when its function caught the error:
   * PostgreSQL has aborted it already, and SQLite must not differ.
   */
  get failure(): { readonly error: unknown } | undefined {
    return this.#failure;
  }

  fail(error: unknown): void {
    this.#failure ??= { error };
  }

  /** Called by every operation of the transaction's view. */
  assertOpen(): void {
    if (!this.#open) throw new TransactionUsageError('this durable transaction has ended: its view cannot be used any more');
  }
}

const scopes = new AsyncLocalStorage<TransactionScope>();

/** Runs `fn` with `scope` as the current transaction of its async context. */
export function runInScope<T>(scope: TransactionScope, fn: () => Promise<T>): Promise<T> {
  return scopes.run(scope, fn);
}

/**
 * Refuses an outer-store operation (or a nested transaction) made from inside
 * an open transaction of the same owner. Outside one it costs one lookup.
 */
export function assertOutsideTransaction(owner: object): void {
  if (insideTransaction(owner)) throw usedInside();
}

/** Whether the caller runs inside an open transaction of `owner` (one lookup). */
export function insideTransaction(owner: object): boolean {
  const scope = scopes.getStore();
  return scope !== undefined && scope.open && scope.owner === owner;
}

export function usedInside(): TransactionUsageError {
  return new TransactionUsageError(
    'a durable transaction is open in this context: use the `tx` it passed (nested transactions and outer-store calls inside one are refused)',
  );
}

const RECORD_METHODS = ['get', 'create', 'update', 'delete', 'list', 'findBy'] as const satisfies readonly (keyof RecordStore)[];
const OUTBOX_METHODS = ['add'] as const satisfies readonly (keyof OutboxWriter)[];

/**
 * The view a transaction's function receives: the driver's connection-bound
 * ports, each operation first checking that the transaction is still open and
 * recording a rejection so that the transaction cannot commit after it.
 */
export function scopedView(scope: TransactionScope, view: DurableTransaction): DurableTransaction {
  return {
    records: guard(scope, view.records, RECORD_METHODS),
    outbox: guard(scope, view.outbox, OUTBOX_METHODS),
  };
}

function guard<T extends object>(scope: TransactionScope, target: T, methods: readonly (keyof T & string)[]): T {
  const guarded: Record<string, unknown> = {};
  for (const method of methods) {
    const fn = target[method] as (...args: unknown[]) => Promise<unknown>;
    guarded[method] = async (...args: unknown[]) => {
      scope.assertOpen();
      try {
        return await fn.apply(target, args);
      } catch (error) {
        scope.fail(error);
        throw error;
      }
    };
  }
  return guarded as T;
}
