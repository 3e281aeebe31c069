/**
 * Identity's built-in hook handlers: the sign-in rules that sit at
 * login.before and login.after, in the places src/hooks/chains.cfg gives
 * them. Each is a pure function of its context; Accounts gathers the facts
 * (throttle verdict, the user) and runs the chain.
 */
import { HookChains, bundledChainSource, defineHook, idlePluginSlot, type AnyHookHandler, type HookPoint } from '../hooks/index.ts';

export const THROTTLE_HOOK = 'identity.throttle';
export const PASSWORD_STEP_HOOK = 'identity.password-step';
export const SECOND_FACTOR_HOOK = 'identity.second-factor';
export const ACCOUNT_ACTIVE_HOOK = 'identity.account-active';

/**
 * The throttle counted the attempt before the chain ran; this first step
 * refuses while it holds (THROTTLE), so no later handler can let a
 * throttled attempt through.
 */
const throttle = defineHook({
  point: 'login.before',
  name: THROTTLE_HOOK,
  answers: ['pass', 'deny'],
  run: (context) => (context.throttle.allowed ? { verdict: 'pass' } : { verdict: 'deny', reason: 'Too many attempts.' }),
});

/** The chain's last word: the attempt goes on to the password check (the behaviour before hooks). */
const passwordStep = defineHook({
  point: 'login.before',
  name: PASSWORD_STEP_HOOK,
  answers: ['allow'],
  run: () => ({ verdict: 'allow' }),
});

/**
 * A user with a second factor has not signed in until they answered it:
 * the deny asks for that interaction (the challenge page). Once `amr`
 * holds `otp` or `mfa` (RFC 8176), the next step decides.
 */
const secondFactor = defineHook({
  point: 'login.after',
  name: SECOND_FACTOR_HOOK,
  answers: ['pass', 'deny'],
  run: (context) =>
    context.secondFactorEnrolled && !context.amr.some((method) => method === 'otp' || method === 'mfa')
      ? { verdict: 'deny', reason: 'A second factor is required.', interaction: 'second_factor' }
      : { verdict: 'pass' },
});

/** The last step of sign-in: a disabled account never gets a session. */
const accountActive = defineHook({
  point: 'login.after',
  name: ACCOUNT_ACTIVE_HOOK,
  answers: ['allow', 'deny'],
  run: (context) => (context.disabled ? { verdict: 'deny', reason: 'This account cannot sign in.' } : { verdict: 'allow' }),
});

export const IDENTITY_HOOKS: readonly AnyHookHandler[] = [throttle, passwordStep, secondFactor, accountActive];
export const IDENTITY_HOOK_POINTS: readonly HookPoint[] = ['login.before', 'login.after'];

let defaults: HookChains | undefined;

/** Identity's chains alone, from the source tree's chain file: for an Accounts built without the server's chains (tools, tests). */
export function defaultIdentityHooks(): HookChains {
  defaults ??= HookChains.load({ handlers: [...IDENTITY_HOOKS, ...idlePluginSlot(IDENTITY_HOOK_POINTS)], source: bundledChainSource(), points: IDENTITY_HOOK_POINTS });
  return defaults;
}
