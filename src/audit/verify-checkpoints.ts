/**
 * The checkpoint checks of the verifier: every checkpoint note, stored or
 * trusted, must be a C2SP signed note (tlog-checkpoint) signed by the log
 * key for the log's origin; two of one size must agree; and each must commit
 * to the RFC 9162 root of the entries at its size. A checkpoint that does
 * not is reported with the range, or with stored leaf hashes the exact
 * entry, that explains it.
 */
import { types } from 'node:util';
import { NoteError, openCheckpoint, parseCheckpoint, parseNote, type Checkpoint, type NoteVerifier } from './checkpoint/index.ts';
import { equalHashes, leafHash } from './merkle/index.ts';
import { entryBytes } from './verify-entries.ts';
import type { Problems } from './verify-problems.ts';
import type { VerifyEntry, VerifySource } from './verify-types.ts';

/** Leaf hashes compared per storedLeafHashes call while localising a root mismatch. */
const LOCALISE_CHUNK = 4096;


export interface SignedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: string;
  readonly trusted: boolean;
}

/** Opens one note with the log key; a note that does not open becomes a problem and `undefined`. */
export function openLogCheckpoint(note: unknown, logKey: NoteVerifier, trusted: boolean, problems: Problems): SignedCheckpoint | undefined {
  try {
    if (typeof note !== 'string') throw new NoteError('malformed_note', 'checkpoint note is not a string');
    return { checkpoint: openCheckpoint(note, logKey), note, trusted };
  } catch (error) {
    // openCheckpoint throws NoteError for every bad input; anything else is
    // malformed input too, and the verdict must not throw.
    const code = error instanceof NoteError ? error.code : 'malformed_note';
    const reason = error instanceof Error ? error.message : String(error);
    // The size the note claims, unverified, so the reader can tell which note it is.
    const size = claimedCheckpointSize(note);
    const about = size === undefined ? {} : { checkpointSize: size };
    const which = size === undefined ? '' : ` (claiming size ${size})`;
    if (trusted) {
      problems.add({ kind: 'trusted_unverifiable', ...about, trusted: true, message: `a trusted checkpoint${which} does not verify with log key ${logKey.name}: ${reason}` });
    } else if (code === 'origin_mismatch') {
      problems.add({ kind: 'wrong_origin', ...about, message: `a stored checkpoint${which} is for another origin than ${logKey.name}: ${reason}` });
    } else if (code === 'invalid_signature' || code === 'unverified_note' || code === 'unknown_key') {
      problems.add({ kind: 'bad_signature', ...about, message: `a stored checkpoint${which} is not signed by log key ${logKey.name} (forged): ${reason}` });
    } else {
      problems.add({ kind: 'malformed_checkpoint', ...about, message: `a stored checkpoint${which} is malformed: ${reason}` });
    }
    return undefined;
  }
}

function claimedCheckpointSize(note: unknown): number | undefined {
  try {
    return typeof note === 'string' ? parseCheckpoint(parseNote(note).text).size : undefined;
  } catch {
    return undefined;
  }
}

/** Two signed checkpoints of one size with different roots are proof that the log key signed two histories. */
export function checkSameSizeAgreement(signed: readonly SignedCheckpoint[], problems: Problems): void {
  const bySize = new Map<number, SignedCheckpoint>();
  const reported = new Set<number>();
  for (const candidate of signed) {
    const { size, rootHash } = candidate.checkpoint;
    const first = bySize.get(size);
    if (first === undefined) bySize.set(size, candidate);
    else if (!equalHashes(first.checkpoint.rootHash, rootHash) && !reported.has(size)) {
      reported.add(size);
      problems.add({
        kind: 'inconsistent_checkpoints',
        checkpointSize: size,
        ...(first.trusted || candidate.trusted ? { trusted: true } : {}),
        message: `two checkpoints of size ${size} signed by the log key have different roots (${describe(first)} and ${describe(candidate)})`,
      });
    }
  }
}

/**
 * One problem per bad checkpoint of size S: 'rollback' when S exceeds the
 * entry count, else 'root_mismatch'. Either way some entry in [P, S) is not
 * the one signed, P being the size of the largest good checkpoint below S.
 * With stored leaf hashes, one extra pass per distinct P names the first
 * entry in [P, min(S, count)) whose leaf hash differs from the stored one.
 * Without, or when none differs, the index is P (or, for a rollback checked
 * against stored hashes, the first missing entry).
 */
export async function reportBadCheckpoints(
  source: VerifySource,
  bad: readonly SignedCheckpoint[],
  good: readonly SignedCheckpoint[],
  count: number,
  problems: Problems,
): Promise<void> {
  const goodSizes = good.map(({ checkpoint }) => checkpoint.size); // ascending
  const previousGood = (size: number): number => goodSizes.findLast((goodSize) => goodSize < size) ?? 0;
  const canLocalise = source.storedLeafHashes !== undefined;
  const firstDifference = new Map<number, number | undefined>();
  if (canLocalise) {
    const rangeEnd = new Map<number, number>();
    for (const { checkpoint } of bad) {
      const start = previousGood(checkpoint.size);
      rangeEnd.set(start, Math.max(rangeEnd.get(start) ?? 0, Math.min(checkpoint.size, count)));
    }
    for (const [start, end] of rangeEnd) firstDifference.set(start, await firstStoredLeafDifference(source, start, end));
  }
  for (const candidate of bad) {
    const { size } = candidate.checkpoint;
    const start = previousGood(size);
    const found = firstDifference.get(start);
    const differs = found !== undefined && found < Math.min(size, count) ? found : undefined;
    const about = { checkpointSize: size, ...trustedFlag(candidate) };
    if (size > count) {
      const removed = `${describe(candidate)} of size ${size} covers more than the ${count} entries the log holds: signed entries from ${count} on were removed`;
      if (differs !== undefined) {
        problems.add({ kind: 'rollback', index: differs, ...about, message: `${removed}, and entry ${differs} differs from its stored leaf hash` });
      } else if (canLocalise || start === count) {
        problems.add({ kind: 'rollback', index: count, ...about, message: removed });
      } else {
        const below = start > 0 ? `the largest good checkpoint below has size ${start}` : 'no good checkpoint lies below';
        const message = `${removed}; entries [${start}, ${count}) are unproven too (${below})`;
        problems.add({ kind: 'rollback', index: start, end: size, ...about, message });
      }
    } else {
      const mismatch = `${describe(candidate)} of size ${size} does not match the entries`;
      const after = start > 0 ? `, after the good checkpoint of size ${start}` : '';
      if (differs !== undefined) {
        problems.add({ kind: 'root_mismatch', index: differs, ...about, message: `${mismatch}: entry ${differs} differs from its stored leaf hash` });
      } else {
        const why = canLocalise
          ? ' (every stored leaf hash in that range matches its entry: the node rows were rewritten too, or the checkpoint was signed over other entries)'
          : '';
        problems.add({ kind: 'root_mismatch', index: start, end: size, ...about, message: `${mismatch}: a bad entry lies in [${start}, ${size})${after}${why}` });
      }
    }
  }
}

/** Re-reads the entries at positions [start, end) and returns the first whose leaf hash is not the stored one. */
async function firstStoredLeafDifference(source: VerifySource, start: number, end: number): Promise<number | undefined> {
  const readStored = source.storedLeafHashes?.bind(source);
  if (readStored === undefined || start >= end) return undefined;
  let position = 0;
  let chunkStart = start;
  let chunk: Uint8Array[] = [];
  const compare = async (): Promise<number | undefined> => {
    const storedHashes = await readStored(chunkStart, chunkStart + chunk.length);
    for (let i = 0; i < chunk.length; i++) {
      const storedHash: unknown = storedHashes[i];
      if (!types.isUint8Array(storedHash) || !equalHashes(storedHash, chunk[i]!)) return chunkStart + i;
    }
    chunkStart += chunk.length;
    chunk = [];
    return undefined;
  };
  for await (const item of source.entries()) {
    const batch = Array.isArray(item) ? (item as readonly VerifyEntry[]) : [item as VerifyEntry];
    for (const entry of batch) {
      if (position >= start && position < end) {
        chunk.push(leafHash(entryBytes(entry)));
        if (chunk.length === LOCALISE_CHUNK) {
          const found = await compare();
          if (found !== undefined) return found;
        }
      }
      position++;
    }
    if (position >= end) break;
  }
  return chunk.length > 0 ? compare() : undefined;
}

function describe(candidate: SignedCheckpoint): string {
  return candidate.trusted ? 'the trusted checkpoint' : 'the stored checkpoint';
}

function trustedFlag(candidate: SignedCheckpoint): { trusted?: true } {
  return candidate.trusted ? { trusted: true } : {};
}

/** Larger size first; among equal sizes the later time, then a stored note over a trusted one (the log's own). */
export function isLater(a: SignedCheckpoint, b: SignedCheckpoint): boolean {
  if (a.checkpoint.size !== b.checkpoint.size) return a.checkpoint.size > b.checkpoint.size;
  const timeA = a.checkpoint.time ?? -1;
  const timeB = b.checkpoint.time ?? -1;
  if (timeA !== timeB) return timeA > timeB;
  return !a.trusted && b.trusted;
}
