/**
 * Security review 11 (ledger flooding): unauthenticated failures are
 * counted per event type, client network and minute, so that anyone
 * sending wrong credentials adds a handful of entries, not one per attempt.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FailureAggregator, decodeEntry, type AggregatedFailure, type AuditEntry } from '../../src/audit/index.ts';
import type { DomainEvent } from '../../src/events/index.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { ManualClock } from '../support/clock.ts';
import { failingWhile } from '../support/outage.ts';
import { startTestServer, testBackends } from '../support/server.ts';

const ADMIN_TOKEN = 'admin-token-for-the-flooding-test-0123456789';

describe('security review 11: failure aggregation', () => {
  it('instances sharing one hot store write one entry per count of 1, 10, 100 for a network and window', async () => {
    const hot = openMemoryHotStore();
    const recorded: AggregatedFailure[] = [];
    const events = { emit: async (event: DomainEvent) => void recorded.push(event as AggregatedFailure) };
    const clock = new ManualClock();
    const instances = [new FailureAggregator({ events, hot, clock: clock.now }), new FailureAggregator({ events, hot, clock: clock.now })];
    const failures: Promise<number>[] = [];
    for (let i = 0; i < 150; i++) {
      // Two addresses of one /24: one network.
      failures.push(instances[i % 2]!.record({ type: 'admin.auth.failed', outcome: 'denied', ip: `192.0.2.${(i % 2) + 1}`, detail: { route: '/audit/entries' } }));
    }
    await Promise.all(failures);
    assert.deepEqual(recorded.map((event) => event.detail?.['count']), [1, 10, 100]);
    assert.equal(recorded[0]!.detail?.['route'], '/audit/entries', 'the caller detail is kept');
    assert.equal(recorded[0]!.detail?.['windowSeconds'], 60);

    // Another network is counted apart.
    await instances[0]!.record({ type: 'admin.auth.failed', outcome: 'denied', ip: '198.51.100.7' });
    assert.equal(recorded.length, 4);
    assert.equal(recorded[3]!.detail?.['count'], 1);
    await hot.close();
  });

  it('counts failures against one target (a client_id) across networks and instances, writes no entry for them, and starts again next window', async () => {
    const hot = openMemoryHotStore();
    const recorded: AggregatedFailure[] = [];
    const events = { emit: async (event: DomainEvent) => void recorded.push(event as AggregatedFailure) };
    const clock = new ManualClock();
    const instances = [new FailureAggregator({ events, hot, clock: clock.now }), new FailureAggregator({ events, hot, clock: clock.now })];
    await Promise.all(Array.from({ length: 40 }, (_, i) => instances[i % 2]!.tally('client.auth.failed', 'client-a')));
    assert.equal(await instances[0]!.countFor('client.auth.failed', 'client-a'), 40);
    assert.equal(await instances[1]!.countFor('client.auth.failed', 'client-b'), 0, 'another target is counted apart');
    assert.equal(await instances[1]!.count('client.auth.failed', '192.0.2.1'), 0, 'no network was counted');
    assert.equal(recorded.length, 0);
    clock.advance(60_000);
    assert.equal(await instances[0]!.countFor('client.auth.failed', 'client-a'), 0);
    await hot.close();
  });

  it('keeps counting in the process while the hot store is unavailable, adds those counts to the shared ones after, and a full table evicts the lowest count', async () => {
    const hot = openMemoryHotStore();
    let down = false;
    // The hot store as the breaker presents it during an outage: every call fails at once.
    const flaky = failingWhile(hot, () => down);
    const recorded: AggregatedFailure[] = [];
    const events = { emit: async (event: DomainEvent) => void recorded.push(event as AggregatedFailure) };
    const clock = new ManualClock();
    const failures = new FailureAggregator({ events, hot: flaky, clock: clock.now, maxLocalCounters: 3 });
    const failure = (ip: string) => failures.record({ type: 'client.auth.failed', outcome: 'denied', ip });
    for (let i = 0; i < 4; i++) await failure('192.0.2.1');
    down = true;
    for (let i = 0; i < 6; i++) await failure('192.0.2.1');
    assert.equal(await failures.count('client.auth.failed', '192.0.2.1'), 6, 'while it is down: what this process counted');
    assert.equal(await failures.tally('client.auth.failed', 'client-a'), 1);
    assert.equal(await failures.countFor('client.auth.failed', 'client-a'), 1);
    assert.deepEqual(recorded.map((event) => event.detail?.['count']), [1, 1], 'the ledger still gets its entries (1 shared, then 1 in the process)');
    // The table holds 3: a flood of new networks evicts the lowest counts, never the network with 6 failures.
    for (const network of ['198.51.100.1', '203.0.113.1', '203.0.114.1', '203.0.115.1']) await failure(network);
    assert.equal(await failures.count('client.auth.failed', '192.0.2.1'), 6, 'the high count stays');
    assert.equal(await failures.count('client.auth.failed', '203.0.115.1'), 1, 'a new network is counted, not refused');
    down = false;
    assert.equal(await failures.count('client.auth.failed', '192.0.2.1'), 10, 'back: the shared count and the outage\'s');
    assert.equal(await failures.count('client.auth.failed', '198.51.100.7'), 0, 'a network never seen is not held by the table');
    clock.advance(120_000);
    assert.equal(await failures.count('client.auth.failed', '192.0.2.1'), 0, 'both end with their window');
    await hot.close();
  });

  for (const backend of testBackends) {
    it(`10,000 failed admin calls add at most a few entries and are throttled, and the next minute starts a new count (${backend})`, async () => {
      const clock = new ManualClock(Date.UTC(2026, 11, 4, 12, 0, 10));
      const server = await startTestServer({ env: { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }, clock: clock.now, backend });
      try {
        const ledger = server.running.ledger;
        const before = await ledger.size();
        const statuses = new Map<number, number>();
        for (let i = 0; i < 10_000; i++) {
          const response = await server.running.app.inject({ method: 'GET', url: '/audit/entries?start=0&end=1', headers: i % 2 === 0 ? {} : { authorization: `Bearer wrong-${i}` } });
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        }
        // The first 100 are checked and refused; then the network is throttled for the rest of the minute.
        assert.deepEqual([...statuses].sort(), [[401, 100], [429, 9900]]);
        const afterFlood = await ledger.size();
        assert.ok(afterFlood - before <= 5, `${afterFlood - before} entries for 10,000 failures`);
        const entries = async (from: number, to: number): Promise<AuditEntry[]> => (await server.running.stores.durable.auditLog.entries(from, to)).map((row) => decodeEntry(row.entry));
        const flood = (await entries(before, afterFlood)).filter((entry) => entry.type === 'admin.auth.failed');
        assert.deepEqual(flood.map((entry) => entry.detail?.['count']), [1, 10, 100]);
        const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
        const throttled = await server.running.app.inject({ method: 'GET', url: '/audit/entries?start=0&end=1', headers: admin });
        assert.equal(throttled.statusCode, 429, 'the right token is not checked while the network is throttled (no oracle)');
        assert.ok(Number(throttled.headers['retry-after']) > 0);

        clock.advance(60_000);
        assert.equal((await server.running.app.inject({ method: 'GET', url: '/audit/entries?start=0&end=1', headers: admin })).statusCode, 200, 'the next minute the admin gets in');
        await server.running.app.inject({ method: 'GET', url: '/audit/entries?start=0&end=1' });
        await server.running.app.inject({ method: 'GET', url: '/audit/entries?start=0&end=1' });
        const next = (await entries(afterFlood, await ledger.size())).filter((entry) => entry.type === 'admin.auth.failed');
        assert.equal(next.length, 1, 'one new entry for the new window');
        assert.equal(next[0]!.detail?.['count'], 1);
        assert.notEqual(next[0]!.detail?.['windowStart'], flood[0]!.detail?.['windowStart']);
      } finally {
        await server.close();
      }
    });
  }
});
