/**
 * `createVerifier`: what a resource server runs on each request, as one
 * visible pipeline of small checks:
 *
 *   1. credentials   Authorization: Bearer|DPoP <token> (RFC 6750 section 2.1, RFC 9449 section 7.1)
 *   2. access token  RFC 9068 section 4, keys from the issuer's JWKS (jwks.ts), less the keys its signals revoked
 *   3. revocations   the issuer's security events (revocations.ts)
 *   4. binding       DPoP (RFC 9449 sections 4.3, 7.1) or certificate (RFC 8705 section 3)
 *   5. scopes        RFC 6750 section 3.1
 *
 * A refusal is a value, not an exception: its HTTP status and the
 * WWW-Authenticate (and DPoP-Nonce) headers to answer with.
 */
import { ACCESS_TOKEN_ALGORITHMS, verifyAccessToken, type AccessTokenAlgorithm, type AccessTokenClaims } from './access-token.ts';
import { checkCertificateBinding } from './certificate-binding.ts';
import { wwwAuthenticate, type AuthScheme } from './challenge.ts';
import { DPOP_ALGORITHMS, verifyDpopProof, type DpopNonceSource } from './dpop.ts';
import { VERIFY_ERRORS, VerifyError, type VerifyErrorCode } from './errors.ts';
import { JwksCache, type FetchLike } from './jwks.ts';
import type { MaxAgeBounds } from './cache-control.ts';
import { ReplayCache } from './replay.ts';
import { headerValues, readCredentials, type Credentials, type VerifyRequest } from './request.ts';
import { RevocationList, type SecurityEventSource } from './revocations.ts';
import { checkedScopes, InsufficientScope, requireScopes, scopesOf } from './scopes.ts';

export interface VerifierOptions {
  /** The authorization server's issuer identifier, exactly as its tokens' `iss`. */
  readonly issuer: string;
  /** This resource server's identifier(s): a token's `aud` must contain one (RFC 9068 section 4). */
  readonly audience: string | readonly string[];
  /** The JWKS URI; by default discovered from `<issuer>/.well-known/oauth-authorization-server`. */
  readonly jwksUri?: string;
  /** Accepted access token algorithms, a subset of EdDSA, ES256, RS256, PS256 (default all four). */
  readonly algorithms?: readonly AccessTokenAlgorithm[];
  /** Seconds of clock difference tolerated on exp, nbf, iat (default 5, at most 300). */
  readonly clockToleranceSeconds?: number;
  /** Scopes every request needs (a call to `verify` may add more). */
  readonly scopes?: readonly string[];
  /** The `realm` of challenges (RFC 6750 section 3). */
  readonly realm?: string;
  /** Accepted DPoP proof algorithms (default EdDSA, Ed25519, ES256, ES384, PS256, RS256). */
  readonly dpopAlgorithms?: readonly string[];
  /** Seconds a DPoP proof's iat may lie in the past (default 60). */
  readonly dpopWindowSeconds?: number;
  /** Server nonces for DPoP proofs (RFC 9449 section 9); without it none is required. */
  readonly dpopNonce?: DpopNonceSource;
  /** DPoP proofs remembered against replay at most (default 100000). */
  readonly maxDpopProofs?: number;
  /** Verified SETs from the issuer (`portcullis/sdk/signals`): revocations applied to tokens, revoked signing keys dropped. */
  readonly signals?: SecurityEventSource;
  /** Seconds a revocation is kept (default 86400) and revocations per table (default 100000). */
  readonly revocationTtlSeconds?: number;
  readonly maxRevocations?: number;
  /** Bounds in seconds on the JWKS response's max-age (default min 60, max 86400). */
  readonly jwksMaxAge?: Partial<MaxAgeBounds>;
  /** At most one JWKS fetch per this many seconds, however many unknown kids arrive (default 30). */
  readonly jwksRefetchIntervalSeconds?: number;
  readonly fetch?: FetchLike;
  /** Milliseconds since the epoch; `Date.now` by default. */
  readonly clock?: () => number;
}

export interface VerifyOptions {
  /** Scopes this request needs, besides the verifier's own. */
  readonly scopes?: readonly string[];
}

export interface VerifySuccess {
  readonly ok: true;
  readonly token: AccessTokenClaims;
  readonly scopes: readonly string[];
  /** The scheme the client used. */
  readonly scheme: AuthScheme;
  /** How the token is bound to its client, if it is. */
  readonly binding: 'dpop' | 'certificate' | 'dpop+certificate' | 'none';
}

export interface VerifyFailure {
  readonly ok: false;
  readonly code: VerifyErrorCode;
  readonly status: number;
  /** The OAuth `error` value, absent for a request without credentials. */
  readonly error?: string;
  /** A fixed text that never repeats the token. */
  readonly description: string;
  /** The response headers: WWW-Authenticate, and DPoP-Nonce or Retry-After where they apply. */
  readonly headers: Readonly<Record<string, string>>;
}

export type VerifyResult = VerifySuccess | VerifyFailure;

export interface Verifier {
  verify(request: VerifyRequest, options?: VerifyOptions): Promise<VerifyResult>;
  /** What signals revoked; `apply` feeds it a verified SET directly (a revoked signing key included). */
  readonly revocations: RevocationList;
  /** Stops listening to `signals`. */
  close(): void;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer;
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) throw new TypeError('issuer must be an absolute URL');
  const audience = typeof options.audience === 'string' ? options.audience : [...(options.audience ?? [])];
  if (audience.length === 0) throw new TypeError('audience is required: a token for another resource must not be accepted (RFC 9068 section 4)');
  const algorithms = [...(options.algorithms ?? ACCESS_TOKEN_ALGORITHMS)];
  for (const alg of algorithms) if (!(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) throw new TypeError(`access tokens may use ${ACCESS_TOKEN_ALGORITHMS.join(', ')} only, not ${alg}`);
  const dpopAlgorithms = [...(options.dpopAlgorithms ?? DPOP_ALGORITHMS)];
  for (const alg of dpopAlgorithms) if (!(DPOP_ALGORITHMS as readonly string[]).includes(alg)) throw new TypeError(`DPoP proofs may use ${DPOP_ALGORITHMS.join(', ')} only, not ${alg}`);
  const tolerance = options.clockToleranceSeconds ?? 5;
  if (!(tolerance >= 0 && tolerance <= 300)) throw new TypeError('clockToleranceSeconds must be within [0, 300]');
  const dpopWindow = options.dpopWindowSeconds ?? 60;
  if (!(dpopWindow > 0 && dpopWindow <= 3600)) throw new TypeError('dpopWindowSeconds must be within (0, 3600]');
  const baseScopes = checkedScopes(options.scopes, 'scopes');
  const clock = options.clock ?? Date.now;
  const realm = options.realm;

  const keys = new JwksCache({
    issuer,
    algorithms,
    clock,
    ...(options.jwksUri !== undefined && { jwksUri: options.jwksUri }),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
    ...(options.jwksMaxAge !== undefined && { maxAge: options.jwksMaxAge }),
    ...(options.jwksRefetchIntervalSeconds !== undefined && { refetchIntervalSeconds: options.jwksRefetchIntervalSeconds }),
  });
  const replay = new ReplayCache(options.maxDpopProofs ?? 100_000);
  const revocations = new RevocationList({
    issuer,
    clock,
    ...(options.revocationTtlSeconds !== undefined && { ttlSeconds: options.revocationTtlSeconds }),
    ...(options.maxRevocations !== undefined && { maxEntries: options.maxRevocations }),
    // Portcullis key-rotated, state revoked: tokens under that key are refused at once, not after the JWKS max-age.
    onKeyRevoked: (kid) => keys.revoke(kid),
  });
  const unsubscribe = options.signals === undefined ? undefined : revocations.subscribe(options.signals);

  async function failure(error: VerifyError, scheme: AuthScheme | undefined): Promise<VerifyFailure> {
    const entry = VERIFY_ERRORS[error.code];
    const headers: Record<string, string> = {};
    if (error.code === 'temporarily_unavailable') {
      headers['Retry-After'] = '5';
    } else {
      // A proof's problems are answered on the DPoP challenge (RFC 9449 sections 7.1 and 9).
      const on = error.code === 'invalid_dpop_proof' || error.code === 'use_dpop_nonce' ? 'DPoP' : (scheme ?? 'Bearer');
      headers['WWW-Authenticate'] = wwwAuthenticate({
        dpopAlgorithms,
        ...(realm !== undefined && { realm }),
        scheme: on,
        code: error.code,
        description: error.description,
        ...(error instanceof InsufficientScope && { scope: error.scopes }),
      });
    }
    if (error.code === 'use_dpop_nonce' && options.dpopNonce !== undefined) headers['DPoP-Nonce'] = await options.dpopNonce.current();
    return { ok: false, code: error.code, status: entry.status, ...(entry.error !== undefined && { error: entry.error }), description: error.code === 'missing_token' ? 'the request has no access token' : error.description, headers };
  }

  async function run(request: VerifyRequest, verifyOptions: VerifyOptions | undefined, credentials: Credentials): Promise<VerifySuccess> {
    const now = clock();
    const token = await verifyAccessToken(credentials.token, keys, { issuer, audience, algorithms, clockToleranceSeconds: tolerance, now });
    if (revocations.isRevoked(token)) throw new VerifyError('invalid_token', 'the token has been revoked');

    const cnf = token.cnf;
    const jkt = cnf?.jkt;
    if (jkt !== undefined) {
      if (typeof jkt !== 'string' || jkt === '') throw new VerifyError('invalid_token', 'the token has a malformed cnf claim');
      // RFC 9449 section 7.1: a DPoP-bound token is never a bearer token, whatever the client says.
      if (credentials.scheme !== 'DPoP') throw new VerifyError('invalid_token', 'the token is DPoP-bound: present it with the DPoP scheme and a proof');
      await verifyDpopProof(headerValues(request.headers, 'dpop'), {
        method: request.method,
        url: request.url,
        accessToken: credentials.token,
        jkt,
        now,
        windowSeconds: dpopWindow,
        clockToleranceSeconds: tolerance,
        algorithms: dpopAlgorithms,
        replay,
        nonce: options.dpopNonce,
      });
    } else if (credentials.scheme === 'DPoP') {
      // The scheme promises a key binding the token does not have.
      throw new VerifyError('invalid_token', 'the token is not DPoP-bound: present it with the Bearer scheme');
    }
    const thumbprint = cnf?.['x5t#S256'];
    if (thumbprint !== undefined) checkCertificateBinding(thumbprint, request.peerCertificate);

    const scopes = scopesOf(token.scope);
    const extra = verifyOptions?.scopes;
    requireScopes(scopes, extra === undefined || extra.length === 0 ? baseScopes : [...new Set([...baseScopes, ...checkedScopes(extra, 'verify scopes')])]);
    const binding = jkt !== undefined ? (thumbprint !== undefined ? 'dpop+certificate' : 'dpop') : thumbprint !== undefined ? 'certificate' : 'none';
    return { ok: true, token, scopes, scheme: credentials.scheme, binding };
  }

  return {
    revocations,
    close: () => unsubscribe?.(),
    async verify(request, verifyOptions) {
      let credentials: Credentials | undefined;
      try {
        credentials = readCredentials(request.headers);
        if (credentials === undefined) throw new VerifyError('missing_token', 'the request has no access token');
        return await run(request, verifyOptions, credentials);
      } catch (error) {
        if (error instanceof VerifyError) return failure(error, credentials?.scheme);
        throw error;
      }
    },
  };
}
