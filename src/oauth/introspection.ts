/**
 * Token introspection (RFC 7662). The caller must authenticate as a
 * confidential client (section 2.1: the endpoint MUST require authorization,
 * and a public client proves nothing). It sees a token only if the token was
 * issued to it, or if it acts for a resource server in the token's audience
 * (section 4: the server limits which protected resources may introspect
 * which tokens, against token scanning and for the users' privacy). Every
 * token that is not active, or not the caller's to see, gets the same
 * `{"active": false}` (section 2.2).
 */
import type { Claims } from '../hooks/index.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { ClientAuthenticator } from './client-auth.ts';
import { CERTIFICATE_CONFIRMATION, type ClientCertificate } from './mtls.ts';
import { OAuthError } from './errors.ts';
import { oauthParams } from './params.ts';
import type { RefreshTokens } from './refresh-tokens.ts';
import type { TokenTargets } from './targets.ts';
import type { RequestAudit } from './grants/grant.ts';
import { PRIVACY_SCOPE, claimsForScopes } from './scopes.ts';

export type IntrospectionResponse = { readonly active: false } | ({ readonly active: true; readonly token_type?: string } & Record<string, unknown>);

/** Claims an introspection answer repeats from the token (RFC 7662 section 2.2). */
const REPORTED_CLAIMS = ['scope', 'client_id', 'sub', 'aud', 'iss', 'exp', 'iat', 'nbf', 'jti', 'auth_time', 'acr', 'sid', 'cnf'] as const;

export class IntrospectionEndpoint {
  readonly #clientAuthenticator: ClientAuthenticator;
  readonly #accessTokens: AccessTokens;
  readonly #refreshTokens: RefreshTokens;

  readonly #targets: TokenTargets;
  readonly #claimValues: ((userId: string) => Promise<Claims | null>) | undefined;

  /** `claimValues`: a user's claim values, read for a token with the `privacy` scope. */
  constructor(options: { clientAuthenticator: ClientAuthenticator; accessTokens: AccessTokens; refreshTokens: RefreshTokens; targets: TokenTargets; claimValues?: (userId: string) => Promise<Claims | null> }) {
    this.#targets = options.targets;
    this.#claimValues = options.claimValues;
    this.#clientAuthenticator = options.clientAuthenticator;
    this.#accessTokens = options.accessTokens;
    this.#refreshTokens = options.refreshTokens;
  }

  async handle(request: { body: unknown; authorization: string | undefined; audit: RequestAudit; clientCertificate?: ClientCertificate }): Promise<IntrospectionResponse> {
    const params = oauthParams(request.body);
    const authenticated = await this.#clientAuthenticator.authenticate({
      authorization: request.authorization,
      body: params.values,
      audit: request.audit,
      ...(request.clientCertificate !== undefined && { clientCertificate: request.clientCertificate }),
    });
    if (authenticated.method === 'none') throw new OAuthError('invalid_client', 'Introspection needs an authenticated (confidential) client.');
    const token = params.values['token'];
    if (token === undefined) throw new OAuthError('invalid_request', 'token is required.');
    // token_type_hint is only a hint (section 2.1): every kind is tried.
    const claims = await this.#accessTokens.check(token);
    if (claims === null) {
      // A refresh token is shown only to the client it was issued to: it is
      // that client's credential, not something a resource server holds.
      const refresh = await this.#refreshTokens.inspect(token);
      if (refresh === null || refresh.grant.clientId !== authenticated.client.client_id) return { active: false };
      // No token_type: RFC 7662 section 2.2 means the access token type (RFC 6749 section 7.1).
      return {
        active: true,
        client_id: refresh.grant.clientId,
        sub: refresh.grant.userId,
        scope: refresh.grant.scope,
        iat: Math.floor(refresh.issuedAt / 1000),
        exp: Math.floor(refresh.expiresAt / 1000),
        ...(refresh.grant.dpopJkt !== undefined && { cnf: { jkt: refresh.grant.dpopJkt } }),
        ...(refresh.grant.certificateThumbprint !== undefined && { cnf: { [CERTIFICATE_CONFIRMATION]: refresh.grant.certificateThumbprint } }),
        ...(await this.#privacyClaims(refresh.grant.scope, refresh.grant.userId)),
      };
    }
    // Section 4: issued to the caller, or the caller is the resource server it is for.
    const caller = authenticated.client.client_id;
    if (claims.client_id !== caller && !(await this.#targets.actsFor(caller, claims.aud))) return { active: false };
    // RFC 9449 section 6.2: a DPoP-bound token is of type DPoP. A
    // certificate-bound one stays Bearer (RFC 8705 defines no token type);
    // its `cnf` (section 3.2) tells the resource server which certificate.
    const dpopBound = (claims['cnf'] as { jkt?: unknown } | undefined)?.jkt !== undefined;
    const answer: Record<string, unknown> = { active: true, token_type: dpopBound ? 'DPoP' : 'Bearer' };
    for (const claim of REPORTED_CLAIMS) if (claims[claim] !== undefined) answer[claim] = claims[claim];
    Object.assign(answer, await this.#privacyClaims(claims.scope, claims.sub));
    return answer as IntrospectionResponse;
  }

  /**
   * A user token with the `privacy` scope: the person's choices as they are
   * now, not as they were at issue (RFC 7662 section 2.2 lets a server add
   * its own members), so a resource server that introspects stops selling
   * or sharing from the next call after an opt-out. Only user scopes carry
   * `privacy` (client_credentials refuses them), so `sub` is a user.
   */
  async #privacyClaims(scope: string, userId: string): Promise<Record<string, unknown>> {
    if (this.#claimValues === undefined || !scope.split(' ').includes(PRIVACY_SCOPE)) return {};
    const values = await this.#claimValues(userId);
    return values === null ? {} : claimsForScopes([PRIVACY_SCOPE], values);
  }
}
