/**
 * What people and administrators do with accounts: sign in, change a
 * password, disable, delete. Each step checks, acts, and records an audit
 * event; nothing here writes HTML or reads HTTP.
 */
import type { FailureAggregator } from '../audit/index.ts';
import type { DomainEvents } from '../events/index.ts';
import type { Decision, HookChains } from '../hooks/index.ts';
import type { Clock, DurableTransactionRunner, RecordStore } from '../store/index.ts';
import { THROTTLE_HOOK, defaultIdentityHooks } from './hooks.ts';
import { PasswordPolicyError, checkNewPassword, type PasswordHasher } from './passwords.ts';
import type { DeviceCookies } from './device-cookies.ts';
import type { NewSession, SessionManager } from './sessions.ts';
import { THROTTLE, givenBackOnOutage, type LoginThrottle } from './throttle.ts';
import { PROFILE_FIELDS, applyProfileChange, checkProfileChange, type ProfileChange, type ProfileField } from './profile.ts';
import { SIGN_IN_RECORD_INTERVAL_MS, UserError, normaliseEmail, type User, type UserDirectory } from './users.ts';

/** Who is asking, for throttling and the audit entry. */
export interface RequestContext {
  readonly ip: string;
  readonly requestId?: string;
  readonly traceId?: string;
  /** A short device description for the account page. */
  readonly device?: string;
  /** The device cookie the browser sent, if any (device-cookies.ts). */
  readonly deviceCookie?: string;
}

export type LoginResult =
  /** `deviceCookie`: a fresh device cookie for this account, for the browser to keep (OWASP device cookies). */
  | { readonly outcome: 'ok'; readonly user: User; readonly session: NewSession; readonly deviceCookie: string }
  /** The password was right and the user has a second factor: answer the challenge next. */
  | { readonly outcome: 'second_factor'; readonly user: User }
  | { readonly outcome: 'invalid' }
  | { readonly outcome: 'throttled'; readonly retryAfterSeconds: number }
  /** A sign-in hook (login.before, login.after) refused; `reason` is fit to show the person. */
  | { readonly outcome: 'refused'; readonly reason: string };

export type ReauthResult =
  /** `passwordHash`: the hash the password was checked against (for a compare-and-set on it). */
  | { readonly outcome: 'ok'; readonly passwordHash: string | null }
  | { readonly outcome: 'wrong_password'; readonly endSession: boolean }
  | { readonly outcome: 'throttled'; readonly retryAfterSeconds: number; readonly endSession: true };

/**
 * Runs for the sessions a change ends (their handles): the caller ends what
 * they produced elsewhere (OAuth: their tokens, and the back-channel
 * logouts of the clients they signed in to, which only the session's own
 * record of them still names). Identity does not know OAuth; this callback
 * is how the layer above joins in, keeping the dependency pointing
 * downward (docs/architecture.md). It runs twice, so it must be idempotent:
 * first while the sessions are still live (`ended: false`), so a failure
 * leaves something to retry with; then once they ended (`ended: true`),
 * for what they did meanwhile (a code exchanged, an application signed in
 * to) and for a session that started while the first pass ran.
 */
export type OnSessionsEnding = (handles: readonly string[], pass: { readonly ended: boolean }) => Promise<unknown>;

/** What ending a user's sessions did: how many ended, and `onSessionsEnding`'s failure, if any, to throw once the audit entry is written. */
interface SessionsEnded {
  readonly ended: number;
  readonly failure?: { readonly error: unknown };
}

/**
 * How long after signing in a session may still add an authenticator
 * without the password again (NIST SP 800-63B 6.1.2.1: binding a new
 * authenticator needs the subscriber to authenticate at the AAL it gives,
 * recently; security review 9).
 */
export const REAUTHENTICATION_MAX_AGE_MS = 5 * 60_000;

/** Longest input looked at before any work (the pages take 1024 characters, at most 4 bytes each in UTF-8). */
const MAX_PASSWORD_BYTES = 4096;
const MAX_EMAIL_BYTES = 254;

export class Accounts {
  readonly #users: UserDirectory;
  /** Runs a change and the events staged with it as one durable transaction. */
  readonly #transaction: DurableTransactionRunner;
  readonly #hasher: PasswordHasher;
  readonly #sessions: SessionManager;
  readonly #throttle: LoginThrottle;
  readonly #events: DomainEvents;
  readonly #clock: Clock;
  readonly #maskIp: (ip: string) => string;
  readonly #devices: DeviceCookies;
  readonly #failures: Pick<FailureAggregator, 'record'>;

  readonly #allowLoopbackHttpPictures: boolean;
  readonly #hooks: HookChains;

  /**
   * `allowLoopbackHttpPictures`: development mode, where a picture may be served from http://localhost.
   * `hooks`: the server's chains (login.before, login.after); identity's built-ins alone when absent.
   */
  constructor(options: { users: UserDirectory; transaction: DurableTransactionRunner; hasher: PasswordHasher; sessions: SessionManager; throttle: LoginThrottle; devices: DeviceCookies; events: DomainEvents; failures: Pick<FailureAggregator, 'record'>; clock: Clock; maskIp: (ip: string) => string; allowLoopbackHttpPictures?: boolean; hooks?: HookChains }) {
    this.#hooks = options.hooks ?? defaultIdentityHooks();
    this.#devices = options.devices;
    this.#failures = options.failures;
    this.#allowLoopbackHttpPictures = options.allowLoopbackHttpPictures ?? false;
    this.#users = options.users;
    this.#transaction = options.transaction;
    this.#hasher = options.hasher;
    this.#sessions = options.sessions;
    this.#throttle = options.throttle;
    this.#events = options.events;
    this.#clock = options.clock;
    this.#maskIp = options.maskIp;
  }

  get users(): UserDirectory {
    return this.#users;
  }

  get sessions(): SessionManager {
    return this.#sessions;
  }

  /**
   * Password sign-in. Unknown address, wrong password and disabled account
   * all answer `invalid` after the same argon2 work (a dummy hash when there
   * is no real one), so neither the answer nor its timing tells which.
   */
  async login(email: string, password: string, context: RequestContext): Promise<LoginResult> {
    const account = normaliseEmail(email).slice(0, MAX_EMAIL_BYTES);
    const device = this.#devices.verify(account, context.deviceCookie) ?? undefined;
    const verdict = await this.#throttle.attempt(account, context.ip, device);
    const audit = { requestId: context.requestId, traceId: context.traceId, ip: context.ip };
    const before = await this.#hooks.decide('login.before', { account, ip: context.ip, ...(context.requestId !== undefined && { requestId: context.requestId }), throttle: { allowed: verdict.allowed } });
    if (!before.allowed) {
      if (!verdict.allowed && before.handler === THROTTLE_HOOK) {
        // A refused attempt costs the attacker nothing, so it is counted per
        // network and window instead of written one by one (security review 11).
        await this.#failures.record({ type: 'auth.login.failed', outcome: 'denied', ...audit, detail: { reason: 'throttled', scope: verdict.scope } });
        return { outcome: 'throttled', retryAfterSeconds: verdict.retryAfterSeconds };
      }
      return this.#refused(before, 'login.before', audit);
    }
    // The throttle counted this attempt; an outage that stops the account being read gives it back (nothing was checked).
    const giveBack = () => (verdict.allowed ? this.#throttle.notChecked(account, context.ip, device, verdict) : Promise.resolve());
    const user = Buffer.byteLength(password) > MAX_PASSWORD_BYTES ? null : await givenBackOnOutage(() => this.#users.byEmail(account), giveBack);
    const check = user !== null && !user.disabled && user.passwordHash !== null ? await this.#hasher.verify(user.passwordHash, password) : { ok: await this.#hasher.verifyDummy(password), needsRehash: false };
    if (!check.ok || user === null) {
      const pairLocked = verdict.allowed && verdict.pairAttempts === THROTTLE.pairLimit;
      await this.#events.emit({
        type: 'auth.login.failed',
        outcome: 'failure',
        ...(user !== null && { actorUserId: user.id }),
        ...audit,
        detail: { reason: user === null ? 'unknown_account' : user.disabled ? 'disabled' : 'wrong_password', locked: pairLocked },
      });
      return { outcome: 'invalid' };
    }
    if (check.needsRehash) {
      // The parameters changed since this hash was made: upgrade it now,
      // while we hold the password (the only moment we ever do).
      const upgraded = await this.#hasher.hash(password);
      await this.#users.update(user.id, (current) => (current.passwordHash === user.passwordHash ? { passwordHash: upgraded } : {}));
    }
    // Security review 1: the throttle is not refunded after the password
    // alone. With a second factor (identity.second-factor at login.after)
    // the counters stay until the whole sign-in succeeded
    // (completeSecondFactor), so knowing the password does not reset what
    // stops the guessing of the second factor.
    const after = await this.#afterStep(user, ['pwd'], context);
    if (!after.allowed) return after.interaction === 'second_factor' ? { outcome: 'second_factor', user } : this.#refused(after, 'login.after', { ...audit, actorUserId: user.id });
    await this.#throttle.succeeded(account, context.ip, user.id, device);
    const session = await this.#signIn(user, ['pwd'], 'password', context);
    return session === null ? { outcome: 'invalid' } : { outcome: 'ok', user, session, deviceCookie: this.#devices.issue(account) };
  }

  /** The second step answered (TOTP or a recovery code): the session starts now, and the throttle forgets the failures. */
  async completeSecondFactor(userId: string, method: 'totp' | 'recovery_code', context: RequestContext): Promise<LoginResult> {
    const user = await this.#users.byId(userId);
    if (user === null || user.disabled) return { outcome: 'invalid' };
    const account = normaliseEmail(user.email);
    const amr = ['pwd', method === 'totp' ? 'otp' : 'mfa'];
    const after = await this.#afterStep(user, amr, context);
    // A deny asking for yet another interaction cannot be answered here: refused like any other.
    if (!after.allowed) return this.#refused(after, 'login.after', { requestId: context.requestId, traceId: context.traceId, ip: context.ip, actorUserId: user.id });
    await this.#throttle.succeeded(account, context.ip, user.id, this.#devices.verify(account, context.deviceCookie) ?? undefined);
    const session = await this.#signIn(user, amr, `password+${method}`, context);
    return session === null ? { outcome: 'invalid' } : { outcome: 'ok', user, session, deviceCookie: this.#devices.issue(account) };
  }

  /** login.after: may a session start, with what this sign-in proved so far (`amr`, RFC 8176)? */
  async #afterStep(user: User, amr: readonly string[], context: RequestContext): Promise<Decision> {
    return this.#hooks.decide('login.after', {
      userId: user.id,
      amr,
      secondFactorEnrolled: user.totpSecret !== null && user.totpSecret !== undefined,
      disabled: user.disabled,
      ip: context.ip,
      ...(context.requestId !== undefined && { requestId: context.requestId }),
    });
  }

  /** A sign-in a hook refused: audited with the handler's name (its reason is free text, so it stays out of the ledger). */
  async #refused(decision: Extract<Decision, { allowed: false }>, point: 'login.before' | 'login.after', audit: { requestId?: string | undefined; traceId?: string | undefined; ip: string; actorUserId?: string }): Promise<LoginResult> {
    await this.#events.emit({ type: 'auth.login.failed', outcome: 'denied', ...audit, detail: { reason: 'refused_by_hook', point, hook: decision.handler ?? 'default_deny', ...(decision.fault !== undefined && { fault: decision.fault }) } });
    return { outcome: 'refused', reason: decision.reason };
  }

  /** Records a wrong or refused second-factor answer, on the user's account (the ledger turns the id into its pseudonym). */
  async secondFactorFailed(userId: string, context: RequestContext, reason: 'wrong_second_factor' | 'throttled' = 'wrong_second_factor'): Promise<void> {
    await this.#events.emit({
      type: 'auth.login.failed',
      outcome: reason === 'throttled' ? 'denied' : 'failure',
      actorUserId: userId,
      requestId: context.requestId,
      traceId: context.traceId,
      ip: context.ip,
      detail: reason === 'throttled' ? { reason: 'throttled', scope: 'second_factor' } : { reason },
    });
  }

  /**
   * Starts the session, or resolves null when the account was erased or
   * disabled while the password was being checked. The account is read
   * again after the session exists: an erasure (or a disable) ends the
   * user's sessions after it commits, so a session made before that is
   * ended by it, and one made after it is ended here. No order of the two
   * leaves a session for an account that is gone.
   */
  async #signIn(user: User, amr: readonly string[], method: string, context: RequestContext): Promise<NewSession | null> {
    const audit = { requestId: context.requestId, traceId: context.traceId, ip: context.ip };
    const session = await this.#sessions.create(user.id, { amr, device: context.device ?? 'unknown device', ip: this.#maskIp(context.ip) });
    const still = await this.#users.byId(user.id);
    if (still === null || still.disabled) {
      await this.#sessions.revoke(user.id, session.session.handle);
      return null;
    }
    // The last sign-in, for inactivity retention (privacy.retention.inactiveAccountDays):
    // decided on the record just read, so a sign-in within a day of the last one costs no write.
    const now = this.#clock();
    if (still.lastSignInAt === undefined || now - still.lastSignInAt >= SIGN_IN_RECORD_INTERVAL_MS) await this.#users.recordSignIn(user.id, now);
    await this.#events.emitAll([
      { type: 'auth.login.succeeded', outcome: 'success', actorUserId: user.id, ...audit, detail: { method, evictedSessions: session.evicted.length } },
      ...session.evicted.map((evicted) => ({ type: 'session.revoked', outcome: 'success', actorUserId: user.id, ...audit, detail: { reason: 'session_limit', session: evicted.slice(0, 12) } }) as const),
    ]);
    return session;
  }

  /** Whether the session signed in (or re-authenticated) recently enough to bind a new authenticator. */
  authenticatedRecently(session: { readonly authTime: number }): boolean {
    return this.#clock() - session.authTime <= REAUTHENTICATION_MAX_AGE_MS;
  }

  /**
   * Re-authentication of a signed-in user (changing the password, turning
   * the second factor off or on): the current password, checked through the
   * same throttle as sign-in (account + IP), so a stolen session is no
   * password oracle (security review 4). `endSession` is true once the
   * pair's limit, or the session's own count of wrong passwords, is
   * reached: the caller ends the session, and the person signs in again (where the throttle already waits for them).
   */
  async reauthenticate(userId: string, password: string, context: RequestContext, sessionHandle: string): Promise<ReauthResult> {
    const user = await this.#users.byId(userId);
    if (user === null) return { outcome: 'wrong_password', endSession: true };
    const account = normaliseEmail(user.email);
    const device = this.#devices.verify(account, context.deviceCookie) ?? undefined;
    const verdict = await this.#throttle.attempt(account, context.ip, device);
    const audit = { actorUserId: userId, requestId: context.requestId, traceId: context.traceId, ip: context.ip };
    if (!verdict.allowed) {
      await this.#events.emit({ type: 'auth.login.failed', outcome: 'denied', ...audit, detail: { reason: 'throttled', scope: verdict.scope, step: 'reauthentication' } });
      return { outcome: 'throttled', retryAfterSeconds: verdict.retryAfterSeconds, endSession: true };
    }
    const ok = Buffer.byteLength(password) <= MAX_PASSWORD_BYTES && user.passwordHash !== null ? (await this.#hasher.verify(user.passwordHash, password)).ok : await this.#hasher.verifyDummy(password);
    if (!ok) {
      const endSession = verdict.pairAttempts >= THROTTLE.pairLimit || (await this.#throttle.reauthenticationFailed(sessionHandle)) >= THROTTLE.pairLimit;
      await this.#events.emit({ type: 'auth.login.failed', outcome: 'failure', ...audit, detail: { reason: 'wrong_password', step: 'reauthentication', locked: endSession } });
      return { outcome: 'wrong_password', endSession };
    }
    await this.#throttle.succeeded(account, context.ip, undefined, device);
    return { outcome: 'ok', passwordHash: user.passwordHash };
  }

  /** Creates an account (admin CLI, later sign-up). The password is checked against the policy first. */
  async createUser(email: string, password: string | null, context: { actor: string; requestId?: string }): Promise<User> {
    const passwordHash = password === null ? null : await this.#hasher.hash(checkNewPassword(password, { email }));
    const user = await this.#users.create(email, passwordHash, this.#clock());
    await this.#events.emit({ type: 'user.created', outcome: 'success', actorService: context.actor, ...(context.requestId !== undefined && { requestId: context.requestId }), userId: user.id });
    return user;
  }

  /**
   * Changes a password after checking the current one; ends every other
   * session of the user (OWASP: a password change invalidates sessions),
   * with `onSessionsEnding` before and after (see #endSessions). When that
   * fails, the password stays changed, the sessions end all the same, the
   * change is audited, and its error is thrown.
   */
  async changePassword(userId: string, current: string, next: string, keepSession: string, context: RequestContext, options: { onSessionsEnding?: OnSessionsEnding } = {}): Promise<'changed' | Exclude<ReauthResult, { outcome: 'ok' }>> {
    const user = await this.#users.byId(userId);
    if (user === null) throw new UserError('not_found', 'no such user');
    const audit = { actorUserId: userId, requestId: context.requestId, traceId: context.traceId, ip: context.ip };
    const check = await this.reauthenticate(userId, current, context, keepSession);
    if (check.outcome !== 'ok') {
      await this.#events.emit({ type: 'user.updated', outcome: 'failure', ...audit, detail: { change: 'password', reason: check.outcome } });
      return check;
    }
    const passwordHash = await this.#hasher.hash(checkNewPassword(next, { email: user.email }));
    // Compare-and-set on the hash the current password was checked against
    // (security review 21): of parallel changes from one current password,
    // exactly one wins; for the others that password is no longer current.
    let won = false;
    await this.#users.update(userId, (latest) => {
      won = latest.passwordHash === check.passwordHash;
      return won ? { passwordHash, passwordChangedAt: this.#clock() } : {};
    });
    if (!won) {
      await this.#events.emit({ type: 'user.updated', outcome: 'failure', ...audit, detail: { change: 'password', reason: 'changed_concurrently' } });
      return { outcome: 'wrong_password', endSession: false };
    }
    const { ended, failure } = await this.#endSessions(userId, keepSession, options.onSessionsEnding);
    await this.#events.emit({ type: 'user.updated', outcome: 'success', ...audit, detail: { change: 'password', sessionsEnded: ended } });
    if (failure !== undefined) throw failure.error;
    return 'changed';
  }

  /**
   * An administrator sets a user's password (`portcullis user set-password`):
   * the same policy as every new password, then every session of the user
   * ends (OWASP ASVS 3.3.3 / Session Management Cheat Sheet: a password
   * change invalidates the sessions that were open), audited. Resolves to the
   * number of sessions ended. `onSessionsEnding` as in changePassword.
   */
  async setPassword(userId: string, next: string, context: { actor: string }, options: { onSessionsEnding?: OnSessionsEnding } = {}): Promise<number> {
    const user = await this.#users.byId(userId);
    if (user === null) throw new UserError('not_found', 'no such user');
    const passwordHash = await this.#hasher.hash(checkNewPassword(next, { email: user.email }));
    const now = this.#clock();
    // The reset is what an administrator does after a compromise: the
    // applications' tokens end too, not only the sessions (tokensNotBefore).
    await this.#users.update(userId, () => ({ passwordHash, passwordChangedAt: now, tokensNotBefore: now }));
    const { ended, failure } = await this.#endSessions(userId, undefined, options.onSessionsEnding);
    await this.#events.emit({ type: 'user.updated', outcome: 'success', actorUserId: userId, actorService: context.actor, detail: { change: 'password', by: 'admin', sessionsEnded: ended } });
    if (failure !== undefined) throw failure.error;
    return ended;
  }

  /** Clears the throttle's counts and locks for the account (`portcullis user unlock`), audited. */
  async unlock(userId: string, context: { actor: string }): Promise<void> {
    const user = await this.#users.byId(userId);
    if (user === null) throw new UserError('not_found', 'no such user');
    await this.#throttle.unlock(normaliseEmail(user.email), user.id);
    await this.#events.emit({ type: 'user.updated', outcome: 'success', actorUserId: userId, actorService: context.actor, detail: { change: 'unlocked' } });
  }

  /** Forgets the throttle's counts for an account that is being erased (no event: the erasure is the record). */
  async forgetThrottle(email: string, userId: string): Promise<void> {
    await this.#throttle.unlock(normaliseEmail(email), userId);
  }

  /** The user's email address, for the security events about them (an `email` subject beside `iss_sub`). */
  async emailOf(userId: string, records?: RecordStore): Promise<string | undefined> {
    return (await (records === undefined ? this.#users : this.#users.on(records)).byId(userId))?.email;
  }

  /** Whether sign-in for the user is locked or slowed now (THROTTLE), for administrators. */
  async lockState(user: User): Promise<'locked' | 'slowed' | null> {
    return this.#throttle.state(normaliseEmail(user.email), user.id);
  }

  /** Disabling ends every session of the user, with `onSessionsEnding` (as in changePassword). */
  async setDisabled(userId: string, disabled: boolean, context: { actor: string }, options: { onSessionsEnding?: OnSessionsEnding } = {}): Promise<User> {
    const event = (sessionsEnded: number) => ({ type: disabled ? 'user.disabled' : 'user.updated', outcome: 'success', actorUserId: userId, actorService: context.actor, detail: { disabled, sessionsEnded } }) as const;
    // The flag and its security signal (RISC account-disabled/-enabled) commit together.
    const { user, staged } = await this.#transaction(async (tx) => {
      const changed = await this.#users.on(tx.records).update(userId, () => ({ disabled }));
      return { user: changed, staged: await this.#events.stage(tx, [event(0)]) };
    });
    // After the commit, so no sign-in can start a session the revocation misses.
    // The entry is recorded even when that fails: the change and its signal are committed already.
    const ending: Promise<SessionsEnded> = disabled ? this.#endSessions(userId, undefined, options.onSessionsEnding) : Promise.resolve({ ended: 0 });
    const [ended] = await Promise.allSettled([ending]);
    await staged.publish([event(ended.status === 'fulfilled' ? ended.value.ended : 0)]);
    const { failure } = await ending;
    if (failure !== undefined) throw failure.error;
    return user;
  }

  /**
   * Sets or clears profile claims (OIDC Core section 5.1). Every value is
   * checked first, so a bad one changes nothing (UserError
   * 'invalid_profile'). The audit entry names the changed fields, never
   * their values: the ledger is append-only and must not hold personal data.
   * `actor`: the admin service making the change; absent when the user does.
   */
  async updateProfile(userId: string, change: ProfileChange, context: { actor?: string; requestId?: string; traceId?: string; ip?: string }): Promise<{ user: User; changed: readonly ProfileField[] }> {
    const checked = checkProfileChange(change, { allowLoopbackHttp: this.#allowLoopbackHttpPictures });
    let changed: ProfileField[] = [];
    const user = await this.#users.update(userId, (current) => {
      const next = applyProfileChange(current.profile ?? {}, checked, Math.floor(this.#clock() / 1000));
      changed = next.changed;
      return changed.length === 0 ? {} : { profile: next.profile };
    });
    if (changed.length > 0) {
      await this.#events.emit({
        type: 'user.updated',
        outcome: 'success',
        actorUserId: userId,
        ...(context.actor !== undefined && { actorService: context.actor }),
        ...(context.requestId !== undefined && { requestId: context.requestId }),
        ...(context.traceId !== undefined && { traceId: context.traceId }),
        ...(context.ip !== undefined && { ip: context.ip }),
        // An entry's detail holds scalars only: the names, comma-separated.
        detail: { change: 'profile', fields: PROFILE_FIELDS.filter((field) => changed.includes(field)).join(',') },
      });
    }
    return { user, changed };
  }

  /**
   * Changes a user's email address (their sign-in name). The ledger names
   * only the change; the security signal (RISC identifier-changed) carries
   * the addresses to receivers, and commits with the change.
   */
  async changeEmail(userId: string, email: string, context: { actor: string }): Promise<User> {
    const { user, staged } = await this.#transaction(async (tx) => {
      const { user: changed, previous } = await this.#users.on(tx.records).changeEmail(userId, email);
      if (previous === changed.email) return { user: changed, staged: undefined };
      const staged = await this.#events.stage(tx, [{ type: 'user.updated', outcome: 'success', actorUserId: userId, actorService: context.actor, previousEmail: previous, detail: { change: 'email' } }]);
      return { user: changed, staged };
    });
    await staged?.publish();
    return user;
  }

  /**
   * Ends every session of the user (with `onSessionsEnding`, as in
   * changePassword), then deletes the account. When `onSessionsEnding`
   * fails, the account is deleted all the same (an administrator removing
   * someone must not leave them able to sign in) and its error is thrown.
   */
  async deleteUser(userId: string, context: { actor: string }, options: { onSessionsEnding?: OnSessionsEnding } = {}): Promise<boolean> {
    const { ended, failure } = await this.#endSessions(userId, undefined, options.onSessionsEnding);
    // The deletion and its security signal (RISC account-purged) commit together.
    const staged = await this.#transaction(async (tx) => {
      if (!(await this.#users.on(tx.records).delete(userId))) return undefined;
      return this.#events.stage(tx, [{ type: 'user.deleted', outcome: 'success', actorUserId: userId, actorService: context.actor, detail: { sessionsEnded: ended } }]);
    });
    await staged?.publish();
    if (failure !== undefined) throw failure.error;
    return staged !== undefined;
  }

  /**
   * Ends every session of the user but `keep`, with `onSessionsEnding`
   * before and after (see its type). Before: a failure half-way would
   * otherwise leave nothing to retry with, the sessions gone and their
   * applications never told (OIDC Back-Channel Logout 1.0 sections 2.3 and
   * 2.5: the OP remembers the RPs a session signed in to and sends each a
   * logout token when it ends). After: a live session can still exchange a
   * code or sign in to another application until it ends, and those tokens
   * and that application must not escape. The sessions end even when it
   * fails: a password change or a disable that leaves the old sessions
   * alive is worse than logouts not sent; the first failure is handed back
   * for the caller to throw once its audit entry is written.
   */
  async #endSessions(userId: string, keep: string | undefined, onSessionsEnding: OnSessionsEnding | undefined): Promise<SessionsEnded> {
    let failure: { error: unknown } | undefined;
    const pass = async (handles: () => Promise<readonly string[]>, ended: boolean) => {
      if (onSessionsEnding === undefined) return;
      try {
        const which = await handles();
        if (which.length > 0) await onSessionsEnding(which, { ended });
      } catch (error) {
        failure ??= { error };
      }
    };
    let live: readonly string[] = [];
    await pass(async () => (live = (await this.#sessions.list(userId)).map((session) => session.handle).filter((handle) => handle !== keep)), false);
    const ended = await this.#sessions.endAll(userId, keep);
    await pass(async () => [...new Set([...live, ...ended])], true);
    return { ended: ended.length, ...(failure !== undefined && { failure }) };
  }

  /** Signs out one session of the user (account page, logout). */
  async endSession(userId: string, handle: string, context: RequestContext, reason: 'logout' | 'revoked'): Promise<boolean> {
    const ended = await this.#sessions.revoke(userId, handle);
    await this.#events.emit({
      type: reason === 'logout' ? 'auth.logout' : 'session.revoked',
      outcome: 'success',
      actorUserId: userId,
      requestId: context.requestId,
      traceId: context.traceId,
      ip: context.ip,
      detail: { session: handle.slice(0, 12) },
    });
    return ended;
  }
}

export { PasswordPolicyError };
