/**
 * The second factor: TOTP enrolment (confirmed by a first code before it
 * counts), the sign-in challenge between password and session, and recovery
 * codes. Secrets are sealed with the master key at rest; the challenge is a
 * short-lived, single-use value in the hot store, limited in attempts.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KeyVault } from '../crypto/index.ts';
import type { DomainEvents } from '../events/index.ts';
import type { Clock, HotStore, RecordStore } from '../store/index.ts';
import { RECOVERY_CODES_COLLECTION, consumeRecoveryCode, generateRecoveryCodes, remainingRecoveryCodes, saveRecoveryCodes } from './recovery-codes.ts';
import { givenBackOnOutage, type LoginThrottle } from './throttle.ts';
import { TotpVerifier, generateTotpSecret, totpUri } from './totp.ts';
import type { UserDirectory } from './users.ts';

const CHALLENGE_TTL_MS = 5 * 60_000;
const ENROLMENT_TTL_MS = 10 * 60_000;
/** Codes one challenge may try; beyond it the user starts again from the password. */
export const MAX_CHALLENGE_ATTEMPTS = 5;
const SEAL_PURPOSE = 'totp-secret';

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

export type ChallengeResult =
  | { readonly outcome: 'ok'; readonly userId: string; readonly method: 'totp' | 'recovery_code' }
  | { readonly outcome: 'invalid'; readonly userId: string; readonly attemptsLeft: number }
  /** The account's second step is slowed or locked (THROTTLE): nothing was checked. */
  | { readonly outcome: 'throttled'; readonly userId: string; readonly retryAfterSeconds: number }
  | { readonly outcome: 'expired' };

export class SecondFactor {
  readonly #hot: HotStore;
  readonly #records: RecordStore;
  readonly #users: UserDirectory;
  readonly #events: DomainEvents;
  readonly #vault: KeyVault;
  readonly #recoveryKey: Uint8Array;
  readonly #totp: TotpVerifier;
  readonly #issuer: string;
  readonly #throttle: LoginThrottle;

  constructor(options: { hot: HotStore; records: RecordStore; users: UserDirectory; events: DomainEvents; clock: Clock; vault: KeyVault; recoveryKey: Uint8Array; issuer: string; throttle: LoginThrottle }) {
    this.#throttle = options.throttle;
    this.#hot = options.hot;
    this.#records = options.records;
    this.#users = options.users;
    this.#events = options.events;
    this.#vault = options.vault;
    this.#recoveryKey = options.recoveryKey;
    this.#totp = new TotpVerifier({ hot: options.hot, clock: options.clock });
    this.#issuer = options.issuer;
  }

  /** Starts enrolment: a new secret, kept pending until a first code confirms it. */
  /** Drops an enrolment in progress, with its secret (an erasure). */
  async forgetPending(userId: string): Promise<void> {
    await this.#hot.delete(`totp-pending:${userId}`);
  }

  async beginEnrolment(userId: string, email: string): Promise<{ secret: string; uri: string }> {
    const { secret } = generateTotpSecret();
    await this.#hot.set(`totp-pending:${userId}`, secret, ENROLMENT_TTL_MS);
    return { secret, uri: totpUri({ secret, issuer: this.#issuer, account: email.replaceAll(':', '') }) };
  }

  async pendingEnrolment(userId: string, email: string): Promise<{ secret: string; uri: string } | null> {
    const secret = await this.#hot.get(`totp-pending:${userId}`);
    return secret === null ? null : { secret, uri: totpUri({ secret, issuer: this.#issuer, account: email.replaceAll(':', '') }) };
  }

  /** Confirms enrolment with a code from the app; returns the recovery codes, shown once. */
  async confirmEnrolment(userId: string, code: string, audit: { requestId?: string; ip?: string }): Promise<string[] | null> {
    const secret = await this.#hot.get(`totp-pending:${userId}`);
    if (secret === null || (await this.#totp.verify(userId, secret, code)) !== 'ok') return null;
    await this.#hot.delete(`totp-pending:${userId}`);
    const sealed = this.#vault.seal(SEAL_PURPOSE, new TextEncoder().encode(secret));
    await this.#users.update(userId, () => ({ totpSecret: sealed }));
    const { codes, stored } = generateRecoveryCodes(this.#recoveryKey);
    await saveRecoveryCodes(this.#records, RECOVERY_CODES_COLLECTION, userId, stored);
    await this.#events.emit({ type: 'user.updated', outcome: 'success', actorUserId: userId, ...audit, detail: { change: 'mfa_enabled', method: 'totp' } });
    return codes;
  }

  async disable(userId: string, audit: { requestId?: string; ip?: string }): Promise<void> {
    await this.#users.update(userId, () => ({ totpSecret: null }));
    await this.#records.delete(RECOVERY_CODES_COLLECTION, userId);
    await this.#events.emit({ type: 'user.updated', outcome: 'success', actorUserId: userId, ...audit, detail: { change: 'mfa_disabled' } });
  }

  async remainingRecoveryCodes(userId: string): Promise<number> {
    return remainingRecoveryCodes(this.#records, RECOVERY_CODES_COLLECTION, userId);
  }

  /** After a correct password: a single-use challenge token for the second step (a cookie). */
  async challenge(userId: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await this.#hot.set(`mfa:${digest(token)}`, userId, CHALLENGE_TTL_MS);
    return token;
  }

  /**
   * Answers a challenge with a TOTP code or a recovery code. Every check
   * goes through the account's second-factor throttle first (counted per
   * account across challenges, security review 1); at most
   * MAX_CHALLENGE_ATTEMPTS tries per challenge; success consumes the
   * challenge atomically, so one challenge yields at most one session.
   */
  async answer(token: string, code: string): Promise<ChallengeResult> {
    const key = `mfa:${digest(token)}`;
    const userId = await this.#hot.get(key);
    if (userId === null) return { outcome: 'expired' };
    const attempt = await this.#hot.increment(`mfa-attempts:${digest(token)}`, CHALLENGE_TTL_MS);
    if (attempt.value > MAX_CHALLENGE_ATTEMPTS) {
      await this.#hot.delete(key);
      return { outcome: 'expired' };
    }
    // The account-wide count (security review 1); a refused try still spends one of the challenge's.
    const verdict = await this.#throttle.secondFactorAttempt(userId);
    if (!verdict.allowed) return { outcome: 'throttled', userId, retryAfterSeconds: verdict.retryAfterSeconds };
    // An outage that stops the account being read gives the counted check back: no code was compared.
    const user = await givenBackOnOutage(() => this.#users.byId(userId), () => this.#throttle.secondFactorNotChecked(userId));
    if (user === null || user.disabled || user.totpSecret === null || user.totpSecret === undefined) return { outcome: 'expired' };
    const secret = new TextDecoder().decode(this.#vault.open(SEAL_PURPOSE, user.totpSecret));
    const compact = code.replace(/\s+/g, '');
    let method: 'totp' | 'recovery_code' | undefined;
    if (/^\d{6}$/.test(compact)) {
      if ((await this.#totp.verify(userId, secret, compact)) === 'ok') method = 'totp';
    } else if (await consumeRecoveryCode(this.#records, RECOVERY_CODES_COLLECTION, userId, code, this.#recoveryKey)) {
      method = 'recovery_code';
    }
    if (method === undefined) return { outcome: 'invalid', userId, attemptsLeft: MAX_CHALLENGE_ATTEMPTS - attempt.value };
    // Consume: of two concurrent right answers, one session.
    if ((await this.#hot.consume(key)) === null) return { outcome: 'expired' };
    return { outcome: 'ok', userId, method };
  }
}
