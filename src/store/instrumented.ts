import type { DurableStore, DurableTransaction, HotStore } from './ports.ts';
import { AUDIT_LOG_OPERATIONS, HOT_OPERATIONS, OUTBOX_OPERATIONS, RECORD_OPERATIONS, wrapMethods } from './operations.ts';

/** Receives the duration of every store operation (seconds). */
export type StoreObserver = (driver: string, operation: string, seconds: number) => void;

function timed<A extends unknown[], R>(observe: StoreObserver, driver: string, operation: string, fn: (...args: A) => Promise<R>) {
  return async (...args: A): Promise<R> => {
    const start = process.hrtime.bigint();
    try {
      return await fn(...args);
    } finally {
      observe(driver, operation, Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
}

/** A copy of `target` whose listed async methods report their latency as `<prefix><method>`. */
function instrumentMethods<T extends object>(target: T, operations: readonly (keyof T & string)[], driver: string, prefix: string, observe: StoreObserver): T {
  return wrapMethods(target, operations, (operation, method) => timed(observe, driver, `${prefix}${operation}`, method));
}

/** The same hot store, reporting each operation's latency. */
export function instrumentHotStore(store: HotStore, observe: StoreObserver): HotStore {
  return { ...instrumentMethods(store, HOT_OPERATIONS, store.driver, '', observe), driver: store.driver, close: () => store.close() };
}

/** The same durable store, reporting each record and audit-log operation's latency. */
export function instrumentDurableStore(store: DurableStore, observe: StoreObserver): DurableStore {
  return {
    driver: store.driver,
    records: instrumentMethods(store.records, RECORD_OPERATIONS, store.driver, 'records.', observe),
    auditLog: instrumentMethods(store.auditLog, AUDIT_LOG_OPERATIONS, store.driver, 'auditLog.', observe),
    outbox: instrumentMethods(store.outbox, OUTBOX_OPERATIONS, store.driver, 'outbox.', observe),
    // The whole transaction is one operation (from BEGIN to COMMIT or ROLLBACK).
    transaction: <T>(fn: (tx: DurableTransaction) => Promise<T>) => timed(observe, store.driver, 'transaction', () => store.transaction(fn))(),
    migrate: () => store.migrate(),
    schemaVersion: () => store.schemaVersion(),
    ping: timed(observe, store.driver, 'ping', () => store.ping()),
    reclaim: () => store.reclaim(),
    close: () => store.close(),
  };
}
