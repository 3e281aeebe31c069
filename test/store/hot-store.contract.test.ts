/**
 * The HotStore contract (src/store/ports.ts), written once and run against
 * every hot driver available in this run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hotDrivers, type HotFixture } from './drivers.ts';

const PEERS = 4;
const key = (label: string) => `${label}:${randomBytes(6).toString('hex')}`;

for (const driver of hotDrivers) {
  describe(`HotStore contract: ${driver.name}`, () => {
    let fx: HotFixture;
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      await fx.close();
    });
    /** Spreads concurrent callers over every handle, as over many instances. */
    const peer = (i: number) => fx.stores[i % fx.stores.length]!;

    describe('values', () => {
      it('reads back what was set, overwrites, and deletes', async () => {
        const k = key('value');
        assert.equal(await fx.store.get(k), null);
        await fx.store.set(k, 'one', 60_000);
        assert.equal(await fx.store.get(k), 'one');
        await fx.store.set(k, 'two', 60_000);
        assert.equal(await fx.store.get(k), 'two');
        assert.equal(await fx.store.delete(k), true);
        assert.equal(await fx.store.get(k), null);
        assert.equal(await fx.store.delete(k), false);
      });

      it('stores any string exactly, including unicode and empty', async () => {
        for (const value of ['', 'ünïcødé ✓ 🔐', '{"a":[1,2,{"b":null}]}', 'x'.repeat(10_000)]) {
          const k = key('exact');
          await fx.store.set(k, value, 60_000);
          assert.equal(await fx.store.get(k), value);
        }
      });

      it('forgets a key once its TTL has passed, from every method', async () => {
        const k = key('ttl');
        const keep = key('keep');
        await fx.store.set(k, 'short', 40);
        await fx.store.set(keep, 'long', 60_000);
        await fx.advance(60);
        assert.equal(await fx.store.get(k), null);
        assert.equal(await fx.store.getVersioned(k), null);
        assert.equal(await fx.store.consume(k), null);
        assert.equal(await fx.store.get(keep), 'long');
        assert.equal(await fx.store.setIfAbsent(k, 'again', 60_000), true, 'an expired key counts as absent');
        assert.deepEqual(await fx.store.getVersioned(k), { value: 'again', version: 1 });
      });

      it('refuses a TTL that is not a positive integer and changes nothing', async () => {
        const k = key('badttl');
        for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await assert.rejects(fx.store.set(k, 'v', ttl), TypeError);
          await assert.rejects(fx.store.setIfAbsent(k, 'v', ttl), TypeError);
          await assert.rejects(fx.store.compareAndSet(k, 0, 'v', ttl), TypeError);
          await assert.rejects(fx.store.increment(k, ttl), TypeError);
        }
        assert.equal(await fx.store.get(k), null);
      });

      it('setIfAbsent writes only when the key is absent', async () => {
        const k = key('nx');
        assert.equal(await fx.store.setIfAbsent(k, 'first', 60_000), true);
        assert.equal(await fx.store.setIfAbsent(k, 'second', 60_000), false);
        assert.equal(await fx.store.get(k), 'first');
      });

      it('consume returns the value once, then the key is gone', async () => {
        const k = key('once');
        await fx.store.set(k, 'code', 60_000);
        assert.equal(await fx.store.consume(k), 'code');
        assert.equal(await fx.store.consume(k), null);
        assert.equal(await fx.store.get(k), null);
      });
    });

    describe('versions and compare-and-set', () => {
      it('numbers every write to a live key and restarts at 1 after expiry', async () => {
        const k = key('version');
        await fx.store.set(k, 'a', 60_000);
        assert.deepEqual(await fx.store.getVersioned(k), { value: 'a', version: 1 });
        await fx.store.set(k, 'b', 60_000);
        assert.deepEqual(await fx.store.getVersioned(k), { value: 'b', version: 2 });
        assert.equal(await fx.store.compareAndSet(k, 2, 'c', 40), 3);
        await fx.advance(60);
        await fx.store.set(k, 'd', 60_000);
        assert.deepEqual(await fx.store.getVersioned(k), { value: 'd', version: 1 });
      });

      it('writes only on a matching version; 0 means absent', async () => {
        const k = key('cas');
        assert.equal(await fx.store.compareAndSet(k, 1, 'x', 60_000), null, 'no version 1 of an absent key');
        assert.equal(await fx.store.compareAndSet(k, 0, 'x', 60_000), 1);
        assert.equal(await fx.store.compareAndSet(k, 0, 'y', 60_000), null, 'the key is no longer absent');
        assert.equal(await fx.store.compareAndSet(k, 2, 'y', 60_000), null, 'a version from the future');
        assert.equal(await fx.store.compareAndSet(k, 1, 'y', 60_000), 2);
        assert.equal(await fx.store.compareAndSet(k, 1, 'z', 60_000), null, 'a stale version');
        assert.deepEqual(await fx.store.getVersioned(k), { value: 'y', version: 2 });
        await assert.rejects(fx.store.compareAndSet(k, -1, 'z', 60_000), TypeError);
      });
    });

    describe('counters', () => {
      it('creates at the increment, adds to it, and reads as a decimal string', async () => {
        const k = key('counter');
        assert.equal((await fx.store.increment(k, 60_000)).value, 1);
        assert.equal((await fx.store.increment(k, 60_000, 5)).value, 6);
        assert.equal((await fx.store.increment(k, 60_000, -2)).value, 4);
        assert.equal(await fx.store.get(k), '4');
        assert.equal((await fx.store.getVersioned(k))?.version, 3);
      });

      it('keeps the window it was created with (a fixed window, not extended)', async () => {
        const k = key('window');
        const first = await fx.store.increment(k, 200);
        assert.ok(first.ttlMs > 0 && first.ttlMs <= 200);
        await fx.advance(100);
        const second = await fx.store.increment(k, 200);
        assert.equal(second.value, 2);
        assert.ok(second.ttlMs <= 100, `remaining ${second.ttlMs} ms must not be extended past the first window`);
        await fx.advance(120);
        assert.equal((await fx.store.increment(k, 200)).value, 1, 'a new window starts after expiry');
      });

      it('refuses to increment a value that is not an integer', async () => {
        const k = key('notint');
        await fx.store.set(k, 'abc', 60_000);
        await assert.rejects(fx.store.increment(k, 60_000), TypeError);
        assert.equal(await fx.store.get(k), 'abc');
        await assert.rejects(fx.store.increment(key('frac'), 60_000, 0.5), TypeError);
      });
    });

    describe('bounded sets', () => {
      it('keeps at most `limit` members, evicting the soonest to expire', async () => {
        const k = key('set');
        const t = fx.now();
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'a', t + 10_000, 3), { evicted: [] });
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'b', t + 30_000, 3), { evicted: [] });
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'c', t + 20_000, 3), { evicted: [] });
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'd', t + 40_000, 3), { evicted: ['a'] });
        assert.deepEqual(
          (await fx.store.boundedSetMembers(k)).map((m) => m.member),
          ['c', 'b', 'd'],
        );
      });

      it('re-adding a member renews it instead of counting it twice', async () => {
        const k = key('renew');
        const t = fx.now();
        await fx.store.boundedSetAdd(k, 'a', t + 10_000, 2);
        await fx.store.boundedSetAdd(k, 'b', t + 20_000, 2);
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'a', t + 30_000, 2), { evicted: [] });
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'c', t + 40_000, 2), { evicted: ['b'] });
        assert.deepEqual(await fx.store.boundedSetMembers(k), [
          { member: 'a', expiresAt: t + 30_000 },
          { member: 'c', expiresAt: t + 40_000 },
        ]);
      });

      it('drops expired members so they neither count nor show', async () => {
        const k = key('expiry');
        const t = fx.now();
        await fx.store.boundedSetAdd(k, 'old', t + 40, 2);
        await fx.store.boundedSetAdd(k, 'live', t + 60_000, 2);
        await fx.advance(60);
        assert.deepEqual((await fx.store.boundedSetMembers(k)).map((m) => m.member), ['live']);
        assert.deepEqual(await fx.store.boundedSetAdd(k, 'new', fx.now() + 60_000, 2), { evicted: [] });
        assert.equal((await fx.store.boundedSetMembers(k)).length, 2);
      });

      it('removes one member, and delete removes the set', async () => {
        const k = key('remove');
        const t = fx.now();
        await fx.store.boundedSetAdd(k, 'a', t + 60_000, 5);
        await fx.store.boundedSetAdd(k, 'b', t + 60_000, 5);
        assert.equal(await fx.store.boundedSetRemove(k, 'a'), true);
        assert.equal(await fx.store.boundedSetRemove(k, 'a'), false);
        assert.deepEqual((await fx.store.boundedSetMembers(k)).map((m) => m.member), ['b']);
        assert.equal(await fx.store.delete(k), true);
        assert.deepEqual(await fx.store.boundedSetMembers(k), []);
        await assert.rejects(fx.store.boundedSetAdd(k, 'c', t + 60_000, 0), TypeError);
      });
    });

    describe('races: hundreds of concurrent callers over every handle', () => {
      it('setIfAbsent: exactly one of 300 wins, and its value is stored', async () => {
        const k = key('race-nx');
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) => peer(i).setIfAbsent(k, `caller-${i}`, 60_000)));
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        assert.equal(winners.length, 1);
        assert.equal(await fx.store.get(k), `caller-${winners[0]}`);
      });

      it('consume: exactly one of 300 receives the value', async () => {
        const k = key('race-consume');
        await fx.store.set(k, 'one-time-code', 60_000);
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) => peer(i).consume(k)));
        assert.deepEqual(results.filter((r) => r !== null), ['one-time-code']);
      });

      it('compareAndSet: exactly one of 300 writers from the same version wins', async () => {
        const k = key('race-cas');
        await fx.store.set(k, 'start', 60_000);
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) => peer(i).compareAndSet(k, 1, `writer-${i}`, 60_000)));
        const winners = results.flatMap((version, i) => (version === null ? [] : [i]));
        assert.equal(winners.length, 1);
        assert.deepEqual(await fx.store.getVersioned(k), { value: `writer-${winners[0]}`, version: 2 });
      });

      it('compareAndSet: 100 read-modify-write loops lose no update', async () => {
        const k = key('race-rmw');
        await fx.store.set(k, '0', 60_000);
        await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            for (;;) {
              const current = await peer(i).getVersioned(k);
              assert.ok(current);
              const next = String(Number(current.value) + 1);
              if ((await peer(i).compareAndSet(k, current.version, next, 60_000)) !== null) return;
            }
          }),
        );
        assert.deepEqual(await fx.store.getVersioned(k), { value: '100', version: 101 });
      });

      it('increment: 500 concurrent increments return 1..500 exactly once each', async () => {
        const k = key('race-incr');
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => peer(i).increment(k, 60_000)));
        const values = results.map((r) => r.value).sort((a, b) => a - b);
        assert.deepEqual(values, Array.from({ length: 500 }, (_, i) => i + 1));
        assert.equal(await fx.store.get(k), '500');
      });

      it('boundedSetAdd: 200 concurrent members, limit 10: exactly 10 stay, each other one evicted exactly once', async () => {
        const k = key('race-set');
        const t = fx.now();
        const members = Array.from({ length: 200 }, (_, i) => `member-${String(i).padStart(3, '0')}`);
        const results = await Promise.all(members.map((m, i) => peer(i).boundedSetAdd(k, m, t + 60_000 + i, 10)));
        const evicted = results.flatMap((r) => r.evicted);
        const remaining = (await fx.store.boundedSetMembers(k)).map((m) => m.member);
        assert.equal(remaining.length, 10);
        assert.equal(evicted.length, 190);
        assert.equal(new Set(evicted).size, 190, 'no member is evicted twice');
        assert.deepEqual([...remaining, ...evicted].sort(), [...members].sort(), 'every member either stays or is evicted');
      });
    });
  });
}
