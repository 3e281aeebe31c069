/**
 * C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: the signing
 * primitive under the audit ledger's checkpoints and witness cosignatures.
 */
export { NoteError, type NoteErrorCode } from './errors.ts';
export { ED25519_KEY_SIZE, ED25519_SIGNATURE_SIZE, ed25519PublicKey, ed25519Sign, ed25519Verify } from './ed25519.ts';
export {
  SIGNATURE_TYPE_ED25519,
  Ed25519Signer,
  computeKeyId,
  ed25519SignerFromKeyText,
  encodeKeyText,
  formatKeyId,
  generateEd25519KeyText,
  generateSignerKey,
  isValidKeyName,
  parseEd25519SignerKeyText,
  parseKeyText,
  parseSignerKey,
  parseVerifierKey,
  verifierKeyFromPublicKey,
  type Ed25519NoteSigner,
  type GeneratedKey,
  type KeyText,
  type NoteSigner,
  type NoteVerifier,
} from './keys.ts';
export {
  MAX_NOTE_SIGNATURES,
  formatNote,
  formatSignatureLine,
  openNote,
  parseNote,
  parseSignatureLine,
  signNote,
  type Note,
  type NoteSignature,
  type OpenedNote,
  type VerifiedSignature,
} from './note.ts';
export { assertNoteText, decodeBase64Strict } from './text.ts';
