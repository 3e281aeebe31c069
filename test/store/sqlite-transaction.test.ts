/**
 * What only the embedded (SQLite) deployment has to prove about
 * transactions: an async transaction holds the file's write lock across
 * turns of the event loop, so every other connection to the file in this
 * process (the hot store's, a second store's) must wait for it without
 * blocking the loop. Without the shared gate, SQLite's busy handler would
 * stall the whole process for busy_timeout and then fail with "database is
 * locked", while the transaction it waits for could never finish.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { openSqliteHotStore } from '../../src/store/sqlite/hot-store.ts';
import { TransactionUsageError } from '../../src/store/errors.ts';
import type { DurableStore, HotStore } from '../../src/store/ports.ts';

describe('SQLite: a durable transaction and the other connections to its file', () => {
  let dir: string;
  let durable: DurableStore;
  let second: DurableStore;
  let hot: HotStore;
  const databases: SqliteDatabase[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-sqlite-tx-'));
    const path = join(dir, 'portcullis.db');
    const open = (spelling: string, synchronous?: 'NORMAL') => {
      const database = new SqliteDatabase({ path: spelling, ...(synchronous && { synchronous }) });
      databases.push(database);
      return database;
    };
    durable = openSqliteDurableStore(open(path));
    await durable.migrate();
    // As openStores wires the embedded deployment: the hot store on a connection of its own.
    hot = openSqliteHotStore(open(path, 'NORMAL'));
    // Another spelling of the same file is the same file.
    second = openSqliteDurableStore(open(join(dir, '.', 'portcullis.db')));
  });

  after(async () => {
    await hot.close();
    for (const database of databases) database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a transaction that has written and now waits; returns its release and its outcome. */
  async function holdTransaction(id: string) {
    const { promise: hold, resolve: release } = Promise.withResolvers<void>();
    const { promise: written, resolve: wrote } = Promise.withResolvers<void>();
    const done = durable.transaction(async (tx) => {
      await tx.records.create('held', id, {});
      wrote();
      await hold;
    });
    await written;
    return { release, done };
  }

  it('a hot-store write and a second store write wait for the transaction, and the event loop keeps turning', async () => {
    await hot.set('before', 'committed', 60_000);
    const { release, done } = await holdTransaction('a');
    let hotWritten = false;
    let secondWritten = false;
    const hotWrite = hot.set('during', 'x', 60_000).then(() => (hotWritten = true));
    const secondWrite = second.records.create('held', 'from-second', {}).then(() => (secondWritten = true));
    // Reads on other connections are not held up: they see the last commit.
    assert.equal(await hot.get('before'), 'committed');
    assert.equal(await second.records.get('held', 'a'), null, 'uncommitted, invisible to another connection');
    for (let i = 0; i < 10; i++) await turn();
    assert.deepEqual([hotWritten, secondWritten], [false, false], 'the writes wait for the transaction');
    release();
    await done;
    await Promise.all([hotWrite, secondWrite]);
    assert.equal(await hot.get('during'), 'x');
    assert.ok(await durable.records.get('held', 'from-second'));
    assert.ok(await durable.records.get('held', 'a'));
  });

  it('inside the transaction a hot-store read works and a hot-store write is refused (it would wait for itself)', async () => {
    await hot.set('k', 'v', 60_000);
    await durable.transaction(async (tx) => {
      await tx.records.create('held', 'b', {});
      assert.equal(await hot.get('k'), 'v');
      await assert.rejects(hot.set('k', 'w', 60_000), TransactionUsageError);
      await assert.rejects(second.records.create('held', 'c', {}), TransactionUsageError);
    });
    assert.equal(await hot.get('k'), 'v');
  });

  it('transactions from two stores on one file run one after the other, both committed', async () => {
    const order: string[] = [];
    const { promise: hold, resolve: release } = Promise.withResolvers<void>();
    const first = durable.transaction(async (tx) => {
      order.push('first begins');
      await tx.records.create('order', 'first', {});
      await hold;
      order.push('first ends');
    });
    const other = second.transaction(async (tx) => {
      order.push('second begins');
      await tx.records.create('order', 'second', {});
    });
    for (let i = 0; i < 5; i++) await turn();
    release();
    await Promise.all([first, other]);
    assert.deepEqual(order, ['first begins', 'first ends', 'second begins']);
    assert.deepEqual((await durable.records.list('order')).map((r) => r.id), ['first', 'second']);
  });
});
