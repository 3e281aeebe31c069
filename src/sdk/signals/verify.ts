/**
 * Verifying one Security Event Token: RFC 8417 with the SSF 1.0 section 4
 * profile. The steps, in order, each with the RFC 8935 section 2.4 code a
 * failure is reported with:
 *
 * 1. protected header: `typ` is `secevent+jwt` (RFC 8417 section 2.3; a
 *    SET must not be mistaken for an ID or access token and the other way
 *    round) -> invalid_request;
 * 2. `alg` is ES256, EdDSA or RS256: never `none`, never an HMAC, whose
 *    "key" a receiver would share with every other receiver -> invalid_key;
 * 3. the signature, with the transmitter's key named by `kid` -> invalid_key
 *    (a forged signature under a known kid, or a kid the freshly fetched
 *    key set lacks); a kid the cached set lacks while a refetch is not yet
 *    allowed -> SignalsUnavailableError, never a refusal (keys.ts);
 * 4. `iss` is the transmitter -> invalid_issuer; `aud` names this
 *    receiver -> invalid_audience;
 * 5. `iat` and `jti` present (RFC 8417 section 2.2), `events` an object
 *    with exactly one event (SSF 1.0 section 4.1.1 / RFC 8417 section 2.2:
 *    one event per SET), `sub_id` a subject identifier when present
 *    (RFC 9493 section 3) -> invalid_request.
 */
import { decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWSHeaderParameters, type JWTPayload } from 'jose';
import { SET_TYP, type SecurityEventToken } from '../security-events.ts';
import { SetVerificationError, SignalsUnavailableError } from './errors.ts';
import { isObject } from './fetch.ts';
import { staticKeySet, type SetKeySource } from './keys.ts';

/** The JWS algorithms a SET may be signed with. */
export const SET_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'] as const;

export interface VerifySetOptions {
  /** The transmitter's issuer identifier; `iss` must equal it. */
  readonly issuer: string;
  /** This receiver's audience; `aud` must be it or contain it. */
  readonly audience: string;
  /** The transmitter's keys: createSsfKeySet({ issuer }) (shared by every SET), or a fixed JWKS. */
  readonly keys: SetKeySource | JSONWebKeySet;
}

/**
 * The claims of `jws` once every check passed. Throws SetVerificationError
 * (its `code` is the RFC 8935 `err`) for a SET to refuse, and
 * SignalsUnavailableError when the keys cannot be fetched now (try later).
 */
export async function verifySecurityEventToken(jws: string, options: VerifySetOptions): Promise<SecurityEventToken> {
  const header = checkHeader(jws);
  const keys = 'getKey' in options.keys ? options.keys : staticKeySet(options.keys);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jws, (protectedHeader: JWSHeaderParameters) => keys.getKey(protectedHeader), {
      algorithms: [...SET_ALGORITHMS],
      typ: SET_TYP,
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ['iss', 'aud', 'iat', 'jti'],
    }));
  } catch (error) {
    throw toSetError(error, header);
  }
  return checkClaims(payload);
}

function checkHeader(jws: string): JWSHeaderParameters {
  if (typeof jws !== 'string' || jws.split('.').length !== 3) throw new SetVerificationError('invalid_request', 'a SET is a compact JWS (three dot-separated parts)');
  let header: JWSHeaderParameters;
  try {
    header = decodeProtectedHeader(jws);
  } catch (error) {
    throw new SetVerificationError('invalid_request', 'the SET protected header does not decode', { cause: error });
  }
  // RFC 7515 section 4.1.9: the "application/" prefix may be left out, and media types compare case-insensitively.
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
  if (typ !== SET_TYP) throw new SetVerificationError('invalid_request', `the SET header typ is ${JSON.stringify(header.typ ?? null)}, not "${SET_TYP}" (RFC 8417 section 2.3)`);
  if (!(SET_ALGORITHMS as readonly unknown[]).includes(header.alg)) {
    throw new SetVerificationError('invalid_key', `the SET alg ${JSON.stringify(header.alg ?? null)} is not accepted (only ${SET_ALGORITHMS.join(', ')})`);
  }
  return header;
}

function toSetError(error: unknown, header: JWSHeaderParameters): Error {
  if (error instanceof SetVerificationError || error instanceof SignalsUnavailableError) return error;
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new SetVerificationError('invalid_key', `the SET signature does not verify with the transmitter's key ${JSON.stringify(header.kid ?? null)}`, { cause: error });
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new SetVerificationError('invalid_key', 'the SET alg is not accepted', { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return new SetVerificationError('invalid_issuer', 'the SET issuer is not the transmitter', { cause: error });
    if (error.claim === 'aud') return new SetVerificationError('invalid_audience', 'the SET audience does not name this receiver', { cause: error });
    return new SetVerificationError('invalid_request', `the SET claim ${error.claim} is invalid: ${error.reason}`, { cause: error });
  }
  if (error instanceof errors.JOSEError) return new SetVerificationError('invalid_request', `the SET is not a valid JWT: ${error.message}`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}

function checkClaims(payload: JWTPayload): SecurityEventToken {
  if (typeof payload.jti !== 'string' || payload.jti === '') throw new SetVerificationError('invalid_request', 'the SET has no jti (RFC 8417 section 2.2)');
  if (typeof payload.iat !== 'number') throw new SetVerificationError('invalid_request', 'the SET has no numeric iat (RFC 8417 section 2.2)');
  const events: unknown = payload.events;
  if (!isObject(events)) throw new SetVerificationError('invalid_request', 'the SET has no events object (RFC 8417 section 2.2)');
  const types = Object.keys(events);
  if (types.length !== 1) throw new SetVerificationError('invalid_request', `the SET carries ${types.length} events; SSF 1.0 section 4.1.1 allows exactly one`);
  if (!isObject(events[types[0]!])) throw new SetVerificationError('invalid_request', 'the event of the SET is not a JSON object (RFC 8417 section 2.2)');
  const subject: unknown = payload.sub_id;
  if (subject !== undefined && !(isObject(subject) && typeof subject.format === 'string')) {
    throw new SetVerificationError('invalid_request', 'the SET sub_id is not a subject identifier (RFC 9493 section 3)');
  }
  if (payload.txn !== undefined && typeof payload.txn !== 'string') throw new SetVerificationError('invalid_request', 'the SET txn is not a string');
  return payload as unknown as SecurityEventToken;
}
