/**
 * What only the PostgreSQL durable driver has to prove: migrations racing
 * across pools, refusal of foreign schemas, prompt and password-free failure
 * when the server is unreachable, and schema isolation. The record contract
 * itself runs in durable-store.contract.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as wait } from 'node:timers/promises';
import pg from 'pg';
import { openPostgresDurableStore } from '../../src/store/postgres/durable-store.ts';
import { StoreSchemaError, StoreUnavailableError } from '../../src/store/errors.ts';
import { migrations } from '../../src/store/migrations/index.ts';
import type { DurableStore, MigrationReport } from '../../src/store/ports.ts';
import { createTestSchema, testDatabaseUrl, uniqueName } from '../support/services.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';

const LATEST = migrations.at(-1)!.version;
const skip = testDatabaseUrl === undefined ? 'PORTCULLIS_TEST_DATABASE_URL is not set' : false;

/** Rejects after `ms` without keeping the process alive once the test is done. */
async function rejectAfter(ms: number, message: string): Promise<never> {
  await wait(ms, undefined, { ref: false });
  throw new Error(message);
}

describe('PostgreSQL durable store', { skip }, () => {
  const url = testDatabaseUrl!;
  const schemas: { schema: string; drop: () => Promise<void> }[] = [];
  const opened: DurableStore[] = [];
  let admin: pg.Client;

  /** A fresh schema for one test; every one is dropped in `after`. */
  async function freshSchema(): Promise<string> {
    const created = await createTestSchema(url);
    schemas.push(created);
    return created.schema;
  }

  async function open(schema: string, extra: { poolSize?: number; clock?: () => number; url?: string; queryTimeoutMs?: number } = {}): Promise<DurableStore> {
    const store = await openPostgresDurableStore({ url, schema, ...extra });
    opened.push(store);
    return store;
  }

  before(async () => {
    // An unreachable server fails here, and with it every test: CI sets the URL
    // precisely so that this driver is exercised.
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
  });

  after(async () => {
    for (const store of opened) await store.close();
    for (const { drop } of schemas) await drop();
    await admin?.end();
  });

  it('applies each migration exactly once when 8 instances migrate at the same moment', async () => {
    const schema = await freshSchema();
    const stores = await Promise.all(Array.from({ length: 8 }, () => open(schema, { poolSize: 2 })));
    assert.equal(await stores[0]!.schemaVersion(), 0, 'no migrations table yet');

    const reports = await Promise.all(stores.map((store) => store.migrate()));

    const all = migrations.map(({ version, name }) => ({ version, name }));
    const appliers = reports.filter((report) => report.applied.length > 0);
    assert.equal(appliers.length, 1, 'exactly one call applies the migrations');
    assert.deepEqual(appliers[0]!.applied, all);
    for (const report of reports) assert.equal(report.currentVersion, LATEST);
    const { rows } = await admin.query<{ version: number; copies: string }>(
      `SELECT version, count(*) AS copies FROM ${schema}.portcullis_migrations GROUP BY version ORDER BY version`,
    );
    assert.deepEqual(
      rows.map((row) => [row.version, Number(row.copies)]),
      migrations.map((m) => [m.version, 1]),
    );
    for (const store of stores) assert.equal(await store.schemaVersion(), LATEST);
  });

  it('serialises migrations within one schema but not across schemas', async () => {
    const [schemaA, schemaB] = [await freshSchema(), await freshSchema()];
    const [storeA, otherA, storeB] = [await open(schemaA), await open(schemaA), await open(schemaB)];
    await storeA.migrate();

    // Hold schema A's migrations table: a migrate() on A then waits while
    // holding A's advisory lock, and a second one waits on that lock.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    const settled: string[] = [];
    let first: Promise<unknown> = Promise.resolve();
    let second: Promise<unknown> = Promise.resolve();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE ${schemaA}.portcullis_migrations IN ACCESS EXCLUSIVE MODE`);
      first = storeA.migrate().finally(() => settled.push('A'));
      await wait(100);
      second = otherA.migrate().finally(() => settled.push('A2'));
      // Bounded, so that a shared lock key fails this test instead of
      // deadlocking it (B would wait on A, which waits on the blocker).
      const report = await Promise.race([storeB.migrate(), rejectAfter(5000, 'schema B waited on schema A')]);
      assert.equal(report.currentVersion, LATEST, 'schema B migrates while schema A is locked');
      await wait(100);
      assert.deepEqual(settled, [], 'both migrations of schema A are still waiting');
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    const reports = (await Promise.all([first, second])) as MigrationReport[];
    assert.deepEqual(
      reports.map((r) => r.applied),
      [[], []],
    );
  });

  it('refuses a schema newer than this build', async () => {
    const schema = await freshSchema();
    const store = await open(schema);
    await store.migrate();
    await admin.query(`INSERT INTO ${schema}.portcullis_migrations (version, name, checksum, applied_at) VALUES (999, 'from the future', 'x', 0)`);
    await assert.rejects(store.migrate(), (error: unknown) => {
      assert.ok(error instanceof StoreSchemaError);
      assert.match(error.message, /999/);
      return true;
    });
    assert.equal(await store.schemaVersion(), 999);
  });

  it('refuses a schema whose applied migration was altered', async () => {
    const schema = await freshSchema();
    const store = await open(schema);
    await store.migrate();
    await admin.query(`UPDATE ${schema}.portcullis_migrations SET checksum = 'tampered' WHERE version = 1`);
    await assert.rejects(store.migrate(), StoreSchemaError);
    // The refusal rolled back: nothing was added or removed.
    const { rows } = await admin.query(`SELECT version FROM ${schema}.portcullis_migrations ORDER BY version`);
    assert.deepEqual(
      rows.map((row) => row.version),
      migrations.map((m) => m.version),
    );
  });

  it('rejects an unreachable server promptly, without the password', async () => {
    const started = Date.now();
    await assert.rejects(openPostgresDurableStore({ url: 'postgres://portcullis:s3cret-Pa55@127.0.0.1:1/portcullis' }), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.equal(error.driver, 'postgres');
      assert.match(error.message, /^cannot reach PostgreSQL at 127\.0\.0\.1:1\/portcullis: /);
      assert.doesNotMatch(error.message, /s3cret-Pa55/);
      assert.doesNotMatch(error.stack ?? '', /s3cret-Pa55/);
      return true;
    });
    assert.ok(Date.now() - started < 2000, 'a refused connection fails at once');
  });

  it('gives up after connectTimeoutMs on a server that never answers', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      await assert.rejects(
        openPostgresDurableStore({ url: `postgres://portcullis:hunter2secret@127.0.0.1:${port}/portcullis`, connectTimeoutMs: 300 }),
        (error: unknown) => {
          assert.ok(error instanceof StoreUnavailableError);
          assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}/portcullis`));
          assert.doesNotMatch(error.message, /hunter2secret/);
          return true;
        },
      );
      assert.ok(Date.now() - started < 2000, 'the connect timeout applies');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('bounds a statement by queryTimeoutMs and destroys its connection (node-postgres #3399), but never a migration', async () => {
    const target = new URL(url);
    const proxy = await startFaultProxy({ host: target.hostname, port: Number(target.port || '5432') });
    try {
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(proxy.port);
      const store = await open(await freshSchema(), { url: proxied.toString(), poolSize: 1, queryTimeoutMs: 200 });
      // Each round trip takes 300 ms, longer than a statement may: the migrations still run, on a connection of their own.
      proxy.latency(150);
      assert.equal((await store.migrate()).currentVersion, LATEST);
      await assert.rejects(store.ping(), StoreUnavailableError);
      proxy.pass();
      await store.ping();

      for (const call of [() => store.ping(), () => store.transaction((tx) => tx.records.get('kind', 'id'))]) {
        proxy.blackhole();
        const started = performance.now();
        await assert.rejects(call(), (error: unknown) => error instanceof StoreUnavailableError && /Query read timeout/.test(error.message));
        // No ROLLBACK waits behind the unanswered statement: one timeout, not two.
        assert.ok(performance.now() - started < 390, `failed after ${(performance.now() - started).toFixed(0)} ms`);
        // The connection is destroyed, not pooled: the proxy sees it close.
        for (const deadline = performance.now() + 2000; proxy.connections > 0 && performance.now() < deadline; ) await new Promise((resolve) => setImmediate(resolve));
        assert.equal(proxy.connections, 0, 'the timed-out connection is closed');
        proxy.pass();
        const accepted = proxy.accepted;
        await store.ping();
        assert.equal(proxy.accepted, accepted + 1, 'the next call gets a new connection');
      }
    } finally {
      await proxy.close();
    }
  });

  it('rejects a database that does not exist, and a schema that does not exist', async () => {
    const wrongDb = new URL(url);
    wrongDb.pathname = `/${uniqueName('no_such_db')}`;
    await assert.rejects(openPostgresDurableStore({ url: wrongDb.toString() }), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.match(error.message, /does not exist/);
      return true;
    });
    await assert.rejects(openPostgresDurableStore({ url, schema: uniqueName('no_such_schema') }), StoreSchemaError);
    await assert.rejects(openPostgresDurableStore({ url, schema: 'public; DROP TABLE records' }), TypeError);
    await assert.rejects(openPostgresDurableStore({ url, schema: 'Public' }), TypeError);
  });

  it('keeps the records of two schemas apart', async () => {
    const [schemaA, schemaB] = [await freshSchema(), await freshSchema()];
    const [storeA, storeB] = [await open(schemaA), await open(schemaB)];
    await storeA.migrate();
    assert.equal(await storeB.schemaVersion(), 0, 'migrating A created nothing in B');
    await storeB.migrate();

    assert.equal(await storeA.records.create('clients', 'shared-id', { owner: 'A' }), true);
    assert.equal(await storeB.records.create('clients', 'shared-id', { owner: 'B' }), true, 'no conflict across schemas');
    assert.equal(await storeA.records.create('clients', 'only-a', { owner: 'A' }), true);
    assert.deepEqual((await storeA.records.get('clients', 'shared-id'))?.data, { owner: 'A' });
    assert.deepEqual((await storeB.records.get('clients', 'shared-id'))?.data, { owner: 'B' });
    assert.equal(await storeB.records.get('clients', 'only-a'), null);
    assert.deepEqual(
      (await storeB.records.list('clients')).map((r) => r.id),
      ['shared-id'],
    );
    assert.equal(await storeB.records.delete('clients', 'only-a'), false);
    assert.ok(await storeA.records.get('clients', 'only-a'));
  });

  describe('jsonb and bigint columns', () => {
    let store: DurableStore;
    const now = 2 ** 52 + 7; // beyond 32 bits, still a safe integer
    before(async () => {
      store = await open(await freshSchema(), { clock: () => now });
      await store.migrate();
    });

    it('returns bigint columns as numbers', async () => {
      await store.records.create('c', 'big', { n: 1 });
      assert.equal(await store.records.update('c', 'big', 1, { n: 2 }), 2);
      const stored = await store.records.get('c', 'big');
      assert.equal(stored?.version, 2);
      assert.equal(stored?.createdAt, now);
      assert.equal(stored?.updatedAt, now);
    });

    it('stores top-level arrays and scalars as JSON, not as PostgreSQL arrays', async () => {
      const values = [[1, 'two', { three: 3 }], [], 'text', 42, -0.5, true, null, { big: 1.7976931348623157e308, tiny: 5e-324 }];
      for (const [i, value] of values.entries()) {
        assert.equal(await store.records.create('json', `v${i}`, value), true);
        assert.deepEqual((await store.records.get('json', `v${i}`))?.data, value);
      }
      await assert.rejects(store.records.create('json', 'undefined', undefined), TypeError);
    });

    it('refuses JSON that jsonb cannot hold with a TypeError, and treats NUL keys as absent', async () => {
      await assert.rejects(store.records.create('json', 'nul', { s: 'a\u0000b' }), TypeError);
      await assert.rejects(store.records.create('json', 'surrogate', { s: '\ud800' }), TypeError);
      await assert.rejects(store.records.create('json', 'a\u0000b', {}), TypeError);
      assert.equal(await store.records.get('json', 'a\u0000b'), null);
      assert.equal(await store.records.update('json', 'a\u0000b', 1, {}), null);
      assert.equal(await store.records.delete('json', 'a\u0000b'), false);
    });

    it('lists in code point order whatever the database collation', async () => {
      const ids = ['é', 'e', 'E', 'ab', 'a-b', 'a b', 'a', '~', 'ž', '中'];
      for (const r of ids) await store.records.create('order', r, {});
      const expected = [...ids].sort();
      assert.deepEqual((await store.records.list('order')).map((r) => r.id), expected);
      const firstThree = expected.slice(0, 3);
      assert.deepEqual((await store.records.list('order', { after: firstThree.at(-1)!, limit: 2 })).map((r) => r.id), expected.slice(3, 5));
      // A NUL cannot be stored, so "after a + NUL" starts right after "a".
      assert.deepEqual((await store.records.list('order', { after: 'a\u0000' })).map((r) => r.id), expected.filter((r) => r > 'a'));
    });
  });

  it('survives the server dropping an idle connection', async () => {
    const appName = uniqueName('portcullis_idle');
    const tagged = new URL(url);
    tagged.searchParams.set('application_name', appName);
    const store = await open(await freshSchema(), { url: tagged.toString(), poolSize: 1 });
    await store.ping();
    const { rows } = await admin.query('SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1', [appName]);
    assert.deepEqual(
      rows.map((row) => row.killed),
      [true],
    );
    // Without the pool's 'error' listener the process would crash here.
    await wait(200);
    await store.ping();
  });

  it('closes idempotently and refuses work afterwards', async () => {
    const store = await openPostgresDurableStore({ url });
    await store.ping();
    await Promise.all([store.close(), store.close()]);
    await store.close();
    await assert.rejects(store.ping(), StoreUnavailableError);
    await assert.rejects(store.records.get('c', 'x'), StoreUnavailableError);
  });
});
