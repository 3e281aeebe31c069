/**
 * The tokens a user's grant yields (authorization code, refresh): an access
 * token (RFC 9068) and, for `openid`, an ID token (OIDC Core section 3.1.3.3).
 */
import { createHash } from 'node:crypto';
import type { AccessTokens } from './access-tokens.ts';
import type { OAuthClient } from './clients.ts';
import type { IdTokens } from './id-tokens.ts';
import { CERTIFICATE_CONFIRMATION } from './mtls.ts';
import { audienceClaim, type TokenTargets } from './targets.ts';
import type { TokenResponse } from './token-response.ts';

/** OIDC `sid` (Front-/Back-Channel Logout section 2.1): names the session without revealing its store handle. */
export function sessionIdClaim(sessionHandle: string): string {
  return createHash('sha256').update(`sid:${sessionHandle}`).digest('base64url').slice(0, 22);
}

export interface UserGrant {
  readonly userId: string;
  readonly scope: string;
  readonly resources: readonly string[];
  readonly authTime: number;
  readonly amr: readonly string[];
  readonly sessionHandle?: string;
  readonly nonce?: string;
  /** RFC 9449: the access token is bound to this key (cnf.jkt) and typed DPoP. */
  readonly dpopJkt?: string;
  /** RFC 8705 section 3.1: the access token is bound to this certificate (cnf.x5t#S256); never with dpopJkt. */
  readonly certificateThumbprint?: string;
}

export interface IssuedUserTokens {
  readonly response: TokenResponse;
  readonly accessTokenJti: string;
  readonly accessTokenExp: number;
}

export async function issueUserTokens(
  services: { accessTokens: AccessTokens; idTokens: IdTokens; defaultAudience: string; targets: TokenTargets },
  client: OAuthClient,
  grant: UserGrant,
  options: { idToken: boolean; grantType: 'authorization_code' | 'refresh_token' },
): Promise<IssuedUserTokens> {
  const sid = grant.sessionHandle === undefined ? undefined : sessionIdClaim(grant.sessionHandle);
  // The resource's --access-token-alg, else the server default.
  const algorithm = await services.targets.algorithmFor(grant.resources);
  const access = await services.accessTokens.issue({
    clientId: client.client_id,
    subject: grant.userId,
    grant: { type: options.grantType, userId: grant.userId },
    scope: grant.scope,
    audience: audienceClaim(grant.resources, services.defaultAudience),
    algorithm,
    claims: {
      auth_time: Math.floor(grant.authTime / 1000),
      ...(sid !== undefined && { sid }),
      ...(grant.dpopJkt !== undefined && { cnf: { jkt: grant.dpopJkt } }),
      ...(grant.dpopJkt === undefined && grant.certificateThumbprint !== undefined && { cnf: { [CERTIFICATE_CONFIRMATION]: grant.certificateThumbprint } }),
    },
  });
  const scopes = grant.scope.split(' ');
  const wantsIdToken = options.idToken && scopes.includes('openid');
  const claims = wantsIdToken ? await services.idTokens.extraClaims({ userId: grant.userId, clientId: client.client_id, scopes, accessTokenIssued: true }) : undefined;
  const idToken =
    wantsIdToken
      ? services.idTokens.issue({
          clientId: client.client_id,
          subject: grant.userId,
          algorithm: client.id_token_signed_response_alg,
          authTime: grant.authTime,
          amr: grant.amr,
          accessToken: access.token,
          ...(grant.nonce !== undefined && { nonce: grant.nonce }),
          ...(sid !== undefined && { sid }),
          ...(claims !== undefined && { claims }),
        })
      : undefined;
  return {
    response: {
      access_token: access.token,
      token_type: grant.dpopJkt !== undefined ? 'DPoP' : 'Bearer',
      expires_in: access.expiresIn,
      scope: grant.scope,
      ...(idToken !== undefined && { id_token: idToken }),
    },
    accessTokenJti: access.jti,
    accessTokenExp: access.expiresAt,
  };
}
