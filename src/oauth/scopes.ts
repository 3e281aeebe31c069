/** OpenID Connect Core section 5.4 and 11: the scopes that concern a user. */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/**
 * Portcullis's own user scope (issue 15): `privacy` releases the person's
 * "do not sell or share" choice and the purposes they consented to, so an
 * application can honour them (CCPA 1798.135(c), GDPR Art. 7(3)).
 */
export const PRIVACY_SCOPE = 'privacy';

/** Every scope about the signed-in user: what discovery offers and an operator may grant besides the resources' API scopes. */
export const USER_SCOPE_NAMES: readonly string[] = [...OIDC_SCOPES, PRIVACY_SCOPE];

/** Scopes that only mean something when a user signs in. */
export const USER_SCOPES: ReadonlySet<string> = new Set(USER_SCOPE_NAMES);

/**
 * OpenID Connect Core section 5.4: the claims each scope asks for. The one
 * table userinfo serves from and discovery lists (claims_supported); a claim
 * without a value is left out (section 5.3.2).
 */
export const SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'locale', 'zoneinfo', 'picture', 'updated_at'],
  [PRIVACY_SCOPE]: ['privacy_opt_out', 'privacy_consents'],
};

/** The claims `scopes` release about a user, from the values the user has. */
export function claimsForScopes(scopes: readonly string[], values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const released: Record<string, unknown> = {};
  for (const scope of scopes) {
    // Own properties only: a scope named `constructor` asks for nothing.
    const claims = Object.hasOwn(SCOPE_CLAIMS, scope) ? SCOPE_CLAIMS[scope]! : [];
    for (const claim of claims) {
      const value = values[claim];
      if (value !== undefined && value !== null && value !== '') released[claim] = value;
    }
  }
  return released;
}
