import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { migrationChecksum, migrations, pendingMigrations } from '../../src/store/migrations/index.ts';
import { StoreSchemaError } from '../../src/store/errors.ts';

describe('migration planning', () => {
  it('versions are 1..n, in order, with SQL for both engines', () => {
    migrations.forEach((migration, i) => {
      assert.equal(migration.version, i + 1);
      assert.ok(migration.sqlite.trim() && migration.postgres.trim() && migration.name);
    });
  });

  it('an empty database gets every migration; a current one gets none; a partial one the rest', () => {
    assert.deepEqual(pendingMigrations([], 'sqlite'), [...migrations]);
    const all = migrations.map((m) => ({ version: m.version, checksum: migrationChecksum(m, 'postgres') }));
    assert.deepEqual(pendingMigrations(all, 'postgres'), []);
    assert.deepEqual(pendingMigrations(all.slice(0, 1), 'postgres'), migrations.slice(1));
  });

  it('refuses a database newer than this build', () => {
    assert.throws(() => pendingMigrations([{ version: 999, checksum: 'x' }], 'sqlite'), (error: unknown) => error instanceof StoreSchemaError && /newer/.test(error.message));
  });

  it('refuses a database whose applied migration differs from this build (edited history)', () => {
    const first = migrations[0]!;
    assert.throws(() => pendingMigrations([{ version: first.version, checksum: 'edited' }], 'sqlite'), (error: unknown) => error instanceof StoreSchemaError && /differs/.test(error.message));
    assert.throws(() => pendingMigrations([{ version: first.version, checksum: migrationChecksum(first, 'postgres') }], 'sqlite'), StoreSchemaError);
  });
});
