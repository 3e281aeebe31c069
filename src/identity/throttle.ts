import { createHash } from 'node:crypto';
import { StoreUnavailableError, type Clock, type HotStore } from '../store/index.ts';

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
 *   A browser holding a device cookie of the account (device-cookies.ts,
 *   OWASP "Slow Down Online Guessing Attacks with Device Cookies") is not
 *   slowed by this account-wide gate, which anyone could keep closed
 *   (security review 3); its own failures count against its cookie, and
 *   after 5 in the window the cookie no longer exempts it. Attempts the
 *   throttle refuses do not count towards the account's slowdown.
 * - IP, across accounts: 100 failures in 15 minutes stop that address
 *   (credential stuffing).
 * - second factor, per account: wrong TOTP and recovery codes count
 *   across challenges and sign-ins (NIST SP 800-63B 5.2.2 applies to every
 *   authenticator, RFC 4226 7.3 to OTP checks). After 5 free failures each
 *   further check waits 1, 2, 4 ... seconds (at most 15 minutes) after the
 *   previous one, and after 100 consecutive failures the account's second
 *   step is locked until its 30-day window ends or an administrator unlocks it.
 *   Only a whole sign-in (password and second factor) resets it.
 */
export const THROTTLE = {
  windowMs: 15 * 60_000,
  pairLimit: 5,
  accountFreeFailures: 10,
  accountMaxDelayMs: 60_000,
  ipLimit: 100,
  /** OWASP device cookies: failures one device cookie may cause in the window before it stops exempting. */
  deviceCookieLimit: 5,
  /** NIST SP 800-63B 5.2.2: "no more than 100 consecutive failed attempts on a single subscriber account". */
  secondFactorLockFailures: 100,
  secondFactorFreeFailures: 5,
  secondFactorMaxDelayMs: 15 * 60_000,
  /**
   * Consecutive second-factor failures are remembered this long (every hot
   * key has a TTL): 100 guesses per 30 days at most, and a lock lasts until
   * the window ends, a whole sign-in succeeds, or `portcullis user unlock`.
   */
  secondFactorWindowMs: 30 * 24 * 60 * 60_000,
} as const;

export type ThrottleVerdict =
  | {
      readonly allowed: true;
      readonly pairAttempts: number;
      /** Whether this attempt fed the account-wide count (a browser with a valid device cookie within its limit does not). */
      readonly countedForAccount?: boolean;
    }
  | { readonly allowed: false; readonly retryAfterSeconds: number; readonly scope: 'pair' | 'account' | 'ip' | 'second_factor' };

/**
 * Runs `read` (the account an attempt is about); when a store outage stops
 * it, gives the counted attempt back (`giveBack`: notChecked) before the
 * error goes on to its 503. If the hot store is down too, the attempt stays
 * counted: failing to give back is the safe side.
 */
export async function givenBackOnOutage<T>(read: () => Promise<T>, giveBack: () => Promise<void>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof StoreUnavailableError) await giveBack().catch(() => {});
    throw error;
  }
}

/** Key names, one place: an unlock clears exactly what an attempt counts. */
const keys = {
  /** A pair key names the account's epoch: an unlock moves the epoch on, which clears every pair at once. */
  pair: (account: string, ip: string, epoch: string) => `throttle:pair:${hashed(account)}:${epoch}:${hashed(ip)}`,
  epoch: (account: string) => `throttle:epoch:${hashed(account)}`,
  account: (account: string) => `throttle:account:${hashed(account)}`,
  accountGate: (account: string) => `throttle:account-gate:${hashed(account)}`,
  ip: (ip: string) => `throttle:ip:${hashed(ip)}`,
  device: (device: string) => `throttle:device:${hashed(device)}`,
  secondFactor: (userId: string) => `throttle:second-factor:${hashed(userId)}`,
  secondFactorGate: (userId: string) => `throttle:second-factor-gate:${hashed(userId)}`,
  reauthentication: (sessionHandle: string) => `throttle:reauthentication:${hashed(sessionHandle)}`,
};

/** Keys carry a hash of the account name: no email address in the hot store's key space. */
const hashed = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/**
 * Counts first, decides on the count: each attempt increments its counters
 * atomically before the password is checked, so parallel guesses each see a
 * different number and no more than the limit get through (a read-then-
 * write check would let a burst pass before any failure was counted). A
 * whole sign-in's success clears the pair, the device cookie's and the
 * second factor's counts and refunds the IP's; the account-wide count runs
 * out with its window. Sign-in, the second step and re-authentication all
 * go through this one class.
 */
export class LoginThrottle {
  readonly #hot: HotStore;

  constructor(options: { hot: HotStore; clock: Clock }) {
    this.#hot = options.hot;
  }

  /**
   * `device`: the id of a valid device cookie the browser presented for
   * this account (DeviceCookies.verify), if any.
   */
  async attempt(account: string, ip: string, device?: string): Promise<ThrottleVerdict> {
    const epoch = await this.#epoch(account);
    const [pair, ipCount, deviceCount] = await Promise.all([
      this.#hot.increment(keys.pair(account, ip, epoch), THROTTLE.windowMs),
      this.#hot.increment(keys.ip(ip), THROTTLE.windowMs),
      device === undefined ? undefined : this.#hot.increment(keys.device(device), THROTTLE.windowMs),
    ]);
    if (ipCount.value > THROTTLE.ipLimit) return { allowed: false, retryAfterSeconds: Math.ceil(ipCount.ttlMs / 1000), scope: 'ip' };
    if (pair.value > THROTTLE.pairLimit) return { allowed: false, retryAfterSeconds: Math.ceil(pair.ttlMs / 1000), scope: 'pair' };
    // A known device within its own limit skips the account-wide gate, and does not feed it.
    if (deviceCount !== undefined && deviceCount.value <= THROTTLE.deviceCookieLimit) return { allowed: true, pairAttempts: pair.value, countedForAccount: false };
    const accountCount = await this.#hot.increment(keys.account(account), THROTTLE.windowMs);
    // From the 10th attempt on, each one closes an atomic gate for 2^k
    // seconds (k = attempts beyond 10, at most 60 s), and the next attempt
    // must find the gate open: of parallel attempts, one passes. A refused
    // attempt is refunded: only attempts that were checked slow the account.
    const excess = accountCount.value - THROTTLE.accountFreeFailures;
    const gate = keys.accountGate(account);
    const delayMs = (k: number) => Math.min(THROTTLE.accountMaxDelayMs, 1000 * 2 ** k);
    if (excess > 0) {
      if (!(await this.#hot.setIfAbsent(gate, '1', delayMs(excess)))) {
        await this.#hot.increment(keys.account(account), THROTTLE.windowMs, -1);
        return { allowed: false, retryAfterSeconds: Math.ceil(delayMs(excess - 1) / 1000), scope: 'account' };
      }
    } else if (excess === 0) {
      await this.#hot.set(gate, '1', delayMs(0));
    }
    return { allowed: true, pairAttempts: pair.value, countedForAccount: true };
  }

  /**
   * Gives back an allowed attempt that compared no secret: the account could
   * not be read (a store outage, answered 503), so the person who retries
   * through an outage is not slowed or locked out for it afterwards. Only
   * for that case: an attempt that checked a password is never given back.
   * A gate the attempt closed stays closed (at most a minute).
   */
  async notChecked(account: string, ip: string, device: string | undefined, verdict: ThrottleVerdict & { allowed: true }): Promise<void> {
    const epoch = await this.#epoch(account);
    await Promise.all([
      this.#giveBack(keys.pair(account, ip, epoch), THROTTLE.windowMs),
      this.#giveBack(keys.ip(ip), THROTTLE.windowMs),
      ...(device === undefined ? [] : [this.#giveBack(keys.device(device), THROTTLE.windowMs)]),
      ...(verdict.countedForAccount === true ? [this.#giveBack(keys.account(account), THROTTLE.windowMs)] : []),
    ]);
  }

  /** The same for a second-factor check whose account could not be read: no code was compared. */
  async secondFactorNotChecked(userId: string): Promise<void> {
    await this.#giveBack(keys.secondFactor(userId), THROTTLE.secondFactorWindowMs);
  }

  /**
   * One count less, never below zero: when the window ended between the
   * attempt and its give-back, the decrement made a fresh counter at -1,
   * which would allow one attempt more in the next window; it is put back
   * to 0 (a counter at 0 allows what no counter does).
   */
  async #giveBack(key: string, windowMs: number): Promise<void> {
    if ((await this.#hot.increment(key, windowMs, -1)).value < 0) await this.#hot.increment(key, windowMs, 1);
  }

  /**
   * One second-factor check for the user. Counts first (parallel checks
   * each see a different number), then decides: beyond the free failures
   * an atomic gate lets one check through per 2^k seconds; beyond the lock
   * limit none. A refused check is refunded, so being refused does not
   * lengthen the wait. The count stays until the whole sign-in succeeds
   * ({@link succeeded}); a right password does not touch it.
   */
  async secondFactorAttempt(userId: string): Promise<ThrottleVerdict> {
    const counter = keys.secondFactor(userId);
    const count = await this.#hot.increment(counter, THROTTLE.secondFactorWindowMs);
    const refuse = async (retryAfterMs: number): Promise<ThrottleVerdict> => {
      await this.#hot.increment(counter, THROTTLE.secondFactorWindowMs, -1);
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)), scope: 'second_factor' };
    };
    if (count.value > THROTTLE.secondFactorLockFailures) return refuse(count.ttlMs);
    const excess = count.value - 1 - THROTTLE.secondFactorFreeFailures;
    if (excess >= 0) {
      const delayMs = Math.min(THROTTLE.secondFactorMaxDelayMs, 1000 * 2 ** excess);
      if (!(await this.#hot.setIfAbsent(keys.secondFactorGate(userId), '1', delayMs))) return refuse(delayMs);
    }
    return { allowed: true, pairAttempts: count.value };
  }

  /**
   * Counts a wrong password given to re-authenticate within one session and
   * answers the session's count: the session ends at the pair limit whatever
   * address the guesses come from (security review 4: a stolen session moved
   * between addresses must not keep guessing). Nothing resets it; the session
   * ends first.
   */
  async reauthenticationFailed(sessionHandle: string): Promise<number> {
    return (await this.#hot.increment(keys.reauthentication(sessionHandle), THROTTLE.windowMs)).value;
  }

  /**
   * A whole sign-in succeeded (password, and the second factor when the
   * account has one): clears the pair, the device cookie's failures and the
   * account's second-factor count, and refunds the IP's count. Never call
   * it after the password alone (security review 1). Of the account-wide
   * count it refunds only its own attempt (one without a device cookie fed
   * it), so a person who signs in often is not slowed by their own
   * successes; the attackers' failures stay until their window ends, since
   * one success must not reopen the account to an attacker who keeps
   * guessing.
   */
  async succeeded(account: string, ip: string, userId?: string, device?: string): Promise<void> {
    const epoch = await this.#epoch(account);
    await Promise.all([
      ...(device === undefined ? [] : [this.#hot.delete(keys.device(device))]),
      this.#hot.delete(keys.pair(account, ip, epoch)),
      this.#hot.increment(keys.ip(ip), THROTTLE.windowMs, -1),
      ...(device === undefined ? [this.#hot.increment(keys.account(account), THROTTLE.windowMs, -1)] : []),
      ...(userId === undefined ? [] : [this.#hot.delete(keys.secondFactor(userId)), this.#hot.delete(keys.secondFactorGate(userId))]),
    ]);
  }

  /** What an administrator sees (`portcullis user list`): locked (second step, 100 failures), slowed (enough failures in the window to slow it down), or neither. */
  async state(account: string, userId: string): Promise<'locked' | 'slowed' | null> {
    const [accountCount, secondFactor] = await Promise.all([this.#hot.get(keys.account(account)), this.#hot.get(keys.secondFactor(userId))]);
    if (Number(secondFactor ?? 0) >= THROTTLE.secondFactorLockFailures) return 'locked';
    return Number(accountCount ?? 0) >= THROTTLE.accountFreeFailures || Number(secondFactor ?? 0) >= THROTTLE.secondFactorFreeFailures ? 'slowed' : null;
  }

  /**
   * `portcullis user unlock`: forgets the account's counts and locks: every
   * account + IP pair (by moving the epoch on), the account gate and the
   * second-factor count. IP counts stay: they are about addresses, not the account.
   */
  async unlock(account: string, userId: string): Promise<void> {
    await this.#hot.increment(keys.epoch(account), THROTTLE.secondFactorWindowMs);
    await Promise.all([keys.account(account), keys.accountGate(account), keys.secondFactor(userId), keys.secondFactorGate(userId)].map((key) => this.#hot.delete(key)));
  }

  async #epoch(account: string): Promise<string> {
    return (await this.#hot.get(keys.epoch(account))) ?? '0';
  }
}
