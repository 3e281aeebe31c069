/**
 * The DurableStore contract (src/store/ports.ts), written once and run
 * against every durable driver available in this run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { durableDrivers, type DurableFixture } from './drivers.ts';
import { migrations } from '../../src/store/migrations/index.ts';

const PEERS = 4;
const id = (label: string) => `${label}-${randomBytes(6).toString('hex')}`;

for (const driver of durableDrivers) {
  describe(`DurableStore contract: ${driver.name}`, () => {
    let fx: DurableFixture;
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      await fx.close();
    });
    const peer = (i: number) => fx.stores[i % fx.stores.length]!;
    const records = () => fx.store.records;

    it('is migrated to the latest version, and migrating again applies nothing', async () => {
      const latest = migrations.at(-1)!.version;
      assert.equal(await fx.store.schemaVersion(), latest);
      assert.deepEqual(await fx.store.migrate(), { applied: [], currentVersion: latest });
      await fx.store.ping();
    });

    it('creates a record and reads back the same JSON at version 1', async () => {
      const data = { name: 'ünïcødé ✓', nested: { list: [1, 2.5, null, true, 'x'] }, empty: {} };
      const r = id('create');
      assert.equal(await records().create('things', r, data), true);
      const stored = await records().get('things', r);
      assert.ok(stored);
      assert.deepEqual(stored.data, data);
      assert.equal(stored.version, 1);
      assert.equal(stored.collection, 'things');
      assert.equal(stored.id, r);
      assert.ok(stored.createdAt > 0 && stored.updatedAt === stored.createdAt);
      assert.equal(await records().get('things', id('missing')), null);
      assert.equal(await records().get('other', r), null, 'collections are separate');
    });

    it('refuses to create over an existing record and keeps the original', async () => {
      const r = id('dup');
      assert.equal(await records().create('things', r, { v: 'first' }), true);
      assert.equal(await records().create('things', r, { v: 'second' }), false);
      assert.deepEqual((await records().get('things', r))?.data, { v: 'first' });
    });

    it('updates only from the current version', async () => {
      const r = id('update');
      await records().create('things', r, { n: 1 });
      assert.equal(await records().update('things', r, 1, { n: 2 }), 2);
      assert.equal(await records().update('things', r, 1, { n: 3 }), null, 'stale version');
      assert.equal(await records().update('things', id('missing'), 1, { n: 3 }), null, 'missing record');
      const stored = await records().get('things', r);
      assert.deepEqual(stored?.data, { n: 2 });
      assert.equal(stored?.version, 2);
    });

    it('deletes unconditionally or only from a given version', async () => {
      const r = id('delete');
      await records().create('things', r, {});
      assert.equal(await records().delete('things', r, 7), false);
      assert.ok(await records().get('things', r));
      assert.equal(await records().delete('things', r, 1), true);
      assert.equal(await records().delete('things', r), false);
      const s = id('delete');
      await records().create('things', s, {});
      assert.equal(await records().delete('things', s), true);
      assert.equal(await records().get('things', s), null);
    });

    it('lists one collection in byte order of id, page by page', async () => {
      const collection = id('listing');
      const ids = ['b', 'B', 'a', 'A', '_', 'aa', 'z9', 'Z'];
      for (const r of ids) await records().create(collection, r, { r });
      await records().create(id('elsewhere'), 'a', {});
      const expected = [...ids].sort();
      assert.deepEqual((await records().list(collection)).map((x) => x.id), expected);
      const page1 = await records().list(collection, { limit: 3 });
      const page2 = await records().list(collection, { limit: 3, after: page1.at(-1)!.id });
      const page3 = await records().list(collection, { limit: 3, after: page2.at(-1)!.id });
      assert.deepEqual([...page1, ...page2, ...page3].map((x) => x.id), expected);
      await assert.rejects(records().list(collection, { limit: 0 }), TypeError);
    });

    describe('races across separate connections', () => {
      it('create: exactly one of 100 concurrent creates of one id wins', async () => {
        const r = id('race-create');
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => peer(i).records.create('race', r, { writer: i })));
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        assert.equal(winners.length, 1);
        assert.deepEqual((await records().get('race', r))?.data, { writer: winners[0] });
      });

      it('update: exactly one of 100 concurrent updates from one version wins', async () => {
        const r = id('race-update');
        await records().create('race', r, { writer: null });
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => peer(i).records.update('race', r, 1, { writer: i })));
        const winners = results.flatMap((version, i) => (version === null ? [] : [i]));
        assert.equal(winners.length, 1);
        const stored = await records().get('race', r);
        assert.deepEqual(stored?.data, { writer: winners[0] });
        assert.equal(stored?.version, 2);
      });

      it('update: 40 read-modify-write loops lose no update', async () => {
        const r = id('race-rmw');
        await records().create('race', r, { count: 0 });
        await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            for (;;) {
              const current = await peer(i).records.get<{ count: number }>('race', r);
              assert.ok(current);
              if ((await peer(i).records.update('race', r, current.version, { count: current.data.count + 1 })) !== null) return;
            }
          }),
        );
        const stored = await records().get<{ count: number }>('race', r);
        assert.equal(stored?.data.count, 40);
        assert.equal(stored?.version, 41);
      });
    });
  });
}
