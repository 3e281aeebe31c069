/**
 * A start that fails in the middle closes what it had opened, on real
 * stores (issue 11 section 3). The failure is a real one: the deployment's
 * ledger key was sealed with another master key, so the ledger step fails
 * after the vault, the logger and the stores have started; or the schema is
 * behind and the server was told not to migrate. The first error is what is
 * thrown, and the stores' connections are closed: SQLite removes its -wal
 * and -shm files when its last connection closes; PostgreSQL's pool and
 * Redis's connection are sockets of this process, and none is left open.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config/index.ts';
import { PROFILES, startServices, type ServiceName } from '../../src/runtime/index.ts';
import { StoreSchemaError } from '../../src/store/index.ts';
import { SealedSecretError } from '../../src/crypto/index.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from '../support/services.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
const newKey = () => randomBytes(32).toString('base64url');

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-runtime-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function config(env: Record<string, string>, dir: string, overrides: Record<string, unknown> = {}): Readonly<Config> {
  return loadConfig({ env, overrides: { dataDir: dir, port: 0, ...overrides } });
}

/** Starts `wanted` as `serve` would (migrating, maintenance timers on), logs discarded. */
function serveServices(settings: Readonly<Config>, wanted: ServiceName[]) {
  return startServices({ config: settings, profile: PROFILES.serve(settings), logDestination: silent }, wanted);
}

/** Sockets this process holds open (pg pool clients, the Redis connection). */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
}

/**
 * Waits until this process holds `expected` sockets, at most `timeoutMs`: a
 * socket's handle goes away a turn after its end. A leaked pg pool would
 * hold its clients for 10 s (pg's idle timeout), a leaked Redis connection
 * for ever: both outlast this bound.
 */
async function socketsBackTo(expected: number, timeoutMs = 3_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (openSockets() !== expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return openSockets();
}

describe('a failed start on SQLite', () => {
  it('a ledger that cannot open (its key sealed with another master key) closes the stores and the error is the ledger\'s', async () => {
    const dir = dataDir();
    const first = await serveServices(config({ PORTCULLIS_MASTER_KEY: newKey() }, dir), ['oauth']);
    await first.stop();
    const database = join(dir, 'portcullis.db');
    assert.equal(existsSync(`${database}-wal`), false, 'a clean stop closes both connections to the file');

    const replaced = config({ PORTCULLIS_MASTER_KEY: newKey() }, dir);
    await assert.rejects(serveServices(replaced, ['oauth']), SealedSecretError);
    assert.ok(existsSync(database));
    assert.equal(existsSync(`${database}-wal`), false, 'the durable and hot connections were closed (SQLite removes -wal on the last close)');
    assert.equal(existsSync(`${database}-shm`), false);

    // Nothing was left holding the file: with the right key it starts again.
    const again = await serveServices(config({ PORTCULLIS_MASTER_KEY: replaced.masterKey! }, dir), ['stores']);
    assert.equal(existsSync(`${database}-wal`), true, 'an open connection does keep a -wal file (the check above can fail)');
    await again.stop();
  });

  it('a schema that is behind, with migrations off, is refused and the stores are closed', async () => {
    const dir = dataDir();
    const settings = config({ PORTCULLIS_MASTER_KEY: newKey() }, dir, { migrateOnStart: false });
    await assert.rejects(serveServices(settings, ['oauth']), (error) => error instanceof StoreSchemaError && /run `portcullis migrate`/.test(error.message));
    assert.equal(existsSync(join(dir, 'portcullis.db-wal')), false);
  });
});

// With the services the suite is given (test/support/services.ts: a URL that is set must be reachable).
const scaleOut = testDatabaseUrl !== undefined && testRedisUrl !== undefined;
if (scaleOut) describe('a failed start on PostgreSQL and Redis', () => {
  async function scaleOutEnv(): Promise<Record<string, string>> {
    const schema = await createTestSchema(testDatabaseUrl!);
    const keyPrefix = redisTestPrefix();
    cleanups.push(schema.drop, () => deleteRedisKeys(testRedisUrl!, keyPrefix));
    return { PORTCULLIS_DATABASE_URL: testDatabaseUrl!, PORTCULLIS_DATABASE_SCHEMA: schema.schema, PORTCULLIS_REDIS_URL: testRedisUrl!, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix };
  }

  it('a ledger that cannot open ends the pg pool and quits Redis, and the error is the ledger\'s', async () => {
    const env = await scaleOutEnv();
    const dir = dataDir();
    const baseline = openSockets();
    const first = await serveServices(config({ ...env, PORTCULLIS_MASTER_KEY: newKey() }, dir), ['oauth']);
    assert.ok(openSockets() > baseline, 'the stores hold sockets while started (the check below can fail)');
    await first.stop();
    assert.equal(await socketsBackTo(baseline), baseline, 'a clean stop closes them');

    const starting = serveServices(config({ ...env, PORTCULLIS_MASTER_KEY: newKey() }, dir), ['oauth']);
    await assert.rejects(starting, SealedSecretError);
    assert.equal(await socketsBackTo(baseline), baseline, 'no pg client or Redis connection is left open');
  });

  it('a PostgreSQL schema that is behind, with migrations off, is refused and its connections closed', async () => {
    const env = await scaleOutEnv();
    const baseline = openSockets();
    const settings = config({ ...env, PORTCULLIS_MASTER_KEY: newKey() }, dataDir(), { migrateOnStart: false });
    await assert.rejects(serveServices(settings, ['oauth']), (error) => error instanceof StoreSchemaError && /schema is at version 0/.test(error.message));
    assert.equal(await socketsBackTo(baseline), baseline);
  });
});
