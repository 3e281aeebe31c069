/**
 * Signed-note keys (c2sp.org/signed-note §Signatures): key names, key IDs,
 * and the vkey/skey text encodings of golang.org/x/mod/sumdb/note, for
 * Ed25519 (type 0x01) and, with another type byte, witness cosignature keys.
 */
import { Buffer } from 'node:buffer';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  ED25519_KEY_SIZE,
  ed25519PrivateKey,
  ed25519PublicKey,
  ed25519RawPublicKey,
  ed25519Seed,
  ed25519Sign,
  ed25519Verify,
} from './ed25519.ts';
import { NoteError } from './errors.ts';
import { decodeBase64Strict, hasControlCharacter, isWellFormedText } from './text.ts';

/** Signature type byte for plain Ed25519 note signatures (signed-note §Signature types). */
export const SIGNATURE_TYPE_ED25519 = 0x01;

/** Checks one signature made by one key. */
export interface NoteVerifier {
  /** Key name, as it appears in signature lines. */
  readonly name: string;
  /** uint32 key ID, the first four bytes of each signature. */
  readonly keyId: number;
  /** Whether `signature` (the bytes after the key ID) is valid for `message` (the note text as UTF-8). */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** Signs note texts with one key. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes (without the key ID) over `message` (the note text as UTF-8). */
  sign(message: Uint8Array): Uint8Array;
}

/** An Ed25519 note signer built from a signer key; it also knows its public verifier key. */
export interface Ed25519NoteSigner extends NoteSigner {
  /** The vkey string verifiers are configured with. */
  readonly verifierKey: string;
}

/** A freshly generated key pair in the text encodings of golang.org/x/mod/sumdb/note. */
export interface GeneratedKey {
  /** `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`: secret. */
  readonly signerKey: string;
  /** `<name>+<hex key ID>+<base64(type || public key)>`: public. */
  readonly verifierKey: string;
}

/**
 * Key names MUST be non-empty and MUST NOT contain Unicode spaces or '+'
 * (signed-note §Format). Control characters are refused too: a name with one
 * could never appear in a well-formed note (§Format forbids them).
 * `\p{White_Space}` is the property Go's unicode.IsSpace tests (it includes
 * U+0085 and excludes U+FEFF, unlike JavaScript's `\s`).
 */
export function isValidKeyName(name: string): boolean {
  return name !== '' && isWellFormedText(name) && !/[\p{White_Space}+]/u.test(name) && !hasControlCharacter(name, false);
}

/**
 * key ID = SHA-256(key name || 0x0A || signature type || public key)[:4],
 * big-endian (signed-note §Signatures, RECOMMENDED; MUST for cosignatures).
 */
export function computeKeyId(name: string, signatureType: number, publicKey: Uint8Array): number {
  const digest = createHash('sha256')
    .update(Buffer.from(name, 'utf8'))
    .update(Uint8Array.of(0x0a, signatureType))
    .update(publicKey)
    .digest();
  return digest.readUInt32BE(0);
}

/** Lower-case, zero-padded 8-digit hex, as Go's `%08x` writes key IDs. */
export function formatKeyId(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}

/** The parts of a vkey or skey string; `key` still starts with the type byte. */
export interface KeyText {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** Key material after the type byte. */
  readonly key: Uint8Array;
}

/**
 * Splits `<name>+<8 hex digits>+<base64(type || key)>` like Go's NewVerifier:
 * the name cannot contain '+', so the first two '+' are the separators and the
 * base64 part may contain more. Checks syntax only; callers check the type,
 * the key length and the key ID.
 */
export function parseKeyText(text: string, what: string): KeyText {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) throw new NoteError('malformed_key', `${what} must be <name>+<key id>+<key>`);
  const name = text.slice(0, first);
  const idText = text.slice(first + 1, second);
  const keyBytes = decodeBase64Strict(text.slice(second + 1));
  if (!isValidKeyName(name)) throw new NoteError('malformed_key', `${what} has an invalid key name`);
  if (!/^[0-9a-fA-F]{8}$/.test(idText)) throw new NoteError('malformed_key', `${what} key id must be 8 hex digits`);
  if (keyBytes === null || keyBytes.length < 2) throw new NoteError('malformed_key', `${what} key is not canonical base64 of a type byte and a key`);
  return { name, keyId: Number.parseInt(idText, 16), type: keyBytes[0]!, key: keyBytes.subarray(1) };
}

/** Parses a vkey: `<name>+<hex key ID>+<base64(0x01 || 32-byte Ed25519 public key)>`. */
export function parseVerifierKey(verifierKey: string): NoteVerifier {
  const { name, keyId, type, key } = parseKeyText(verifierKey, 'verifier key');
  if (type !== SIGNATURE_TYPE_ED25519) throw new NoteError('malformed_key', `verifier key type 0x${type.toString(16).padStart(2, '0')} is not Ed25519 (0x01)`);
  if (key.length !== ED25519_KEY_SIZE) throw new NoteError('malformed_key', 'verifier key is not a 32-byte Ed25519 public key');
  // Go's NewVerifier refuses a vkey whose key ID does not hash from its own
  // name and key: a typo in configuration must not silently trust nothing.
  if (keyId !== computeKeyId(name, type, key)) throw new NoteError('malformed_key', `verifier key id does not match key ${name}`);
  return new Ed25519Verifier(name, keyId, ed25519PublicKey(key));
}

/** Parses an skey: `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte Ed25519 seed)>`. */
export function parseSignerKey(signerKey: string): Ed25519NoteSigner {
  return ed25519SignerFromKeyText(signerKey, SIGNATURE_TYPE_ED25519);
}

/** Encodes a 32-byte Ed25519 public key as a vkey (Go's NewEd25519VerifierKey). */
export function verifierKeyFromPublicKey(name: string, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw new NoteError('invalid_name', 'key name must be non-empty without spaces, "+" or control characters');
  if (publicKey.length !== ED25519_KEY_SIZE) throw new NoteError('malformed_key', 'an Ed25519 public key is 32 bytes');
  return encodeKeyText(name, computeKeyId(name, SIGNATURE_TYPE_ED25519, publicKey), SIGNATURE_TYPE_ED25519, publicKey);
}

/** Generates a new Ed25519 note key named `name` (Go's GenerateKey). */
export function generateSignerKey(name: string): GeneratedKey {
  return generateEd25519KeyText(name, SIGNATURE_TYPE_ED25519);
}

// Shared with cosignature.ts, which uses the same encodings with type 0x04.

/** Generates an Ed25519 key and encodes it with `type` as its signature type byte. */
export function generateEd25519KeyText(name: string, type: number): GeneratedKey {
  if (!isValidKeyName(name)) throw new NoteError('invalid_name', 'key name must be non-empty without spaces, "+" or control characters');
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = ed25519Seed(privateKey);
  const publicKey = ed25519RawPublicKey(privateKey);
  const keyId = computeKeyId(name, type, publicKey);
  try {
    return {
      signerKey: `PRIVATE+KEY+${encodeKeyText(name, keyId, type, seed)}`,
      verifierKey: encodeKeyText(name, keyId, type, publicKey),
    };
  } finally {
    seed.fill(0);
  }
}

/**
 * Parses an skey of signature type `type`. The key ID in an skey is the ID of
 * the *public* key, so it can only be checked after deriving that key (as Go's
 * NewSigner does). The seed bytes are wiped once the KeyObject holds them.
 */
export function parseEd25519SignerKeyText(
  signerKey: string,
  type: number,
): { name: string; keyId: number; publicKey: Uint8Array; privateKey: KeyObject } {
  if (!signerKey.startsWith('PRIVATE+KEY+')) throw new NoteError('malformed_key', 'signer key must start with PRIVATE+KEY+');
  const parts = parseKeyText(signerKey.slice('PRIVATE+KEY+'.length), 'signer key');
  const seed = parts.key;
  try {
    if (parts.type !== type) throw new NoteError('malformed_key', `signer key type 0x${parts.type.toString(16).padStart(2, '0')} is not 0x${type.toString(16).padStart(2, '0')}`);
    if (seed.length !== ED25519_KEY_SIZE) throw new NoteError('malformed_key', 'signer key is not a 32-byte Ed25519 seed');
    const privateKey = ed25519PrivateKey(seed);
    const publicKey = ed25519RawPublicKey(privateKey);
    if (parts.keyId !== computeKeyId(parts.name, type, publicKey)) throw new NoteError('malformed_key', `signer key id does not match key ${parts.name}`);
    return { name: parts.name, keyId: parts.keyId, publicKey, privateKey };
  } finally {
    seed.fill(0);
  }
}

/** `<name>+<hex key ID>+<base64(type || key)>`. */
export function encodeKeyText(name: string, keyId: number, type: number, key: Uint8Array): string {
  return `${name}+${formatKeyId(keyId)}+${Buffer.concat([Uint8Array.of(type), key]).toString('base64')}`;
}

class Ed25519Verifier implements NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly #publicKey: KeyObject;
  constructor(name: string, keyId: number, publicKey: KeyObject) {
    this.name = name;
    this.keyId = keyId;
    this.#publicKey = publicKey;
  }
  verify(message: Uint8Array, signature: Uint8Array): boolean {
    return ed25519Verify(this.#publicKey, message, signature);
  }
}

/** Parses an skey of signature type `type` into a signer whose verifierKey has the same type. */
export function ed25519SignerFromKeyText(signerKey: string, type: number): Ed25519Signer {
  const { name, keyId, publicKey, privateKey } = parseEd25519SignerKeyText(signerKey, type);
  return new Ed25519Signer(name, keyId, privateKey, encodeKeyText(name, keyId, type, publicKey));
}

/** Signs raw messages with an Ed25519 key; note signers and witness cosigners both build on it. */
export class Ed25519Signer implements Ed25519NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly verifierKey: string;
  // #private: the key never shows in a log line, JSON or util.inspect output.
  readonly #privateKey: KeyObject;
  constructor(name: string, keyId: number, privateKey: KeyObject, verifierKey: string) {
    this.name = name;
    this.keyId = keyId;
    this.verifierKey = verifierKey;
    this.#privateKey = privateKey;
  }
  sign(message: Uint8Array): Uint8Array {
    return ed25519Sign(this.#privateKey, message);
  }
}
