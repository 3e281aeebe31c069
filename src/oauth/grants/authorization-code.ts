/**
 * The authorization code grant (RFC 6749 section 4.1.3, OAuth 2.1 section
 * 4.1.3) as a pipeline: take the code (once), check it was issued to this
 * client for this redirect URI, check the PKCE verifier, check the sign-in
 * behind it still stands, issue the tokens. A code used twice revokes what
 * it was first exchanged for (RFC 6749 section 10.5).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthorizationGrant, CodeRedemption } from '../authorization/codes.ts';
import { HookUnavailableError } from '../../hooks/index.ts';
import { OAuthError } from '../errors.ts';
import type { OAuthParams } from '../params.ts';
import type { GrantContext, TokenResponse } from './grant.ts';
import { issueUserTokens } from '../user-tokens.ts';

/** RFC 7636 section 4.1: 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

export async function authorizationCodeGrant(params: OAuthParams, context: GrantContext): Promise<TokenResponse> {
  const { client } = context.authenticated;
  const { services } = context;
  if (!client.grant_types.includes('authorization_code')) throw new OAuthError('unauthorized_client', 'This client may not use the authorization_code grant.');
  const code = params.values['code'];
  if (code === undefined) throw new OAuthError('invalid_request', 'code is required.');
  const verifier = params.values['code_verifier'];
  // Checked before the code is taken: a malformed request spends nothing.
  if (verifier === undefined) throw new OAuthError('invalid_request', 'code_verifier is required (PKCE).');
  if (!CODE_VERIFIER.test(verifier)) throw new OAuthError('invalid_request', 'code_verifier must be 43 to 128 unreserved characters (RFC 7636 section 4.1).');

  const taken = await services.codes.redeem(code);
  if (taken.outcome === 'spent') {
    await revokeRedemption(taken.redemption, context);
    throw new OAuthError('invalid_grant', 'The authorization code was already used.');
  }
  if (taken.outcome === 'unknown') throw new OAuthError('invalid_grant', 'The authorization code is invalid or expired.');
  const grant = taken.grant;
  checkBinding(grant, client.client_id, params.values['redirect_uri'], verifier);
  if (!(await services.liveness.userIsActive(grant.userId)) || !(await services.liveness.sessionIsLive(grant.sessionHandle))) {
    throw new OAuthError('invalid_grant', 'The sign-in behind this code has ended.');
  }
  // RFC 9449 section 10: a code bound with dpop_jkt is redeemed only with that key.
  if (grant.dpopJkt !== undefined && grant.dpopJkt !== context.dpopJkt) throw new OAuthError('invalid_grant', 'This code is bound to a DPoP key; prove possession of it.');
  const dpopJkt = context.dpopJkt;
  const certificate = context.certificateBinding;

  // What the tokens are for: the same for the first tokens and every refresh.
  const granted = { userId: grant.userId, scope: grant.scope, resources: grant.resources, authTime: grant.authTime, amr: grant.amr, sessionHandle: grant.sessionHandle };
  const issued = await issueUserTokens(
    services,
    client,
    { ...granted, ...(grant.nonce !== undefined && { nonce: grant.nonce }), ...(dpopJkt !== undefined && { dpopJkt }), ...(certificate !== undefined && { certificateThumbprint: certificate }) },
    { idToken: true, grantType: 'authorization_code' },
  ).catch((error: unknown) => {
    // The code is spent (single use, RFC 6749 section 4.1.2): a retry of this request cannot succeed, so no Retry-After.
    if (error instanceof HookUnavailableError) throw new HookUnavailableError(error.point, { retryable: false, message: 'The tokens could not be issued; start the authorization again.' });
    throw error;
  });
  let refreshToken: string | undefined;
  let familyId: string | undefined;
  if (grant.scope.split(' ').includes('offline_access') && client.grant_types.includes('refresh_token')) {
    const started = await services.refreshTokens.start(
      {
        clientId: client.client_id,
        ...granted,
        // RFC 9449 section 5: a public client's refresh token is bound to its
        // DPoP key; RFC 8705 section 4: or else to its TLS client certificate.
        ...(dpopJkt !== undefined && context.authenticated.method === 'none' && { dpopJkt }),
        ...(certificate !== undefined && context.authenticated.method === 'none' && { certificateThumbprint: certificate }),
      },
      { jti: issued.accessTokenJti, exp: issued.accessTokenExp },
    );
    refreshToken = started.token;
    familyId = started.familyId;
  }
  const redemption: CodeRedemption = {
    clientId: client.client_id,
    userId: grant.userId,
    accessTokenJti: issued.accessTokenJti,
    accessTokenExpiresAt: issued.accessTokenExp,
    ...(familyId !== undefined && { refreshFamilyId: familyId }),
  };
  await services.codes.recordRedemption(taken.hash, redemption);
  await services.events.emit({
    type: 'token.issued',
    outcome: 'success',
    actorUserId: grant.userId,
    clientId: client.client_id,
    ...context.audit,
    detail: { grant: 'authorization_code', jti: issued.accessTokenJti, scope: grant.scope.slice(0, 256), refresh: refreshToken !== undefined, openid: issued.response.id_token !== undefined, dpop: dpopJkt !== undefined, mtls: certificate !== undefined },
  });
  return { ...issued.response, ...(refreshToken !== undefined && { refresh_token: refreshToken }) };
}

/** RFC 6749 section 4.1.3: the same client, the same redirect URI; RFC 7636 section 4.6: the verifier hashes to the challenge. */
function checkBinding(grant: AuthorizationGrant, clientId: string, redirectUri: string | undefined, verifier: string): void {
  if (grant.clientId !== clientId) throw new OAuthError('invalid_grant', 'The authorization code was issued to another client.');
  // OAuth 2.1 section 4.1.3: redirect_uri is required "if the redirect_uri
  // parameter was included in the authorization request", and then must be
  // identical to the one actually used there (with its loopback port).
  // Left out at /authorize, it may be left out here; if sent anyway, it must match.
  const required = grant.redirectUriGiven !== false;
  if ((required || redirectUri !== undefined) && redirectUri !== grant.redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request.');
  const computed = Buffer.from(createHash('sha256').update(verifier, 'ascii').digest('base64url'));
  const expected = Buffer.from(grant.codeChallenge);
  if (computed.length !== expected.length || !timingSafeEqual(computed, expected)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge.');
}

/** A spent code came back: revoke what it was exchanged for, and say so in the ledger. */
async function revokeRedemption(redemption: CodeRedemption | null, context: GrantContext): Promise<void> {
  if (redemption === null) return;
  const { services } = context;
  await services.accessTokens.revokeJti(redemption.accessTokenJti, redemption.accessTokenExpiresAt);
  if (redemption.refreshFamilyId !== undefined) {
    const revoked = await services.refreshTokens.revokeFamily(redemption.refreshFamilyId, 'code_reuse');
    for (const token of revoked?.accessTokens ?? []) await services.accessTokens.revokeJti(token.jti, token.exp);
  }
  await services.events.emit({
    type: 'token.reuse_detected',
    outcome: 'denied',
    actorUserId: redemption.userId,
    clientId: redemption.clientId,
    ...context.audit,
    detail: { kind: 'authorization_code', presentedBy: context.authenticated.client.client_id, jti: redemption.accessTokenJti, family: redemption.refreshFamilyId ?? null },
  });
}
