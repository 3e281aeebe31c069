/**
 * The offline verifier of one person's audit history (Ledger.subjectHistory,
 * the `audit` member of a privacy export): trusting nothing but the log's
 * public key, it checks that
 *
 * 1. the checkpoint is a C2SP signed note (tlog-checkpoint) signed by that
 *    key, for the log's origin (the key's name), and the history's `size`
 *    and `origin` are the checkpoint's ('bad_signature', 'wrong_origin',
 *    'malformed_checkpoint', 'size_mismatch');
 * 2. every entry's bytes (`entryBase64`) are what the ledger writes, UTF-8
 *    JSON of an object in RFC 8785 canonical form ('bad_entry'), and
 *    `entry` is exactly those bytes decoded: its canonical form is the same
 *    text ('entry_mismatch'), so what the person reads is what was proven;
 * 3. every entry is leaf `index` of the tree the checkpoint signs: its RFC
 *    9162 2.1.3.2 inclusion proof leads from SHA-256(0x00 || bytes) to the
 *    checkpoint's root ('bad_proof'), with the size taken from the signed
 *    checkpoint, never from the history;
 * 4. indices are distinct and ascending, as the ledger lists them
 *    ('duplicate', 'out_of_order', 'bad_index').
 *
 * It cannot show that no entry about the person was left out: which entries
 * name whom is the ledger's index, not part of the signed tree.
 *
 * Pure and synchronous; the input is `unknown` (parsed from a file the
 * person received), and malformed input becomes a problem, never a throw.
 */
import canonicalize from 'canonicalize';
import { decodeBase64Strict } from '../crypto/index.ts';
import { NoteError, openCheckpoint, type Checkpoint, type NoteVerifier } from './checkpoint/index.ts';
import { leafHash, verifyInclusion } from './merkle/index.ts';
import { entryFormProblem } from './verify-canonical.ts';
import { Problems } from './verify-problems.ts';

export type HistoryProblemKind =
  /** The history is not an object of the expected shape (or one entry is not). */
  | 'malformed_history'
  /** The checkpoint is not signed by the log key (or not by it alone): forged, or from another log. */
  | 'bad_signature'
  /** The checkpoint, or the history's `origin`, names another log than the key's. */
  | 'wrong_origin'
  /** The checkpoint is not a well-formed signed checkpoint note. */
  | 'malformed_checkpoint'
  /** The history's `size` is not the signed checkpoint's. */
  | 'size_mismatch'
  /** An entry's bytes are not UTF-8 JSON of an object in RFC 8785 canonical form. */
  | 'bad_entry'
  /** An entry's decoded `entry` is not what its bytes hold. */
  | 'entry_mismatch'
  /** An entry's inclusion proof does not lead to the checkpoint's root. */
  | 'bad_proof'
  /** An index is not a non-negative safe integer. */
  | 'bad_index'
  /** An index occurs twice. */
  | 'duplicate'
  /** An index arrives after a larger one. */
  | 'out_of_order';

export interface HistoryProblem {
  readonly kind: HistoryProblemKind;
  /** The entry's index in the log, where known. */
  readonly index?: number;
  /** One line for a human. */
  readonly message: string;
}

export interface HistoryReport {
  /** No problem found: `problems` is empty. */
  readonly ok: boolean;
  /** Entries in the history. */
  readonly entries: number;
  /** Entries whose bytes, decoded form and inclusion proof all checked out. */
  readonly verified: number;
  /** The signed checkpoint, when it verified. */
  readonly checkpoint?: Checkpoint;
  /** In the order found; at most PROBLEMS_PER_KIND of each kind. */
  readonly problems: readonly HistoryProblem[];
  /** Problems found beyond PROBLEMS_PER_KIND of their kind and left out of `problems`. */
  readonly problemsOmitted: number;
}

export interface HistoryVerifyOptions {
  /** The log's public key (signed-note vkey) the person trusts. Its name is the log's origin. */
  readonly logKey: NoteVerifier;
}

/** Verifies a subject history (the shape of Ledger.subjectHistory) against the log key. */
export function verifySubjectHistory(history: unknown, options: HistoryVerifyOptions): HistoryReport {
  const problems = new Problems<HistoryProblem>();
  const report = (entries: number, verified: number, checkpoint?: Checkpoint): HistoryReport => ({
    ok: problems.list.length === 0,
    entries,
    verified,
    ...(checkpoint !== undefined && { checkpoint }),
    problems: problems.list,
    problemsOmitted: problems.omitted,
  });
  if (!isRecord(history) || !Array.isArray(history['entries'])) {
    problems.add({ kind: 'malformed_history', message: 'the history is not an object with an entries array' });
    return report(0, 0);
  }
  const entries = history['entries'] as unknown[];
  const checkpoint = openHistoryCheckpoint(history['checkpoint'], options.logKey, problems);
  if (checkpoint !== undefined) {
    if (history['size'] !== checkpoint.size) {
      problems.add({ kind: 'size_mismatch', message: `the history claims size ${JSON.stringify(history['size'])}, its signed checkpoint has size ${checkpoint.size}` });
    }
    if (history['origin'] !== undefined && history['origin'] !== checkpoint.origin) {
      problems.add({ kind: 'wrong_origin', message: `the history names origin ${JSON.stringify(history['origin'])}, its signed checkpoint is of ${checkpoint.origin}` });
    }
  }
  let verified = 0;
  let previous = -1;
  entries.forEach((item, position) => {
    const index = isRecord(item) ? item['index'] : undefined;
    if (!Number.isSafeInteger(index) || (index as number) < 0) {
      problems.add({ kind: 'bad_index', message: `entry ${position} of the history has no valid index (${String(index)})` });
      return;
    }
    const at = index as number;
    if (at === previous) problems.add({ kind: 'duplicate', index: at, message: `entry ${at} is listed twice` });
    else if (at < previous) problems.add({ kind: 'out_of_order', index: at, message: `entry ${at} is listed after entry ${previous}` });
    previous = Math.max(previous, at);
    if (checkEntry(item as Record<string, unknown>, at, checkpoint, problems)) verified++;
  });
  return report(entries.length, verified, checkpoint);
}

/** Checks one entry: shape, form, bytes against `entry`, and (with a checkpoint) its proof. True when all hold. */
function checkEntry(item: Record<string, unknown>, index: number, checkpoint: Checkpoint | undefined, problems: Problems<HistoryProblem>): boolean {
  const { entry, entryBase64, proof } = item;
  const bytes = typeof entryBase64 === 'string' ? decodeBase64Strict(entryBase64) : null;
  const hashes = Array.isArray(proof) ? (proof as unknown[]).map((element) => (typeof element === 'string' ? decodeBase64Strict(element) : null)) : null;
  if (bytes === null || hashes === null || hashes.some((hash) => hash === null || hash.length !== 32)) {
    problems.add({ kind: 'malformed_history', index, message: `entry ${index} needs entryBase64 (canonical base64) and a proof of base64 32-byte hashes` });
    return false;
  }
  const form = entryFormProblem(bytes);
  if (form !== undefined) {
    problems.add({ kind: 'bad_entry', index, message: `entry ${index} ${form}` });
    return false;
  }
  // Both canonical: equal texts mean equal JSON values, and the bytes are
  // canonical already (checked above), so they are their own canonical text.
  let decoded: string | undefined;
  try {
    decoded = canonicalize(entry);
  } catch {
    decoded = undefined; // a lone surrogate or a non-finite number: not the bytes
  }
  if (decoded !== new TextDecoder().decode(bytes)) {
    problems.add({ kind: 'entry_mismatch', index, message: `entry ${index}: the entry shown is not the one its bytes hold (and the proof covers the bytes)` });
    return false;
  }
  if (checkpoint === undefined) return false; // nothing signed to prove it against (reported already)
  if (!verifyInclusion(leafHash(bytes), index, checkpoint.size, hashes as Uint8Array[], checkpoint.rootHash)) {
    const beyond = index >= checkpoint.size ? ` (it lies beyond the checkpoint's size ${checkpoint.size})` : '';
    problems.add({ kind: 'bad_proof', index, message: `entry ${index} is not proven in the signed checkpoint of size ${checkpoint.size}: its inclusion proof does not lead to the signed root${beyond}` });
    return false;
  }
  return true;
}

/** Opens the history's checkpoint with the log key; a note that does not open becomes a problem and `undefined`. */
function openHistoryCheckpoint(note: unknown, logKey: NoteVerifier, problems: Problems<HistoryProblem>): Checkpoint | undefined {
  if (typeof note !== 'string') {
    problems.add({ kind: 'malformed_checkpoint', message: 'the history has no checkpoint note' });
    return undefined;
  }
  try {
    return openCheckpoint(note, logKey);
  } catch (error) {
    const code = error instanceof NoteError ? error.code : 'malformed_note';
    const reason = error instanceof Error ? error.message : String(error);
    if (code === 'origin_mismatch') problems.add({ kind: 'wrong_origin', message: `the checkpoint is of another log than ${logKey.name}: ${reason}` });
    else if (code === 'invalid_signature' || code === 'unverified_note' || code === 'unknown_key') {
      problems.add({ kind: 'bad_signature', message: `the checkpoint is not signed by log key ${logKey.name} (forged, or another log's): ${reason}` });
    } else problems.add({ kind: 'malformed_checkpoint', message: `the checkpoint is malformed: ${reason}` });
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
