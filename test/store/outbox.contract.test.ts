/**
 * The outbox delivery contract (src/store/ports.ts OutboxStore, and
 * src/store/outbox-worker.ts), written once and run against every durable
 * driver available in this run: at-least-once delivery with a stable
 * idempotency key, retry with exponential backoff, the lease (one worker at
 * a time, also across connections), and a worker that starts, wakes on
 * kick() and stops cleanly. No test waits for time to pass: the worker is
 * driven with runOnce() or observed through its deliverer, and retry times
 * move on a manual clock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { durableDrivers, type DurableFixture } from './drivers.ts';
import { pendingOf, recorder, unique } from './outbox-support.ts';
import { createOutboxWorker, outboxRetryDelay, type OutboxDelivery, type OutboxWorker } from '../../src/store/outbox-worker.ts';
import type { DurableStore } from '../../src/store/ports.ts';
import { ManualClock } from '../support/clock.ts';
import { within } from '../support/process.ts';

const PEERS = 2;

/** Commits `count` messages of one topic; resolves their keys in order. */
async function commitMessages(store: DurableStore, topic: string, count: number): Promise<string[]> {
  return store.transaction(async (tx) => {
    const keys: string[] = [];
    for (let i = 0; i < count; i++) keys.push((await tx.outbox.add({ topic, payload: { i }, idempotencyKey: `${topic}:${i}` })).idempotencyKey);
    return keys;
  });
}

/** Only this test's messages reach `deliver`; others (left by earlier tests) are delivered silently. */
function only(topic: string, deliver: (message: OutboxDelivery, signal: AbortSignal) => Promise<void>) {
  return (message: OutboxDelivery, signal: AbortSignal) => (message.topic === topic ? deliver(message, signal) : Promise.resolve());
}

describe('outbox retry delay', () => {
  it('doubles from the base after each failure up to the cap', () => {
    const backoff = { baseMs: 100, maxMs: 1000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 60].map((failures) => outboxRetryDelay(failures, backoff)), [100, 200, 400, 800, 1000, 1000, 1000]);
    assert.equal(outboxRetryDelay(1), 1000, 'default base 1 s');
    assert.equal(outboxRetryDelay(100), 3_600_000, 'default cap 1 h');
  });

  it('refuses nonsensical worker options', () => {
    const outbox = {} as DurableStore['outbox'];
    const deliver = async () => {};
    for (const bad of [{ batchSize: 0 }, { pollIntervalMs: -1 }, { deliveryTimeoutMs: 1.5 }, { backoff: { baseMs: 0 } }]) {
      assert.throws(() => createOutboxWorker({ outbox, deliver, ...bad }), TypeError, JSON.stringify(bad));
    }
  });
});

for (const driver of durableDrivers) {
  describe(`Outbox delivery: ${driver.name}`, () => {
    let fx: DurableFixture;
    const workers: OutboxWorker[] = [];
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      for (const worker of workers) await worker.stop();
      await fx.close();
    });
    const worker = (options: Omit<Parameters<typeof createOutboxWorker>[0], 'outbox'> & { store?: DurableStore }) => {
      const created = createOutboxWorker({ outbox: (options.store ?? fx.store).outbox, ...options });
      workers.push(created);
      return created;
    };

    it('delivers each committed message once, with its idempotency key, and marks it delivered', async () => {
      const topic = unique('topic');
      const keys = await commitMessages(fx.store, topic, 5);
      const seen = recorder();
      const w = worker({ deliver: only(topic, seen.deliver) });
      const report = await w.runOnce();
      assert.equal(report.leased, true);
      assert.deepEqual(
        seen.calls.map((m) => [m.idempotencyKey, m.payload, m.attempt]),
        keys.map((key, i) => [key, { i }, 1]),
      );
      assert.deepEqual(await pendingOf(fx.store, topic), []);
      await w.runOnce();
      assert.equal(seen.calls.length, 5, 'a delivered message is never handed out again');
    });

    it('each topic has a lane of its own: a receiver that hangs holds up its topic, in order, never another', async () => {
      const slow = unique('slow');
      const fast = unique('fast');
      await commitMessages(fx.store, slow, 2);
      await commitMessages(fx.store, fast, 3);
      const order: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let fastDone!: () => void;
      const fastDelivered = new Promise<void>((resolve) => (fastDone = resolve));
      const w = worker({
        deliver: async (message) => {
          if (message.topic === slow) {
            order.push(message.idempotencyKey);
            await held;
          } else if (message.topic === fast) {
            order.push(message.idempotencyKey);
            if (order.filter((key) => key.startsWith(fast)).length === 3) fastDone();
          }
        },
      });
      const run = w.runOnce();
      // Bounded: in one lane for all, the fast topic would wait behind the hanging one for ever.
      const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the fast topic waited for the slow one')), 10_000).unref());
      await Promise.race([fastDelivered, deadline]);
      assert.deepEqual(order.filter((key) => key.startsWith(slow)), [`${slow}:0`], 'the slow topic: its first message hangs, the second waits behind it');
      release();
      const report = await run;
      assert.equal(report.delivered >= 5, true);
      assert.deepEqual(order.filter((key) => key.startsWith(slow)), [`${slow}:0`, `${slow}:1`], 'in order within the topic');
      assert.deepEqual(order.filter((key) => key.startsWith(fast)), [`${fast}:0`, `${fast}:1`, `${fast}:2`]);
    });

    it('a rolled-back transaction leaves nothing to deliver', async () => {
      const topic = unique('topic');
      await assert.rejects(
        fx.store.transaction(async (tx) => {
          await tx.outbox.add({ topic, payload: 1 });
          throw new Error('rolled back');
        }),
      );
      const seen = recorder();
      await worker({ deliver: only(topic, seen.deliver) }).runOnce();
      assert.deepEqual(seen.calls, []);
    });

    it('retries a failed delivery with exponential backoff, keeping the idempotency key', async () => {
      const topic = unique('topic');
      const [key] = await commitMessages(fx.store, topic, 1);
      const clock = new ManualClock(Date.now());
      let failuresLeft = 3;
      const seen = recorder(async () => {
        if (failuresLeft-- > 0) throw new Error('receiver answered 503\nwith a second line that is not stored');
      });
      const backoff = { baseMs: 1000, maxMs: 60_000 };
      const w = worker({ deliver: only(topic, seen.deliver), clock: clock.now, backoff });

      assert.deepEqual(await w.runOnce(), { leased: true, delivered: 0, failed: 1 });
      const [stored] = await pendingOf(fx.store, topic);
      assert.equal(stored?.attempts, 1);
      // Not due before base * 2^0, then due exactly then; the next wait doubles.
      for (const wait of [1000, 2000, 4000]) {
        const before = seen.calls.length;
        clock.advance(wait - 1);
        await w.runOnce();
        assert.equal(seen.calls.length, before, `not retried before ${wait} ms`);
        clock.advance(1);
        await w.runOnce();
        assert.equal(seen.calls.length, before + 1, `retried after ${wait} ms`);
      }
      assert.deepEqual(
        seen.calls.map((m) => [m.idempotencyKey, m.attempt]),
        [
          [key, 1],
          [key, 2],
          [key, 3],
          [key, 4],
        ],
      );
      assert.deepEqual(await pendingOf(fx.store, topic), [], 'the fourth attempt succeeded');
    });

    it('abandons a delivery that does not settle in time, aborts its signal, and retries it', async () => {
      const topic = unique('topic');
      const [key] = await commitMessages(fx.store, topic, 1);
      const clock = new ManualClock(Date.now());
      const signals: AbortSignal[] = [];
      const { promise: never } = Promise.withResolvers<void>();
      let hang = true;
      const w = worker({
        clock: clock.now,
        deliveryTimeoutMs: 20,
        deliver: only(topic, async (_message, signal) => {
          signals.push(signal);
          if (hang) await never;
        }),
      });
      assert.deepEqual(await w.runOnce(), { leased: true, delivered: 0, failed: 1 });
      assert.equal(signals[0]?.aborted, true);
      hang = false;
      clock.advance(outboxRetryDelay(1));
      assert.deepEqual(await w.runOnce(), { leased: true, delivered: 1, failed: 0 });
      assert.equal(signals.length, 2);
      assert.deepEqual(await pendingOf(fx.store, topic), []);
      assert.ok(key);
    });

    it('a worker without the lease does nothing while another delivers', async () => {
      const topic = unique('topic');
      await commitMessages(fx.store, topic, 2);
      const { promise: gate, resolve: open } = Promise.withResolvers<void>();
      const { promise: entered, resolve: enter } = Promise.withResolvers<void>();
      const first = recorder(async () => {
        enter();
        await gate;
      });
      const second = recorder();
      const a = worker({ deliver: only(topic, first.deliver) });
      const b = worker({ deliver: only(topic, second.deliver), store: fx.stores[1] });
      const running = a.runOnce();
      await entered;
      assert.deepEqual(await b.runOnce(), { leased: false, delivered: 0, failed: 0 });
      open();
      assert.equal((await running).delivered >= 2, true);
      assert.deepEqual(await b.runOnce(), { leased: true, delivered: 0, failed: 0 }, 'the lease is free again, and nothing is left');
      assert.deepEqual(second.calls, []);
    });

    it('two workers on separate connections racing over 200 messages: every message delivered by exactly one', async (t) => {
      const topic = unique('topic');
      const keys = await commitMessages(fx.store, topic, 200);
      const deliveredBy = new Map<string, string[]>();
      const make = (name: string, store: DurableStore) =>
        worker({
          store,
          batchSize: 7,
          deliver: only(topic, async (message) => {
            deliveredBy.set(message.idempotencyKey, [...(deliveredBy.get(message.idempotencyKey) ?? []), name]);
            await turn(); // let the other worker try meanwhile
          }),
        });
      const racers = [make('a', fx.stores[0]!), make('b', fx.stores[1]!)];
      let leasedRuns = 0;
      let refusedRuns = 0;
      const race = Promise.all(
        racers.map(async (racer) => {
          while (deliveredBy.size < keys.length) {
            const report = await racer.runOnce();
            if (report.leased) leasedRuns++;
            else refusedRuns++;
            await turn();
          }
        }),
      );
      await within(race, 60_000, 'all 200 messages delivered');
      assert.deepEqual([...deliveredBy.keys()].sort(), [...keys].sort(), 'the union is complete');
      for (const [key, by] of deliveredBy) assert.equal(by.length, 1, `${key} delivered by ${by.join(', ')}`);
      assert.ok(leasedRuns > 0);
      t.diagnostic(`${leasedRuns} leased runs, ${refusedRuns} runs found the lease taken`);
      assert.deepEqual(await pendingOf(fx.store, topic), []);
    });

    it('start() polls, kick() wakes it at once, stop() awaits the delivery in flight and records it', async () => {
      const topic = unique('topic');
      const { promise: delivering, resolve: started } = Promise.withResolvers<OutboxDelivery>();
      const { promise: release, resolve: finish } = Promise.withResolvers<void>();
      const seen = recorder(async (message) => {
        started(message);
        await release;
      });
      // An hour between polls: only kick() can explain a prompt delivery.
      const w = worker({ deliver: only(topic, seen.deliver), pollIntervalMs: 3_600_000 });
      w.start();
      w.start();
      await w.runOnce(); // the first poll has run; the worker now idles
      const [key] = await commitMessages(fx.store, topic, 1);
      w.kick();
      const message = await within(delivering, 5000, 'delivery after kick()');
      assert.equal(message.idempotencyKey, key);
      let stopped = false;
      const stopping = w.stop().then(() => (stopped = true));
      for (let i = 0; i < 5; i++) await turn();
      assert.equal(stopped, false, 'stop() waits for the delivery in flight');
      finish();
      await stopping;
      assert.deepEqual(await pendingOf(fx.store, topic), [], 'the in-flight delivery was recorded');
      await assert.rejects(w.runOnce(), /stopped/);
      assert.equal(seen.calls.length, 1);
    });

    it('reports a failing store to onError and keeps polling', async () => {
      const broken = { ...fx.store.outbox, withLease: async () => Promise.reject(new Error('database unreachable')) };
      const { promise: reported, resolve: report } = Promise.withResolvers<unknown>();
      const w = createOutboxWorker({ outbox: broken, deliver: async () => {}, onError: report, pollIntervalMs: 3_600_000 });
      w.start();
      assert.match(String(await within(reported, 5000, 'onError')), /unreachable/);
      await w.stop();
    });

    it('prunes delivered messages older than the retention, never pending ones', async () => {
      const own = await driver.open(1); // its own database: exact counts
      try {
        const store = own.store;
        await commitMessages(store, unique('topic'), 3);
        const clock = new ManualClock(Date.now());
        const w = createOutboxWorker({ outbox: store.outbox, clock: clock.now, deliver: async () => {} });
        await w.runOnce();
        await w.stop();
        await commitMessages(store, unique('topic'), 1);
        assert.deepEqual(await store.outbox.counts(), { pending: 1, delivered: 3 });
        assert.equal(await store.outbox.pruneDelivered(clock.now()), 0, 'nothing was delivered before then');
        assert.equal(await store.outbox.pruneDelivered(clock.now() + 1, 2), 2, 'at most the limit');
        assert.equal(await store.outbox.pruneDelivered(clock.now() + 1), 1);
        assert.deepEqual(await store.outbox.counts(), { pending: 1, delivered: 0 });
        // The worker prunes by itself when told how long to keep them.
        const later = createOutboxWorker({ outbox: store.outbox, clock: clock.now, retainDeliveredMs: 1000, deliver: async () => {} });
        await later.runOnce();
        assert.deepEqual(await store.outbox.counts(), { pending: 0, delivered: 1 });
        clock.advance(1001);
        await later.runOnce();
        assert.deepEqual(await store.outbox.counts(), { pending: 0, delivered: 0 });
        await later.stop();
      } finally {
        await own.close();
      }
    });
  });
}
