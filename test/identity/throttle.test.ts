/**
 * The throttle's own rules, on a test clock: the second factor's lock after
 * 100 consecutive failures (NIST SP 800-63B 5.2.2), what a success resets and
 * what it does not, and what an unlock clears.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginThrottle, THROTTLE } from '../../src/identity/throttle.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { ManualClock } from '../support/clock.ts';

function throttleOnClock() {
  const clock = new ManualClock();
  const hot = openMemoryHotStore({ clock: clock.now });
  return { clock, throttle: new LoginThrottle({ hot, clock: clock.now }) };
}

describe('LoginThrottle', () => {
  it('issue 16: an attempt given back after its window ended leaves no credit for the next window (pair and second factor)', async () => {
    const { clock, throttle } = throttleOnClock();
    const verdicts = [];
    for (let attempt = 0; attempt < THROTTLE.pairLimit; attempt++) verdicts.push(await throttle.attempt('edge@example.com', '198.51.100.1'));
    const factors = [];
    for (let attempt = 0; attempt < 3; attempt++) factors.push(await throttle.secondFactorAttempt('user-edge'));
    // The outage's give-backs land after both windows ended.
    clock.advance(THROTTLE.secondFactorWindowMs + 1);
    for (const verdict of verdicts) if (verdict.allowed) await throttle.notChecked('edge@example.com', '198.51.100.1', undefined, verdict);
    for (let attempt = 0; attempt < factors.length; attempt++) await throttle.secondFactorNotChecked('user-edge');
    const next = [];
    for (let attempt = 0; attempt <= THROTTLE.pairLimit; attempt++) next.push((await throttle.attempt('edge@example.com', '198.51.100.1')).allowed);
    assert.deepEqual(next, [true, true, true, true, true, false], 'five in the new window, as ever');
    const second = [];
    for (let attempt = 0; attempt <= THROTTLE.secondFactorFreeFailures + 1; attempt++) second.push((await throttle.secondFactorAttempt('user-edge')).allowed);
    assert.equal(second.at(-1), false, 'the second factor slows down after its free failures, as ever');
  });

  it('issue 16: a second-factor check given back (the account could not be read) does not count', async () => {
    const { throttle } = throttleOnClock();
    for (let attempt = 0; attempt < 20; attempt++) {
      assert.equal((await throttle.secondFactorAttempt('user-outage')).allowed, true, `check ${attempt} during the outage`);
      await throttle.secondFactorNotChecked('user-outage');
    }
    const after = [];
    for (let attempt = 0; attempt <= THROTTLE.secondFactorFreeFailures + 1; attempt++) after.push((await throttle.secondFactorAttempt('user-outage')).allowed);
    assert.deepEqual(after.slice(0, THROTTLE.secondFactorFreeFailures + 1), Array(THROTTLE.secondFactorFreeFailures + 1).fill(true), 'the free failures are all there after the outage');
    assert.equal(after.at(-1), false);
  });

  it('security review 1: the second factor locks after 100 consecutive failures however slowly they come, until a whole sign-in or an unlock', async () => {
    const { clock, throttle } = throttleOnClock();
    for (let i = 0; i < THROTTLE.secondFactorLockFailures; i++) {
      const verdict = await throttle.secondFactorAttempt('u_1');
      assert.equal(verdict.allowed, true, `check ${i + 1}`);
      clock.advance(THROTTLE.secondFactorMaxDelayMs); // the slowest guesser: always waits the gate out
    }
    const locked = await throttle.secondFactorAttempt('u_1');
    assert.equal(locked.allowed, false);
    assert.equal(await throttle.state('a@example.com', 'u_1'), 'locked');
    clock.advance(24 * 60 * 60_000);
    assert.equal((await throttle.secondFactorAttempt('u_1')).allowed, false, 'still locked a day later');
    await throttle.unlock('a@example.com', 'u_1');
    assert.equal((await throttle.secondFactorAttempt('u_1')).allowed, true);
    assert.equal(await throttle.state('a@example.com', 'u_1'), null);
  });

  it('a person who signs in 30 times in 15 minutes, each time from a new browser, is never slowed by their own successes; failures still are', async () => {
    const { throttle } = throttleOnClock();
    for (let i = 0; i < 30; i++) {
      const verdict = await throttle.attempt('often@example.com', '198.51.100.9');
      assert.equal(verdict.allowed, true, `sign-in ${i + 1}`);
      await throttle.succeeded('often@example.com', '198.51.100.9', 'u_often');
    }
    assert.equal(await throttle.state('often@example.com', 'u_often'), null);
    // Failures from other addresses (no success refunds them) slow the account as before.
    for (let i = 0; i < THROTTLE.accountFreeFailures; i++) await throttle.attempt('often@example.com', `203.0.113.${i}`);
    assert.equal(await throttle.state('often@example.com', 'u_often'), 'slowed');
  });

  it('a right password does not reset the second-factor count; only succeeded() after the whole sign-in does', async () => {
    const { throttle } = throttleOnClock();
    for (let i = 0; i < THROTTLE.secondFactorFreeFailures + 1; i++) assert.equal((await throttle.secondFactorAttempt('u_2')).allowed, true);
    // The password step again (allowed, counted) changes nothing for the second factor.
    assert.equal((await throttle.attempt('b@example.com', '198.51.100.1')).allowed, true);
    assert.equal((await throttle.secondFactorAttempt('u_2')).allowed, false, 'slowed: the gate is closed');
    await throttle.succeeded('b@example.com', '198.51.100.1', 'u_2');
    assert.equal((await throttle.secondFactorAttempt('u_2')).allowed, true);
  });

  it('security review 3: refused attempts do not feed the account count, and a valid device id skips the account gate within its own limit', async () => {
    const { throttle } = throttleOnClock();
    const account = 'c@example.com';
    for (let i = 0; i < THROTTLE.accountFreeFailures; i++) assert.equal((await throttle.attempt(account, `198.51.100.${i}`)).allowed, true);
    // The gate is closed now: a hundred refused attempts from new addresses...
    for (let i = 0; i < 100; i++) assert.equal((await throttle.attempt(account, `203.0.113.${i}`)).allowed, false);
    // ...leave the wait where it was (1 s), not at the 60 s a counted hundred would give.
    const refused = await throttle.attempt(account, '192.0.2.1');
    assert.deepEqual(refused, { allowed: false, retryAfterSeconds: 1, scope: 'account' });
    // A known device gets through, five times, then waits like everyone else.
    for (let i = 0; i < THROTTLE.deviceCookieLimit; i++) assert.equal((await throttle.attempt(account, `192.0.2.${i + 10}`, 'device-1')).allowed, true);
    assert.equal((await throttle.attempt(account, '192.0.2.99', 'device-1')).allowed, false);
  });
});
