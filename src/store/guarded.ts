/**
 * The stores behind their breakers (breaker.ts): every operation of a port,
 * and a whole transaction as one, goes through the store's breaker, so a
 * store known to be down answers at once with StoreUnavailableError. What
 * runs inside a transaction is not guarded call by call: the transaction is
 * the unit that succeeds or fails.
 */
import type { StoreBreaker } from './breaker.ts';
import { AUDIT_LOG_OPERATIONS, HOT_OPERATIONS, OUTBOX_OPERATIONS, RECORD_OPERATIONS, wrapMethods } from './operations.ts';
import type { DurableStore, DurableTransaction, HotStore } from './ports.ts';

const through = (breaker: StoreBreaker) => (_operation: string, method: (...args: unknown[]) => Promise<unknown>) => (...args: unknown[]) => breaker.run(() => method(...args));

export function guardHotStore(store: HotStore, breaker: StoreBreaker): HotStore {
  return { ...wrapMethods(store, HOT_OPERATIONS, through(breaker)), driver: store.driver, close: () => store.close() };
}

export function guardDurableStore(store: DurableStore, breaker: StoreBreaker): DurableStore {
  const guard = through(breaker);
  return {
    driver: store.driver,
    records: wrapMethods(store.records, RECORD_OPERATIONS, guard),
    auditLog: wrapMethods(store.auditLog, AUDIT_LOG_OPERATIONS, guard),
    outbox: wrapMethods(store.outbox, OUTBOX_OPERATIONS, guard),
    transaction: <T>(fn: (tx: DurableTransaction) => Promise<T>) => breaker.run(() => store.transaction(fn)),
    migrate: () => store.migrate(),
    schemaVersion: () => store.schemaVersion(),
    ping: () => breaker.run(() => store.ping()),
    reclaim: () => store.reclaim(),
    close: () => store.close(),
  };
}
