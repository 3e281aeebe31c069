/**
 * Typed collections (src/store/collections.ts) on every durable driver:
 * codecs refuse malformed records, `mutate` applies every racing change
 * exactly once and honours its exhaustion rule, and secondary indexes stay
 * exact through creates, updates, deletes and races.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { durableDrivers, type DurableFixture } from './drivers.ts';
import { collection, keep, write, typeboxCodec, RecordCodecError, type Collection, type RecordStore } from '../../src/store/index.ts';

const PEERS = 4;
const id = (label: string) => `${label}-${randomBytes(6).toString('hex')}`;

const Item = Type.Object({
  owner: Type.String({ minLength: 1 }),
  tags: Type.Array(Type.String()),
  count: Type.Integer({ minimum: 0 }),
  writers: Type.Array(Type.Integer()),
});
type ItemData = { owner: string; tags: string[]; count: number; writers: number[] };

function items(records: RecordStore, name: string): Collection<ItemData, 'owner' | 'tag'> {
  return collection(records, {
    name,
    codec: typeboxCodec(Item),
    indexes: { owner: (item) => item.owner, tag: (item) => item.tags },
  });
}

const item = (owner: string, tags: string[] = [], count = 0): ItemData => ({ owner, tags, count, writers: [] });
const ids = (records: readonly { id: string }[]) => records.map((record) => record.id);

for (const driver of durableDrivers) {
  describe(`typed collections: ${driver.name}`, () => {
    let fx: DurableFixture;
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      await fx.close();
    });
    const peer = (i: number) => fx.stores[i % fx.stores.length]!;
    const fresh = (i = 0) => items(peer(i).records, id('items'));

    describe('codec', () => {
      it('refuses to read a stored record of the wrong shape, naming the collection and path but not the id', async () => {
        const things = fresh();
        const r = id('bad');
        await fx.store.records.create(things.name, r, { owner: 'alice', tags: 'not-a-list', count: 0, writers: [] });
        await assert.rejects(things.get(r), (error: unknown) => {
          assert.ok(error instanceof RecordCodecError);
          assert.equal(error.collection, things.name);
          assert.equal(error.direction, 'decode');
          assert.match(error.message, /\/tags/);
          assert.doesNotMatch(error.message, new RegExp(r));
          return true;
        });
        await assert.rejects(things.list(), RecordCodecError);
        await assert.rejects(things.mutate(r, () => keep(null), { attempts: 1, exhausted: () => null }), RecordCodecError);
      });

      it('refuses to store a malformed value, and writes nothing', async () => {
        const things = fresh();
        const r = id('bad-write');
        await assert.rejects(things.create(r, { owner: '', tags: [], count: 0, writers: [] }), (error: unknown) => error instanceof RecordCodecError && error.direction === 'encode');
        assert.equal(await fx.store.records.get(things.name, r), null);
        assert.equal(await things.create(r, item('alice')), true);
        await assert.rejects(things.update(r, 1, { ...item('alice'), count: -1 }), RecordCodecError);
        assert.equal((await things.get(r))?.version, 1);
      });

      it('reads back what it wrote, with the fields a newer build may add kept', async () => {
        const things = fresh();
        const r = id('good');
        await fx.store.records.create(things.name, r, { ...item('alice', ['x']), addedLater: true });
        assert.deepEqual((await things.get(r))?.data, { ...item('alice', ['x']), addedLater: true });
      });
    });

    describe('mutate', () => {
      it('creates when absent, updates when present, and keeps without writing', async () => {
        const things = fresh();
        const r = id('m');
        const created = await things.mutate(r, (current) => (current === null ? write(item('alice'), 'created') : keep('exists')), { attempts: 3, exhausted: () => 'exhausted' });
        assert.equal(created.result, 'created');
        assert.equal(created.written, true);
        assert.equal(created.record?.version, 1);
        assert.ok(Number.isFinite(created.record?.createdAt));
        const updated = await things.mutate(r, (current) => write({ ...current!.data, count: current!.data.count + 1 }, 'updated'), { attempts: 3, exhausted: () => 'exhausted' });
        assert.equal(updated.record?.version, 2);
        assert.equal(updated.record?.data.count, 1);
        const kept = await things.mutate(r, () => keep('no change'), { attempts: 3, exhausted: () => 'exhausted' });
        assert.deepEqual([kept.result, kept.written, kept.record?.version], ['no change', false, 2]);
        assert.equal((await things.get(r))?.version, 2);
      });

      it('applies each of 24 racing mutators exactly once, across instances', async () => {
        const name = id('items');
        const r = id('race');
        const racers = 24;
        const results = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            items(peer(i).records, name).mutate(
              r,
              (current) => {
                const data = current?.data ?? item('alice');
                return write({ ...data, count: data.count + 1, writers: [...data.writers, i] }, i);
              },
              // Each lost race is another racer's win: racers rounds always settle.
              { attempts: racers, exhausted: () => assert.fail('a racer ran out of attempts') },
            ),
          ),
        );
        assert.deepEqual(results.map((outcome) => outcome.result), Array.from({ length: racers }, (_, i) => i));
        assert.ok(results.every((outcome) => outcome.written));
        const stored = await items(fx.store.records, name).get(r);
        assert.equal(stored?.data.count, racers);
        assert.deepEqual([...stored.data.writers].sort((a, b) => a - b), Array.from({ length: racers }, (_, i) => i));
        assert.equal(stored?.version, racers, 'one create and racers - 1 updates');
        assert.deepEqual(new Set(results.map((outcome) => outcome.record?.version)).size, racers, 'every winner wrote its own version');
      });

      it('stops after `attempts` lost races and lets `exhausted` decide (throw or settle)', async () => {
        const things = fresh();
        const r = id('exhaust');
        await things.create(r, item('alice'));
        let rounds = 0;
        // Every round, another instance writes between our read and our write.
        const interfere = async (current: { version: number; data: ItemData } | null) => {
          rounds += 1;
          await items(peer(1).records, things.name).update(r, current!.version, { ...current!.data, count: current!.data.count + 100 });
          return write({ ...current!.data, count: 1 }, 'mine');
        };
        await assert.rejects(
          things.mutate(r, interfere, {
            attempts: 5,
            exhausted: () => {
              throw new Error('kept losing');
            },
          }),
          /kept losing/,
        );
        assert.equal(rounds, 5);
        assert.equal((await things.get(r))?.data.count, 500, 'none of the losing writes landed');
        rounds = 0;
        const settled = await things.mutate(r, interfere, { attempts: 2, exhausted: () => 'gave up' });
        assert.deepEqual([settled.result, settled.written, rounds], ['gave up', false, 2]);
      });

      it('lets decide abort by throwing, writing nothing', async () => {
        const things = fresh();
        const r = id('abort');
        await assert.rejects(
          things.mutate(
            r,
            () => {
              throw new Error('no such thing');
            },
            { attempts: 3, exhausted: () => null },
          ),
          /no such thing/,
        );
        assert.equal(await things.get(r), null);
      });
    });

    describe('indexes', () => {
      it('finds a record under each of its values, and follows updates and deletes', async () => {
        const things = fresh();
        const r = id('idx');
        await things.create(r, item('alice', ['red', 'blue']));
        assert.deepEqual(ids(await things.findBy('owner', 'alice')), [r]);
        assert.deepEqual(ids(await things.findBy('tag', 'red')), [r]);
        assert.deepEqual(ids(await things.findBy('tag', 'blue')), [r]);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), []);

        assert.equal(await things.update(r, 1, item('bob', ['blue', 'green'])), 2);
        assert.deepEqual(ids(await things.findBy('owner', 'alice')), [], 'the old value is gone');
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), [r]);
        assert.deepEqual(ids(await things.findBy('tag', 'red')), []);
        assert.deepEqual(ids(await things.findBy('tag', 'blue')), [r], 'a kept value stays');
        assert.deepEqual(ids(await things.findBy('tag', 'green')), [r]);
        assert.equal((await things.findBy('owner', 'bob'))[0]?.data.owner, 'bob', 'found records are decoded');

        assert.equal(await things.update(r, 1, item('carol')), null, 'a stale update changes no entry');
        assert.deepEqual(ids(await things.findBy('owner', 'carol')), []);

        assert.equal(await things.delete(r, 1), false);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), [r], 'a refused delete keeps the entries');
        assert.equal(await things.delete(r), true);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), []);
        assert.deepEqual(ids(await things.findBy('tag', 'green')), []);

        assert.equal(await things.create(r, item('dave')), true);
        assert.deepEqual(ids(await things.findBy('owner', 'dave')), [r]);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), [], 'a re-created record carries only its new entries');
      });

      it('keeps collections and index names apart, and a refused create writes no entry', async () => {
        const a = fresh();
        const b = items(fx.store.records, id('items'));
        const r = id('sep');
        await a.create(r, item('alice', ['alice']));
        assert.deepEqual(ids(await b.findBy('owner', 'alice')), []);
        assert.deepEqual(ids(await a.findBy('tag', 'alice')), [r]);
        assert.equal(await a.create(r, item('mallory')), false);
        assert.deepEqual(ids(await a.findBy('owner', 'mallory')), []);
      });

      it('pages through a value in id order', async () => {
        const things = fresh();
        const made = Array.from({ length: 7 }, (_, i) => `p-${String(i).padStart(2, '0')}`);
        for (const r of [...made].reverse()) await things.create(r, item('alice'));
        await things.create('p-other', item('bob'));
        const first = await things.findBy('owner', 'alice', { limit: 3 });
        assert.deepEqual(ids(first), made.slice(0, 3));
        assert.deepEqual(ids(await things.findBy('owner', 'alice', { after: first.at(-1)!.id, limit: 3 })), made.slice(3, 6));
        assert.deepEqual(ids(await things.findAllBy('owner', 'alice', 2)), made);
      });

      it('a raw write without entries drops the record from every index', async () => {
        const things = fresh();
        const r = id('raw');
        await things.create(r, item('alice', ['red']));
        assert.equal(await fx.store.records.update(things.name, r, 1, item('alice', ['red'])), 2);
        assert.deepEqual(ids(await things.findBy('owner', 'alice')), []);
        assert.deepEqual(ids(await things.findBy('tag', 'red')), []);
      });

      it('refuses malformed entries on every driver alike', async () => {
        const records = fx.store.records;
        const r = id('bad-index');
        await assert.rejects(records.create('things', r, {}, { index: { 'Bad Name': ['x'] } }), TypeError);
        await assert.rejects(records.create('things', r, {}, { index: { owner: ['with\0nul'] } }), TypeError);
        await assert.rejects(records.create('things', r, {}, { index: { owner: [''] } }), TypeError);
        assert.equal(await records.get('things', r), null);
      });

      it('after racing creates of one id, only the winner is indexed', async () => {
        const name = id('items');
        const r = id('race-create');
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => items(peer(i).records, name).create(r, item(`owner-${i}`))));
        const winner = results.indexOf(true);
        assert.equal(results.filter(Boolean).length, 1);
        for (let i = 0; i < 20; i++) {
          assert.deepEqual(ids(await items(fx.store.records, name).findBy('owner', `owner-${i}`)), i === winner ? [r] : [], `owner-${i}`);
        }
      });

      it('after racing mutators move a record between values, it is found under the last value only', async () => {
        const name = id('items');
        const r = id('race-move');
        await items(fx.store.records, name).create(r, item('start'));
        const racers = 16;
        await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            items(peer(i).records, name).mutate(r, (current) => write({ ...current!.data, owner: `owner-${i}`, tags: [`tag-${i}`, 'shared'], count: current!.data.count + 1 }), {
              attempts: racers,
              exhausted: () => assert.fail('a racer ran out of attempts'),
            }),
          ),
        );
        const things = items(fx.store.records, name);
        const final = await things.get(r);
        assert.equal(final?.data.count, racers);
        for (let i = 0; i < racers; i++) {
          const expected: string[] = final?.data.owner === `owner-${i}` ? [r] : [];
          assert.deepEqual(ids(await things.findBy('owner', `owner-${i}`)), expected, `owner-${i}`);
          assert.deepEqual(ids(await things.findBy('tag', `tag-${i}`)), expected, `tag-${i}`);
        }
        assert.deepEqual(ids(await things.findBy('owner', 'start')), []);
        assert.deepEqual(ids(await things.findBy('tag', 'shared')), [r]);
      });

      it("inside a store transaction, a collection's writes and entries commit or roll back together", async () => {
        const name = id('items');
        const r = id('tx');
        await assert.rejects(
          fx.store.transaction(async (tx) => {
            const things = items(fx.store.records, name).on(tx.records);
            assert.equal(await things.create(r, item('alice')), true);
            assert.deepEqual(ids(await things.findBy('owner', 'alice')), [r], 'the transaction sees its own entries');
            throw new Error('roll back');
          }),
          /roll back/,
        );
        const things = items(fx.store.records, name);
        assert.equal(await things.get(r), null);
        assert.deepEqual(ids(await things.findBy('owner', 'alice')), []);
        await fx.store.transaction(async (tx) => {
          const inTx = things.on(tx.records);
          await inTx.create(r, item('alice'));
          await inTx.mutate(r, (current) => write({ ...current!.data, owner: 'bob' }), { attempts: 1, exhausted: () => assert.fail('no race here') });
        });
        assert.deepEqual(ids(await things.findBy('owner', 'alice')), []);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')), [r]);
      });

      it('racing deletes and updates leave no record findable that is gone', async () => {
        const name = id('items');
        const rs = Array.from({ length: 10 }, (_, i) => `gone-${i}`);
        for (const r of rs) await items(fx.store.records, name).create(r, item('alice'));
        await Promise.all(
          rs.flatMap((r, i) => [
            items(peer(i).records, name).delete(r),
            items(peer(i + 1).records, name).mutate(r, (current) => (current === null ? keep(null) : write({ ...current.data, owner: 'bob' })), { attempts: 10, exhausted: () => null }),
          ]),
        );
        const things = items(fx.store.records, name);
        const live = new Set(ids(await things.list()));
        assert.deepEqual(ids(await things.findBy('owner', 'alice')).filter((r) => !live.has(r)), []);
        assert.deepEqual(ids(await things.findBy('owner', 'bob')).filter((r) => !live.has(r)), []);
      });
    });
  });
}
