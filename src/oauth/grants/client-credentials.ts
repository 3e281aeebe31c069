/**
 * The client credentials grant (RFC 6749 section 4.4): a confidential client
 * gets an access token for itself. No refresh token (section 4.4.3), no ID
 * token (no user), so no OpenID scopes.
 */
import { OAuthError } from '../errors.ts';
import { checkResources, parseScope, type OAuthParams } from '../params.ts';
import { USER_SCOPES } from '../scopes.ts';
import { audienceClaim } from '../targets.ts';
import type { GrantContext, TokenResponse } from './grant.ts';
import { CERTIFICATE_CONFIRMATION } from '../mtls.ts';

export async function clientCredentialsGrant(params: OAuthParams, context: GrantContext): Promise<TokenResponse> {
  const { client } = context.authenticated;
  // RFC 6749 section 4.4: only confidential clients may use this grant.
  if (context.authenticated.method === 'none' || !client.grant_types.includes('client_credentials')) {
    throw new OAuthError('unauthorized_client', 'This client may not use the client_credentials grant.');
  }
  const allowed = client.scope.split(' ').filter((scope) => scope !== '' && !USER_SCOPES.has(scope));
  const requested = parseScope(params.values['scope']);
  if (requested.some((scope) => USER_SCOPES.has(scope))) throw new OAuthError('invalid_scope', 'OpenID scopes need a user; the client_credentials grant has none.');
  const resources = checkResources(params.resources);
  // RFC 6749 section 3.3: an omitted scope means the client's registered
  // ones (of the requested resources, when it names any: RFC 8707 section 2).
  const scopes = requested.length > 0 ? requested : resources.length > 0 ? await context.services.targets.scopesOf(allowed, resources) : allowed;
  const refused = scopes.filter((scope) => !allowed.includes(scope));
  if (refused.length > 0) throw new OAuthError('invalid_scope', `This client is not registered for the scope ${refused[0]!}.`);
  // RFC 8707 section 2 / RFC 9700 section 2.3: only registered resources,
  // and the token goes to the resources its scopes belong to.
  const target = await context.services.targets.resolve(scopes, resources, allowed);
  const issued = await context.services.accessTokens.issue({
    clientId: client.client_id,
    subject: client.client_id,
    grant: { type: 'client_credentials', userId: null },
    scope: scopes.join(' '),
    audience: audienceClaim(target.audience, context.services.defaultAudience),
    // The resource's --access-token-alg, else the server default.
    algorithm: await context.services.targets.algorithmFor(target.audience),
    // RFC 9449 section 5: a DPoP proof at the token endpoint binds the token
    // to its key; else RFC 8705 section 3.1 may bind it to the certificate.
    ...(context.dpopJkt !== undefined && { claims: { cnf: { jkt: context.dpopJkt } } }),
    ...(context.certificateBinding !== undefined && { claims: { cnf: { [CERTIFICATE_CONFIRMATION]: context.certificateBinding } } }),
  });
  await context.services.events.emit({
    type: 'token.issued',
    outcome: 'success',
    clientId: client.client_id,
    actorService: client.client_id,
    ...context.audit,
    detail: { grant: 'client_credentials', jti: issued.jti, scope: scopes.join(' ').slice(0, 256), ...(context.certificateBinding !== undefined && { mtls: true }) },
  });
  return {
    access_token: issued.token,
    token_type: context.dpopJkt !== undefined ? 'DPoP' : 'Bearer',
    expires_in: issued.expiresIn,
    ...(scopes.length > 0 && { scope: scopes.join(' ') }),
  };
}
