/**
 * The structure check of the verifier: entry indices must be exactly
 * 0, 1, 2, ... A hole is a deleted entry, a repeat an inserted one, a late
 * smaller index a reordering.
 */

/**
 * Index anomalies tracked before the order check gives up. It keeps one
 * interval per anomaly and inserts in O(intervals), so this bounds both the
 * memory and the time a shuffled export can cost; the report lists at most
 * PROBLEMS_PER_KIND of each kind anyway.
 */
export const MAX_INDEX_RUNS = 10_000;

/**
 * The set of indices seen, as sorted disjoint intervals: one interval for an
 * intact log, one more per anomaly. `next` classifies each index against the
 * previous one: the next in sequence, a forward jump (a hole, reported at the
 * end if never filled), a repeat of a seen index, or a late arrival of an
 * unseen smaller one. Comparing with the previous index (not the largest
 * seen) keeps a swap of entries i < j to two reports (i + 1 after j, i after
 * j - 1), not j - i of them.
 */
/** How an index follows the previous one: as expected, past a hole, repeated, late, or not an index at all. */
export type IndexVerdict = 'next' | 'jump' | 'duplicate' | 'out_of_order' | 'invalid';

export class IndexTracker {
  readonly #starts: number[] = [];
  readonly #ends: number[] = []; // exclusive
  /** The interval that holds #previous. */
  #current = -1;
  #previous = -1;
  /** The index seen before the last call to `next` (for messages). */
  previousBefore = -1;
  gaveUp = false;

  /** Records `index` and says how it follows the previous one. */
  next(index: unknown): IndexVerdict {
    if (this.gaveUp) return 'next';
    if (index === this.#previous + 1 && this.#current >= 0 && this.#ends[this.#current] === index) {
      // Fast path: extend the current interval, merging with the next one if they now touch.
      this.#ends[this.#current] = index + 1;
      if (this.#starts[this.#current + 1] === index + 1) this.#merge(this.#current);
      this.#previous = index;
      return 'next';
    }
    if (!isCount(index)) return 'invalid';
    this.previousBefore = this.#previous;
    const found = this.#find(index); // the last interval with start <= index, or -1
    if (found >= 0 && index < this.#ends[found]!) return 'duplicate';
    // Unseen. previous + 1 reaches here only for the very first entry: the
    // interval holding previous would otherwise have taken the fast path.
    const verdict = index === this.#previous + 1 ? 'next' : index < this.#previous ? 'out_of_order' : 'jump';
    this.#insert(index, found);
    this.#previous = index;
    if (this.#starts.length > MAX_INDEX_RUNS) this.gaveUp = true;
    return verdict;
  }

  /** The holes in [0, largest index seen]: deleted entries. None once the tracker gave up, as it stopped recording. */
  holes(): { start: number; end: number }[] {
    const holes: { start: number; end: number }[] = [];
    if (this.gaveUp) return holes;
    let covered = 0;
    for (let i = 0; i < this.#starts.length; i++) {
      if (this.#starts[i]! > covered) holes.push({ start: covered, end: this.#starts[i]! });
      covered = this.#ends[i]!;
    }
    return holes;
  }

  #find(index: number): number {
    let low = 0;
    let high = this.#starts.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.#starts[middle]! <= index) {
        found = middle;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }

  /** Adds an unseen index after interval `before` (-1: before all), extending or merging neighbours. */
  #insert(index: number, before: number): void {
    if (before >= 0 && this.#ends[before] === index) {
      this.#ends[before] = index + 1;
      if (this.#starts[before + 1] === index + 1) this.#merge(before);
      this.#current = before;
    } else if (this.#starts[before + 1] === index + 1) {
      this.#starts[before + 1] = index;
      this.#current = before + 1;
    } else {
      this.#starts.splice(before + 1, 0, index);
      this.#ends.splice(before + 1, 0, index + 1);
      this.#current = before + 1;
    }
  }

  /** Joins interval i with interval i + 1, which starts where i ends. */
  #merge(i: number): void {
    this.#ends[i] = this.#ends[i + 1]!;
    this.#starts.splice(i + 1, 1);
    this.#ends.splice(i + 1, 1);
  }
}

/** An entry index or a size: a non-negative safe integer. */
export function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
