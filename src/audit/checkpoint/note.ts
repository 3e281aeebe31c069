/**
 * C2SP signed notes (https://c2sp.org/signed-note), Ed25519 signature type
 * 0x01, byte-compatible with golang.org/x/mod/sumdb/note (the reference
 * implementation the spec was extracted from).
 *
 * A signed note is
 *
 *     <text, ending in "\n">
 *     "\n"
 *     "— " <key name> " " base64(uint32 key ID, big-endian || signature) "\n"   (one or more)
 *
 * Pure code: no I/O, no clock. The only randomness is key generation.
 * Every malformed input ends in a `NoteError`, whose `code` callers switch on.
 */
import { Buffer } from 'node:buffer';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';

// ---------------------------------------------------------------------------
// Errors

/** Why a note, key, checkpoint or cosignature was refused. */
export type NoteErrorCode =
  /** The note text violates c2sp.org/signed-note §Format. */
  | 'malformed_note'
  /** A vkey/skey string does not parse, has the wrong type, or its key ID is not the one its key hashes to. */
  | 'malformed_key'
  /** A key name is empty or contains a Unicode space, a '+' or a control character. */
  | 'invalid_name'
  /** Two known verifiers share one (name, key ID): the trust configuration is broken. */
  | 'ambiguous_key'
  /** A signature from a known key did not verify (signed-note §Signatures: reject the whole note). */
  | 'invalid_signature'
  /** No signature from a known key is present (signed-note §Signatures: MUST reject). */
  | 'unverified_note'
  /** A signature line is not from the expected key (name or key ID differ). */
  | 'unknown_key'
  /** A single signature line does not parse, or its signature has the wrong shape for its type. */
  | 'malformed_signature'
  /** The note text is not a checkpoint as c2sp.org/tlog-checkpoint and this module define it. */
  | 'malformed_checkpoint'
  /** The checkpoint's origin is not the expected log, or the log key name does not match it. */
  | 'origin_mismatch';

/**
 * The only error this module family throws for bad input. Messages name
 * what is wrong and, at most, a public key name and key ID; never key
 * material and never the note text.
 */
export class NoteError extends Error {
  override readonly name = 'NoteError';
  readonly code: NoteErrorCode;
  constructor(code: NoteErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// Keys

/** Signature type byte for plain Ed25519 note signatures (signed-note §Signature types). */
export const SIGNATURE_TYPE_ED25519 = 0x01;

const ED25519_KEY_SIZE = 32;
const ED25519_SIGNATURE_SIZE = 64;

/**
 * Verifiers refuse notes with more signature lines than this. The spec says
 * verifiers SHOULD apply a limit but MUST accept at least 16 (§Format);
 * 100 is golang.org/x/mod/sumdb/note's limit.
 */
export const MAX_NOTE_SIGNATURES = 100;

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

// Raw Ed25519 keys reach node:crypto through fixed DER prefixes: PKCS#8
// (RFC 8410 §7) for the 32-byte seed, SPKI (RFC 8410 §4) for the public key.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function ed25519PrivateKey(seed: Uint8Array): KeyObject {
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

function ed25519RawPublicKey(privateKey: KeyObject): Uint8Array {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length));
}

function ed25519Seed(privateKey: KeyObject): Uint8Array {
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

// ---------------------------------------------------------------------------
// Notes

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
}

/** A note split into its text and its (unverified) signatures. */
export interface Note {
  /** The signed text, including its final newline, excluding the blank separator line. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A signature that a known verifier accepted. */
export interface VerifiedSignature extends NoteSignature {
  readonly verifier: NoteVerifier;
}

/** The result of `openNote`: the text may be trusted because at least one known key signed it. */
export interface OpenedNote {
  readonly text: string;
  /** One entry per known verifier whose signature verified, in note order. */
  readonly verified: readonly VerifiedSignature[];
  /** Signatures from keys not in the known set (ignored, as the spec requires), duplicates removed. */
  readonly unverified: readonly NoteSignature[];
}

const SIGNATURE_PREFIX = '\u2014 '; // EM DASH, SPACE (signed-note §Format)

/**
 * Splits a signed note into text and signature lines, enforcing every rule of
 * signed-note §Format; verifies nothing. Accepts the note as bytes (checked to
 * be valid UTF-8) or as a string (checked to be well-formed UTF-16, i.e. to
 * have a UTF-8 encoding).
 */
export function parseNote(message: string | Uint8Array): Note {
  const text = decodeNoteMessage(message);
  // "the text is separated from the signatures by the last empty line"
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed_note', 'note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (block === '' || !block.endsWith('\n')) throw new NoteError('malformed_note', 'note must end with one or more newline-terminated signature lines');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new NoteError('malformed_note', `note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    const signature = parseSignatureLineOrNull(line);
    if (signature === null) throw new NoteError('malformed_note', 'note has a malformed signature line');
    return signature;
  });
  return { text: body, signatures };
}

/** Formats a note: text, blank line, one line per signature. Validates what it writes. */
export function formatNote(note: Note): string {
  assertNoteText(note.text);
  if (note.signatures.length === 0) throw new NoteError('malformed_note', 'a signed note has at least one signature');
  if (note.signatures.length > MAX_NOTE_SIGNATURES) throw new NoteError('malformed_note', `note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  return `${note.text}\n${note.signatures.map(formatSignatureLine).join('')}`;
}

/**
 * Signs `text` with each signer and formats the note. `existing` signatures
 * (e.g. from `openNote`) are kept first, except those from a key that signs
 * again now, as Go's note.Sign does.
 */
export function signNote(text: string, signers: readonly NoteSigner[], existing: readonly NoteSignature[] = []): string {
  assertNoteText(text);
  const message = Buffer.from(text, 'utf8');
  const fresh = signers.map((signer): NoteSignature => {
    assertSignatureIdentity(signer.name, signer.keyId);
    return { name: signer.name, keyId: signer.keyId, signature: signer.sign(message) };
  });
  const replaced = (old: NoteSignature) => fresh.some((sig) => sig.name === old.name && sig.keyId === old.keyId);
  return formatNote({ text, signatures: [...existing.filter((old) => !replaced(old)), ...fresh] });
}

/**
 * Parses a signed note and checks it against known verifiers, applying
 * signed-note §Signatures:
 * - a signature whose (name, key ID) matches no known verifier is ignored,
 *   even if it shares the name or the ID (but not both) with a known key;
 * - every signature whose (name, key ID) matches a known verifier is
 *   verified, and one that fails rejects the whole note ('invalid_signature');
 * - a note with no verified signature is rejected ('unverified_note').
 */
export function openNote(message: string | Uint8Array, known: readonly NoteVerifier[]): OpenedNote {
  const note = parseNote(message);
  const text = Buffer.from(note.text, 'utf8');
  const verified: VerifiedSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenUnknown = new Set<string>();
  for (const signature of note.signatures) {
    const matches = known.filter((verifier) => verifier.name === signature.name && verifier.keyId === signature.keyId);
    const id = `${signature.name}+${formatKeyId(signature.keyId)}`;
    const verifier = matches[0];
    if (verifier === undefined) {
      const line = formatSignatureLine(signature);
      if (!seenUnknown.has(line)) unverified.push(signature);
      seenUnknown.add(line);
      continue;
    }
    if (matches.length > 1) throw new NoteError('ambiguous_key', `ambiguous key ${id}`);
    if (!verifier.verify(text, signature.signature)) throw new NoteError('invalid_signature', `invalid signature for key ${id}`);
    if (!verified.some((entry) => entry.verifier === verifier)) verified.push({ ...signature, verifier });
  }
  if (verified.length === 0) throw new NoteError('unverified_note', 'note has no verifiable signatures');
  return { text: note.text, verified, unverified };
}

/** `— <name> <base64(key ID || signature)>\n` */
export function formatSignatureLine(signature: NoteSignature): string {
  assertSignatureIdentity(signature.name, signature.keyId);
  if (signature.signature.length === 0) throw new NoteError('malformed_signature', 'signature is empty');
  const keyId = Buffer.alloc(4);
  keyId.writeUInt32BE(signature.keyId);
  return `${SIGNATURE_PREFIX}${signature.name} ${Buffer.concat([keyId, signature.signature]).toString('base64')}\n`;
}

/**
 * Parses one signature line, with or without its final newline. The line
 * must obey the same character rules as a whole note.
 */
export function parseSignatureLine(line: string): NoteSignature {
  const bare = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!isWellFormedText(bare) || hasControlCharacter(bare, false)) throw new NoteError('malformed_signature', 'signature line has a control character or is not valid text');
  const signature = parseSignatureLineOrNull(bare);
  if (signature === null) throw new NoteError('malformed_signature', 'malformed signature line');
  return signature;
}

/**
 * "— ", a valid key name, one space, canonical base64 of at least 5 bytes
 * (4-byte key ID + a non-empty signature), as Go's note.Open requires.
 */
function parseSignatureLineOrNull(line: string): NoteSignature | null {
  if (!line.startsWith(SIGNATURE_PREFIX)) return null;
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) return null;
  const name = rest.slice(0, space);
  const bytes = decodeBase64Strict(rest.slice(space + 1));
  if (!isValidKeyName(name) || bytes === null || bytes.length < 5) return null;
  return { name, keyId: Buffer.from(bytes.buffer, bytes.byteOffset, 4).readUInt32BE(0), signature: bytes.slice(4) };
}

function assertSignatureIdentity(name: string, keyId: number): void {
  if (!isValidKeyName(name)) throw new NoteError('invalid_name', 'key name must be non-empty without spaces, "+" or control characters');
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) throw new NoteError('malformed_signature', 'key id must be a uint32');
}

// ---------------------------------------------------------------------------
// Text rules (signed-note §Format)

/** The note text MUST end in a newline, be valid UTF-8, and carry no control character but newline. */
export function assertNoteText(text: string): void {
  if (!text.endsWith('\n')) throw new NoteError('malformed_note', 'note text must end with a newline');
  if (!isWellFormedText(text)) throw new NoteError('malformed_note', 'note text is not valid UTF-8');
  if (hasControlCharacter(text, true)) throw new NoteError('malformed_note', 'note text has a control character other than newline');
}

function decodeNoteMessage(message: string | Uint8Array): string {
  let text: string;
  if (typeof message === 'string') {
    if (!isWellFormedText(message)) throw new NoteError('malformed_note', 'note is not valid UTF-8');
    text = message;
  } else {
    try {
      // ignoreBOM: a leading U+FEFF is note text like any other; stripping it would change the signed bytes.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(message);
    } catch {
      throw new NoteError('malformed_note', 'note is not valid UTF-8');
    }
  }
  if (hasControlCharacter(text, true)) throw new NoteError('malformed_note', 'note has a control character other than newline');
  return text;
}

/** Notes MUST NOT contain ASCII control characters (below U+0020) other than newline. */
function hasControlCharacter(text: string, newlineAllowed: boolean): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x20 && !(newlineAllowed && code === 0x0a)) return true;
  }
  return false;
}

/** A JavaScript string has a UTF-8 encoding iff it has no lone surrogate. */
function isWellFormedText(text: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

// ---------------------------------------------------------------------------
// Base64

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Standard, padded base64 (RFC 4648 §4), and only its canonical form: the
 * alphabet, the padding and zero trailing bits are all checked (Node's
 * decoder would silently skip bad characters), so one byte string has one
 * spelling and a tampered character is never ignored.
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (text === '' || !BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return null;
  return new Uint8Array(bytes);
}
