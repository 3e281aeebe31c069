/**
 * Key material of the keyring: a new key pair for an algorithm (the crypto
 * core's table decides its type), its private half sealed under the master
 * key, and a stored key opened back into what signing and verifying need.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { generateSigningKey, keyFitsAlgorithm, type KeyVault, type SigningAlgorithm } from '../crypto/index.ts';
import { KeyringError, type SigningKey, type StoredKey, type VerificationKey } from './keyring-types.ts';

/** A key opened in memory: what signing and verifying need, ready on the hot path. */
export interface OpenedKey {
  readonly sealedPrivateKey: string;
  readonly signing: SigningKey;
  readonly verification: VerificationKey;
  /** The public JWK as published (RFC 7517 section 4), with kid, alg and use. */
  readonly publicJwk: Readonly<JWK>;
}

export type CreateReason = 'initial' | 'scheduled' | 'manual' | 'replaces_revoked';

export interface NewKey {
  readonly stored: StoredKey;
  readonly opened: OpenedKey;
  readonly reason: CreateReason;
}

/** The public JWK with the members a verifier selects by (RFC 7517 section 4: use, alg, kid). */
async function publicJwkOf(publicKey: KeyObject): Promise<{ jwk: JWK; kid: string }> {
  const { kty, crv, x, y, n, e } = await exportJWK(publicKey);
  const members: JWK = { kty, ...(crv !== undefined && { crv }), ...(x !== undefined && { x }), ...(y !== undefined && { y }), ...(n !== undefined && { n }), ...(e !== undefined && { e }) };
  // RFC 7638: the kid is the SHA-256 thumbprint of the required public members.
  return { jwk: members, kid: await calculateJwkThumbprint(members, 'sha256') };
}

function openedKey(kid: string, alg: SigningAlgorithm, privateKey: KeyObject, publicKey: KeyObject, jwk: JWK, sealedPrivateKey: string): OpenedKey {
  return {
    sealedPrivateKey,
    signing: Object.freeze({ kid, alg, privateKey }),
    verification: Object.freeze({ kid, alg, publicKey }),
    publicJwk: Object.freeze({ ...jwk, kid, use: 'sig', alg }),
  };
}

/** Sealing purpose (and AAD) of the private keys: a sealed value from another slot does not open here. */
const SEAL_PURPOSE = 'signing-keys';

/** A new key of `alg`: its kid is its public key's thumbprint, its private key is stored only sealed. */
export async function newKey(alg: SigningAlgorithm, vault: KeyVault, createdAt: number, activatesAt: number, reason: CreateReason): Promise<NewKey> {
  const privateKey = await generateSigningKey(alg);
  const publicKey = createPublicKey(privateKey);
  const { jwk, kid } = await publicJwkOf(publicKey);
  const sealedPrivateKey = vault.seal(SEAL_PURPOSE, privateKey.export({ format: 'der', type: 'pkcs8' }));
  return { stored: { kid, alg, createdAt, activatesAt, sealedPrivateKey }, opened: openedKey(kid, alg, privateKey, publicKey, jwk, sealedPrivateKey), reason };
}

/** Opens a stored key; refuses one whose key type does not fit its algorithm (RFC 8725 section 3.1: one key, one algorithm). */
export async function openStoredKey(stored: StoredKey, vault: KeyVault): Promise<OpenedKey> {
  const der = vault.open(SEAL_PURPOSE, stored.sealedPrivateKey);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
  if (!keyFitsAlgorithm(stored.alg, privateKey)) throw new KeyringError(`signing key ${stored.kid}: not a ${stored.alg} key`);
  const publicKey = createPublicKey(privateKey);
  const { jwk, kid } = await publicJwkOf(publicKey);
  // A private key moved under another kid would sign tokens that verify
  // against the wrong published key; the thumbprint ties them together.
  if (kid !== stored.kid) throw new KeyringError(`signing key ${stored.kid}: its private key does not match its kid`);
  return openedKey(kid, stored.alg, privateKey, publicKey, jwk, stored.sealedPrivateKey);
}
