/**
 * Every key derived from the master key, in one place. A purpose names one
 * use; two uses never share a purpose, so they never share key material
 * (HKDF-SHA256, RFC 5869 section 3.2: the `info` input separates them).
 *
 * The strings are part of the stored data's format: a key derived today
 * must be derived again, byte for byte, by every later build, else MACs,
 * pseudonyms and sealed values made before an upgrade stop matching.
 * Add a purpose here; never rename one.
 */

/**
 * Keys handed out as bytes (`KeyVault.derive`), each for one HMAC or cipher
 * of one module. HKDF info: `portcullis/<purpose>`.
 */
export const KEY_PURPOSES = Object.freeze([
  /** oauth/clients.ts: HMAC of client secrets at rest. */
  'client-secrets',
  /** oauth/refresh-tokens.ts: HMAC of refresh tokens at rest, and of their family ids. */
  'refresh-token-hashes',
  /** oauth/dpop.ts: stateless server nonces (RFC 9449 section 8). */
  'dpop-nonces',
  /** identity/device-cookies.ts: the known-device cookie's MAC. */
  'device-cookies',
  /** identity/recovery-codes.ts: HMAC of second-factor recovery codes. */
  'recovery-codes',
  /** identity/csrf.ts: CSRF tokens bound to a session. */
  'csrf',
  /** observability: keyed pseudonyms of personal data in logs. */
  'log-pseudonyms',
  /** audit/ip.ts: keyed hashes of client IP addresses in audit entries. */
  'audit-ip-pseudonyms',
  /** privacy: keyed hashes naming a person in erasure tombstones, erasure records and consumer requests (never their id or email in clear). */
  'privacy-subjects',
  /** privacy/retention: keyed pseudonyms that replace IP addresses in stored records after privacy.retention.ipPseudonymiseDays. */
  'stored-ip-pseudonyms',
] as const);

export type KeyPurpose = (typeof KEY_PURPOSES)[number];

/**
 * Slots where a secret is stored sealed (`KeyVault.seal`/`open`). Each
 * slot's AES-256-GCM key is derived with HKDF info `portcullis/seal/<purpose>`,
 * and the purpose is also the additional authenticated data.
 */
export const SEAL_PURPOSES = Object.freeze([
  /** tokens/keyring: the private keys that sign tokens (PKCS #8 DER). */
  'signing-keys',
  /** audit: the log's Ed25519 checkpoint signer key (C2SP skey text). */
  'audit-log-key',
  /** identity/second-factor.ts: a user's TOTP secret. */
  'totp-secret',
  /** oauth/refresh-tokens.ts: the response a rotated refresh token answers again within its grace period. */
  'refresh-successor',
  /** pki: the built-in CA's private keys (the intermediate's, and the root's unless it is kept offline), PKCS #8 DER. */
  'ca-keys',
  /** signals: the Authorization header value a push receiver asked SETs to carry (RFC 8935 section 2; its secret). */
  'signals-push-authorization',
] as const);

export type SealPurpose = (typeof SEAL_PURPOSES)[number];

/** The HKDF info string of a derived key: fixed forever (see above). */
export function keyInfo(purpose: KeyPurpose): string {
  return `portcullis/${purpose}`;
}

/** The HKDF info string of a seal slot's key. */
export function sealKeyInfo(purpose: SealPurpose): string {
  return `portcullis/seal/${purpose}`;
}
