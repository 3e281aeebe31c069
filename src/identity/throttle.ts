import { createHash } from 'node:crypto';
import type { Clock, HotStore } from '../store/index.ts';

/**
 * Brute-force defence for sign-in (OWASP Authentication Cheat Sheet, NIST SP
 * 800-63B 5.2.2), with counters in the hot store so every instance sees them:
 *
 * - account + IP pair: 5 failures in 15 minutes lock that pair until the
 *   window ends. The attacker is stopped; the real user, from another IP, is
 *   not locked out (no permanent lock anyone can trigger on someone else).
 * - account, from anywhere: beyond 10 failures in the window each attempt
 *   waits 2^(n-10) seconds after the last failure, at most 60 s: slowed, not
 *   locked.
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

export type ThrottleVerdict = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSeconds: number; readonly scope: 'pair' | 'account' | 'ip' };

/** Keys carry a hash of the account name: no email address in the hot store's key space. */
const hashed = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

export class LoginThrottle {
  readonly #hot: HotStore;
  readonly #clock: Clock;

  constructor(options: { hot: HotStore; clock: Clock }) {
    this.#hot = options.hot;
    this.#clock = options.clock;
  }

  async check(account: string, ip: string): Promise<ThrottleVerdict> {
    const [pair, accountCount, accountLast, ipCount] = await Promise.all([
      this.#hot.get(`throttle:pair:${hashed(account)}:${hashed(ip)}`),
      this.#hot.get(`throttle:account:${hashed(account)}`),
      this.#hot.get(`throttle:account-last:${hashed(account)}`),
      this.#hot.get(`throttle:ip:${hashed(ip)}`),
    ]);
    const now = this.#clock();
    if (Number(ipCount ?? 0) >= THROTTLE.ipLimit) return { allowed: false, retryAfterSeconds: Math.ceil(THROTTLE.windowMs / 1000), scope: 'ip' };
    if (Number(pair ?? 0) >= THROTTLE.pairLimit) return { allowed: false, retryAfterSeconds: Math.ceil(THROTTLE.windowMs / 1000), scope: 'pair' };
    const excess = Number(accountCount ?? 0) - THROTTLE.accountFreeFailures;
    if (excess >= 0 && accountLast !== null) {
      const delayMs = Math.min(THROTTLE.accountMaxDelayMs, 1000 * 2 ** excess);
      const waitMs = Number(accountLast) + delayMs - now;
      if (waitMs > 0) return { allowed: false, retryAfterSeconds: Math.ceil(waitMs / 1000), scope: 'account' };
    }
    return { allowed: true };
  }

  /** Counts a failure; resolves with whether this one crossed into a lock of the pair. */
  async failed(account: string, ip: string): Promise<{ pairLocked: boolean }> {
    const [pair] = await Promise.all([
      this.#hot.increment(`throttle:pair:${hashed(account)}:${hashed(ip)}`, THROTTLE.windowMs),
      this.#hot.increment(`throttle:account:${hashed(account)}`, THROTTLE.windowMs),
      this.#hot.set(`throttle:account-last:${hashed(account)}`, String(this.#clock()), THROTTLE.windowMs),
      this.#hot.increment(`throttle:ip:${hashed(ip)}`, THROTTLE.windowMs),
    ]);
    return { pairLocked: pair.value === THROTTLE.pairLimit };
  }

  /** A success clears the pair and the account's slow-down (not the IP's count). */
  async succeeded(account: string, ip: string): Promise<void> {
    await Promise.all([
      this.#hot.delete(`throttle:pair:${hashed(account)}:${hashed(ip)}`),
      this.#hot.delete(`throttle:account:${hashed(account)}`),
      this.#hot.delete(`throttle:account-last:${hashed(account)}`),
    ]);
  }
}
