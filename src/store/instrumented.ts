import type { DurableStore, HotStore, RecordStore } from './ports.ts';

/** Receives the duration of every store operation (seconds). */
export type StoreObserver = (driver: string, operation: string, seconds: number) => void;

const HOT_OPERATIONS = [
  'get',
  'set',
  'delete',
  'setIfAbsent',
  'consume',
  'getVersioned',
  'compareAndSet',
  'increment',
  'boundedSetAdd',
  'boundedSetRemove',
  'boundedSetMembers',
  'ping',
] as const satisfies readonly (keyof HotStore)[];

const RECORD_OPERATIONS = ['get', 'create', 'update', 'delete', 'list'] as const satisfies readonly (keyof RecordStore)[];

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

/** The same hot store, reporting each operation's latency. */
export function instrumentHotStore(store: HotStore, observe: StoreObserver): HotStore {
  const wrapped: Record<string, unknown> = { driver: store.driver, close: () => store.close() };
  for (const operation of HOT_OPERATIONS) {
    const method = (...args: unknown[]) => (store[operation] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
    wrapped[operation] = timed(observe, store.driver, operation, method);
  }
  return wrapped as unknown as HotStore;
}

/** The same durable store, reporting each record operation's latency. */
export function instrumentDurableStore(store: DurableStore, observe: StoreObserver): DurableStore {
  const records: Record<string, unknown> = {};
  for (const operation of RECORD_OPERATIONS) {
    const method = (...args: unknown[]) => (store.records[operation] as (...a: unknown[]) => Promise<unknown>).apply(store.records, args);
    records[operation] = timed(observe, store.driver, `records.${operation}`, method);
  }
  return {
    driver: store.driver,
    records: records as unknown as RecordStore,
    migrate: () => store.migrate(),
    schemaVersion: () => store.schemaVersion(),
    ping: timed(observe, store.driver, 'ping', () => store.ping()),
    close: () => store.close(),
  };
}
