/**
 * Compact JWS (RFC 7515 section 7.1) JWTs (RFC 7519), signed and verified
 * synchronously with node:crypto on KeyObjects: this is the hot path of every
 * token request and every API call. `jose` checks these tokens in the tests,
 * so the encoding cannot drift from the standard.
 *
 * Verification follows RFC 8725 (JWT BCP): the algorithm comes from our key,
 * never from the token alone (section 3.1); only our four asymmetric
 * algorithms are accepted, so `none` and HMAC-with-a-public-key are refused
 * (section 2.1); `typ` is checked when the caller says what it expects
 * (section 3.11); issuer and audience are checked (sections 3.8, 3.9).
 */
import { sign, verify } from 'node:crypto';
import { isAlgorithmFor, nodeSignParameters as signParameters } from '../crypto/index.ts';
import type { SigningKey, VerificationKey } from './keyring-types.ts';

/** Why a token was refused, in words safe to show its presenter (no key material, no token contents). */
export class JwtError extends Error {
  override readonly name = 'JwtError';
}

export interface VerifyJwtOptions {
  /** Milliseconds since the epoch. */
  readonly now: number;
  readonly issuer: string;
  /** Expected `typ` (e.g. `at+jwt`, RFC 9068); compared case-insensitively, `application/` optional. */
  readonly typ?: string;
  /** Required to be in `aud` when given. */
  readonly audience?: string;
  /** Allowed clock skew for exp, nbf and iat (default 0). */
  readonly clockToleranceSeconds?: number;
  /**
   * Allowed clock skew for nbf and iat only, when it differs from the one
   * for exp (default clockToleranceSeconds): a peer instance ahead of this
   * one stamps times in its future, which is no sign of a forged token,
   * while exp stays strict.
   */
  readonly futureToleranceSeconds?: number;
}

export interface VerifiedJwt {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
}

export interface VerificationKeys {
  verificationKey(kid: string): VerificationKey | undefined;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function encodeJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function signingInputOf(key: SigningKey, payload: Record<string, unknown>, options: { typ?: string }): string {
  const header = { alg: key.alg, ...(options.typ !== undefined && { typ: options.typ }), kid: key.kid };
  return `${encodeJson(header)}.${encodeJson(payload)}`;
}

/** Signs `payload` as a compact JWS with header {alg, typ?, kid}. */
export function signJwt(key: SigningKey, payload: Record<string, unknown>, options: { typ?: string } = {}): string {
  const signingInput = signingInputOf(key, payload, options);
  const { digest, key: keyInput } = signParameters(key.alg, key.privateKey);
  return `${signingInput}.${sign(digest, Buffer.from(signingInput, 'ascii'), keyInput).toString('base64url')}`;
}

/**
 * The same, with the signature computed on libuv's thread pool (node:crypto's
 * callback form): a busy server's event loop only builds the input, so
 * signing uses the other cores instead of queueing behind requests.
 */
export function signJwtAsync(key: SigningKey, payload: Record<string, unknown>, options: { typ?: string } = {}): Promise<string> {
  const signingInput = signingInputOf(key, payload, options);
  const { digest, key: keyInput } = signParameters(key.alg, key.privateKey);
  return new Promise((resolve, reject) => {
    sign(digest, Buffer.from(signingInput, 'ascii'), keyInput, (error, signature) => {
      if (error !== null) reject(error);
      else resolve(`${signingInput}.${signature.toString('base64url')}`);
    });
  });
}

function decodeObject(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')));
  } catch {
    throw new JwtError(`malformed token: the ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwtError(`malformed token: the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** RFC 7515 section 7.1: exactly three base64url segments, no padding. */
function isCanonicalBase64url(part: string): boolean {
  return Buffer.from(part, 'base64url').toString('base64url') === part;
}

function splitCompact(token: string): [string, string, string] {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part)) || parts[0] === '' || parts[1] === '') {
    throw new JwtError('malformed token: not a compact JWS');
  }
  // One token, one text: the decoder ignores the unused low bits of a last
  // character, so without this several texts would verify as the same token
  // and a cache or denylist keyed by the text could be walked around
  // (RFC 4648 section 3.5, canonical encoding).
  if (!parts.every(isCanonicalBase64url)) throw new JwtError('malformed token: not canonical base64url');
  return parts as [string, string, string];
}

/** RFC 7515 section 4.1.9: a media type, `application/` may be left out, compared case-insensitively. */
function normaliseTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

/** The key the header names, if its algorithm is the one that key is for. */
function keyFor(header: Record<string, unknown>, keys: VerificationKeys): VerificationKey {
  const { alg, kid } = header;
  if (!isAlgorithmFor('keyring', alg)) throw new JwtError('unsupported alg');
  if (typeof kid !== 'string') throw new JwtError('missing kid');
  const key = keys.verificationKey(kid);
  if (key === undefined) throw new JwtError('unknown kid');
  // RFC 8725 section 3.1: the key decides the algorithm, the token only names it.
  if (key.alg !== alg) throw new JwtError('alg does not match the key');
  return key;
}

function checkHeader(header: Record<string, unknown>, expectedTyp: string | undefined): void {
  // RFC 7515 section 4.1.11: we understand no extension, so any crit is refused.
  if ('crit' in header) throw new JwtError('unsupported crit header');
  if (expectedTyp !== undefined && (typeof header['typ'] !== 'string' || normaliseTyp(header['typ']) !== normaliseTyp(expectedTyp))) {
    throw new JwtError('unexpected typ');
  }
}

function checkSignature(key: VerificationKey, signingInput: string, signature: string): void {
  const { digest, key: keyInput } = signParameters(key.alg, key.publicKey);
  let valid = false;
  try {
    valid = verify(digest, Buffer.from(signingInput, 'ascii'), keyInput, Buffer.from(signature, 'base64url'));
  } catch {
    valid = false;
  }
  if (!valid) throw new JwtError('invalid signature');
}

function numericDate(payload: Record<string, unknown>, claim: string): number | undefined {
  const value = payload[claim];
  if (value === undefined) return undefined;
  // RFC 7519 section 2: NumericDate is a JSON number of seconds.
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new JwtError(`invalid ${claim}`);
  return value;
}

/** RFC 7519 section 4.1: iss, exp (required here), nbf, iat, aud. */
function checkClaims(payload: Record<string, unknown>, options: VerifyJwtOptions): void {
  if (payload['iss'] !== options.issuer) throw new JwtError('wrong issuer');
  const nowSeconds = options.now / 1000;
  const tolerance = options.clockToleranceSeconds ?? 0;
  const exp = numericDate(payload, 'exp');
  if (exp === undefined) throw new JwtError('missing exp');
  if (nowSeconds >= exp + tolerance) throw new JwtError('expired');
  const future = options.futureToleranceSeconds ?? tolerance;
  const nbf = numericDate(payload, 'nbf');
  if (nbf !== undefined && nbf > nowSeconds + future) throw new JwtError('not yet valid');
  const iat = numericDate(payload, 'iat');
  if (iat !== undefined && iat > nowSeconds + future) throw new JwtError('issued in the future');
  if (options.audience !== undefined) checkAudience(payload['aud'], options.audience);
}

function checkAudience(aud: unknown, audience: string): void {
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(audience)) throw new JwtError('wrong audience');
}

/**
 * Verifies a compact JWS JWT against published keys and returns its header
 * and claims; any failure is a JwtError with a short reason.
 */
export function verifyJwt(token: string, keys: VerificationKeys, options: VerifyJwtOptions): VerifiedJwt {
  const [encodedHeader, encodedPayload, signature] = splitCompact(token);
  const header = decodeObject(encodedHeader, 'header');
  const key = keyFor(header, keys);
  checkHeader(header, options.typ);
  checkSignature(key, `${encodedHeader}.${encodedPayload}`, signature);
  const payload = decodeObject(encodedPayload, 'payload');
  checkClaims(payload, options);
  return { header, payload };
}

/** verifyJwt with the signature checked on libuv's thread pool (see signJwtAsync). */
export async function verifyJwtAsync(token: string, keys: VerificationKeys, options: VerifyJwtOptions): Promise<VerifiedJwt> {
  const [encodedHeader, encodedPayload, signature] = splitCompact(token);
  const header = decodeObject(encodedHeader, 'header');
  const key = keyFor(header, keys);
  checkHeader(header, options.typ);
  const payload = decodeObject(encodedPayload, 'payload');
  checkClaims(payload, options);
  const { digest, key: keyInput } = signParameters(key.alg, key.publicKey);
  const valid = await new Promise<boolean>((resolve) => {
    try {
      verify(digest, Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii'), keyInput, Buffer.from(signature, 'base64url'), (error, result) => resolve(error === null && result));
    } catch {
      resolve(false);
    }
  });
  if (!valid) throw new JwtError('invalid signature');
  return { header, payload };
}
