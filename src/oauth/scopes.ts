/** OpenID Connect Core section 5.4 and 11: the scopes that concern a user. */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** Scopes that only mean something when a user signs in. */
export const USER_SCOPES: ReadonlySet<string> = new Set(OIDC_SCOPES);
