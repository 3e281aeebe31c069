/**
 * Migration 5 (record indexes) on a database that holds data: refresh
 * families and consents written by a build at schema version 3, before
 * indexes existed, must be found by user and client after the upgrade,
 * through the same features that find new ones, on every durable driver.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrationChecksum, migrations, type Dialect } from '../../src/store/migrations/index.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import type { DurableStore } from '../../src/store/ports.ts';
import { RefreshTokens, type RefreshGrant } from '../../src/oauth/refresh-tokens.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { createTestSchema, testDatabaseUrl } from '../support/services.ts';

/** What a version-3 build stored: rows of `records`, no index entries. */
interface LegacyRow {
  readonly collection: string;
  readonly id: string;
  readonly data: unknown;
}

/** Executes SQL on a database that no Portcullis store has opened (the old build's view). */
interface RawDatabase {
  readonly dialect: Dialect;
  run(sql: string, params?: readonly unknown[]): Promise<void>;
}

const MIGRATIONS_TABLE = `CREATE TABLE portcullis_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at bigint NOT NULL)`;

/** Brings an empty database to schema version 3 exactly as that build did, and stores `rows`. */
async function buildVersion3(db: RawDatabase, rows: readonly LegacyRow[]): Promise<void> {
  await db.run(MIGRATIONS_TABLE);
  for (const migration of migrations.filter((m) => m.version <= 3)) {
    await db.run(migration[db.dialect]);
    await db.run(`INSERT INTO portcullis_migrations (version, name, checksum, applied_at) VALUES (${db.dialect === 'sqlite' ? '?, ?, ?, ?' : '$1, $2, $3, $4'})`, [
      migration.version,
      migration.name,
      migrationChecksum(migration, db.dialect),
      Date.now(),
    ]);
  }
  for (const row of rows) {
    await db.run(
      `INSERT INTO records (collection, id, version, data, created_at, updated_at) VALUES (${db.dialect === 'sqlite' ? '?, ?, 1, ?, ?, ?' : '$1, $2, 1, $3::jsonb, $4, $4'})`,
      db.dialect === 'sqlite' ? [row.collection, row.id, JSON.stringify(row.data), Date.now(), Date.now()] : [row.collection, row.id, JSON.stringify(row.data), Date.now()],
    );
  }
}

interface Driver {
  readonly name: string;
  /** A database at version 3 holding `rows`, then opened by this build's store. */
  open(rows: readonly LegacyRow[]): Promise<{ store: DurableStore; close(): Promise<void> }>;
}

const sqlite: Driver = {
  name: 'sqlite',
  async open(rows) {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-upgrade-'));
    const path = join(dir, 'portcullis.db');
    const old = new SqliteDatabase({ path });
    await buildVersion3({ dialect: 'sqlite', run: async (sql, params = []) => void (params.length === 0 ? old.exec(sql) : old.statement(sql).run(...(params as (string | number)[]))) }, rows);
    old.close();
    const store = openSqliteDurableStore(new SqliteDatabase({ path }));
    return {
      store,
      close: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

function postgres(url: string): Driver {
  return {
    name: 'postgres',
    async open(rows) {
      const { openPostgresDurableStore } = await import('../../src/store/postgres/durable-store.ts');
      const { schema, drop } = await createTestSchema(url);
      const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
      await client.connect();
      try {
        await buildVersion3({ dialect: 'postgres', run: async (sql, params) => void (await client.query(sql, params as unknown[] | undefined)) }, rows);
      } finally {
        await client.end();
      }
      const store = await openPostgresDurableStore({ url, schema });
      return {
        store,
        close: async () => {
          await store.close();
          await drop();
        },
      };
    },
  };
}

const drivers: readonly Driver[] = [sqlite, ...(testDatabaseUrl ? [postgres(testDatabaseUrl)] : [])];

const vault = KeyVault.generate();
const hashKey = vault.derive('refresh-token-hashes');
const now = Date.now();

/** A family id as the version-3 build made them: keyed user and client hashes, then 128 random bits. */
function familyId(userId: string, clientId: string): string {
  const part = (label: string, value: string) => createHmac('sha256', hashKey).update(`${label}:${value}`).digest('base64url').slice(0, 11);
  return `${part('user', userId)}${part('client', clientId)}${randomBytes(16).toString('base64url')}`;
}

function legacyFamily(userId: string, clientId: string, options: { revoked?: boolean; withoutRetired?: boolean } = {}): { row: LegacyRow; token: string } {
  const id = familyId(userId, clientId);
  const token = `${id}.${randomBytes(32).toString('base64url')}`;
  const grant: RefreshGrant = { userId, clientId, scope: 'openid offline_access', resources: [], authTime: now, amr: ['pwd'] };
  const data = {
    grant,
    createdAt: now,
    absoluteExpiresAt: now + 86_400_000,
    current: { hash: createHmac('sha256', hashKey).update(token).digest('base64url'), issuedAt: now },
    ...(options.withoutRetired !== true && { retired: [] }),
    accessTokens: [{ jti: randomBytes(8).toString('hex'), exp: Math.floor(now / 1000) + 600 }],
    ...(options.revoked === true && { revoked: { at: now, reason: 'logout' } }),
  };
  return { row: { collection: 'refresh-families', id, data }, token };
}

function legacyConsent(userId: string, clientId: string, withResources = true): LegacyRow {
  return {
    collection: 'consents',
    id: `${userId}:${clientId}`,
    data: { userId, clientId, scopes: ['openid'], ...(withResources && { resources: [] }), grantedAt: now },
  };
}

for (const driver of drivers) {
  describe(`record indexes after an upgrade from schema version 3: ${driver.name}`, () => {
    const aliceApp = legacyFamily('alice', 'app', { withoutRetired: true });
    const aliceOther = legacyFamily('alice', 'other');
    const aliceRevoked = legacyFamily('alice', 'app', { revoked: true });
    const bob = legacyFamily('bob', 'app');
    const rows: LegacyRow[] = [
      aliceApp.row,
      aliceOther.row,
      aliceRevoked.row,
      bob.row,
      legacyConsent('alice', 'app'),
      legacyConsent('alice', 'other', false),
      legacyConsent('bob', 'app'),
      // Same shape, other collections: not indexed by the backfill.
      { collection: 'elsewhere', id: 'x', data: { userId: 'alice', grant: { userId: 'alice' } } },
      // A consent from a broken write, with neither user nor client: skipped, not an error.
      { collection: 'consents', id: 'broken', data: { userId: 42, scopes: ['openid'] } },
    ];
    let fx: { store: DurableStore; close(): Promise<void> };
    let tokens: RefreshTokens;
    before(async () => {
      fx = await driver.open(rows);
      tokens = new RefreshTokens({ records: fx.store.records, clock: () => now + 1000, policy: { idleTtlSeconds: 3600, absoluteTtlSeconds: 86_400, graceSeconds: 10 }, vault });
    });
    after(async () => {
      await fx.close();
    });

    it('migrates from 3 to the latest version, applying the index migration', async () => {
      assert.equal(await fx.store.schemaVersion(), 3);
      const report = await fx.store.migrate();
      assert.ok(report.applied.some((m) => m.version === 5 && m.name === 'record indexes'));
      assert.equal(report.currentVersion, migrations.at(-1)!.version);
    });

    it("finds a user's legacy refresh families, and a user's with one client", async () => {
      const ids = (found: { familyId: string }[]) => found.map((f) => f.familyId).sort();
      assert.deepEqual(ids(await tokens.families('alice')), [aliceApp.row.id, aliceOther.row.id].sort(), 'live ones, the revoked one left out');
      assert.deepEqual(ids(await tokens.families('alice', 'app')), [aliceApp.row.id]);
      assert.deepEqual(ids(await tokens.families('bob')), [bob.row.id]);
      assert.deepEqual(await tokens.families('carol'), []);
    });

    it('rotates a legacy token, and the family stays findable', async () => {
      const build = async (_: RefreshGrant, refreshToken: string) => ({ refresh_token: refreshToken, accessTokenJti: 'j2', accessTokenExp: Math.floor(now / 1000) + 600 });
      assert.equal((await tokens.rotate(aliceApp.token, 'app', build)).outcome, 'rotated');
      assert.deepEqual((await tokens.families('alice', 'app')).map((f) => f.familyId), [aliceApp.row.id]);
    });

    it("finds a user's and a client's legacy consents, and nothing of other collections", async () => {
      const ids = async (collection: string, index: string, value: string) => (await fx.store.records.findBy(collection, index, value)).map((r) => r.id);
      assert.deepEqual(await ids('consents', 'user', 'alice'), ['alice:app', 'alice:other']);
      assert.deepEqual(await ids('consents', 'client', 'app'), ['alice:app', 'bob:app']);
      assert.deepEqual(await ids('consents', 'user', 'bob'), ['bob:app']);
      assert.deepEqual(await ids('elsewhere', 'user', 'alice'), []);
      assert.deepEqual(await ids('refresh-families', 'client', 'other'), [aliceOther.row.id]);
    });
  });
}
