/** OpenID Connect Core section 5.4 and 11: the scopes that concern a user. */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** Scopes that only mean something when a user signs in. */
export const USER_SCOPES: ReadonlySet<string> = new Set(OIDC_SCOPES);

/**
 * OpenID Connect Core section 5.4: the claims each scope asks for. The one
 * table userinfo serves from and discovery lists (claims_supported); a claim
 * without a value is left out (section 5.3.2).
 */
export const SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'locale', 'zoneinfo', 'picture', 'updated_at'],
};

/** The claims `scopes` release about a user, from the values the user has. */
export function claimsForScopes(scopes: readonly string[], values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const released: Record<string, unknown> = {};
  for (const scope of scopes) {
    for (const claim of SCOPE_CLAIMS[scope] ?? []) {
      const value = values[claim];
      if (value !== undefined && value !== null && value !== '') released[claim] = value;
    }
  }
  return released;
}
