/**
 * The hook points: a closed, named list (like Fastify's lib/hooks.js), what
 * each point's handlers are told, and what a handler may answer.
 *
 * Two kinds of point:
 * - a decision point asks "may this go on?": its chain ends in `allow` or
 *   `deny`, and in deny when no handler allowed (default deny);
 * - a claims point builds the claims a token or the UserInfo response
 *   carries: its handlers `modify` claims inside a declared namespace, and
 *   with no handler (or any fault) the claims stay as they came in.
 */

export const HOOK_POINTS = {
  /** Before the password is checked: the request, the account named, the throttle's verdict. */
  'login.before': 'decision',
  /** After each authentication step (password, second factor): may a session start now? */
  'login.after': 'decision',
  /** RFC 7591 section 3: may this client register? Before its metadata is checked. */
  'registration.before': 'decision',
  /** OIDC Core section 3.1.2.4: may the code be issued without asking the person? */
  'consent.before': 'decision',
  /** The extra claims of an ID token (OIDC Core sections 2 and 5.4). */
  'token.claims': 'claims',
  /** The extra claims of an access token (RFC 9068 section 2.2.3), in every grant: client_credentials, authorization_code, refresh_token. */
  'access-token.claims': 'claims',
  /** The claims the UserInfo endpoint returns (OIDC Core section 5.3.2). */
  'userinfo.claims': 'claims',
} as const;

export type HookPoint = keyof typeof HOOK_POINTS;
export type DecisionPoint = { [P in HookPoint]: (typeof HOOK_POINTS)[P] extends 'decision' ? P : never }[HookPoint];
export type ClaimsPoint = { [P in HookPoint]: (typeof HOOK_POINTS)[P] extends 'claims' ? P : never }[HookPoint];

export const isHookPoint = (value: string): value is HookPoint => Object.hasOwn(HOOK_POINTS, value);

/**
 * Claims no handler may set, whatever namespace it declares: the protocol's
 * own (RFC 7519 section 4.1, OIDC Core sections 2 and 3.1.3.6, RFC 7800
 * cnf, RFC 9068 section 2.2, Back-Channel Logout sid). A handler that could
 * write `sub` or `aud` could hand one user's token to another.
 */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti',
  'auth_time', 'nonce', 'acr', 'amr', 'azp', 'at_hash', 'c_hash', 's_hash', 'sid',
  'cnf', 'scope', 'client_id', 'typ', 'events', 'sub_jwk',
]);

/**
 * Every claim name with a registered meaning, that a namespace must not
 * reach (a plugin's manifest `claimsNamespace` may not be a prefix of any):
 * RESERVED_CLAIMS; the standard claims of OIDC Core section 5.1 (a plugin
 * that could write `email_verified` could vouch for an address it does not
 * own, in UserInfo and the ID token); and the IANA "JSON Web Token Claims"
 * registry (https://www.iana.org/assignments/jwt/), whose entries carry
 * authority a client or resource server acts on: delegation (RFC 8693 act,
 * may_act), RAR (RFC 9396 authorization_details), SCIM (RFC 9068 groups,
 * roles, entitlements), DPoP (RFC 9449 htm, htu, ath), SET (RFC 8417
 * events, toe, txn), PASSporT (RFC 8225 orig, dest, mky, rph, attest,
 * origid), and the rest of the registry as it stood. The one list: the
 * manifest checks against it (plugins/manifest.ts), so does the plugin
 * host's answer check (plugins/host/wire.ts).
 */
export const REGISTERED_CLAIMS: ReadonlySet<string> = new Set([
  ...RESERVED_CLAIMS,
  // OIDC Core section 5.1 (standard claims), and 5.5.1 / 5.6.2 (_claim_names, _claim_sources).
  'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username', 'profile', 'picture', 'website',
  'email', 'email_verified', 'gender', 'birthdate', 'zoneinfo', 'locale', 'phone_number', 'phone_number_verified', 'address', 'updated_at',
  '_claim_names', '_claim_sources',
  // IANA "JSON Web Token Claims" registry.
  'act', 'may_act', 'authorization_details', 'groups', 'roles', 'entitlements', 'token_introspection',
  'sip_from_tag', 'sip_date', 'sip_callid', 'sip_cseq_num', 'sip_via_branch',
  'orig', 'dest', 'mky', 'toe', 'txn', 'rph', 'vot', 'vtm', 'attest', 'origid', 'jcard', 'at_use_nbr', 'div', 'opt', 'rcd', 'rcdi', 'crn', 'msgi',
  'vc', 'vp', 'sph', 'ace_profile', 'cnonce', 'exi', 'htm', 'htu', 'ath', 'atc', 'sub_id',
  'eat_nonce', 'ueid', 'sueids', 'oemid', 'hwmodel', 'hwversion', 'oemboot', 'dbgstat', 'location', 'eat_profile', 'submods',
  'uptime', 'bootcount', 'bootseed', 'dloas', 'swname', 'swversion', 'manifests', 'measurements', 'measres', 'intuse',
  'cdniv', 'cdnicrit', 'cdniip', 'cdniuc', 'cdniets', 'cdnistt', 'cdnistd', 'sig_val_claims',
  'verified_claims', 'place_of_birth', 'nationalities', 'birth_family_name', 'birth_given_name', 'birth_middle_name', 'salutation', 'title', 'msisdn', 'also_known_as',
  'rdap_allowed_purposes', 'rdap_dnt_allowed', 'geohash', '_sd', '_sd_alg', 'sd_hash',
  // Portcullis's own: the person's privacy choices (scope `privacy`). An application acts on them (CCPA
  // "do not sell or share", GDPR consent); a plugin that could write them could undo the person's choice.
  'privacy_opt_out', 'privacy_consents',
]);

/** A claim name (and a namespace or prefix): printable, no separators of the chain file's format (RFC 7519 section 4 allows any string; we ask for less). */
export const CLAIM_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;

/** Names that, as a key written into a JavaScript object, would reach its prototype: never a claim. */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Whether `name` may be a claim's name at all (whoever sets it): the claim-name characters, and not a prototype key. */
export const isClaimName = (name: string): boolean => CLAIM_NAME.test(name) && !PROTOTYPE_KEYS.has(name);

/** Claims as handlers see and change them: JSON values. */
export type Claims = Readonly<Record<string, unknown>>;

/**
 * Why a decision is not final yet: the person can lift the deny by
 * answering something more (a second factor, the consent page). Like
 * RFC 9470's step-up challenge, but inside the server.
 */
export type HookInteraction = 'second_factor' | 'consent';

export type HookAnswer =
  | { readonly verdict: 'allow' }
  /** `reason`: short plain text the person or client may be shown (at most 200 characters). */
  | { readonly verdict: 'deny'; readonly reason: string; readonly interaction?: HookInteraction }
  /** Claims points only. A value of null removes the claim. */
  | { readonly verdict: 'modify'; readonly claims: Claims }
  /** "Not mine to decide": the next handler answers, where the chain file says this handler may fall through. */
  | { readonly verdict: 'pass' };

export type HookVerdict = HookAnswer['verdict'];

export interface LoginBeforeContext {
  /** The account named, normalised (identity's normaliseEmail). */
  readonly account: string;
  readonly ip: string;
  readonly requestId?: string;
  /** The sign-in throttle's verdict for this attempt, already counted. */
  readonly throttle: { readonly allowed: boolean };
}

export interface LoginAfterContext {
  readonly userId: string;
  /** RFC 8176 methods proven so far in this sign-in (`pwd`, then `otp` or `mfa`). */
  readonly amr: readonly string[];
  readonly secondFactorEnrolled: boolean;
  readonly disabled: boolean;
  readonly ip: string;
  readonly requestId?: string;
}

export interface RegistrationBeforeContext {
  /** `oauth.registration`. */
  readonly policy: 'open' | 'token' | 'off';
  /** The initial access token (RFC 7591 section 3): checked and right, checked and wrong, absent, or not looked at (registration off). */
  readonly initialAccessToken: 'valid' | 'wrong' | 'absent' | 'unchecked';
  /** The metadata as sent, not yet validated. */
  readonly metadata: unknown;
  readonly ip: string;
  readonly requestId?: string;
}

export interface ConsentBeforeContext {
  readonly userId: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  /** OIDC Core section 3.1.2.1 prompt values of the request. */
  readonly prompt: readonly string[];
  /** Whether the person's stored consent already covers every scope and resource. */
  readonly consented: boolean;
}

export interface TokenClaimsContext {
  readonly userId: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  /** Whether an access token is issued with the ID token (OIDC Core section 5.4). */
  readonly accessTokenIssued: boolean;
  /** The user's claim values, read only when a handler asks (null: the account is gone or disabled). */
  readonly claimValues: () => Promise<Claims | null>;
}

export interface AccessTokenClaimsContext {
  /** The user the token is for; null for client_credentials (the client acts for itself, RFC 6749 section 4.4). */
  readonly userId: string | null;
  readonly clientId: string;
  /** `client_credentials`, `authorization_code` or `refresh_token`. */
  readonly grantType: string;
  readonly scopes: readonly string[];
  /** The token's `aud` values (RFC 8707 resources, else the default audience). */
  readonly audience: readonly string[];
}

export interface UserinfoClaimsContext {
  readonly userId: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  /** Every claim value the user has (email, the OIDC Core section 5.1 profile claims). */
  readonly claimValues: Claims;
}

export interface HookContexts {
  'login.before': LoginBeforeContext;
  'login.after': LoginAfterContext;
  'registration.before': RegistrationBeforeContext;
  'consent.before': ConsentBeforeContext;
  'token.claims': TokenClaimsContext;
  'access-token.claims': AccessTokenClaimsContext;
  'userinfo.claims': UserinfoClaimsContext;
}

/** What a handler gets besides the context. */
export interface HookCall {
  /** Aborted when the handler's deadline passes: stop work, the answer is no longer awaited. */
  readonly signal: AbortSignal;
  /** Claims points: the claims as the handlers before this one left them. Decision points: empty. */
  readonly claims: Claims;
}

/**
 * A handler joins one point under a name. `answers` declares every verdict
 * it may give: the chain file must declare `pass` for a handler that may
 * fall through (checked when the chains load), and an answer outside the
 * declaration is refused at run time.
 */
export interface HookHandler<P extends HookPoint = HookPoint> {
  readonly point: P;
  readonly name: string;
  readonly answers: readonly HookVerdict[];
  run(context: HookContexts[P], call: HookCall): HookAnswer | Promise<HookAnswer>;
}

/** Any point's handler, for lists that mix points. */
export type AnyHookHandler = { [P in HookPoint]: HookHandler<P> }[HookPoint];

/** Typed construction of a handler for one point. */
export function defineHook<P extends HookPoint>(handler: HookHandler<P>): HookHandler<P> {
  return handler;
}
