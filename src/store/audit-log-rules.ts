import type { TreeNodeAddress } from './ports.ts';

/** Most entries one `append` takes: bounds a transaction's size and time. */
export const MAX_APPEND_BATCH = 10_000;
/** Most entries one `entries` call returns. */
export const MAX_ENTRY_PAGE = 1000;

/** Most subjects one entry is indexed under (the ledger names at most two: the actor and detail.subject). */
export const MAX_SUBJECTS_PER_ENTRY = 16;
/** Longest subject key (an audit pseudonym is 43 characters). */
export const MAX_SUBJECT_LENGTH = 256;
/** Most indices one `indexSubject` call takes. */
export const MAX_INDEX_SUBJECT_BATCH = 10_000;

/** One row of the subject index. */
export interface SubjectRow {
  readonly subject: string;
  readonly index: number;
}

/**
 * Argument checks every audit-log driver applies before touching its
 * database; returns the subject index rows of the append, entry `i` at
 * index `first + i`, each subject once per entry.
 */
export function checkAppend(entries: readonly Uint8Array[], recordedAt: number, subjects?: readonly (readonly string[])[]): (first: number) => SubjectRow[] {
  if (entries.length === 0 || entries.length > MAX_APPEND_BATCH) {
    throw new RangeError(`an append takes 1 to ${MAX_APPEND_BATCH} entries, got ${entries.length}`);
  }
  if (!Number.isSafeInteger(recordedAt) || recordedAt < 0) throw new TypeError('recordedAt must be a non-negative integer (ms)');
  for (const entry of entries) {
    if (!(entry instanceof Uint8Array) || entry.length === 0) throw new TypeError('an audit entry must be a non-empty Uint8Array');
  }
  if (subjects === undefined) return () => [];
  if (!Array.isArray(subjects) || subjects.length !== entries.length) throw new TypeError('subjects must be an array parallel to entries');
  const perEntry = subjects.map((list: unknown) => {
    if (!Array.isArray(list) || list.length > MAX_SUBJECTS_PER_ENTRY) throw new TypeError(`an entry's subjects must be an array of at most ${MAX_SUBJECTS_PER_ENTRY}`);
    for (const subject of list as unknown[]) assertSubject(subject);
    return [...new Set(list as string[])];
  });
  return (first) => perEntry.flatMap((list, i) => list.map((subject) => ({ subject, index: first + i })));
}

export function assertSubject(subject: unknown): asserts subject is string {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH || !subject.isWellFormed()) {
    throw new TypeError(`a subject must be a well-formed string of 1 to ${MAX_SUBJECT_LENGTH} characters`);
  }
}

/** The keyset position of `subjectEntries`: entries after this index (-1: from the start). */
export function subjectCursor(after: number | undefined): number {
  if (after === undefined) return -1;
  if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`after must be a non-negative integer index, got ${String(after)}`);
  return after;
}

/** The distinct indices of an `indexSubject` call, each a valid entry index. */
export function checkSubjectIndices(indices: readonly number[]): number[] {
  if (!Array.isArray(indices) || indices.length > MAX_INDEX_SUBJECT_BATCH) throw new RangeError(`indexSubject takes at most ${MAX_INDEX_SUBJECT_BATCH} indices`);
  for (const index of indices) {
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`bad entry index ${String(index)}`);
  }
  return [...new Set<number>(indices)];
}

export function assertEntryRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`bad entry range [${start}, ${end})`);
  }
}

export function assertNodeAddresses(addresses: readonly TreeNodeAddress[]): void {
  for (const { level, index } of addresses) {
    if (!Number.isSafeInteger(level) || level < 0 || level > 63 || !Number.isSafeInteger(index) || index < 0) {
      throw new RangeError(`bad tree node address (${level}, ${index})`);
    }
  }
}
