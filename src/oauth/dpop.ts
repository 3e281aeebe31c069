/**
 * DPoP proof verification (RFC 9449): the checklist of section 4.3, a replay
 * cache for `jti` in the shared hot store (section 11.1), and stateless server
 * nonces (section 8).
 *
 * The checks run cheapest first, as a visible pipeline: the header's shape,
 * the JOSE header, the claims, the nonce (one HMAC), then the signature, and
 * only once the signature holds is the replay cache touched, so that junk
 * never fills the hot store.
 *
 * Server nonces carry their own proof of origin, so any instance sharing the
 * `nonceKey` accepts a nonce any other one issued, and none is stored:
 * base64url(8-byte window counter || first 16 bytes of
 * HMAC-SHA256(nonceKey, label || counter)). A nonce is accepted in its own
 * window and the next one, so it lives between one and two lifetimes (up
 * to three with the clock skew allowed between instances, clockSkewSeconds).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors as joseErrors, jwtVerify, type JWK } from 'jose';
import { algorithmsFor } from '../crypto/index.ts';
import type { Clock, HotStore } from '../store/index.ts';
import { OAuthError } from './errors.ts';

/**
 * RFC 9449 section 4.3 item 5: asymmetric algorithms only. `none` and the
 * MAC algorithms (HS*) can prove nothing about a key the server never saw.
 */
export const DPOP_ALGORITHMS: readonly string[] = algorithmsFor('dpop');

/** RFC 9449 section 4.2: the `typ` header of a DPoP proof. */
const DPOP_TYPE = 'dpop+jwt';

/** The default clock skew allowed (seconds): client clocks run a little fast. */
const DEFAULT_CLOCK_SKEW_SECONDS = 5;

/** RFC 9449 section 4.2 asks for at least 96 bits of entropy in `jti`; 256 characters bounds what a client can make us hash and store. */
const MAX_JTI_LENGTH = 256;

/** A generous bound on the header (an RSA-4096 proof is about 1.7 KB), checked before any decoding. */
const MAX_PROOF_LENGTH = 8192;

/**
 * RFC 7515 section 7.1: BASE64URL(header) '.' BASE64URL(payload) '.'
 * BASE64URL(signature). An empty signature passes here so that `alg: none`
 * is refused by name, by the alg check.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** JWK members that only a private or symmetric key carries (RFC 7518 sections 6.2.2, 6.3.2, 6.4.1; RFC 8037 section 2). */
const PRIVATE_KEY_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const ASYMMETRIC_KEY_TYPES = new Set(['EC', 'OKP', 'RSA']);

const NONCE_COUNTER_BYTES = 8;
const NONCE_MAC_BYTES = 16;
const NONCE_LENGTH = Math.ceil(((NONCE_COUNTER_BYTES + NONCE_MAC_BYTES) * 4) / 3);
/** Domain separation, so that a nonceKey shared with another use cannot mint nonces there. */
const NONCE_MAC_LABEL = Buffer.from('portcullis dpop-nonce v1\0', 'utf8');
const MIN_NONCE_KEY_BYTES = 16;

const REPLAY_KEY_PREFIX = 'dpop:jti:';

export interface DpopProofContext {
  /** The HTTP method of the request. */
  readonly method: string;
  /**
   * The request's absolute URL as the server sees it. `htu` is compared
   * without query and fragment (RFC 9449 section 4.3 item 9), after the
   * normalisations of RFC 3986 sections 6.2.2 and 6.2.3 (scheme and host
   * case, default port, percent-encoding case, unreserved characters, dot
   * segments).
   */
  readonly url: string;
  /** When the proof accompanies an access token: `ath` must equal base64url(SHA-256(token)) (section 4.3 item 11). */
  readonly accessToken?: string;
}

export interface VerifiedDpopProof {
  /** RFC 7638 thumbprint (SHA-256, base64url) of the proof's `jwk`: what `cnf.jkt` binds to (section 6.1). */
  readonly jkt: string;
  readonly jti: string;
}

export interface DpopVerifierOptions {
  /** Holds the replay cache; shared by every instance so that a proof is accepted once across all of them. */
  readonly hot: HotStore;
  readonly clock: Clock;
  /** The secret the server nonces are MACed with (at least 16 bytes); every instance uses the same one. */
  readonly nonceKey: Uint8Array;
  /** Whether every proof must carry a server nonce (section 8). */
  readonly requireNonce: boolean;
  /** How old a proof may be, by its `iat` (seconds, default 300). */
  readonly maxAgeSeconds?: number;
  /**
   * How far this server's clock may be from the client's and from the other
   * instances' (seconds, default 5): `iat` is accepted within
   * [now - maxAge - skew, now + skew], and a nonce another instance minted
   * within the skew of a window's edge is accepted too. The authorization
   * server allows its instances' skew (MAX_INSTANCE_SKEW_SECONDS), so that a
   * client with the right time is not refused by an instance 5 minutes off.
   */
  readonly clockSkewSeconds?: number;
  /** The nonce window (seconds, default 300): a nonce is accepted for one to two of these, and up to three when the skew allowed reaches a window's edge. */
  readonly nonceLifetimeSeconds?: number;
}

type JsonObject = Record<string, unknown>;

interface DecodedProof {
  readonly proof: string;
  readonly header: JsonObject;
  readonly claims: JsonObject;
}

const invalid = (description: string) => new OAuthError('invalid_dpop_proof', description);

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const base64urlSha256 = (input: string) => createHash('sha256').update(input, 'utf8').digest('base64url');

/** Section 4.3 item 1: there is exactly one DPoP HTTP request header field. */
function singleProof(headerValue: string | string[] | undefined): string {
  if (headerValue === undefined) throw invalid('a DPoP proof is required (the DPoP header is missing)');
  if (Array.isArray(headerValue)) {
    if (headerValue.length !== 1) throw invalid('exactly one DPoP header is allowed');
    headerValue = headerValue[0]!;
  }
  // Repeated header fields may reach us joined with commas (RFC 9110 section 5.3).
  if (headerValue.includes(',')) throw invalid('exactly one DPoP header is allowed');
  const proof = headerValue.trim();
  if (proof === '') throw invalid('a DPoP proof is required (the DPoP header is empty)');
  return proof;
}

function decodeSegment(segment: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Section 4.3 item 2: a single, well-formed JWT in the JWS compact serialisation. */
function decodeProof(proof: string): DecodedProof {
  if (proof.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) throw invalid('the DPoP proof is not a compact JWS');
  const [headerSegment, claimsSegment] = proof.split('.') as [string, string, string];
  const header = decodeSegment(headerSegment);
  if (header === undefined) throw invalid('the DPoP proof header is not a JSON object');
  const claims = decodeSegment(claimsSegment);
  if (claims === undefined) throw invalid('the DPoP proof payload is not a JSON object');
  return { proof, header, claims };
}

/** Section 4.3 items 4, 5 and 7: typ, alg, and a jwk that is a public key. Returns the jwk. */
function checkHeader(header: JsonObject): JWK {
  // Media types compare case-insensitively (RFC 7515 section 4.1.9).
  if (typeof header['typ'] !== 'string' || header['typ'].toLowerCase() !== DPOP_TYPE) throw invalid(`the DPoP proof typ header must be "${DPOP_TYPE}"`);
  if (typeof header['alg'] !== 'string' || !DPOP_ALGORITHMS.includes(header['alg'])) {
    throw invalid(`the DPoP proof alg must be one of ${DPOP_ALGORITHMS.join(', ')}`);
  }
  const jwk = header['jwk'];
  if (!isJsonObject(jwk)) throw invalid('the DPoP proof header must carry the public key as a jwk object');
  if (typeof jwk['kty'] !== 'string' || !ASYMMETRIC_KEY_TYPES.has(jwk['kty'])) throw invalid('the DPoP proof jwk must be an asymmetric public key');
  // Item 7 (and section 4.2): the jwk MUST NOT contain a private key.
  if (PRIVATE_KEY_MEMBERS.some((member) => member in jwk)) throw invalid('the DPoP proof jwk must not contain private key material');
  return jwk;
}

/** RFC 3986 sections 6.2.2.1 and 6.2.2.2: upper-case percent-encodings; decode the unreserved characters. */
function normalisePercentEncoding(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_match, hex: string) => {
    const character = String.fromCharCode(Number.parseInt(hex, 16));
    return /^[A-Za-z0-9\-._~]$/.test(character) ? character : `%${hex.toUpperCase()}`;
  });
}

/**
 * The URI a proof is bound to, in the form `htu` is compared in: scheme,
 * host and port (lower case, default port dropped: RFC 3986 sections 6.2.2.1
 * and 6.2.3) and the path (dot segments removed, empty path as "/"), without
 * query and fragment (RFC 9449 section 4.3 item 9). Undefined when the value
 * is not an absolute http(s) URI without user information.
 */
function normaliseHtu(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined;
  return `${url.protocol}//${url.host}${normalisePercentEncoding(url.pathname)}`;
}

/** Constant-time equality of two strings (false on different lengths, which the caller's values do not hide). */
function equalStrings(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Section 4.3 items 3, 8, 9, 11 and 12: the required claims (section 4.2),
 * htm, htu, iat and ath. Item 12's other half, that the access token is
 * bound to this key (cnf.jkt equals the returned jkt), is the caller's.
 */
function checkClaims(claims: JsonObject, context: DpopProofContext, nowMs: number, window: { readonly maxAgeSeconds: number; readonly skewSeconds: number }): string {
  const jti = claims['jti'];
  // Section 4.2: jti is a unique identifier for the proof, needed for replay detection (section 11.1).
  if (typeof jti !== 'string' || jti === '') throw invalid('the DPoP proof must carry a jti');
  if (jti.length > MAX_JTI_LENGTH) throw invalid(`the DPoP proof jti must be at most ${MAX_JTI_LENGTH} characters`);

  // Item 8: the method, compared exactly (methods are case-sensitive, RFC 9110 section 9.1).
  if (claims['htm'] !== context.method) throw invalid('the DPoP proof htm does not match the request method');

  // Item 9: the URI, ignoring query and fragment.
  const requestUri = normaliseHtu(context.url);
  if (typeof claims['htu'] !== 'string' || requestUri === undefined || normaliseHtu(claims['htu']) !== requestUri) {
    throw invalid('the DPoP proof htu does not match the request URI');
  }

  // Item 11: issued within an acceptable window (section 11.1: the server picks it, allowing for clock skew).
  const iat = claims['iat'];
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('the DPoP proof must carry a numeric iat');
  if (iat * 1000 < nowMs - (window.maxAgeSeconds + window.skewSeconds) * 1000) throw invalid('the DPoP proof is too old (iat); make a fresh proof for each request');
  if (iat * 1000 > nowMs + window.skewSeconds * 1000) throw invalid('the DPoP proof iat is in the future; check the client clock');

  // Item 12: bound to the access token it accompanies (section 4.2 ath, section 7.1).
  if (context.accessToken !== undefined) {
    const ath = claims['ath'];
    if (typeof ath !== 'string') throw invalid('the DPoP proof must carry ath when it accompanies an access token');
    if (!equalStrings(ath, base64urlSha256(context.accessToken))) throw invalid('the DPoP proof ath does not match the access token');
  }
  return jti;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

/** Verifies DPoP proofs for one server (authorization server or resource server). */
export class DpopVerifier {
  readonly #hot: HotStore;
  readonly #clock: Clock;
  readonly #nonceKey: Buffer;
  readonly #requireNonce: boolean;
  readonly #maxAgeSeconds: number;
  readonly #skewSeconds: number;
  readonly #nonceWindowMs: number;

  constructor(options: DpopVerifierOptions) {
    if (options.nonceKey.byteLength < MIN_NONCE_KEY_BYTES) throw new TypeError(`nonceKey must hold at least ${MIN_NONCE_KEY_BYTES} bytes`);
    this.#hot = options.hot;
    this.#clock = options.clock;
    this.#nonceKey = Buffer.from(options.nonceKey);
    this.#requireNonce = options.requireNonce;
    this.#maxAgeSeconds = positiveInteger('maxAgeSeconds', options.maxAgeSeconds ?? 300);
    this.#skewSeconds = positiveInteger('clockSkewSeconds', options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
    this.#nonceWindowMs = positiveInteger('nonceLifetimeSeconds', options.nonceLifetimeSeconds ?? 300) * 1000;
  }

  /**
   * Verifies the DPoP header value(s). `headerValue` is what the request
   * carried: undefined, a string, or a string[] if repeated. Refuses with
   * `use_dpop_nonce` (and a fresh nonce in a `dpop-nonce` header) when a
   * nonce is needed, `invalid_dpop_proof` for anything else.
   */
  async verify(headerValue: string | string[] | undefined, context: DpopProofContext): Promise<VerifiedDpopProof> {
    const now = this.#clock();
    const { proof, header, claims } = decodeProof(singleProof(headerValue));
    const jwk = checkHeader(header);
    const jti = checkClaims(claims, context, now, { maxAgeSeconds: this.#maxAgeSeconds, skewSeconds: this.#skewSeconds });
    this.#checkNonce(claims['nonce'], now);
    await this.#checkSignature(proof, now);
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    await this.#checkReplay(jkt, jti);
    return { jkt, jti };
  }

  /** A fresh server nonce to send in a DPoP-Nonce header (RFC 9449 section 8). */
  nonce(): string {
    return this.#nonceFor(this.#window(this.#clock()));
  }

  #window(nowMs: number): bigint {
    return BigInt(Math.floor(nowMs / this.#nonceWindowMs));
  }

  #nonceMac(counter: Buffer): Buffer {
    return createHmac('sha256', this.#nonceKey).update(NONCE_MAC_LABEL).update(counter).digest().subarray(0, NONCE_MAC_BYTES);
  }

  #nonceFor(window: bigint): string {
    const counter = Buffer.alloc(NONCE_COUNTER_BYTES);
    counter.writeBigUInt64BE(window);
    return Buffer.concat([counter, this.#nonceMac(counter)]).toString('base64url');
  }

  /**
   * Section 4.3 item 10 and section 8: when nonces are required, or when the
   * client sent one (it was given one), it must be one of ours and fresh. A
   * client refused here retries with the nonce in the `dpop-nonce` header.
   */
  #checkNonce(nonce: unknown, nowMs: number): void {
    if (nonce === undefined && !this.#requireNonce) return;
    if (typeof nonce !== 'string' || !this.#isFreshNonce(nonce, nowMs)) {
      const description = nonce === undefined ? 'the authorization server requires a DPoP nonce' : 'the DPoP nonce is stale or not valid';
      throw new OAuthError('use_dpop_nonce', `${description}; use the one in the DPoP-Nonce header`, { headers: { 'dpop-nonce': this.nonce() } });
    }
  }

  #isFreshNonce(nonce: string, nowMs: number): boolean {
    if (nonce.length !== NONCE_LENGTH || !/^[A-Za-z0-9_-]+$/.test(nonce)) return false;
    const bytes = Buffer.from(nonce, 'base64url');
    if (bytes.length !== NONCE_COUNTER_BYTES + NONCE_MAC_BYTES) return false;
    const counter = bytes.subarray(0, NONCE_COUNTER_BYTES);
    const window = counter.readBigUInt64BE();
    // Accepted in its own window and the next, as this instance's clock sees
    // them give or take the skew: an instance a little ahead may have minted it.
    const skewMs = this.#skewSeconds * 1000;
    if (window < this.#window(nowMs - skewMs) - 1n || window > this.#window(nowMs + skewMs)) return false;
    return timingSafeEqual(bytes.subarray(NONCE_COUNTER_BYTES), this.#nonceMac(counter));
  }

  /** Section 4.3 item 6: the signature verifies with the key in the header (and exp/nbf, if a client added them, hold). */
  async #checkSignature(proof: string, nowMs: number): Promise<void> {
    try {
      await jwtVerify(proof, EmbeddedJWK, {
        algorithms: [...DPOP_ALGORITHMS],
        typ: DPOP_TYPE,
        currentDate: new Date(nowMs),
        clockTolerance: this.#skewSeconds,
      });
    } catch (error) {
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) throw invalid('the DPoP proof signature does not verify with its jwk');
      if (error instanceof joseErrors.JWTExpired || error instanceof joseErrors.JWTClaimValidationFailed) throw invalid('the DPoP proof is expired or not yet valid');
      // Key import failures (wrong curve for the alg, short RSA key, malformed members) and the like.
      throw invalid('the DPoP proof jwk is not a usable public key for its alg');
    }
  }

  /**
   * Section 11.1: a proof is accepted once. The key is remembered for as long
   * as its `iat` could still pass the window check at any instance: a proof
   * first accepted at t (by a clock up to `skew` behind the hot store's time)
   * has iat >= t - 2 skew in that time, and stops passing everywhere (clocks
   * up to `skew` ahead) by iat + maxAge + 2 skew <= t + maxAge + 4 skew.
   * setIfAbsent is atomic across every instance sharing the hot store.
   */
  async #checkReplay(jkt: string, jti: string): Promise<void> {
    // jkt is base64url, so '.' separates the two unambiguously; hashing bounds the key length.
    const key = `${REPLAY_KEY_PREFIX}${base64urlSha256(`${jkt}.${jti}`)}`;
    const ttlMs = (this.#maxAgeSeconds + 4 * this.#skewSeconds + 1) * 1000;
    if (!(await this.#hot.setIfAbsent(key, '1', ttlMs))) throw invalid('the DPoP proof has already been used; make a fresh proof for each request');
  }
}
