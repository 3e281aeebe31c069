/**
 * SQLite writes a record and its index entries as one unit: in a
 * transaction of its own, or, inside a transaction the caller opened (the
 * unit of work a store transaction will give features), in a savepoint of
 * it, so that the caller's rollback takes both back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import type { DurableStore } from '../../src/store/ports.ts';

describe('sqlite record index atomicity', () => {
  let dir: string;
  let database: SqliteDatabase;
  let store: DurableStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-index-'));
    database = new SqliteDatabase({ path: join(dir, 'portcullis.db') });
    store = openSqliteDurableStore(database);
    await store.migrate();
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const ids = async (value: string) => (await store.records.findBy('things', 'owner', value)).map((r) => r.id);

  it('inside a caller transaction, a write joins it and its rollback takes back record and entries', async () => {
    await store.records.create('things', 'a', { n: 1 }, { index: { owner: ['alice'] } });
    assert.throws(() =>
      database.transaction(() => {
        // The driver's methods do their work before their first await, so
        // they run inside this synchronous transaction.
        void store.records.update('things', 'a', 1, { n: 2 }, { index: { owner: ['bob'] } });
        void store.records.create('things', 'b', { n: 1 }, { index: { owner: ['bob'] } });
        throw new Error('roll back');
      }),
    );
    assert.equal((await store.records.get('things', 'a'))?.version, 1);
    assert.equal(await store.records.get('things', 'b'), null);
    assert.deepEqual(await ids('alice'), ['a']);
    assert.deepEqual(await ids('bob'), []);
  });

  it('inside a caller transaction that commits, the write and its entries are kept', async () => {
    database.transaction(() => {
      void store.records.update('things', 'a', 1, { n: 2 }, { index: { owner: ['carol'] } });
    });
    assert.equal((await store.records.get('things', 'a'))?.version, 2);
    assert.deepEqual(await ids('alice'), []);
    assert.deepEqual(await ids('carol'), ['a']);
  });

  it('a write whose index entry fails half-way leaves neither the record nor any entry', async () => {
    // A fault injected after the record row is written: the database refuses one entry.
    database.exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON record_index WHEN NEW.index_value = 'boom'
      BEGIN SELECT RAISE(ABORT, 'injected fault'); END`);
    try {
      await assert.rejects(store.records.create('things', 'c', { n: 1 }, { index: { owner: ['ok', 'boom'] } }), /injected fault/);
      assert.equal(await store.records.get('things', 'c'), null);
      assert.deepEqual(await ids('ok'), []);

      assert.equal(await store.records.create('things', 'c', { n: 1 }, { index: { owner: ['ok'] } }), true);
      await assert.rejects(store.records.update('things', 'c', 1, { n: 2 }, { index: { owner: ['boom', 'other'] } }), /injected fault/);
      assert.deepEqual((await store.records.get('things', 'c'))?.data, { n: 1 });
      assert.deepEqual(await ids('ok'), ['c'], 'the old entries are back');
      assert.deepEqual(await ids('other'), []);
    } finally {
      database.exec('DROP TRIGGER refuse_boom');
    }
  });
});
