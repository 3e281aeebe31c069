/**
 * C2SP formats of the audit ledger's signed checkpoints: signed notes
 * (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint) and witness
 * cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1).
 * Pure functions; every refusal is a `NoteError` with a `code`. The signed
 * note itself (keys, signing, verifying) is the crypto core's; this module
 * keeps the checkpoint and cosignature formats built on it.
 */
export {
  NoteError,
  MAX_NOTE_SIGNATURES,
  SIGNATURE_TYPE_ED25519,
  computeKeyId,
  formatKeyId,
  formatNote,
  formatSignatureLine,
  generateSignerKey,
  isValidKeyName,
  openNote,
  parseNote,
  parseSignatureLine,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifierKeyFromPublicKey,
  type Ed25519NoteSigner,
  type GeneratedKey,
  type Note,
  type NoteErrorCode,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  type OpenedNote,
  type VerifiedSignature,
} from '../../crypto/index.ts';
export { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint, type CheckpointFields } from './checkpoint.ts';
export {
  SIGNATURE_TYPE_COSIGNATURE_V1,
  cosign,
  cosignatureMessage,
  cosignatureTimestamp,
  generateCosignatureKey,
  parseCosignatureSignerKey,
  parseCosignatureVerifierKey,
  verifyCosignature,
  type CosignatureSigner,
  type CosignatureVerifier,
} from './cosignature.ts';
