/**
 * The verifier's streaming pass: one pass over the entries checks their
 * structure (verify-indices.ts) and form (verify-canonical.ts), appends each
 * leaf to a compact range (merkle/compact-range.ts, the ledger's own append)
 * and records the root at every size a checkpoint claims.
 */
import { types } from 'node:util';
import { CompactRange, leafHash } from './merkle/index.ts';
import { entryFormProblem } from './verify-canonical.ts';
import { IndexTracker, MAX_INDEX_RUNS, isCount, type IndexVerdict } from './verify-indices.ts';
import type { Problems } from './verify-problems.ts';
import type { VerifyEntry } from './verify-types.ts';

/** Progress is reported every this many entries. */
export const PROGRESS_INTERVAL = 65_536;

/**
 * Consumes entries one at a time: checks index and form, hashes the leaf,
 * extends the compact range and records the root at every target size.
 * Memory: the compact range (log2 n hashes) plus one interval per index
 * anomaly (none in an intact log).
 */
export class EntryScan {
  /** Roots at each target size reached (size 0 included when targeted). */
  readonly roots = new Map<number, Uint8Array>();
  readonly #targets: readonly number[];
  #nextTarget: number;
  #targetIndex = 0;
  readonly #checkCanonical: boolean;
  readonly #problems: Problems;
  readonly #onProgress: ((done: number, total: number) => void) | undefined;
  readonly #total: number;
  /** The tree of the entries read so far; its size is the entry count. */
  readonly #range = new CompactRange();
  readonly #indices = new IndexTracker();

  constructor(targets: readonly number[], checkCanonical: boolean, problems: Problems, onProgress: ((done: number, total: number) => void) | undefined, total: number) {
    this.#targets = targets;
    this.#checkCanonical = checkCanonical;
    this.#problems = problems;
    this.#onProgress = onProgress;
    this.#total = total;
    this.#nextTarget = targets[0] ?? -1;
    this.#reachTargets();
  }

  add(entry: VerifyEntry): void {
    const position = this.#range.size;
    const index: unknown = (entry as Partial<VerifyEntry> | null)?.index;
    const verdict = this.#indices.next(index);
    if (verdict !== 'next') this.#indexAnomaly(verdict, index, position);
    const bytes = entryBytes(entry);
    if (bytes !== (entry as Partial<VerifyEntry> | null)?.entry) this.#badEntry(index, position, 'is not a byte array');
    else if (this.#checkCanonical) {
      const problem = entryFormProblem(bytes);
      if (problem !== undefined) this.#badEntry(index, position, problem);
    }

    this.#range.append(leafHash(bytes));
    const count = position + 1;
    if (count === this.#nextTarget) this.#reachTargets();
    if (count % PROGRESS_INTERVAL === 0) this.#onProgress?.(count, this.#total);
  }

  /** Ends the stream: reports the holes left in the index sequence, calls onProgress a last time, returns the entry count. */
  finish(): number {
    for (const hole of this.#indices.holes()) {
      const size = hole.end - hole.start;
      this.#problems.add({
        kind: 'gap',
        index: hole.start,
        message: size === 1 ? `entry ${hole.start} is missing` : `entries ${hole.start} to ${hole.end - 1} are missing (${size})`,
      });
    }
    if (this.#indices.gaveUp) {
      this.#problems.add({ kind: 'out_of_order', message: `more than ${MAX_INDEX_RUNS} index anomalies: the index check stopped there` }, true);
    }
    this.#onProgress?.(this.#range.size, this.#total);
    return this.#range.size;
  }

  #reachTargets(): void {
    while (this.#nextTarget === this.#range.size) {
      this.roots.set(this.#range.size, this.#range.root());
      this.#nextTarget = this.#targets[++this.#targetIndex] ?? -1;
    }
  }

  #indexAnomaly(verdict: IndexVerdict, index: unknown, position: number): void {
    if (verdict === 'invalid') {
      this.#problems.add({ kind: 'bad_index', index: position, message: `the entry at position ${position} has an invalid index (${String(index)})` });
    } else if (verdict === 'duplicate') {
      this.#problems.add({ kind: 'duplicate', index: index as number, message: `index ${String(index)} occurs again at position ${position}: an entry was inserted` });
    } else if (verdict === 'out_of_order') {
      const message = `entry ${String(index)} comes after entry ${this.#indices.previousBefore}: entries were reordered`;
      this.#problems.add({ kind: 'out_of_order', index: index as number, message });
    }
    // 'jump' (forward): a hole for now; finish() reports it unless filled later.
  }

  #badEntry(index: unknown, position: number, what: string): void {
    const where = isCount(index) ? index : position;
    this.#problems.add({ kind: 'bad_entry', index: where, message: `entry ${where} ${what}` });
  }
}

const EMPTY_ENTRY = new Uint8Array(0);

/** The entry's bytes, or an empty entry when a malformed source gave no byte array (reported as bad_entry; the position still counts). */
export function entryBytes(entry: VerifyEntry): Uint8Array {
  const bytes: unknown = (entry as Partial<VerifyEntry> | null)?.entry;
  return types.isUint8Array(bytes) ? bytes : EMPTY_ENTRY;
}
