/**
 * The verifier's list of problems: at most PROBLEMS_PER_KIND of each kind
 * reach the report, and the first bad index is worked out over all of them.
 */
import type { VerifyProblem } from './verify-types.ts';

/** A report lists this many problems of one kind; a log with a million bad rows needs no million lines. */
export const PROBLEMS_PER_KIND = 100;

/** What the list needs of a problem (the log verifier's, or a history's: verify-history.ts). */
export interface ProblemLike {
  readonly kind: string;
  readonly index?: number;
  readonly end?: number;
}

/** Collects problems, keeping at most PROBLEMS_PER_KIND of each kind, and what firstBadIndex needs of all of them. */
export class Problems<P extends ProblemLike = VerifyProblem> {
  readonly list: P[] = [];
  omitted = 0;
  #exact: number | undefined;
  /** Ranges [start, end) of range problems (one per bad checkpoint at most). */
  readonly #ranges: { start: number; end: number }[] = [];
  readonly #perKind = new Map<string, number>();

  /** Records a problem; `always` lists it even past PROBLEMS_PER_KIND (for a summary the reader must see). */
  add(problem: P, always = false): void {
    const { index, end } = problem;
    if (index !== undefined && end !== undefined) this.#ranges.push({ start: index, end });
    else if (index !== undefined && (this.#exact === undefined || index < this.#exact)) this.#exact = index;
    const seen = this.#perKind.get(problem.kind) ?? 0;
    this.#perKind.set(problem.kind, seen + 1);
    if (seen < PROBLEMS_PER_KIND || always) this.list.push(problem);
    else this.omitted++;
  }

  /** The least exact index, or the start of a range that no exact index below its end accounts for. */
  firstBadIndex(): number | undefined {
    let first = this.#exact;
    for (const { start, end } of this.#ranges) {
      const explained = this.#exact !== undefined && this.#exact < end;
      if (!explained && (first === undefined || start < first)) first = start;
    }
    return first;
  }
}
