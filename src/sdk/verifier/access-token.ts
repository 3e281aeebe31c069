/**
 * A JWT access token per RFC 9068, verified with jose against the issuer's
 * keys (section 4): `typ` at+jwt (section 2.1; jose also accepts
 * application/at+jwt), an accepted asymmetric `alg`, the signature, `iss`,
 * `aud` containing this resource, `exp`/`nbf` within the clock tolerance,
 * and the claims section 2.2 requires (`iss`, `exp`, `aud`, `sub`,
 * `client_id`, `iat`, `jti`).
 */
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { VerifyError } from './errors.ts';
import type { JwksCache } from './jwks.ts';

/**
 * The signature algorithms access tokens may use: asymmetric ones only, so
 * a public key can never be used as an HMAC secret; `none` never (RFC 9068
 * section 4, RFC 8725 sections 3.1 and 3.2).
 */
export const ACCESS_TOKEN_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'] as const;
export type AccessTokenAlgorithm = (typeof ACCESS_TOKEN_ALGORITHMS)[number];

/** The confirmation claim (RFC 7800): DPoP (RFC 9449 section 6.1) or certificate (RFC 8705 section 3.1) binding. */
export interface Confirmation {
  readonly jkt?: string;
  readonly 'x5t#S256'?: string;
}

export interface AccessTokenClaims extends JWTPayload {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | string[];
  readonly exp: number;
  readonly iat: number;
  readonly jti: string;
  readonly client_id: string;
  readonly scope?: string;
  readonly sid?: string;
  readonly cnf?: Confirmation;
}

export interface AccessTokenRules {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly algorithms: readonly string[];
  readonly clockToleranceSeconds: number;
  /** Milliseconds since the epoch. */
  readonly now: number;
}

const REQUIRED_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'];

/** Fixed descriptions by the claim jose refused: the token's own values are never repeated. */
const CLAIM_PROBLEMS: Readonly<Record<string, string>> = {
  nbf: 'the token is not valid yet',
  iss: 'the token is from another issuer',
  aud: 'the token is for another audience',
  typ: 'the token is not an RFC 9068 access token (typ)',
};

export async function verifyAccessToken(token: string, keys: JwksCache, rules: AccessTokenRules): Promise<AccessTokenClaims> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, (header) => keys.key(header), {
      issuer: rules.issuer,
      audience: rules.audience as string | string[],
      algorithms: rules.algorithms as string[],
      typ: 'at+jwt',
      clockTolerance: rules.clockToleranceSeconds,
      currentDate: new Date(rules.now),
      requiredClaims: REQUIRED_CLAIMS,
    }));
  } catch (error) {
    throw refusal(error);
  }
  const nowSeconds = rules.now / 1000;
  if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload['client_id'] !== 'string' || payload['client_id'] === '' || typeof payload.jti !== 'string' || payload.jti === '') {
    throw new VerifyError('invalid_token', 'the token lacks a claim RFC 9068 requires');
  }
  // Issued in the future: a clock far off or a forgery; jose checks iat's type only.
  if (payload.iat! > nowSeconds + rules.clockToleranceSeconds) throw new VerifyError('invalid_token', 'the token is not valid yet');
  if (payload['scope'] !== undefined && typeof payload['scope'] !== 'string') throw new VerifyError('invalid_token', 'the token has a malformed scope claim');
  if (payload['cnf'] !== undefined && (typeof payload['cnf'] !== 'object' || payload['cnf'] === null)) throw new VerifyError('invalid_token', 'the token has a malformed cnf claim');
  return payload as AccessTokenClaims;
}

function refusal(error: unknown): VerifyError {
  if (error instanceof VerifyError) return error;
  if (error instanceof errors.JWTExpired) return new VerifyError('invalid_token', 'the token has expired', { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    const missing = error.reason === 'missing';
    return new VerifyError('invalid_token', missing ? 'the token lacks a claim RFC 9068 requires' : (CLAIM_PROBLEMS[error.claim] ?? 'the token has a claim that is not acceptable'), { cause: error });
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new VerifyError('invalid_token', 'the token is signed with an algorithm that is not accepted', { cause: error });
  if (error instanceof errors.JWSSignatureVerificationFailed) return new VerifyError('invalid_token', 'the token signature does not verify', { cause: error });
  return new VerifyError('invalid_token', 'the token is malformed', { cause: error });
}
