/**
 * A DPoP proof at a protected resource: the checklist of RFC 9449 section
 * 4.3, with the resource-side items of section 7.1 (`ath`, and the key's
 * thumbprint equal to the token's `cnf.jkt`), server nonces (section 9) and
 * a replay cache for `jti` (section 11.1). Each refusal is
 * invalid_dpop_proof, or use_dpop_nonce when only the nonce is missing.
 */
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { constantTimeEqual } from './constant-time.ts';
import { VerifyError } from './errors.ts';
import type { ReplayCache } from './replay.ts';
import { normalisedHtu } from './request.ts';

/** Asymmetric algorithms only (section 4.3 item 5): a proof's key is public by design. */
export const DPOP_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256'] as const;

/** Server-provided nonces (RFC 9449 section 9). */
export interface DpopNonceSource {
  /** The nonce a client should use now; sent in `DPoP-Nonce` with a use_dpop_nonce refusal. */
  current(): string | Promise<string>;
  /** Whether a proof's nonce is acceptable (say, the current or the previous one). Default: equal to `current()`. */
  check?(nonce: string): boolean | Promise<boolean>;
}

export interface DpopRules {
  readonly method: string;
  readonly url: string | URL;
  readonly accessToken: string;
  /** The token's `cnf.jkt`. */
  readonly jkt: string;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** Seconds a proof's `iat` may lie in the past. */
  readonly windowSeconds: number;
  readonly clockToleranceSeconds: number;
  readonly algorithms: readonly string[];
  readonly replay: ReplayCache;
  readonly nonce?: DpopNonceSource | undefined;
}

const MAX_PROOF_LENGTH = 8 * 1024;
const MAX_JTI_LENGTH = 256;
/** JWK members of a private or symmetric key (RFC 7518 section 6); a proof's jwk must have none (item 7). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const invalid = (description: string, cause?: unknown) => new VerifyError('invalid_dpop_proof', description, cause === undefined ? undefined : { cause });

export async function verifyDpopProof(values: readonly string[], rules: DpopRules): Promise<void> {
  // Items 1 and 2: exactly one header field, one compact JWS (a comma means two fields joined).
  if (values.length === 0) throw invalid('the DPoP-bound token needs a DPoP proof');
  if (values.length !== 1 || values[0]!.includes(',')) throw invalid('the request needs exactly one DPoP header');
  const proof = values[0]!.trim();
  if (proof.length === 0 || proof.length > MAX_PROOF_LENGTH) throw invalid('the DPoP proof is malformed');

  // Items 3 to 5 and 7: typ, an accepted asymmetric alg, a public jwk.
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch (error) {
    throw invalid('the DPoP proof is malformed', error);
  }
  if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt') throw invalid('the DPoP proof typ is not dpop+jwt');
  const alg = header.alg;
  if (alg === undefined || !rules.algorithms.includes(alg)) throw invalid('the DPoP proof alg is not accepted');
  const jwk = header.jwk;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('the DPoP proof has no jwk');
  if (jwk.kty !== 'OKP' && jwk.kty !== 'EC' && jwk.kty !== 'RSA') throw invalid('the DPoP proof jwk is not an asymmetric key');
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw invalid('the DPoP proof jwk carries a private key');

  // Item 6: the signature, by the embedded key.
  let payload: JWTPayload;
  try {
    const key = await importJWK(jwk as JWK, alg);
    ({ payload } = await jwtVerify(proof, key, {
      algorithms: [alg],
      typ: 'dpop+jwt',
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
      clockTolerance: rules.clockToleranceSeconds,
      currentDate: new Date(rules.now),
    }));
  } catch (error) {
    throw invalid('the DPoP proof does not verify', error);
  }

  // Item 8: the method, as sent (HTTP methods are case-sensitive, RFC 9110 section 9.1).
  if (payload['htm'] !== rules.method) throw invalid('the DPoP proof htm is not the request method');
  // Item 9: the URL without query and fragment, both sides normalised.
  const htu = typeof payload['htu'] === 'string' ? normalisedHtu(payload['htu']) : undefined;
  const target = normalisedHtu(rules.url);
  if (htu === undefined || target === undefined || htu !== target) throw invalid('the DPoP proof htu is not the request URL');
  // Item 11: iat within the window (the proof is fresh; the replay cache spans the same window).
  const iat = payload.iat!;
  const nowSeconds = rules.now / 1000;
  if (iat < nowSeconds - rules.windowSeconds - rules.clockToleranceSeconds || iat > nowSeconds + rules.clockToleranceSeconds) throw invalid('the DPoP proof iat is outside the accepted window');
  // Item 12 and section 7.1: ath is the hash of this very token; the key is the token's.
  const ath = createHash('sha256').update(rules.accessToken).digest('base64url');
  if (typeof payload['ath'] !== 'string' || !constantTimeEqual(payload['ath'], ath)) throw invalid('the DPoP proof ath does not match the access token');
  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  if (!constantTimeEqual(thumbprint, rules.jkt)) throw invalid('the DPoP proof key is not the key the token is bound to');

  // Item 10 and section 9: the server's nonce, when it asks for one.
  if (rules.nonce !== undefined) {
    const nonce = payload['nonce'];
    const accepted = typeof nonce === 'string' && nonce !== '' && (rules.nonce.check !== undefined ? await rules.nonce.check(nonce) : constantTimeEqual(nonce, await rules.nonce.current()));
    if (!accepted) throw new VerifyError('use_dpop_nonce', 'the DPoP proof needs the server nonce');
  }

  // Section 11.1: a proof is accepted once within its window.
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw invalid('the DPoP proof jti is malformed');
  const answer = rules.replay.use(`${thumbprint}\u0000${jti}`, (iat + rules.windowSeconds + rules.clockToleranceSeconds) * 1000, rules.now);
  if (answer === 'replayed') throw invalid('the DPoP proof was already used');
  if (answer === 'full') throw new VerifyError('temporarily_unavailable', 'too many DPoP proofs to remember; try again shortly');
}
