/**
 * Read, decide, compare-and-set, retry: the one loop behind every
 * optimistic change in Portcullis (DESIGN.md: "every state change that must
 * not double-spend is one atomic operation in the store"). A feature states
 * what to write given what it read; this module owns the retrying, so the
 * rules "decide on a fresh read after every lost race" and "a bounded number
 * of rounds, then the caller's exhaustion rule" are written once.
 */

/** What a decision step answers: write `value` (on the version read), or stop without writing. */
export type Decision<V, R> = { readonly kind: 'write'; readonly value: V; readonly result: R } | { readonly kind: 'keep'; readonly result: R };

/** Write `value` on the version that was read; the mutation resolves with `result` if the write wins. */
export function write<V>(value: V): Decision<V, undefined>;
export function write<V, R>(value: V, result: R): Decision<V, R>;
export function write<V, R>(value: V, result?: R): Decision<V, R | undefined> {
  return { kind: 'write', value, result };
}

/** Change nothing ("no change" or "abort"): the mutation resolves with `result` at once. */
export function keep<R>(result: R): Decision<never, R> {
  return { kind: 'keep', result };
}

export interface CompareAndSetLoop<S, V, R> {
  /** How many conditional writes to try before `exhausted` decides. */
  readonly attempts: number;
  /** A fresh snapshot (value and version) of the thing being changed. */
  readonly read: () => Promise<S>;
  /** A snapshot the caller already holds, used by the first round instead of a read. */
  readonly initial?: { readonly snapshot: S };
  /** Pure apart from its result: it may run once per round, and only the last round's decision counts. */
  readonly decide: (snapshot: S, attempt: number) => Decision<V, R> | Promise<Decision<V, R>>;
  /** The conditional write: true when it applied (the snapshot was still current), false on a lost race. */
  readonly write: (snapshot: S, value: V) => Promise<boolean>;
  /** Every write lost its race: throw the caller's error, or settle (after its own read) with a result. */
  readonly exhausted: () => R | Promise<R>;
}

export interface LoopOutcome<S, R> {
  readonly result: R;
  /** Whether this call's write applied. */
  readonly written: boolean;
  /** The snapshot the last decision was made on. */
  readonly snapshot: S;
}

export async function compareAndSetLoop<S, V, R>(loop: CompareAndSetLoop<S, V, R>): Promise<LoopOutcome<S, R> | { readonly result: R; readonly written: false; readonly snapshot?: undefined }> {
  if (!Number.isSafeInteger(loop.attempts) || loop.attempts < 1) throw new TypeError(`attempts must be a positive integer, got ${String(loop.attempts)}`);
  for (let attempt = 0; attempt < loop.attempts; attempt++) {
    const snapshot = attempt === 0 && loop.initial !== undefined ? loop.initial.snapshot : await loop.read();
    const decision = await loop.decide(snapshot, attempt);
    if (decision.kind === 'keep') return { result: decision.result, written: false, snapshot };
    if (await loop.write(snapshot, decision.value)) return { result: decision.result, written: true, snapshot };
    // Lost the race: the next round reads again and decides on what won.
  }
  return { result: await loop.exhausted(), written: false };
}
