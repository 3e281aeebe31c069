/**
 * The authorization server's built-in hook handlers, at the places
 * src/hooks/chains.cfg gives them: who may register a client, whether a
 * code needs the consent page, and which claims a scope releases. Each is
 * a function of its context; the endpoints gather the facts and run the
 * chains.
 */
import { HookChains, HookUnavailableError, bundledChainSource, defineHook, idlePluginSlot, type AnyHookHandler, type Claims, type ClaimsOutcome, type ClaimsPoint, type HookPoint } from '../hooks/index.ts';
import { OAuthError } from './errors.ts';
import { PRIVACY_SCOPE, claimsForScopes } from './scopes.ts';

export const REGISTRATION_POLICY_HOOK = 'oauth.registration-policy';
export const METADATA_STEP_HOOK = 'oauth.metadata-step';
export const STORED_CONSENT_HOOK = 'oauth.stored-consent';
export const ID_TOKEN_CLAIMS_HOOK = 'oidc.id-token-scope-claims';
export const USERINFO_CLAIMS_HOOK = 'oidc.scope-claims';

/**
 * RFC 7591 section 3: `oauth.registration` says who may register: nobody
 * (off), the holder of the initial access token (token), or anyone (open).
 * The endpoint checked the token (throttled, constant time) before the chain.
 */
const registrationPolicy = defineHook({
  point: 'registration.before',
  name: REGISTRATION_POLICY_HOOK,
  answers: ['pass', 'deny'],
  run: (context) => {
    if (context.policy === 'off') return { verdict: 'deny', reason: 'Dynamic client registration is turned off on this server.' };
    if (context.policy === 'token' && context.initialAccessToken !== 'valid') return { verdict: 'deny', reason: 'Registration needs the initial access token as a Bearer token.' };
    return { verdict: 'pass' };
  },
});

/** The chain's last word: the request goes on to the metadata check (RFC 7591 section 2), as before hooks. */
const metadataStep = defineHook({
  point: 'registration.before',
  name: METADATA_STEP_HOOK,
  answers: ['allow'],
  run: () => ({ verdict: 'allow' }),
});

/**
 * OIDC Core section 3.1.2.4: no consent page when the person already
 * approved every scope and resource and the client did not ask for it
 * (prompt=consent); else the deny asks for the page (or, with prompt=none,
 * answers consent_required).
 */
const storedConsent = defineHook({
  point: 'consent.before',
  name: STORED_CONSENT_HOOK,
  answers: ['allow', 'deny'],
  run: (context) =>
    context.consented && !context.prompt.includes('consent') ? { verdict: 'allow' } : { verdict: 'deny', reason: 'The user has not consented to this request.', interaction: 'consent' },
});

/**
 * OIDC Core section 5.4: the scope claims go in the ID token only when no
 * access token is issued; every flow here (response_type=code) issues one,
 * so this passes, and the claims come from UserInfo. The `privacy` scope's
 * claims are Portcullis's own and go in the ID token too: an application
 * learns of an opt-out at the sign-in itself, before it processes anything
 * (CCPA regulations section 7026(f): honour it as soon as feasibly
 * possible), without a UserInfo call.
 */
const idTokenScopeClaims = defineHook({
  point: 'token.claims',
  name: ID_TOKEN_CLAIMS_HOOK,
  answers: ['modify', 'pass'],
  // Synchronous when it passes: no read, no deadline timer on the token endpoint's hot path.
  run: (context) => {
    if (!context.accessTokenIssued) return context.claimValues().then((values) => ({ verdict: 'modify', claims: claimsForScopes(context.scopes, values ?? {}) }) as const);
    if (!context.scopes.includes(PRIVACY_SCOPE)) return { verdict: 'pass' };
    return context.claimValues().then((values) => ({ verdict: 'modify', claims: claimsForScopes([PRIVACY_SCOPE], values ?? {}) }) as const);
  },
});

/** OIDC Core section 5.4: the token's scopes pick the claims UserInfo releases; a claim without a value is left out (5.3.2). */
const userinfoScopeClaims = defineHook({
  point: 'userinfo.claims',
  name: USERINFO_CLAIMS_HOOK,
  answers: ['modify'],
  run: (context) => ({ verdict: 'modify', claims: claimsForScopes(context.scopes, context.claimValues) }),
});

/**
 * The claims a chain released, or the refusal as the client sees it: a
 * handler's deny is access_denied (403, its reason as the description); a
 * fault is HookUnavailableError (503 with Retry-After: the server could not
 * build the claims, which the client may try again).
 */
export function releasedClaims(outcome: ClaimsOutcome, point: ClaimsPoint): Claims {
  if (!outcome.refused) return outcome.claims;
  if (outcome.fault !== undefined) throw new HookUnavailableError(point);
  throw new OAuthError('access_denied', outcome.reason);
}

export const OAUTH_HOOKS: readonly AnyHookHandler[] = [registrationPolicy, metadataStep, storedConsent, idTokenScopeClaims, userinfoScopeClaims];
export const OAUTH_HOOK_POINTS: readonly HookPoint[] = ['registration.before', 'consent.before', 'token.claims', 'access-token.claims', 'userinfo.claims'];

/** The authorization server's chains alone, from the source tree's chain file: when it is built without the server's chains (tools, tests). */
let defaults: HookChains | undefined;

export function defaultOAuthHooks(): HookChains {
  defaults ??= HookChains.load({ handlers: [...OAUTH_HOOKS, ...idlePluginSlot(OAUTH_HOOK_POINTS)], source: bundledChainSource(), points: OAUTH_HOOK_POINTS });
  return defaults;
}
