/**
 * The one table of JWS algorithms (RFC 7518 section 3, RFC 8037 section 3.1,
 * RFC 9864 for the fully-specified `Ed25519`): for each, how node:crypto
 * signs with it, which key it needs, which hash OIDC's `at_hash`/`c_hash`
 * use, and which uses of this server accept it. Every module takes its list
 * from here; none keeps its own. Asymmetric algorithms only: never `none`,
 * never HMAC (RFC 8725 section 3.1).
 *
 * Columns (uses):
 * - `keyring`: the keyring keeps keys of it and signs access and ID tokens
 *   with it. The number is its place in the keyring: the order of the JWKS
 *   and of the published `*_signing_alg_values_supported` for tokens.
 * - `resourceToken`: an operator may pin a resource's access tokens to it.
 * - `dpop`: a DPoP proof may be signed with it (RFC 9449 section 4.3 item 5).
 * - `clientAssertion`: a client's private_key_jwt assertion may be signed
 *   with it (RFC 7523 section 2.2); `advertisedForClientAssertion`: listed in
 *   discovery as such (the published list is shorter than the accepted one).
 * - `clientKey`: a client's registered JWK may declare it as its `alg`.
 *
 * Lists follow the table's order (except `keyring`, by its number); the
 * published metadata depends on both, so reorder nothing without meaning to.
 */
import { constants, generateKeyPair, type KeyObject, type SignKeyObjectInput, type VerifyKeyObjectInput } from 'node:crypto';
import { promisify } from 'node:util';

/** RFC 7518 section 3.3/3.5: RSA keys of 2048 bits at least. */
export const MIN_RSA_MODULUS_BITS = 2048;

export type HashName = 'sha256' | 'sha384' | 'sha512';

interface AlgorithmRow {
  /** JWK `kty` (RFC 7518 section 6.1, RFC 8037 section 2). */
  readonly kty: 'OKP' | 'EC' | 'RSA';
  /** node:crypto `asymmetricKeyType` of its keys. */
  readonly keyType: 'ed25519' | 'ec' | 'rsa';
  /** JWK `crv` (EC and OKP keys). */
  readonly crv?: 'Ed25519' | 'P-256' | 'P-384' | 'P-521';
  /** node:crypto's name for the EC curve (`asymmetricKeyDetails.namedCurve`). */
  readonly namedCurve?: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** Digest node:crypto's sign/verify takes; null for EdDSA, which hashes internally (RFC 8032). */
  readonly digest: HashName | null;
  /** RSA padding: PKCS #1 v1.5 (RSxxx) or PSS with MGF1 and a salt as long as the digest (PSxxx, RFC 7518 section 3.5). */
  readonly padding?: 'pkcs1' | 'pss';
  /**
   * OIDC Core section 3.1.3.6 `at_hash` / `c_hash`: the hash of the JWS
   * algorithm; for EdDSA with Ed25519, SHA-512 (the OpenID Foundation's
   * choice, as its conformance suite checks it).
   */
  readonly tokenHash: HashName;
  readonly keyring?: number;
  readonly resourceToken?: true;
  readonly dpop?: true;
  readonly clientAssertion?: true;
  readonly advertisedForClientAssertion?: true;
  readonly clientKey?: true;
}

const TABLE = {
  EdDSA:   { kty: 'OKP', keyType: 'ed25519', crv: 'Ed25519', digest: null, tokenHash: 'sha512', keyring: 1, resourceToken: true, dpop: true, clientAssertion: true, advertisedForClientAssertion: true, clientKey: true },
  Ed25519: { kty: 'OKP', keyType: 'ed25519', crv: 'Ed25519', digest: null, tokenHash: 'sha512', dpop: true, clientAssertion: true, clientKey: true },
  ES256:   { kty: 'EC', keyType: 'ec', crv: 'P-256', namedCurve: 'prime256v1', digest: 'sha256', tokenHash: 'sha256', keyring: 2, resourceToken: true, dpop: true, clientAssertion: true, advertisedForClientAssertion: true, clientKey: true },
  ES384:   { kty: 'EC', keyType: 'ec', crv: 'P-384', namedCurve: 'secp384r1', digest: 'sha384', tokenHash: 'sha384', dpop: true, clientAssertion: true, clientKey: true },
  ES512:   { kty: 'EC', keyType: 'ec', crv: 'P-521', namedCurve: 'secp521r1', digest: 'sha512', tokenHash: 'sha512', clientKey: true },
  PS256:   { kty: 'RSA', keyType: 'rsa', digest: 'sha256', padding: 'pss', tokenHash: 'sha256', keyring: 4, dpop: true, clientAssertion: true, advertisedForClientAssertion: true, clientKey: true },
  PS384:   { kty: 'RSA', keyType: 'rsa', digest: 'sha384', padding: 'pss', tokenHash: 'sha384', clientKey: true },
  PS512:   { kty: 'RSA', keyType: 'rsa', digest: 'sha512', padding: 'pss', tokenHash: 'sha512', clientKey: true },
  RS256:   { kty: 'RSA', keyType: 'rsa', digest: 'sha256', padding: 'pkcs1', tokenHash: 'sha256', keyring: 3, resourceToken: true, dpop: true, clientAssertion: true, advertisedForClientAssertion: true, clientKey: true },
  RS384:   { kty: 'RSA', keyType: 'rsa', digest: 'sha384', padding: 'pkcs1', tokenHash: 'sha384', clientKey: true },
  RS512:   { kty: 'RSA', keyType: 'rsa', digest: 'sha512', padding: 'pkcs1', tokenHash: 'sha512', clientKey: true },
} as const satisfies Readonly<Record<string, AlgorithmRow>>;

type Table = typeof TABLE;
export type JwsAlgorithm = keyof Table;
export type AlgorithmUse = 'keyring' | 'resourceToken' | 'dpop' | 'clientAssertion' | 'advertisedForClientAssertion' | 'clientKey';
type AllowedFor<U extends AlgorithmUse> = { [A in JwsAlgorithm]: Table[A] extends Readonly<Record<U, unknown>> ? A : never }[JwsAlgorithm];

/** What the keyring signs tokens with. */
export type SigningAlgorithm = AllowedFor<'keyring'>;
/** What a resource's access tokens may be pinned to. */
export type ResourceTokenAlgorithm = AllowedFor<'resourceToken'>;

/** One row of the table, with its name. */
export interface JwsAlgorithmInfo extends AlgorithmRow {
  readonly alg: JwsAlgorithm;
}

export const JWS_ALGORITHMS: readonly JwsAlgorithmInfo[] = Object.freeze(
  (Object.entries(TABLE) as [JwsAlgorithm, AlgorithmRow][]).map(([alg, row]) => Object.freeze({ alg, ...row })),
);

const BY_NAME = new Map<string, JwsAlgorithmInfo>(JWS_ALGORITHMS.map((row) => [row.alg, row]));

/** The algorithms allowed for one use, in the table's order (the keyring's by its number). */
export function algorithmsFor<U extends AlgorithmUse>(use: U): readonly AllowedFor<U>[] {
  const rows = JWS_ALGORITHMS.filter((row) => row[use] !== undefined);
  if (use === 'keyring') rows.sort((a, b) => a.keyring! - b.keyring!);
  return Object.freeze(rows.map((row) => row.alg as AllowedFor<U>));
}

/** The row of a supported algorithm; undefined for anything else (`none`, HS256, junk). */
export function jwsAlgorithm(alg: string): JwsAlgorithmInfo | undefined {
  return BY_NAME.get(alg);
}

/** Whether `alg` is allowed for `use`. */
export function isAlgorithmFor<U extends AlgorithmUse>(use: U, alg: unknown): alg is AllowedFor<U> {
  return typeof alg === 'string' && BY_NAME.get(alg)?.[use] !== undefined;
}

/** RFC 8037 (EdDSA with Ed25519) and RFC 7518 section 3.1 (ES256, RS256, PS256). */
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = algorithmsFor('keyring');

function rowOf(alg: JwsAlgorithm): JwsAlgorithmInfo {
  const row = BY_NAME.get(alg);
  if (row === undefined) throw new TypeError(`unsupported JWS algorithm ${String(alg)}`);
  return row;
}

const DIGEST_BYTES: Readonly<Record<HashName, number>> = { sha256: 32, sha384: 48, sha512: 64 };

/** A node:crypto sign/verify call for one algorithm and key. */
export interface NodeSignParameters {
  readonly digest: HashName | null;
  readonly key: SignKeyObjectInput & VerifyKeyObjectInput;
}

/**
 * The node:crypto call for `alg`: EdDSA takes no digest (RFC 8037 section
 * 3.1); ECDSA signatures are R || S, not DER (RFC 7518 section 3.4); PSxxx is
 * RSASSA-PSS with MGF1 of the same hash and a salt of the hash's length
 * (RFC 7518 section 3.5).
 */
export function nodeSignParameters(alg: JwsAlgorithm, key: KeyObject): NodeSignParameters {
  const row = rowOf(alg);
  if (row.kty === 'EC') return { digest: row.digest, key: { key, dsaEncoding: 'ieee-p1363' } };
  if (row.padding === 'pss') return { digest: row.digest, key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: DIGEST_BYTES[row.digest!] } };
  if (row.padding === 'pkcs1') return { digest: row.digest, key: { key, padding: constants.RSA_PKCS1_PADDING } };
  return { digest: row.digest, key: { key } };
}

/** The hash of `at_hash` and `c_hash` for tokens signed with `alg` (OIDC Core section 3.1.3.6). */
export function tokenHashAlgorithm(alg: JwsAlgorithm): HashName {
  return rowOf(alg).tokenHash;
}

/** Whether a key is of the type `alg` needs (RFC 8725 section 3.1: one key, one algorithm). */
export function keyFitsAlgorithm(alg: JwsAlgorithm, key: KeyObject): boolean {
  const row = rowOf(alg);
  if (key.asymmetricKeyType !== row.keyType) return false;
  const details = key.asymmetricKeyDetails;
  if (row.namedCurve !== undefined) return details?.namedCurve === row.namedCurve;
  if (row.kty === 'RSA') return (details?.modulusLength ?? 0) >= MIN_RSA_MODULUS_BITS;
  return true;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** A new private key for `alg`, on libuv's thread pool (RSA keys take a while). */
export async function generateSigningKey(alg: JwsAlgorithm): Promise<KeyObject> {
  const row = rowOf(alg);
  if (row.keyType === 'ed25519') return (await generateKeyPairAsync('ed25519')).privateKey;
  if (row.keyType === 'ec') return (await generateKeyPairAsync('ec', { namedCurve: row.crv! })).privateKey;
  return (await generateKeyPairAsync('rsa', { modulusLength: MIN_RSA_MODULUS_BITS, publicExponent: 0x10001 })).privateKey;
}
