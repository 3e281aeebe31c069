import { SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { DurableStore, DurableTransaction, HotStore } from './ports.ts';
import { AUDIT_LOG_OPERATIONS, HOT_OPERATIONS, OUTBOX_OPERATIONS, RECORD_OPERATIONS, wrapMethods } from './operations.ts';

/** Receives the duration of every store operation (seconds). */
export type StoreObserver = (driver: string, operation: string, seconds: number) => void;

function timed<A extends unknown[], R>(observe: StoreObserver, driver: string, operation: string, fn: (...args: A) => Promise<R>, tracer?: Tracer) {
  const measured = async (...args: A): Promise<R> => {
    const start = process.hrtime.bigint();
    try {
      return await fn(...args);
    } finally {
      observe(driver, operation, Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
  if (tracer === undefined) return measured;
  // A span per call, only within a traced request or delivery: background polling makes no root spans of its own.
  const attributes = { 'db.system.name': driver === 'postgres' ? 'postgresql' : driver, 'db.operation.name': operation };
  return (...args: A): Promise<R> => {
    if (trace.getActiveSpan() === undefined) return measured(...args);
    return tracer.startActiveSpan(`${driver} ${operation}`, { kind: SpanKind.CLIENT, attributes }, async (span) => {
      try {
        return await measured(...args);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
        throw error;
      } finally {
        span.end();
      }
    });
  };
}

/** A copy of `target` whose listed async methods report their latency as `<prefix><method>`. */
function instrumentMethods<T extends object>(target: T, operations: readonly (keyof T & string)[], driver: string, prefix: string, observe: StoreObserver, tracer?: Tracer): T {
  return wrapMethods(target, operations, (operation, method) => timed(observe, driver, `${prefix}${operation}`, method, tracer));
}

/** The same hot store, reporting each operation's latency. */
export function instrumentHotStore(store: HotStore, observe: StoreObserver, tracer?: Tracer): HotStore {
  return { ...instrumentMethods(store, HOT_OPERATIONS, store.driver, '', observe, tracer), driver: store.driver, close: () => store.close() };
}

/** The same durable store, reporting each record and audit-log operation's latency. */
export function instrumentDurableStore(store: DurableStore, observe: StoreObserver, tracer?: Tracer): DurableStore {
  return {
    driver: store.driver,
    records: instrumentMethods(store.records, RECORD_OPERATIONS, store.driver, 'records.', observe, tracer),
    auditLog: instrumentMethods(store.auditLog, AUDIT_LOG_OPERATIONS, store.driver, 'auditLog.', observe, tracer),
    outbox: instrumentMethods(store.outbox, OUTBOX_OPERATIONS, store.driver, 'outbox.', observe, tracer),
    // The whole transaction is one operation (from BEGIN to COMMIT or ROLLBACK).
    transaction: <T>(fn: (tx: DurableTransaction) => Promise<T>) => timed(observe, store.driver, 'transaction', () => store.transaction(fn), tracer)(),
    migrate: () => store.migrate(),
    schemaVersion: () => store.schemaVersion(),
    ping: timed(observe, store.driver, 'ping', () => store.ping()),
    reclaim: () => store.reclaim(),
    close: () => store.close(),
  };
}
