/**
 * The UserInfo endpoint (OpenID Connect Core section 5.3): the claims of the
 * user an access token was issued for, by the scopes it carries. The token
 * comes in the Authorization header (RFC 6750 section 2.1, or RFC 9449
 * section 7.1 for DPoP-bound tokens, which also need a proof of the key); a
 * certificate-bound token comes over a connection presenting its
 * certificate (RFC 8705 section 3).
 */
import type { AccessTokens, AccessTokenClaims } from './access-tokens.ts';
import type { HookChains } from '../hooks/index.ts';
import { OAuthError } from './errors.ts';
import { releasedClaims } from './hooks.ts';
import { CERTIFICATE_CONFIRMATION, certificateThumbprint, type ClientCertificate } from './mtls.ts';

export interface UserClaimsSource {
  /**
   * Every claim value the user has (email, email_verified, the profile
   * claims of OIDC Core section 5.1), or null when the account is gone or
   * disabled. What is released is decided here, by scope.
   */
  claims(userId: string): Promise<Readonly<Record<string, unknown>> | null>;
}

/** Checks a DPoP proof for a request carrying `accessToken` (src/oauth/dpop.ts). */
export interface DpopProofCheck {
  (accessToken: string): Promise<{ jkt: string }>;
}

/** RFC 6750 section 3 / RFC 9449 section 7.1: how a resource tells the client what went wrong. */
function challenge(scheme: 'Bearer' | 'DPoP', error: string, description: string): OAuthError {
  return new OAuthError('invalid_token', description, { headers: { 'www-authenticate': `${scheme} error="${error}", error_description="${description}"` } });
}

export class UserInfoEndpoint {
  readonly #accessTokens: AccessTokens;
  readonly #users: UserClaimsSource;
  readonly #audiences: readonly string[];
  readonly #hooks: HookChains;

  /**
   * `audiences`: what a token's `aud` must name for this endpoint to serve it (the issuer, the endpoint's URL).
   * `hooks`: the chains with userinfo.claims, which pick the claims released.
   */
  constructor(options: { accessTokens: AccessTokens; users: UserClaimsSource; audiences: readonly string[]; hooks: HookChains }) {
    this.#hooks = options.hooks;
    this.#accessTokens = options.accessTokens;
    this.#users = options.users;
    this.#audiences = options.audiences;
  }

  /** `clientCertificate`: the connection's TLS client certificate, when it presented one. */
  async handle(request: { authorization: string | undefined; checkDpop: DpopProofCheck; clientCertificate?: ClientCertificate }): Promise<Record<string, unknown>> {
    const { scheme, token } = parseAuthorization(request.authorization);
    const claims: AccessTokenClaims | null = await this.#accessTokens.check(token);
    if (claims === null) throw challenge(scheme, 'invalid_token', 'The access token is invalid, expired or revoked.');
    const cnf = claims['cnf'] as { jkt?: string; [CERTIFICATE_CONFIRMATION]?: string } | undefined;
    // RFC 8705 section 3: a certificate-bound token is honoured only over a
    // connection whose client certificate hashes to its x5t#S256; without
    // it, the token is refused as RFC 6750 section 3.1 invalid_token (401).
    // TLS proved possession of the certificate's key; its chain is not the
    // point here, so an untrusted (self-signed) certificate counts.
    const boundCertificate = cnf?.[CERTIFICATE_CONFIRMATION];
    if (boundCertificate !== undefined) {
      const presented = request.clientCertificate === undefined ? undefined : certificateThumbprint(request.clientCertificate.x509);
      if (presented !== boundCertificate) throw challenge(scheme, 'invalid_token', 'This access token is bound to a TLS client certificate (RFC 8705 section 3); send it over a connection presenting that certificate.');
    }
    const boundKey = cnf?.jkt;
    if (boundKey !== undefined) {
      // RFC 9449 section 7.1: a DPoP-bound token is refused as a bearer token.
      if (scheme !== 'DPoP') throw challenge('DPoP', 'invalid_token', 'This access token is DPoP-bound; send it with the DPoP scheme and a proof.');
      const proof = await checkedProof(request.checkDpop, token);
      if (proof.jkt !== boundKey) throw challenge('DPoP', 'invalid_token', 'The DPoP proof is signed by another key than the token is bound to.');
    } else if (scheme === 'DPoP') {
      throw challenge('DPoP', 'invalid_token', 'This access token is not DPoP-bound; send it with the Bearer scheme.');
    }
    // RFC 8707 / RFC 9068 section 4: a token made for another resource
    // server (its `aud`) is not a key to this one, or that server could
    // replay what it was given here.
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.some((audience) => this.#audiences.includes(audience))) throw challenge(scheme, 'invalid_token', 'The access token is for another audience than the userinfo endpoint.');
    const scopes = claims.scope.split(' ');
    if (!scopes.includes('openid')) throw new OAuthError('insufficient_scope', 'The access token was not issued for OpenID Connect (no openid scope).', { headers: { 'www-authenticate': `${scheme} error="insufficient_scope", scope="openid"` } });
    const user = await this.#users.claims(claims.sub);
    if (user === null) throw challenge(scheme, 'invalid_token', 'The user of this access token is no longer active.');
    // OIDC Core section 5.4: the scopes of the token pick the claims
    // (oidc.scope-claims at userinfo.claims, then any added handler, each
    // inside its namespace); sub always, and from the token only.
    const released = releasedClaims(await this.#hooks.claims('userinfo.claims', { userId: claims.sub, clientId: claims.client_id, scopes, claimValues: user }, {}), 'userinfo.claims');
    return { ...released, sub: claims.sub };
  }
}

/**
 * RFC 9449 section 7.1 and 9: at a resource, a bad proof or a missing nonce
 * is a 401 with a DPoP challenge (not the token endpoint's 400).
 */
async function checkedProof(check: DpopProofCheck, token: string): Promise<{ jkt: string }> {
  try {
    return await check(token);
  } catch (error) {
    if (error instanceof OAuthError && (error.code === 'invalid_dpop_proof' || error.code === 'use_dpop_nonce')) {
      const nonce = error.headers['dpop-nonce'];
      throw new OAuthError('invalid_token', error.message, {
        headers: { 'www-authenticate': `DPoP error="${error.code}", error_description="${error.message.replaceAll('"', "'")}"`, ...(nonce !== undefined && { 'dpop-nonce': nonce }) },
      });
    }
    throw error;
  }
}

function parseAuthorization(header: string | undefined): { scheme: 'Bearer' | 'DPoP'; token: string } {
  const match = header === undefined ? null : /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (match === null) {
    // RFC 6750 section 3.1: no credentials at all gets a bare challenge.
    throw new OAuthError('invalid_token', 'An access token is required.', { headers: { 'www-authenticate': 'Bearer, DPoP algs="EdDSA ES256 PS256 RS256"' } });
  }
  return { scheme: match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: match[2]! };
}
