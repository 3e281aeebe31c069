/**
 * The jti cache behind every client (src/sdk/signals/dedup.ts): once per
 * jti, a failure not remembered, concurrent copies joined, bounded in count
 * and in age (manual clock).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../support/clock.ts';
import { JtiDeduplicator } from '../../src/sdk/signals/dedup.ts';

describe('signals: jti deduplication', () => {
  it('runs the work once per jti; a failed run is not remembered', async () => {
    const seen = new JtiDeduplicator();
    let runs = 0;
    assert.equal(await seen.once('a', async () => void runs++), 'processed');
    assert.equal(await seen.once('a', async () => void runs++), 'duplicate');
    await assert.rejects(seen.once('b', async () => Promise.reject(new Error('listener failed'))));
    assert.equal(seen.has('b'), false);
    assert.equal(await seen.once('b', async () => void runs++), 'processed');
    assert.equal(runs, 2);
  });

  it('a copy arriving while the first is processed waits for it and shares its outcome', async () => {
    const seen = new JtiDeduplicator();
    let release!: () => void;
    let runs = 0;
    const first = seen.once('a', () => {
      runs++;
      return new Promise<void>((resolve) => (release = resolve));
    });
    const second = seen.once('a', async () => void runs++);
    release();
    assert.deepEqual(await Promise.all([first, second]), ['processed', 'duplicate']);
    assert.equal(runs, 1);
  });

  it('forgets a jti after its TTL and the oldest jti when full (a flood of distinct SETs costs bounded memory)', async () => {
    const clock = new ManualClock();
    const seen = new JtiDeduplicator({ ttlMs: 1_000, maxEntries: 3, now: clock.now });
    const work = async () => undefined;
    await seen.once('a', work);
    clock.advance(999);
    assert.equal(seen.has('a'), true);
    clock.advance(1);
    assert.equal(seen.has('a'), false);
    for (const jti of ['b', 'c', 'd', 'e']) await seen.once(jti, work);
    assert.deepEqual(['b', 'c', 'd', 'e'].map((jti) => seen.has(jti)), [false, true, true, true]);
  });
});
