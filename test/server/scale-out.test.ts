/**
 * Scale-out: two instances on one PostgreSQL and one Redis share their
 * state. Needs PORTCULLIS_TEST_DATABASE_URL and PORTCULLIS_TEST_REDIS_URL
 * (CI sets both; when set they must answer).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/index.ts';
import { openStores, type Stores } from '../../src/store/index.ts';
import { migrations } from '../../src/store/migrations/index.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from '../support/services.ts';
import { spawnServe, type ServeProcess } from '../support/process.ts';

const skip = testDatabaseUrl && testRedisUrl ? false : 'set PORTCULLIS_TEST_DATABASE_URL and PORTCULLIS_TEST_REDIS_URL';

describe('scale-out: two instances on shared PostgreSQL and Redis', { skip }, () => {
  const databaseUrl = testDatabaseUrl!;
  const redisUrl = testRedisUrl!;
  const keyPrefix = redisTestPrefix();
  const masterKey = randomBytes(32).toString('base64url');
  let schema: { schema: string; drop: () => Promise<void> };
  const dirs: string[] = [];
  let env: Record<string, string>;

  before(async () => {
    schema = await createTestSchema(databaseUrl);
    env = {
      PORTCULLIS_DATABASE_URL: databaseUrl,
      PORTCULLIS_DATABASE_SCHEMA: schema.schema,
      PORTCULLIS_REDIS_URL: redisUrl,
      PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix,
      PORTCULLIS_MASTER_KEY: masterKey,
    };
  });
  after(async () => {
    await schema.drop();
    await deleteRedisKeys(redisUrl, keyPrefix);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-instance-'));
    dirs.push(dir);
    return dir;
  };

  it('two `portcullis serve` processes start together, migrate once, and are both ready on the shared stores', async () => {
    const instances: ServeProcess[] = [];
    try {
      // Started at the same moment, each in its own working directory: they
      // share nothing but PostgreSQL and Redis.
      // Settled, not Promise.all: when one fails to start, the one that started is still stopped below (else it outlives the test file).
      const started = await Promise.allSettled([spawnServe(['--port', '0'], { cwd: tempDir(), env }), spawnServe(['--port', '0'], { cwd: tempDir(), env })]);
      for (const outcome of started) if (outcome.status === 'fulfilled') instances.push(outcome.value);
      for (const outcome of started) if (outcome.status === 'rejected') throw outcome.reason;
      for (const instance of instances) {
        const response = await fetch(`${instance.url}/readyz`);
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), {
          status: 'ready',
          checks: { durable: { driver: 'postgres', status: 'up' }, hot: { driver: 'redis', status: 'up' } },
        });
      }
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: number; n: string }>(
          `SELECT version, COUNT(*) AS n FROM ${schema.schema}.portcullis_migrations GROUP BY version ORDER BY version`,
        );
        assert.deepEqual(rows.map((row) => [row.version, Number(row.n)]), migrations.map((m) => [m.version, 1]));
      } finally {
        await client.end();
      }
      const applied = instances.flatMap((instance) => instance.output.filter((line) => line.includes('"migration applied"')));
      assert.equal(applied.length, migrations.length, 'each migration was applied by exactly one of the two');
    } finally {
      const codes = await Promise.all(instances.map((instance) => instance.stop()));
      assert.deepEqual(codes, instances.map(() => 0), 'both stop cleanly on SIGTERM');
    }
  });

  describe('what one instance writes, the other reads', () => {
    let first: Stores;
    let second: Stores;
    before(async () => {
      const config = () => loadConfig({ env: { ...env, PORTCULLIS_DATA_DIR: tempDir() } });
      first = await openStores(config());
      second = await openStores(config());
      await first.durable.migrate();
    });
    after(async () => {
      await first.close();
      await second.close();
    });

    it('durable records', async () => {
      const id = randomBytes(6).toString('hex');
      assert.equal(await first.durable.records.create('clients', id, { name: 'shared app' }), true);
      assert.deepEqual((await second.durable.records.get('clients', id))?.data, { name: 'shared app' });
      assert.equal(await second.durable.records.create('clients', id, { name: 'duplicate' }), false);
      // Both instances update from version 1: exactly one wins.
      const results = await Promise.all([first.durable.records.update('clients', id, 1, { by: 'first' }), second.durable.records.update('clients', id, 1, { by: 'second' })]);
      assert.equal(results.filter((version) => version === 2).length, 1);
    });

    it('hot values, one-time codes and bounded sets', async () => {
      const key = `session:${randomBytes(6).toString('hex')}`;
      await first.hot.set(key, 'alice', 60_000);
      assert.equal(await second.hot.get(key), 'alice');
      const code = `code:${randomBytes(6).toString('hex')}`;
      await first.hot.set(code, 'grant', 60_000);
      const consumed = await Promise.all([first.hot.consume(code), second.hot.consume(code)]);
      assert.deepEqual(consumed.filter((value) => value !== null), ['grant'], 'a one-time code is redeemed by one instance only');
      const set = `sessions:${randomBytes(6).toString('hex')}`;
      await first.hot.boundedSetAdd(set, 's1', Date.now() + 60_000, 1);
      assert.deepEqual(await second.hot.boundedSetAdd(set, 's2', Date.now() + 120_000, 1), { evicted: ['s1'] });
    });
  });
});
