/**
 * Device cookies (OWASP "Slow Down Online Guessing Attacks with Device
 * Cookies"): after a whole sign-in succeeds, the browser gets a cookie
 * signed for that account. A browser that presents it later is known to
 * have signed in to the account before, so the account-wide slowdown an
 * attacker can trigger from anywhere does not hold it back (security
 * review 3, NIST SP 800-63B 5.2.2: limits must not deny the subscriber).
 * Failures from one device cookie count against that cookie
 * ({@link LoginThrottle}), so a stolen one buys only a few guesses.
 *
 * Value: `<issued at, s>.<nonce>.<HMAC-SHA-256(key, account hash | issued | nonce)>`,
 * base64url; no email address in it.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../store/index.ts';

export const DEVICE_COOKIE_MAX_AGE_MS = 180 * 24 * 60 * 60_000;

const accountHash = (account: string) => createHash('sha256').update(account).digest('base64url');

export class DeviceCookies {
  readonly #key: Uint8Array;
  readonly #clock: Clock;

  /** `key`: derived from the master key for this purpose only. */
  constructor(options: { key: Uint8Array; clock: Clock }) {
    this.#key = options.key;
    this.#clock = options.clock;
  }

  issue(account: string): string {
    const issued = String(Math.floor(this.#clock() / 1000));
    const nonce = randomBytes(16).toString('base64url');
    return `${issued}.${nonce}.${this.#sign(account, issued, nonce)}`;
  }

  /** The cookie's id (its nonce) when it is ours, for this account, and not too old; else null. */
  verify(account: string, value: string | undefined): string | null {
    if (value === undefined || value.length > 200) return null;
    const [issued, nonce, signature, ...rest] = value.split('.');
    if (issued === undefined || nonce === undefined || signature === undefined || rest.length > 0 || !/^\d{1,12}$/.test(issued)) return null;
    const expected = Buffer.from(this.#sign(account, issued, nonce), 'base64url');
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const age = this.#clock() - Number(issued) * 1000;
    return age >= 0 && age <= DEVICE_COOKIE_MAX_AGE_MS ? nonce : null;
  }

  #sign(account: string, issued: string, nonce: string): string {
    return createHmac('sha256', this.#key).update(`${accountHash(account)}|${issued}|${nonce}`).digest('base64url');
  }
}
