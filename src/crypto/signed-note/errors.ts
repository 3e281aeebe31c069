/**
 * Errors of signed notes and the formats built on them (checkpoints,
 * cosignatures): one class, with a `code` callers switch on.
 */

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
