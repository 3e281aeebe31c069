/**
 * The store breaker (src/store/breaker.ts, issue 16) on its own, with calls
 * the test controls: only unavailability opens it, three in a row open it
 * even when the window is full of earlier successes, an open breaker fails
 * a call at once without running it, the half-open ping closes it when the
 * store answers again, and each transition is told exactly once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StoreBreaker, type StoreStateListener } from '../../src/store/breaker.ts';
import { StoreUnavailableError } from '../../src/store/index.ts';

function recorder(): StoreStateListener & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    down: (role, driver, reason) => events.push(`down ${role} ${driver}: ${reason}`),
    up: (role, driver) => events.push(`up ${role} ${driver}`),
  };
}

const unavailable = () => Promise.reject(new StoreUnavailableError('redis', 'cannot reach Redis at 127.0.0.1:1: connect ECONNREFUSED'));

describe('the store breaker', () => {
  it('opens after three unavailability failures in a row, however many successes came before, and then fails calls at once', async () => {
    const listener = recorder();
    const breaker = new StoreBreaker('hot', 'redis', async () => undefined, listener, { resetMs: 60_000, volumeThreshold: 3, errorThresholdPercentage: 50, consecutiveFailures: 3 });
    try {
      for (let i = 0; i < 200; i++) assert.equal(await breaker.run(async () => i), i);
      for (let i = 0; i < 2; i++) await assert.rejects(breaker.run(unavailable), StoreUnavailableError);
      assert.equal(breaker.up, true, 'two failures among 200 successes: still closed');
      await assert.rejects(breaker.run(unavailable), StoreUnavailableError);
      assert.equal(breaker.up, false, 'the third in a row opens it');
      assert.deepEqual(listener.events, ['down hot redis: cannot reach Redis at 127.0.0.1:1: connect ECONNREFUSED']);
      let ran = false;
      const refused = await breaker
        .run(async () => {
          ran = true;
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      assert.ok(refused instanceof StoreUnavailableError, 'refused with StoreUnavailableError');
      assert.equal(ran, false, 'the call was not made');
      assert.ok(refused.retryAfterSeconds !== undefined && refused.retryAfterSeconds >= 1 && refused.retryAfterSeconds <= 60, `Retry-After ${refused.retryAfterSeconds}`);
      assert.equal(listener.events.length, 1, 'told once');
    } finally {
      breaker.shutdown();
    }
  });

  it('never opens on errors that are not unavailability (a lost compare-and-set, a bad argument), which pass through untouched', async () => {
    const listener = recorder();
    const breaker = new StoreBreaker('durable', 'postgres', async () => undefined, listener);
    try {
      const mistake = new TypeError('limit must be a positive integer');
      for (let i = 0; i < 20; i++) await assert.rejects(breaker.run(() => Promise.reject(mistake)), (error) => error === mistake);
      assert.equal(breaker.up, true);
      assert.deepEqual(listener.events, []);
      // A success-like answer resets the run: two failures, one other error, two failures do not open it.
      await assert.rejects(breaker.run(unavailable));
      await assert.rejects(breaker.run(unavailable));
      await assert.rejects(breaker.run(() => Promise.reject(mistake)));
      await assert.rejects(breaker.run(unavailable));
      await assert.rejects(breaker.run(unavailable));
      assert.equal(breaker.up, true, 'not three in a row');
    } finally {
      breaker.shutdown();
    }
  });

  it('half-opens after resetMs and pings: a failing ping keeps it open, an answering one closes it, told once', async () => {
    const listener = recorder();
    let storeAnswers = false;
    const pings: (() => void)[] = [];
    const nextPing = () => new Promise<void>((resolve) => pings.push(resolve));
    const probe = async () => {
      const answers = storeAnswers;
      for (const resolve of pings.splice(0)) resolve();
      if (!answers) throw new StoreUnavailableError('redis', 'still down');
    };
    const breaker = new StoreBreaker('hot', 'redis', probe, listener, { resetMs: 20, volumeThreshold: 3, errorThresholdPercentage: 50, consecutiveFailures: 3 });
    try {
      for (let i = 0; i < 3; i++) await assert.rejects(breaker.run(unavailable));
      assert.equal(breaker.up, false);
      await nextPing();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(breaker.up, false, 'the ping failed: still open');
      storeAnswers = true;
      await nextPing();
      // The close is emitted as the ping's promise settles.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(breaker.up, true, 'the ping answered: closed');
      assert.equal(await breaker.run(async () => 'answered'), 'answered');
      assert.deepEqual(listener.events, ['down hot redis: cannot reach Redis at 127.0.0.1:1: connect ECONNREFUSED', 'up hot redis']);
    } finally {
      breaker.shutdown();
    }
  });
});
