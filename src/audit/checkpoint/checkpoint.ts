/**
 * C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint): the
 * signed note the audit ledger publishes for its Merkle tree head.
 *
 *     <origin>\n
 *     <tree size, decimal, no leading zeros>\n
 *     <base64 of the 32-byte RFC 6962 root hash>\n
 *     time <POSIX seconds, decimal, no leading zeros>\n      (optional, ours)
 *
 * The time extension line. tlog-checkpoint §Note text allows opaque, non-empty
 * extension lines after the third (while calling them NOT RECOMMENDED, as
 * monitors cannot audit them) and registers none; no C2SP or
 * transparency-dev convention names a time line (Rekor v1 once wrote
 * "Timestamp: <unix nanoseconds>", since dropped). We write
 * `time <seconds>` with exactly the grammar of the timestamp line in
 * c2sp.org/tlog-cosignature §Ed25519 signed message ("time", one space, POSIX
 * seconds in ASCII decimal with no leading zeros), so one rule reads both. It
 * says when the log signed the checkpoint; witnesses sign it along with the
 * body but make no statement about it (tlog-cosignature).
 *
 * Sizes, roots and times are checked strictly: a checkpoint is what clients
 * compare byte for byte, so there must be exactly one spelling of each.
 */
import { Buffer } from 'node:buffer';
import { NoteError, assertNoteText, decodeBase64Strict, isValidKeyName, openNote, signNote, type NoteSigner, type NoteVerifier } from '../../crypto/index.ts';

/** The tree head a checkpoint commits to. */
export interface Checkpoint {
  /** Log identity; also the log's key name (tlog-checkpoint §Signatures). */
  readonly origin: string;
  /** Number of leaves. A safe integer: tree sizes beyond 2^53 - 1 are refused. */
  readonly size: number;
  /** RFC 6962 Merkle tree hash at `size`: 32 bytes (SHA-256). */
  readonly rootHash: Uint8Array;
  /** When the log signed the checkpoint, in POSIX seconds (the `time` extension line), if present. */
  readonly time?: number;
}

/** What `formatCheckpoint` takes; the same fields as a parsed checkpoint. */
export type CheckpointFields = Checkpoint;

const ROOT_HASH_SIZE = 32;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const TIME_EXTENSION = /^time (0|[1-9][0-9]*)$/;

/** Formats a checkpoint body (the note text, without signatures). */
export function formatCheckpoint(checkpoint: CheckpointFields): string {
  // The origin SHOULD contain neither Unicode spaces nor '+' (tlog-checkpoint
  // §Note text); we also sign with the origin as key name, which MUST obey
  // those rules (signed-note §Format), so ours always do.
  if (!isValidKeyName(checkpoint.origin)) throw new NoteError('malformed_checkpoint', 'origin must be non-empty without spaces, "+" or control characters');
  if (!isUint(checkpoint.size)) throw new NoteError('malformed_checkpoint', 'tree size must be a non-negative safe integer');
  if (!(checkpoint.rootHash instanceof Uint8Array) || checkpoint.rootHash.length !== ROOT_HASH_SIZE) throw new NoteError('malformed_checkpoint', 'root hash must be 32 bytes');
  if (checkpoint.time !== undefined && !isUint(checkpoint.time)) throw new NoteError('malformed_checkpoint', 'time must be non-negative whole seconds');
  const time = checkpoint.time === undefined ? '' : `time ${checkpoint.time}\n`;
  return `${checkpoint.origin}\n${checkpoint.size}\n${Buffer.from(checkpoint.rootHash).toString('base64')}\n${time}`;
}

/**
 * Parses a checkpoint body strictly: the three tlog-checkpoint lines, then at
 * most our one `time` extension line. Any other extension line is refused,
 * since this ledger writes none and a verifier must not silently accept text
 * it does not understand as part of a signed statement.
 */
export function parseCheckpoint(body: string): Checkpoint {
  const { origin, size, rootHash, extensions } = parseCheckpointLines(body);
  const [extension, ...others] = extensions;
  if (extension === undefined) return { origin, size, rootHash };
  const time = TIME_EXTENSION.exec(extension)?.[1];
  if (time === undefined || others.length > 0) throw new NoteError('malformed_checkpoint', 'checkpoint has an extension line other than one "time <seconds>"');
  return { origin, size, rootHash, time: parseUint(time, 'time') };
}

/**
 * The rules of tlog-checkpoint §Note text that hold for every log: at least
 * three non-empty lines, each newline-terminated; non-empty origin; decimal
 * size without leading zeros; base64 root hash (32 bytes: RFC 6962 with
 * SHA-256); extension lines non-empty and otherwise opaque. Also the
 * signed-note text rules, since a body is a note text.
 */
export function parseCheckpointLines(body: string): { origin: string; size: number; rootHash: Uint8Array; extensions: string[] } {
  try {
    assertNoteText(body);
  } catch (error) {
    if (error instanceof NoteError) throw new NoteError('malformed_checkpoint', `checkpoint is not a valid note text: ${error.message}`);
    throw error;
  }
  const lines = body.slice(0, -1).split('\n');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === undefined || sizeText === undefined || rootText === undefined) throw new NoteError('malformed_checkpoint', 'checkpoint has fewer than three lines');
  if (lines.some((line) => line === '')) throw new NoteError('malformed_checkpoint', 'checkpoint lines must be non-empty');
  const rootHash = decodeBase64Strict(rootText);
  if (rootHash === null || rootHash.length !== ROOT_HASH_SIZE) throw new NoteError('malformed_checkpoint', 'root hash must be canonical base64 of 32 bytes');
  return { origin, size: parseUint(sizeText, 'tree size'), rootHash, extensions };
}

/**
 * Formats the checkpoint and signs it as the log. The log's key name SHOULD
 * match the origin (tlog-checkpoint §Signatures); we require it, so a
 * verifier can always find the log's signature by origin.
 */
export function signCheckpoint(checkpoint: CheckpointFields, logSigner: NoteSigner): string {
  if (logSigner.name !== checkpoint.origin) throw new NoteError('origin_mismatch', `log key ${logSigner.name} is not named after the checkpoint origin`);
  return signNote(formatCheckpoint(checkpoint), [logSigner]);
}

/**
 * Verifies a signed checkpoint against the log's key and returns its tree
 * head. Only the log's key is known here, so witness cosignatures and any
 * other signatures are ignored (signed-note §Signatures); a bad signature by
 * the log's own key rejects the note. The origin must equal `expectedOrigin`
 * (by default the log key's name): a valid signature on another log's
 * checkpoint proves nothing about this one.
 */
export function openCheckpoint(noteText: string | Uint8Array, logVerifier: NoteVerifier, expectedOrigin: string = logVerifier.name): Checkpoint {
  const { text } = openNote(noteText, [logVerifier]);
  const checkpoint = parseCheckpoint(text);
  if (checkpoint.origin !== expectedOrigin) throw new NoteError('origin_mismatch', `checkpoint is not from log ${expectedOrigin}`);
  return checkpoint;
}

function parseUint(text: string, what: string): number {
  // 16 digits bounds the work and still covers every safe integer.
  if (!DECIMAL.test(text) || text.length > 16) throw new NoteError('malformed_checkpoint', `${what} must be decimal without leading zeros`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new NoteError('malformed_checkpoint', `${what} exceeds 2^53 - 1`);
  return value;
}

function isUint(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
