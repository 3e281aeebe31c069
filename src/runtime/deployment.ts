/**
 * Which Portcullis deployment a command works on, and whether it exists.
 * Only `init` and `serve` create a data directory or a database; every other
 * command refuses, naming the absolute path it looked at, rather than walk
 * the operator into a second, empty deployment (first-hour D7).
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/index.ts';
import { assertSchemaCurrent, openStores, sqlitePath, StoreSchemaError, type OpenStoresOptions, type Stores } from '../store/index.ts';

/** The deployment is missing, or its data directory is not usable: the message says where and what to do. */
export class DeploymentError extends Error {
  override readonly name = 'DeploymentError';
}

const RUN_INIT = 'run `portcullis init` there, or point --config or PORTCULLIS_DATA_DIR at your data directory';

/** The config with its data paths made absolute, so every message (ours, the stores', the master key's) names where it looked. */
export function withAbsolutePaths(config: Readonly<Config>): Readonly<Config> {
  return { ...config, dataDir: resolve(config.dataDir), masterKeyFile: resolve(config.masterKeyFile) };
}

/**
 * Refuses a data directory that is a file, or sits below a file (first-hour
 * D12), in words instead of EEXIST or ENOTDIR from a mkdir.
 */
export function assertDataDirUsable(config: Readonly<Config>): void {
  const dataDir = resolve(config.dataDir);
  let path = dataDir;
  for (;;) {
    let isDirectory: boolean | undefined;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch {
      // absent: look at its parent
    }
    if (isDirectory === false) {
      throw new DeploymentError(path === dataDir ? `the data directory ${dataDir} is a file, not a directory` : `the data directory ${dataDir} cannot be made: ${path} is a file, not a directory`);
    }
    if (isDirectory === true) return;
    const parent = resolve(path, '..');
    if (parent === path) return;
    path = parent;
  }
}

/**
 * The embedded database must already be there for any command but `init`
 * and `serve`. (The master key is checked where it is read, with the
 * absolute path: an auditor verifying a copy of the log needs none.)
 */
export function assertDeploymentExists(config: Readonly<Config>): void {
  assertDataDirUsable(config);
  const dataDir = resolve(config.dataDir);
  if (config.database.url === undefined && !existsSync(sqlitePath({ dataDir }))) {
    throw new DeploymentError(`there is no Portcullis data at ${dataDir} (no portcullis.db): ${RUN_INIT}`);
  }
}

/**
 * Opens the stores of an existing deployment without creating anything. A
 * local SQLite hot store next to PostgreSQL that no server made yet holds no
 * sessions or counters, so a command uses an empty in-memory one instead of
 * creating the file.
 */
export async function openExistingStores(config: Readonly<Config>, options: { schemaCurrent: boolean } & OpenStoresOptions): Promise<Stores> {
  assertDeploymentExists(config);
  const absolute = withAbsolutePaths(config);
  const localHot = absolute.hotStore === 'sqlite' || (absolute.hotStore === 'auto' && absolute.redis.url === undefined);
  const hotStore = absolute.database.url !== undefined && localHot && !existsSync(sqlitePath(absolute)) ? 'memory' : absolute.hotStore;
  const stores = await openStores({ ...absolute, hotStore }, {
    ...(options.clock !== undefined && { clock: options.clock }),
    ...(options.observe !== undefined && { observe: options.observe }),
    ...(options.breakers !== undefined && { breakers: options.breakers }),
    ...(options.tracer !== undefined && { tracer: options.tracer }),
  });
  if (!options.schemaCurrent) return stores;
  try {
    await assertSchemaCurrent(stores.durable);
    return stores;
  } catch (error) {
    await stores.close();
    if (error instanceof StoreSchemaError && stores.durable.driver === 'sqlite') throw new StoreSchemaError(`${sqlitePath(absolute)}: ${error.message}`);
    throw error;
  }
}
