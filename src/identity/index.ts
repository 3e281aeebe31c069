/**
 * Identity: users, passwords, sign-in, sessions, CSRF, brute-force defence,
 * second factor. HTTP lives in src/server; this module only decides.
 */
import { FailureAggregator } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import type { DomainEvents } from '../events/index.ts';
import type { HookChains } from '../hooks/index.ts';
import { maskIp } from '../observability/index.ts';
import type { Clock, Stores } from '../store/index.ts';
import type { KeyVault } from '../crypto/index.ts';
import { Accounts } from './accounts.ts';
import { CsrfTokens } from './csrf.ts';
import { DeviceCookies } from './device-cookies.ts';
import { PasswordHasher } from './passwords.ts';
import { SessionManager } from './sessions.ts';
import { LoginThrottle } from './throttle.ts';
import { UserDirectory } from './users.ts';
import { SecondFactor } from './second-factor.ts';

export { Accounts, REAUTHENTICATION_MAX_AGE_MS, type OnSessionsEnding, type LoginResult, type ReauthResult, type RequestContext } from './accounts.ts';
export { CsrfTokens, sameOrigin } from './csrf.ts';
export { DeviceCookies, DEVICE_COOKIE_MAX_AGE_MS } from './device-cookies.ts';
export { PasswordHasher, PasswordPolicyError, checkNewPassword, normalisePassword } from './passwords.ts';
export { SessionManager, sessionHandle, type Session, type SessionPolicy } from './sessions.ts';
export { LoginThrottle, THROTTLE } from './throttle.ts';
export { SIGN_IN_RECORD_INTERVAL_MS, UserDirectory, UserError, lastActivityOf, normaliseEmail, type User, type UserPrivacy } from './users.ts';
export { PROFILE_FIELDS, checkProfileChange, type Profile, type ProfileChange, type ProfileField } from './profile.ts';
export { SecondFactor, MAX_CHALLENGE_ATTEMPTS, type ChallengeResult } from './second-factor.ts';
export { TotpVerifier, generateTotpSecret, totpUri } from './totp.ts';
export { IDENTITY_HOOKS, IDENTITY_HOOK_POINTS, ACCOUNT_ACTIVE_HOOK, PASSWORD_STEP_HOOK, SECOND_FACTOR_HOOK, THROTTLE_HOOK } from './hooks.ts';
export { consumeRecoveryCode, generateRecoveryCodes, remainingRecoveryCodes, saveRecoveryCodes } from './recovery-codes.ts';

export interface Identity {
  readonly accounts: Accounts;
  readonly csrf: CsrfTokens;
  readonly secondFactor: SecondFactor;
}

/**
 * `failures`: the instance's aggregator of unauthenticated failures (one per
 * server, shared with the admin check); a command that makes no HTTP
 * requests gets its own.
 */
export function createIdentity(options: { config: Readonly<Config>; stores: Stores; events: DomainEvents; vault: KeyVault; clock: Clock; failures?: FailureAggregator; hooks?: HookChains }): Identity {
  const { config, stores, clock } = options;
  const identity = config.identity;
  const sessions = new SessionManager({
    hot: stores.hot,
    clock,
    policy: {
      idleTimeoutMs: identity.sessionIdleTimeoutMs,
      absoluteTimeoutMs: identity.sessionAbsoluteTimeoutMs,
      renewIntervalMs: identity.sessionRenewIntervalMs,
      maxPerUser: identity.maxSessionsPerUser,
    },
  });
  // One throttle for every credential check: password, second factor, re-authentication.
  const throttle = new LoginThrottle({ hot: stores.hot, clock });
  const accounts = new Accounts({
    users: new UserDirectory(stores.durable.records),
    transaction: (fn) => stores.durable.transaction(fn),
    hasher: new PasswordHasher({ memoryCostKiB: identity.passwordMemoryCostKiB, timeCost: identity.passwordTimeCost, parallelism: identity.passwordParallelism }),
    sessions,
    throttle,
    devices: new DeviceCookies({ key: options.vault.derive('device-cookies'), clock }),
    events: options.events,
    failures: options.failures ?? new FailureAggregator({ events: options.events, hot: stores.hot, clock }),
    clock,
    maskIp,
    allowLoopbackHttpPictures: config.mode === 'development',
    ...(options.hooks !== undefined && { hooks: options.hooks }),
  });
  const secondFactor = new SecondFactor({
    hot: stores.hot,
    records: stores.durable.records,
    users: accounts.users,
    events: options.events,
    clock,
    vault: options.vault,
    recoveryKey: options.vault.derive('recovery-codes'),
    issuer: identity.totpIssuer ?? new URL(config.issuer).hostname,
    throttle,
  });
  return { accounts, csrf: new CsrfTokens(options.vault.derive('csrf')), secondFactor };
}
