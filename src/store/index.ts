import { join } from 'node:path';
import type { Config } from '../config/index.ts';
import { systemClock, type Clock, type DurableStore, type HotStore, type MessageBus, type Stores } from './ports.ts';
import { SqliteDatabase } from './sqlite/database.ts';
import { openSqliteDurableStore } from './sqlite/durable-store.ts';
import { openSqliteHotStore } from './sqlite/hot-store.ts';
import { openMemoryHotStore } from './memory/hot-store.ts';
import { openInProcessMessageBus } from './memory/message-bus.ts';
import type { Tracer } from '@opentelemetry/api';
import { instrumentDurableStore, instrumentHotStore, type StoreObserver } from './instrumented.ts';
import { StoreBreaker, type StoreBreakerSettings, type StoreStateListener } from './breaker.ts';
import { guardDurableStore, guardHotStore } from './guarded.ts';
import { migrations } from './migrations/index.ts';
import { StoreSchemaError } from './errors.ts';

export * from './ports.ts';
export { StoreSchemaError, StoreUnavailableError, TransactionUsageError } from './errors.ts';
export type { StoreObserver } from './instrumented.ts';
export { DEFAULT_BREAKER_SETTINGS, type StoreBreakerSettings, type StoreRole, type StoreStateListener } from './breaker.ts';
export { openInProcessMessageBus } from './memory/message-bus.ts';
export { collection, Collection, type CollectionDefinition, type IndexKey, type MutateOptions, type MutateOutcome } from './collections.ts';
export { compareAndSetLoop, keep, write, type CompareAndSetLoop, type Decision } from './collections-mutate.ts';
export { codec, typeboxCodec, CodecError, RecordCodecError, type Codec } from './codecs.ts';
export { createOutboxWorker, outboxRetryDelay } from './outbox-worker.ts';
export { leaseHolderGone, processLeaseHolder } from './lease-holder.ts';
export type { OutboxBackoff, OutboxDeliverer, OutboxDelivery, OutboxRunReport, OutboxWorker, OutboxWorkerOptions } from './outbox-worker.ts';

export const LATEST_SCHEMA_VERSION = migrations.at(-1)?.version ?? 0;

type StoreConfig = Pick<Config, 'dataDir' | 'database' | 'redis' | 'hotStore'> & { readonly store?: Pick<Config['store'], 'timeoutMs'> };

export interface OpenStoresOptions {
  readonly clock?: Clock;
  /** Receives every operation's latency (metrics). */
  readonly observe?: StoreObserver;
  /** Traces each store call made within a traced request or delivery (a span per call). */
  readonly tracer?: Tracer;
  /** Puts each store behind a circuit breaker (breaker.ts) that tells this listener when it goes down and comes back. */
  readonly breakers?: { readonly listener: StoreStateListener; readonly settings?: StoreBreakerSettings };
}

/** Where the embedded SQLite database lives. */
export function sqlitePath(config: Pick<Config, 'dataDir'>): string {
  return join(config.dataDir, 'portcullis.db');
}

/**
 * Opens the durable and hot stores the config asks for. It does not apply
 * durable migrations: `serve` and `migrate` decide that. (A local SQLite hot
 * store next to PostgreSQL is private to this instance and is migrated here.)
 */
export async function openStores(config: StoreConfig, options: OpenStoresOptions = {}): Promise<Stores> {
  const clock = options.clock ?? systemClock;
  // Up to two connections to the one embedded file: the durable store's
  // (every commit fsynced) and the hot store's (synchronous=NORMAL: hot data
  // is expiring and may be lost with the machine, as Redis without
  // persistence would lose it, but a commit need not wait for the disk).
  let sqlite: SqliteDatabase | undefined;
  let hotSqlite: SqliteDatabase | undefined;
  const sharedSqlite = () => (sqlite ??= new SqliteDatabase({ path: sqlitePath(config) }));
  const hotConnection = () => (hotSqlite ??= new SqliteDatabase({ path: sqlitePath(config), synchronous: 'NORMAL' }));

  let durable: DurableStore;
  if (config.database.url !== undefined) {
    const { openPostgresDurableStore } = await import('./postgres/durable-store.ts');
    durable = await openPostgresDurableStore({
      url: config.database.url,
      clock,
      poolSize: config.database.poolSize,
      ...(config.store !== undefined && { connectTimeoutMs: config.store.timeoutMs, queryTimeoutMs: config.store.timeoutMs }),
      ...(config.database.schema !== undefined && { schema: config.database.schema }),
    });
  } else {
    durable = openSqliteDurableStore(sharedSqlite(), clock);
  }

  let hot: HotStore;
  let bus: MessageBus;
  try {
    hot = await openHotStore(config, durable, hotConnection, clock);
  } catch (error) {
    await durable.close();
    sqlite?.close();
    hotSqlite?.close();
    throw error;
  }
  try {
    bus = await openMessageBus(config, hot);
  } catch (error) {
    await hot.close();
    await durable.close();
    sqlite?.close();
    hotSqlite?.close();
    throw error;
  }

  if (options.observe) {
    durable = instrumentDurableStore(durable, options.observe, options.tracer);
    hot = instrumentHotStore(hot, options.observe, options.tracer);
  }
  const breakers: StoreBreaker[] = [];
  if (options.breakers !== undefined) {
    const { listener, settings } = options.breakers;
    const [durableStore, hotStore] = [durable, hot];
    const durableBreaker = new StoreBreaker('durable', durable.driver, probeOf(durableStore), listener, settings);
    const hotBreaker = new StoreBreaker('hot', hot.driver, hotProbeOf(hotStore), listener, settings);
    breakers.push(durableBreaker, hotBreaker);
    durable = guardDurableStore(durable, durableBreaker);
    hot = guardHotStore(hot, hotBreaker);
  }
  let closed = false;
  return {
    durable,
    hot,
    bus,
    async close() {
      if (closed) return;
      closed = true;
      for (const breaker of breakers) breaker.shutdown();
      await bus.close();
      await hot.close();
      await durable.close();
      sqlite?.close();
      hotSqlite?.close();
    },
  };
}

async function openHotStore(config: StoreConfig, durable: DurableStore, hotConnection: () => SqliteDatabase, clock: Clock): Promise<HotStore> {
  const driver = config.hotStore === 'auto' ? (config.redis.url !== undefined ? 'redis' : 'sqlite') : config.hotStore;
  switch (driver) {
    case 'memory':
      return openMemoryHotStore({ clock });
    case 'redis': {
      const { openRedisHotStore } = await import('./redis/hot-store.ts');
      if (config.redis.url === undefined) throw new StoreSchemaError('the redis hot store needs redis.url');
      return openRedisHotStore({
        url: config.redis.url,
        cluster: config.redis.cluster,
        keyPrefix: config.redis.keyPrefix,
        clock,
        ...(config.store !== undefined && { connectTimeoutMs: config.store.timeoutMs, commandTimeoutMs: config.store.timeoutMs }),
      });
    }
    case 'sqlite': {
      const database = hotConnection();
      // Next to PostgreSQL the SQLite file holds only the hot tables, and
      // belongs to this instance alone, so it is migrated on open.
      if (durable.driver !== 'sqlite') await openSqliteDurableStore(database, clock).migrate();
      return openSqliteHotStore(database, { clock });
    }
  }
}

/**
 * The bus between instances: Redis pub/sub next to a Redis hot store (the
 * scale-out shape, where instances share it), else in-process.
 */
async function openMessageBus(config: StoreConfig, hot: HotStore): Promise<MessageBus> {
  if (hot.driver !== 'redis') return openInProcessMessageBus();
  const { redisPubSubConnections } = await import('./redis/hot-store.ts');
  const { openRedisMessageBus } = await import('./redis/message-bus.ts');
  const connections = redisPubSubConnections(hot);
  if (connections === undefined) throw new TypeError('the redis hot store has no pub/sub connections');
  return openRedisMessageBus({ ...connections, channel: `${config.redis.keyPrefix}events` });
}

/** Refuses to serve on a schema this build does not match (`--no-migrate`). */
export async function assertSchemaCurrent(durable: DurableStore): Promise<void> {
  const version = await durable.schemaVersion();
  if (version !== LATEST_SCHEMA_VERSION) {
    throw new StoreSchemaError(
      `database schema is at version ${version}, this build needs ${LATEST_SCHEMA_VERSION}: run \`portcullis migrate\``,
    );
  }
}

/**
 * What a breaker's half-open probe asks of the durable store. A server
 * (PostgreSQL) that answers a ping is back. The embedded file answers reads
 * while its disk is full, so there the probe writes (a record of its own,
 * holding nothing but the time): the breaker closes only once writing works
 * again, instead of closing on a read and opening on the next write.
 */
function probeOf(durable: DurableStore): () => Promise<void> {
  if (durable.driver !== 'sqlite') return () => durable.ping();
  return async () => {
    await durable.transaction(async (tx) => {
      const at = Date.now();
      if ((await tx.records.update(PROBE_COLLECTION, PROBE_ID, (await tx.records.get(PROBE_COLLECTION, PROBE_ID))?.version ?? 0, { at })) === null) await tx.records.create(PROBE_COLLECTION, PROBE_ID, { at });
    });
  };
}

/** The hot store's probe: a write with a short life where the store is the embedded file (as for the durable store), a ping elsewhere. */
function hotProbeOf(hot: HotStore): () => Promise<void> {
  if (hot.driver !== 'sqlite') return () => hot.ping();
  return async () => {
    await hot.set(PROBE_HOT_KEY, String(Date.now()), 10_000);
  };
}

const PROBE_COLLECTION = 'portcullis_probe';
const PROBE_ID = 'breaker';
const PROBE_HOT_KEY = 'portcullis:breaker-probe';
