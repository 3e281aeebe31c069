/**
 * The refresh token grant (RFC 6749 section 6) with rotation on every use
 * (OAuth 2.1 section 4.3.1, RFC 9700 section 4.14.2). The decision is one
 * atomic operation in RefreshTokens.rotate; this file checks the request,
 * builds the successor tokens and records what happened.
 */
import { OAuthError } from '../errors.ts';
import { checkResources, parseScope, type OAuthParams } from '../params.ts';
import { USER_SCOPES } from '../scopes.ts';
import type { GrantContext, TokenResponse } from './grant.ts';
import { issueUserTokens } from '../user-tokens.ts';

export async function refreshTokenGrant(params: OAuthParams, context: GrantContext): Promise<TokenResponse> {
  const { client } = context.authenticated;
  const { services } = context;
  if (!client.grant_types.includes('refresh_token')) throw new OAuthError('unauthorized_client', 'This client may not use the refresh_token grant.');
  const token = params.values['refresh_token'];
  if (token === undefined) throw new OAuthError('invalid_request', 'refresh_token is required.');
  // RFC 6749 section 6: a narrower scope may be asked for, never a wider one.
  const narrowed = parseScope(params.values['scope']);
  // RFC 8707 section 2.2: a refresh may name fewer of the granted resources (each one registered: token-endpoint.ts).
  const resources = checkResources(params.resources);

  const result = await services.refreshTokens.rotate(token, client.client_id, async (grant, successor) => {
    const scopes = grant.scope.split(' ');
    const wider = narrowed.filter((scope) => !scopes.includes(scope));
    if (wider.length > 0) throw new OAuthError('invalid_scope', `The scope ${wider[0]!} was not granted.`);
    checkDpopBinding(grant.dpopJkt, context.dpopJkt);
    checkCertificateBinding(grant.certificateThumbprint, context.certificateThumbprint);
    const target = await narrowedTarget(context, { scopes, resources: grant.resources }, { scopes: narrowed, resources });
    const dpopJkt = context.dpopJkt;
    const certificate = context.certificateBinding;
    const issued = await issueUserTokens(
      services,
      client,
      {
        userId: grant.userId,
        scope: target.scopes.join(' '),
        resources: target.resources,
        authTime: grant.authTime,
        amr: grant.amr,
        ...(grant.sessionHandle !== undefined && { sessionHandle: grant.sessionHandle }),
        ...(dpopJkt !== undefined && { dpopJkt }),
        ...(certificate !== undefined && { certificateThumbprint: certificate }),
      },
      { idToken: true, grantType: 'refresh_token' },
    );
    return { ...issued.response, refresh_token: successor, accessTokenJti: issued.accessTokenJti, accessTokenExp: issued.accessTokenExp };
  });

  switch (result.outcome) {
    case 'invalid':
      throw new OAuthError('invalid_grant', result.reason === 'expired' ? 'The refresh token has expired.' : 'The refresh token is invalid or revoked.');
    case 'reused': {
      for (const accessToken of result.revokedAccessTokens) await services.accessTokens.revokeJti(accessToken.jti, accessToken.exp);
      await services.events.emit({
        type: 'token.reuse_detected',
        outcome: 'denied',
        actorUserId: result.grant.userId,
        clientId: result.grant.clientId,
        ...context.audit,
        detail: { kind: 'refresh_token', family: result.familyId, presentedBy: client.client_id, accessRevoked: result.revokedAccessTokens.length },
      });
      throw new OAuthError('invalid_grant', 'The refresh token was already used; every token of its grant is now revoked.');
    }
    case 'repeated':
      // The same refresh, again, within the grace window: the same answer,
      // but only to the holder of the family's DPoP key or certificate, as for a rotation.
      checkDpopBinding(result.grant.dpopJkt, context.dpopJkt);
      checkCertificateBinding(result.grant.certificateThumbprint, context.certificateThumbprint);
      return result.response;
    case 'rotated':
      if (!(await services.liveness.userIsActive(result.grant.userId, result.grant.authTime))) {
        await services.refreshTokens.revokeFamily(result.familyId, 'user_inactive');
        throw new OAuthError('invalid_grant', 'The account behind this refresh token is no longer active.');
      }
      await services.liveness.usedBy?.(result.grant.userId);
      await services.events.emit({
        type: 'token.refreshed',
        outcome: 'success',
        actorUserId: result.grant.userId,
        clientId: client.client_id,
        ...context.audit,
        detail: { family: result.familyId, jti: result.accessTokenJti },
      });
      return result.response;
  }
}

/** RFC 9449 section 5: a family bound to a DPoP key refreshes only with that key. */
function checkDpopBinding(bound: string | undefined, presented: string | undefined): void {
  if (bound !== undefined && bound !== presented) throw new OAuthError('invalid_grant', 'This refresh token is bound to a DPoP key; prove possession of it.');
}

/**
 * RFC 8705 section 4: a family bound to a TLS client certificate refreshes
 * only over a connection presenting that certificate.
 */
function checkCertificateBinding(bound: string | undefined, presented: string | undefined): void {
  if (bound !== undefined && bound !== presented) throw new OAuthError('invalid_grant', 'This refresh token is bound to a TLS client certificate (RFC 8705 section 4); present that certificate.');
}

/**
 * The scopes and audience of a refresh: what was granted, or the part of it
 * the request names. Naming resources keeps the OpenID scopes and the API
 * scopes of those resources (a token for one API carries no other API's
 * scopes); a resource outside the grant is invalid_target (RFC 8707 section 2).
 */
async function narrowedTarget(
  context: GrantContext,
  granted: { scopes: readonly string[]; resources: readonly string[] },
  asked: { scopes: readonly string[]; resources: readonly string[] },
): Promise<{ scopes: readonly string[]; resources: readonly string[] }> {
  const scopes = asked.scopes.length > 0 ? asked.scopes : granted.scopes;
  if (asked.resources.length === 0) return { scopes, resources: granted.resources };
  if (asked.resources.some((resource) => !granted.resources.includes(resource))) throw new OAuthError('invalid_target', 'The resource was not part of this grant.');
  const kept = asked.scopes.length > 0 ? scopes : [...scopes.filter((scope) => USER_SCOPES.has(scope)), ...(await context.services.targets.scopesOf(scopes, asked.resources))];
  // A scope named explicitly must belong to the named resources.
  await context.services.targets.resolve(kept, asked.resources);
  return { scopes: kept, resources: asked.resources };
}
