/**
 * C2SP transparency-log cosignatures, Ed25519 `cosignature/v1`
 * (https://c2sp.org/tlog-cosignature): a witness's timestamped statement
 * that a checkpoint is the largest consistent tree head it has seen for the
 * log named by the origin line.
 *
 * - Signature line (§Format): `— <witness name> base64(key ID || timestamped_signature)`,
 *   key ID = SHA-256(<name> || "\n" || 0x04 || 32-byte public key)[:4] (MUST).
 * - timestamped_signature (§Format, RFC 8446 §3.3 encoding): u64 big-endian
 *   POSIX seconds (at most 2^63 - 1), then the 64-byte Ed25519 signature.
 * - Signed message (§Ed25519 signed message):
 *   "cosignature/v1\n" || "time <seconds, decimal, no leading zeros>\n" ||
 *   the whole checkpoint note text (extension lines included, signatures not).
 * - Keys: vkeys/skeys as in signed-note, with signature type 0x04.
 *
 * Scope: Ed25519 cosignatures (0x04) only. The spec's ML-DSA-44 type
 * (0x06, `subtree/v1` message) is left out on purpose: it cosigns subtrees,
 * which the ledger does not publish, and no witness it talks to uses it.
 */
import { Buffer } from 'node:buffer';
import type { KeyObject } from 'node:crypto';
import { parseCheckpointLines } from './checkpoint.ts';
import {
  NoteError,
  computeKeyId,
  ed25519PublicKey,
  ed25519Verify,
  formatSignatureLine,
  generateEd25519KeyText,
  ed25519SignerFromKeyText,
  type Ed25519Signer,
  parseKeyText,
  parseNote,
  parseSignatureLine,
  type GeneratedKey,
  type NoteSignature,
  type NoteVerifier,
} from '../../crypto/index.ts';

/** Signature type byte of Ed25519 cosignature/v1 (signed-note §Signature types, tlog-cosignature §Format). */
export const SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04;

const HEADER = 'cosignature/v1';
const ED25519_KEY_SIZE = 32;
const TIMESTAMP_SIZE = 8;
const TIMESTAMPED_SIGNATURE_SIZE = TIMESTAMP_SIZE + 64;
/** "It MUST NOT exceed 2^63 - 1" (§Format). */
const MAX_TIMESTAMP = 2n ** 63n - 1n;

/**
 * Verifies one witness's cosignatures. As a `NoteVerifier` it plugs into
 * `openNote`: `verify(noteText, timestampedSignature)` rebuilds the
 * cosignature/v1 message from the note text and the embedded timestamp.
 */
export interface CosignatureVerifier extends NoteVerifier {
  /** Marks a witness key, so a plain note verifier cannot be passed where a cosignature verifier is meant. */
  readonly signatureType: typeof SIGNATURE_TYPE_COSIGNATURE_V1;
}

/** Produces cosignatures as one witness (tests; a future built-in witness). */
export interface CosignatureSigner {
  readonly name: string;
  readonly keyId: number;
  /** The witness's type-0x04 vkey, for the verifiers' configuration. */
  readonly verifierKey: string;
  /** The timestamped_signature (8-byte timestamp || 64-byte Ed25519 signature) over checkpoint `body` at `timestamp`. */
  sign(body: string, timestamp: number): Uint8Array;
}

/** Parses a witness vkey: `<name>+<hex key ID>+<base64(0x04 || 32-byte Ed25519 public key)>`. */
export function parseCosignatureVerifierKey(verifierKey: string): CosignatureVerifier {
  const { name, keyId, type, key } = parseKeyText(verifierKey, 'witness verifier key');
  // Only type 0x04. golang transparency-dev/formats also accepts a 0x01 note
  // key and re-hashes it as 0x04; we refuse that reuse of a log-style key
  // and ask for the witness's own 0x04 vkey instead.
  if (type !== SIGNATURE_TYPE_COSIGNATURE_V1) throw new NoteError('malformed_key', 'witness verifier key type must be 0x04 (Ed25519 cosignature/v1)');
  if (key.length !== ED25519_KEY_SIZE) throw new NoteError('malformed_key', 'witness verifier key is not a 32-byte Ed25519 public key');
  if (keyId !== computeKeyId(name, type, key)) throw new NoteError('malformed_key', `witness verifier key id does not match key ${name}`);
  return new Ed25519CosignatureVerifier(name, keyId, ed25519PublicKey(key));
}

/** Parses a witness skey: `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || 32-byte seed)>`. */
export function parseCosignatureSignerKey(signerKey: string): CosignatureSigner {
  return new Ed25519CosignatureSigner(ed25519SignerFromKeyText(signerKey, SIGNATURE_TYPE_COSIGNATURE_V1));
}

/** Generates a new Ed25519 witness key (type 0x04) named `name`. */
export function generateCosignatureKey(name: string): GeneratedKey {
  return generateEd25519KeyText(name, SIGNATURE_TYPE_COSIGNATURE_V1);
}

/**
 * The exact bytes a cosignature/v1 signs, as text:
 * "cosignature/v1\ntime <timestamp>\n" + checkpoint body. The body must be a
 * checkpoint (tlog-checkpoint §Note text); its extension lines, if any, are
 * included, as the spec requires.
 */
export function cosignatureMessage(body: string, timestamp: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new NoteError('malformed_signature', 'cosignature timestamp must be non-negative whole seconds');
  parseCheckpointLines(body);
  return `${HEADER}\ntime ${timestamp}\n${body}`;
}

/**
 * Cosigns a checkpoint (its body, or a signed note whose text is the body)
 * and returns the signature line, newline included, ready to append to the
 * signed checkpoint.
 */
export function cosign(checkpoint: string, signer: CosignatureSigner, timestamp: number): string {
  const body = checkpointBody(checkpoint);
  return formatSignatureLine({ name: signer.name, keyId: signer.keyId, signature: signer.sign(body, timestamp) });
}

/**
 * Verifies one witness signature line over a checkpoint (its body, or a
 * signed note whose text is the body) and returns the cosignature's
 * timestamp in POSIX seconds. Refuses with a `NoteError`: 'unknown_key' when
 * the line is not this witness's (name or key ID differ; spec: clients
 * ignore such lines), 'malformed_signature' when it is not a well-formed
 * cosignature/v1, 'invalid_signature' when the signature does not verify
 * (a different checkpoint, an altered timestamp, another key).
 * Whether the timestamp is too far in the future is the caller's policy.
 */
export function verifyCosignature(checkpoint: string, signatureLine: string, witness: CosignatureVerifier): number {
  const body = checkpointBody(checkpoint);
  parseCheckpointLines(body);
  const signature = parseSignatureLine(signatureLine);
  if (signature.name !== witness.name || signature.keyId !== witness.keyId) throw new NoteError('unknown_key', `signature is not from witness ${witness.name}`);
  const timestamp = cosignatureTimestamp(signature);
  if (!witness.verify(Buffer.from(body, 'utf8'), signature.signature)) throw new NoteError('invalid_signature', `invalid cosignature from witness ${witness.name}`);
  return timestamp;
}

/**
 * The timestamp carried by a cosignature/v1 signature, unverified (e.g. for
 * a signature `openNote` already verified). Refuses a signature of the wrong
 * length or a timestamp above 2^63 - 1 (§Format) or above 2^53 - 1 (not a
 * safe JavaScript integer; some 285 million years from now).
 */
export function cosignatureTimestamp(signature: NoteSignature): number {
  const timestamp = readTimestamp(signature.signature);
  if (timestamp === null) throw new NoteError('malformed_signature', 'not a cosignature/v1 timestamped signature');
  return timestamp;
}

/** A signed note's text, or the text itself when it has no signature block (a checkpoint body has no empty line). */
function checkpointBody(checkpoint: string): string {
  return checkpoint.includes('\n\n') ? parseNote(checkpoint).text : checkpoint;
}

function readTimestamp(timestampedSignature: Uint8Array): number | null {
  if (timestampedSignature.length !== TIMESTAMPED_SIGNATURE_SIZE) return null;
  const value = new DataView(timestampedSignature.buffer, timestampedSignature.byteOffset, TIMESTAMP_SIZE).getBigUint64(0);
  if (value > MAX_TIMESTAMP || value > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(value);
}

class Ed25519CosignatureVerifier implements CosignatureVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly signatureType = SIGNATURE_TYPE_COSIGNATURE_V1;
  readonly #publicKey: KeyObject;
  constructor(name: string, keyId: number, publicKey: KeyObject) {
    this.name = name;
    this.keyId = keyId;
    this.#publicKey = publicKey;
  }
  /** `message` is the checkpoint note text; `signature` the timestamped_signature. */
  verify(message: Uint8Array, signature: Uint8Array): boolean {
    const timestamp = readTimestamp(signature);
    if (timestamp === null) return false;
    let signed: string;
    try {
      signed = cosignatureMessage(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(message), timestamp);
    } catch {
      return false; // not UTF-8, or not a checkpoint: nothing a cosignature can cover
    }
    return ed25519Verify(this.#publicKey, Buffer.from(signed, 'utf8'), signature.subarray(TIMESTAMP_SIZE));
  }
}

/** A witness key: the timestamp, then an Ed25519 signature of the cosignature/v1 message. */
class Ed25519CosignatureSigner implements CosignatureSigner {
  readonly name: string;
  readonly keyId: number;
  readonly verifierKey: string;
  readonly #key: Ed25519Signer;
  constructor(key: Ed25519Signer) {
    this.name = key.name;
    this.keyId = key.keyId;
    this.verifierKey = key.verifierKey;
    this.#key = key;
  }
  sign(body: string, timestamp: number): Uint8Array {
    const message = Buffer.from(cosignatureMessage(body, timestamp), 'utf8');
    const signature = new Uint8Array(TIMESTAMPED_SIGNATURE_SIZE);
    new DataView(signature.buffer).setBigUint64(0, BigInt(timestamp));
    signature.set(this.#key.sign(message), TIMESTAMP_SIZE);
    return signature;
  }
}
