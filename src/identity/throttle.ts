import { createHash } from 'node:crypto';
import type { Clock, HotStore } from '../store/index.ts';

/**
 * Brute-force defence for sign-in (OWASP Authentication Cheat Sheet, NIST SP
 * 800-63B 5.2.2), with counters in the hot store so every instance sees them:
 *
 * - account + IP pair: 5 failures in 15 minutes lock that pair until the
 *   window ends. The attacker is stopped; the real user, from another IP, is
 *   not locked out (no permanent lock anyone can trigger on someone else).
 * - account, from anywhere: from the 10th attempt in the window on, the
 *   next attempt must wait 1, 2, 4 ... seconds (at most 60 s) after the
 *   previous one: slowed, not locked.
 * - IP, across accounts: 100 failures in 15 minutes stop that address
 *   (credential stuffing).
 */
export const THROTTLE = {
  windowMs: 15 * 60_000,
  pairLimit: 5,
  accountFreeFailures: 10,
  accountMaxDelayMs: 60_000,
  ipLimit: 100,
} as const;

export type ThrottleVerdict =
  | { readonly allowed: true; readonly pairAttempts: number }
  | { readonly allowed: false; readonly retryAfterSeconds: number; readonly scope: 'pair' | 'account' | 'ip' };

/** Keys carry a hash of the account name: no email address in the hot store's key space. */
const hashed = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/**
 * Counts first, decides on the count: each attempt increments its counters
 * atomically before the password is checked, so parallel guesses each see a
 * different number and no more than the limit get through (a read-then-
 * write check would let a burst pass before any failure was counted). A
 * success refunds what it counted.
 */
export class LoginThrottle {
  readonly #hot: HotStore;

  constructor(options: { hot: HotStore; clock: Clock }) {
    this.#hot = options.hot;
  }

  async attempt(account: string, ip: string): Promise<ThrottleVerdict> {
    const [pair, accountCount, ipCount] = await Promise.all([
      this.#hot.increment(`throttle:pair:${hashed(account)}:${hashed(ip)}`, THROTTLE.windowMs),
      this.#hot.increment(`throttle:account:${hashed(account)}`, THROTTLE.windowMs),
      this.#hot.increment(`throttle:ip:${hashed(ip)}`, THROTTLE.windowMs),
    ]);
    if (ipCount.value > THROTTLE.ipLimit) return { allowed: false, retryAfterSeconds: Math.ceil(ipCount.ttlMs / 1000), scope: 'ip' };
    if (pair.value > THROTTLE.pairLimit) return { allowed: false, retryAfterSeconds: Math.ceil(pair.ttlMs / 1000), scope: 'pair' };
    // From the 10th attempt on, each one closes an atomic gate for 2^k
    // seconds (k = attempts beyond 10, at most 60 s), and the next attempt
    // must find the gate open: of parallel attempts, one passes.
    const excess = accountCount.value - THROTTLE.accountFreeFailures;
    const gate = `throttle:account-gate:${hashed(account)}`;
    const delayMs = (k: number) => Math.min(THROTTLE.accountMaxDelayMs, 1000 * 2 ** k);
    if (excess > 0) {
      if (!(await this.#hot.setIfAbsent(gate, '1', delayMs(excess)))) {
        return { allowed: false, retryAfterSeconds: Math.ceil(delayMs(excess - 1) / 1000), scope: 'account' };
      }
    } else if (excess === 0) {
      await this.#hot.set(gate, '1', delayMs(0));
    }
    return { allowed: true, pairAttempts: pair.value };
  }

  /** A success clears the pair and the account's counters, and refunds the IP's count. */
  async succeeded(account: string, ip: string): Promise<void> {
    await Promise.all([
      this.#hot.delete(`throttle:pair:${hashed(account)}:${hashed(ip)}`),
      this.#hot.delete(`throttle:account:${hashed(account)}`),
      this.#hot.delete(`throttle:account-gate:${hashed(account)}`),
      this.#hot.increment(`throttle:ip:${hashed(ip)}`, THROTTLE.windowMs, -1),
    ]);
  }
}
