/**
 * Ed25519 (RFC 8032) through node:crypto, for raw 32-byte keys as signed
 * notes encode them. Pure: no I/O; the only randomness is key generation.
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { NoteError } from './errors.ts';

/** Bytes of an Ed25519 public key or seed. */
export const ED25519_KEY_SIZE = 32;
/** Bytes of an Ed25519 signature. */
export const ED25519_SIGNATURE_SIZE = 64;

// Raw Ed25519 keys reach node:crypto through fixed DER prefixes: PKCS#8
// (RFC 8410 §7) for the 32-byte seed, SPKI (RFC 8410 §4) for the public key.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch {
    throw new NoteError('malformed_key', 'not an Ed25519 seed');
  } finally {
    der.fill(0);
  }
}

/** A KeyObject for a raw 32-byte Ed25519 public key. */
export function ed25519PublicKey(publicKey: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
  } catch {
    throw new NoteError('malformed_key', 'not an Ed25519 public key');
  }
}

export function ed25519RawPublicKey(privateKey: KeyObject): Uint8Array {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length));
}

export function ed25519Seed(privateKey: KeyObject): Uint8Array {
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = new Uint8Array(pkcs8.subarray(PKCS8_ED25519_PREFIX.length));
  pkcs8.fill(0);
  return seed;
}

/** Ed25519 (RFC 8032) signature; never throws for a well-formed key. */
export function ed25519Sign(privateKey: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(cryptoSign(null, message, privateKey));
}

/** Ed25519 (RFC 8032) verification; false, never an exception, for any malformed signature. */
export function ed25519Verify(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_SIZE) return false;
  try {
    return cryptoVerify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}
