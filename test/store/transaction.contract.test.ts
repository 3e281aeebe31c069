/**
 * The transaction contract (src/store/ports.ts, DurableTransactionRunner),
 * written once and run against every durable driver available in this run:
 * commit and rollback of records together with outbox rows, the usage rules
 * refused alike on every driver, and compare-and-set between concurrent
 * transactions on separate connections.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { durableDrivers, type DurableFixture } from './drivers.ts';
import { pendingOf, unique } from './outbox-support.ts';
import { TransactionUsageError } from '../../src/store/errors.ts';
import type { DurableTransaction } from '../../src/store/ports.ts';

const PEERS = 4;

class Conflict extends Error {}

for (const driver of durableDrivers) {
  describe(`DurableStore transactions: ${driver.name}`, () => {
    let fx: DurableFixture;
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      await fx.close();
    });
    const peer = (i: number) => fx.stores[i % fx.stores.length]!;

    it('commits records and outbox messages together, and returns what fn returned', async () => {
      const id = unique('commit');
      const topic = unique('topic');
      const result = await fx.store.transaction(async (tx) => {
        assert.equal(await tx.records.create('things', id, { n: 1 }), true);
        assert.equal(await tx.records.update('things', id, 1, { n: 2 }), 2);
        assert.deepEqual((await tx.records.get('things', id))?.data, { n: 2 }, 'the transaction reads its own writes');
        const added = await tx.outbox.add({ topic, payload: { id, list: [1, 'two', null] }, idempotencyKey: `${id}:created` });
        assert.deepEqual(added, { idempotencyKey: `${id}:created`, added: true });
        return 'done';
      });
      assert.equal(result, 'done');
      assert.deepEqual((await fx.store.records.get('things', id))?.data, { n: 2 });
      const pending = await pendingOf(fx.store, topic);
      assert.equal(pending.length, 1);
      assert.deepEqual(pending[0]!.payload, { id, list: [1, 'two', null] });
      assert.equal(pending[0]!.idempotencyKey, `${id}:created`);
      assert.equal(pending[0]!.attempts, 0);
    });

    it('an error inside fn rolls everything back, outbox row included, and is rethrown as it is', async () => {
      const id = unique('rollback');
      const existing = unique('existing');
      const topic = unique('topic');
      await fx.store.records.create('things', existing, { v: 'before' });
      const failure = new Error('refused by the feature');
      const rejected = fx.store.transaction(async (tx) => {
        await tx.records.create('things', id, { n: 1 });
        await tx.records.update('things', existing, 1, { v: 'changed' });
        await tx.records.delete('things', existing);
        await tx.outbox.add({ topic, payload: { id } });
        throw failure;
      });
      await assert.rejects(rejected, (error) => error === failure);
      assert.equal(await fx.store.records.get('things', id), null);
      const kept = await fx.store.records.get('things', existing);
      assert.deepEqual([kept?.data, kept?.version], [{ v: 'before' }, 1]);
      assert.deepEqual(await pendingOf(fx.store, topic), []);
    });

    it('a rejected operation poisons the transaction even when fn catches it', async () => {
      const id = unique('poison');
      const topic = unique('topic');
      const rejected = fx.store.transaction(async (tx) => {
        await tx.records.create('things', id, {});
        await tx.outbox.add({ topic, payload: 1 });
        await assert.rejects(tx.records.create('things', unique('bad'), { n: 1n }), TypeError);
        return 'swallowed';
      });
      await assert.rejects(rejected, TypeError);
      assert.equal(await fx.store.records.get('things', id), null);
      assert.deepEqual(await pendingOf(fx.store, topic), []);
    });

    it('refuses a nested transaction and the outer store from inside fn', async () => {
      const id = unique('nested');
      await fx.store.transaction(async (tx) => {
        await tx.records.create('things', id, {});
        await assert.rejects(fx.store.transaction(async () => 'inner'), TransactionUsageError);
        await assert.rejects(fx.store.records.get('things', id), TransactionUsageError);
        await assert.rejects(fx.store.records.create('things', unique('outer'), {}), TransactionUsageError);
        await assert.rejects(fx.store.auditLog.size(), TransactionUsageError);
      });
      assert.ok(await fx.store.records.get('things', id), 'the refusals did not poison the transaction');
      // Another store on its own connection is a different database handle: allowed.
      if (fx.stores.length > 1) {
        await fx.store.transaction(async () => {
          assert.equal(await peer(1).records.get('things', id).then((r) => r?.id), id);
        });
      }
    });

    it('the view is dead once the transaction ended, on commit and on rollback', async () => {
      let leaked: DurableTransaction | undefined;
      await fx.store.transaction(async (tx) => {
        leaked = tx;
      });
      await assert.rejects(leaked!.records.create('things', unique('late'), {}), TransactionUsageError);
      await assert.rejects(leaked!.outbox.add({ topic: 'late', payload: 1 }), TransactionUsageError);
      await assert.rejects(
        fx.store.transaction(async (tx) => {
          leaked = tx;
          throw new Conflict();
        }),
        Conflict,
      );
      await assert.rejects(leaked!.records.get('things', 'x'), TransactionUsageError);
    });

    it('an operation from elsewhere neither sees uncommitted writes nor is rolled back with the transaction', async () => {
      const inside = unique('inside');
      const outside = unique('outside');
      const { promise: hold, resolve: release } = Promise.withResolvers<void>();
      const { promise: written, resolve: wrote } = Promise.withResolvers<void>();
      let ended = false;
      const transaction = fx.store
        .transaction(async (tx) => {
          await tx.records.create('things', inside, {});
          wrote();
          await hold;
          throw new Conflict();
        })
        .finally(() => (ended = true));
      await written;
      // Started from the test, not from fn: on SQLite these wait for the one
      // connection, on PostgreSQL they run beside the transaction.
      const read = fx.store.records.get('things', inside).then((record) => ({ record, ended }));
      const write = fx.store.records.create('things', outside, { by: 'elsewhere' });
      release();
      await assert.rejects(transaction, Conflict);
      const seen = await read;
      assert.equal(seen.record, null, 'never sees the uncommitted (and then rolled back) record');
      assert.equal(await write, true);
      assert.deepEqual((await fx.store.records.get('things', outside))?.data, { by: 'elsewhere' });
      assert.equal(await fx.store.records.get('things', inside), null);
    });

    it('adding a key already in the outbox adds nothing; a missing key gets a generated one', async () => {
      const topic = unique('topic');
      const key = unique('key');
      const first = await fx.store.transaction((tx) => tx.outbox.add({ topic, payload: { n: 1 }, idempotencyKey: key }));
      const again = await fx.store.transaction((tx) => tx.outbox.add({ topic, payload: { n: 2 }, idempotencyKey: key }));
      assert.deepEqual([first.added, again.added], [true, false]);
      const generated = await fx.store.transaction((tx) => tx.outbox.add({ topic, payload: { n: 3 } }));
      assert.equal(generated.added, true);
      assert.match(generated.idempotencyKey, /^[0-9a-f-]{36}$/);
      const pending = await pendingOf(fx.store, topic);
      assert.deepEqual(
        pending.map((m) => [m.idempotencyKey, m.payload]),
        [
          [key, { n: 1 }],
          [generated.idempotencyKey, { n: 3 }],
        ],
      );
    });

    it('refuses bad messages with a TypeError before they reach the database', async () => {
      for (const message of [
        { topic: '', payload: 1 },
        { topic: 'x'.repeat(201), payload: 1 },
        { topic: 'ok', payload: 1, idempotencyKey: '' },
        { topic: 'ok', payload: 1, idempotencyKey: 'a\0b' },
        { topic: 'ok', payload: undefined },
        { topic: 'ok', payload: () => 1 },
      ]) {
        await assert.rejects(
          fx.store.transaction((tx) => tx.outbox.add(message)),
          TypeError,
          JSON.stringify(message),
        );
      }
    });

    describe('concurrent transactions on separate connections', () => {
      it('compare-and-set still decides: of 20 transactions updating from one version, exactly one commits its outbox row', async () => {
        const id = unique('cas');
        const topic = unique('topic');
        await fx.store.records.create('race', id, { writer: null });
        const outcomes = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            peer(i).transaction(async (tx) => {
              if ((await tx.records.update('race', id, 1, { writer: i })) === null) throw new Conflict();
              await tx.outbox.add({ topic, payload: { writer: i } });
              return i;
            }),
          ),
        );
        const winners = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
        assert.equal(winners.length, 1);
        for (const outcome of outcomes) if (outcome.status === 'rejected') assert.ok(outcome.reason instanceof Conflict);
        const stored = await fx.store.records.get('race', id);
        assert.deepEqual([stored?.data, stored?.version], [{ writer: winners[0] }, 2]);
        assert.deepEqual((await pendingOf(fx.store, topic)).map((m) => m.payload), [{ writer: winners[0] }]);
      });

      it('20 read-modify-write transactions with retry lose no update and leave one outbox row each', async () => {
        const id = unique('rmw');
        const topic = unique('topic');
        await fx.store.records.create('race', id, { count: 0 });
        let conflicts = 0;
        await Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            for (;;) {
              try {
                await peer(i).transaction(async (tx) => {
                  const current = await tx.records.get<{ count: number }>('race', id);
                  assert.ok(current);
                  if ((await tx.records.update('race', id, current.version, { count: current.data.count + 1 })) === null) throw new Conflict();
                  await tx.outbox.add({ topic, payload: { writer: i }, idempotencyKey: `${id}:${i}` });
                });
                return;
              } catch (error) {
                if (!(error instanceof Conflict)) throw error;
                conflicts++;
              }
            }
          }),
        );
        const stored = await fx.store.records.get<{ count: number }>('race', id);
        assert.deepEqual([stored?.data.count, stored?.version], [20, 21]);
        const pending = await pendingOf(fx.store, topic);
        assert.deepEqual(pending.map((m) => m.idempotencyKey).sort(), Array.from({ length: 20 }, (_, i) => `${id}:${i}`).sort());
        assert.ok(conflicts >= 0);
      });
    });
  });
}
