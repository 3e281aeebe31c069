/**
 * The offline verifier of the audit ledger: re-checks a whole log from
 * outside, trusting nothing but the log's public key (and, optionally,
 * checkpoints the user saved earlier). Pure logic over an abstract
 * `VerifySource`; the CLI adapts a database or an export file to it.
 *
 * What it proves, in one streaming pass over the entries:
 *
 * 1. Structure. Entry indices are exactly 0, 1, 2, ...: a hole is a deleted
 *    entry ('gap'), an index seen twice an inserted one ('duplicate'), an
 *    index that arrives after a larger one a reordering ('out_of_order').
 *    The number of entries equals the size the log claims ('size_mismatch').
 * 2. Form. Every entry is UTF-8 JSON of an object, already in RFC 8785 (JCS)
 *    canonical form, as the ledger writes it: anything else was edited by
 *    hand ('bad_entry').
 * 3. Signed history. Every stored checkpoint is signed by the log key for
 *    the log's origin ('bad_signature', 'wrong_origin': forged), covers no
 *    more entries than the log holds ('rollback': entries were removed after
 *    the log signed them) and commits to the RFC 9162 Merkle tree hash of
 *    the entries as they are now ('root_mismatch': an entry was changed,
 *    inserted or removed after signing). Two checkpoints of one size must
 *    agree ('inconsistent_checkpoints': the key signed two histories).
 *    Trusted checkpoints (saved by the user) get the same checks, which
 *    catches a log rolled back together with its stored checkpoints.
 *
 * Roots are recomputed from the entries, never read from the store: the tree
 * is a compact range (RFC 9162 2.1.1's stack of complete subtrees, one per
 * set bit of the count, so O(log n) memory); when the stream reaches the size
 * of a checkpoint, folding the stack gives the root at that size.
 *
 * Entries past the largest good checkpoint are checked for structure and
 * form only: nothing signed covers them yet (`VerifyReport.latest` says how
 * far the signatures reach).
 *
 * Localising a bad checkpoint. A root mismatch at size S (or a rollback
 * below S) says only that some entry in [P, S) is not the one signed, P
 * being the size of the largest good checkpoint below S; such a problem
 * carries the range [index, end). When the source can read the ledger's
 * stored leaf hashes (level-0 nodes, written at append time), a second pass
 * over [P, S) names the first entry whose hash differs from its stored one:
 * exact when the attacker edited entries but not the node rows.
 * `firstBadIndex` is the least exact index of all problems, or the start of a
 * range that no exact index explains.
 *
 * Speed. The pass costs two SHA-256 calls per entry (its leaf and, on
 * average, one interior node) plus, by default, the canonical-form check,
 * which costs more than both (JSON.parse and a re-serialisation); see
 * bench/audit-verify.ts. `checkCanonical: false` skips it. Sources yield
 * entries in batches, so a page of rows costs one `await`.
 *
 * The verdict is data: tampered or malformed input never throws, it becomes
 * a `VerifyProblem`. Errors the source itself throws (I/O) reject the
 * promise, as they say nothing about the log.
 */
import { hash } from 'node:crypto';
import { types } from 'node:util';
import canonicalize from 'canonicalize';
import { NoteError, openCheckpoint, parseCheckpoint, parseNote, type Checkpoint, type NoteVerifier } from './checkpoint/index.ts';
import { EMPTY_ROOT, foldSubtrees } from './merkle/index.ts';

/** One log entry as stored: its index and its bytes (canonical JSON, UTF-8). */
export interface VerifyEntry {
  readonly index: number;
  readonly entry: Uint8Array;
}

/**
 * What the verifier reads. It MUST present one snapshot of the log: `size`,
 * `entries` and `checkpoints` read in one read transaction, or from one
 * export file. A log that grows between the calls would look tampered.
 */
export interface VerifySource {
  /** How many entries the log claims to hold (the store's head, the export's count). */
  size(): Promise<number>;
  /**
   * All entries in ascending index order as stored, without repairing them
   * (a tampered store may yield gaps, duplicates, out-of-order indices).
   * Each item is one entry or a batch of entries in order; yield batches
   * (a page of rows) where the source reads pages anyway: one `await` per
   * batch instead of per entry. May be called a second time, to localise a
   * root mismatch; it must then yield the same entries.
   */
  entries(): AsyncIterable<VerifyEntry | readonly VerifyEntry[]>;
  /** Every checkpoint note (C2SP signed note text) the log holds, in any order. */
  checkpoints(): Promise<readonly string[]>;
  /**
   * Optional: the stored leaf hashes (level-0 nodes) of the entries
   * [start, end), one per index, `undefined` where none is stored. Lets the
   * verifier name the exact entry behind a root mismatch.
   */
  storedLeafHashes?(start: number, end: number): Promise<readonly (Uint8Array | undefined)[]>;
}

export interface VerifyOptions {
  /** The log's public key (signed-note vkey), which the user trusts. Its name is the log's origin. */
  readonly logKey: NoteVerifier;
  /** Checkpoint notes the user saved earlier and trusts (the CLI's --trusted file). */
  readonly trusted?: readonly string[];
  /**
   * Check that every entry is canonical JSON (default true). Parsing and
   * re-serialising costs more than hashing (see bench/audit-verify.ts);
   * false still proves every entry against the signed roots.
   */
  readonly checkCanonical?: boolean;
  /** Called every 65,536 entries and once at the end; `total` is the size the source claims (0 if it claims none). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Why the log failed verification; callers switch on it. */
export type VerifyProblemKind =
  /** Entries are missing: `index` is the first missing index of the hole. */
  | 'gap'
  /** An index occurs twice: an entry was inserted (`index` is the repeated index). */
  | 'duplicate'
  /** An index arrives after a larger one: entries were reordered (`index` is the late one). */
  | 'out_of_order'
  /** An entry's index is not a non-negative safe integer (`index` is its position in the stream). */
  | 'bad_index'
  /** The number of entries differs from the size the log claims (`index`: the first entry missing or in excess). */
  | 'size_mismatch'
  /** An entry is not UTF-8 JSON of an object in RFC 8785 canonical form. */
  | 'bad_entry'
  /** A checkpoint's root is not the Merkle tree hash of the entries at its size (`index`: the first bad entry, or the start of the range that holds it). */
  | 'root_mismatch'
  /** A stored checkpoint is not signed by the log key, or its signature is invalid: forged. */
  | 'bad_signature'
  /** A stored checkpoint is signed by the log key but names another origin. */
  | 'wrong_origin'
  /** A stored checkpoint is not a well-formed signed checkpoint note. */
  | 'malformed_checkpoint'
  /** A checkpoint covers more entries than the log holds: signed entries were removed (`index`: the first missing one). */
  | 'rollback'
  /** Two checkpoints of the same size have different roots: the log key signed two histories. */
  | 'inconsistent_checkpoints'
  /** A trusted checkpoint does not verify with the log key. */
  | 'trusted_unverifiable';

export interface VerifyProblem {
  readonly kind: VerifyProblemKind;
  /**
   * The entry index the problem is about, where one is known. With `end`,
   * only a range is known: some entry in [index, end) is bad.
   */
  readonly index?: number;
  /** Set when `index` starts a range rather than naming the bad entry (root_mismatch, rollback without stored leaf hashes). */
  readonly end?: number;
  /** The tree size of the checkpoint the problem is about, if any. */
  readonly checkpointSize?: number;
  /** True when the checkpoint is one of the user's trusted ones rather than one the log stores. */
  readonly trusted?: boolean;
  /** One line for a human. */
  readonly message: string;
}

export interface VerifyReport {
  /** No problem found: `problems` is empty. */
  readonly ok: boolean;
  /** Entries read from the source. */
  readonly entries: number;
  /** Checkpoint notes examined, stored and trusted. */
  readonly checkpointsChecked: number;
  /** The largest checkpoint that verified and matched the entries, if any: entries beyond its size are not yet signed. */
  readonly latest?: Checkpoint;
  /** The note text of `latest`, for the user to keep as a trusted checkpoint. */
  readonly latestNote?: string;
  /**
   * The smallest entry index known to be bad: the least exact index of all
   * problems, or the start of a problem's range [index, end) when no exact
   * index below `end` explains that range.
   */
  readonly firstBadIndex?: number;
  /** In the order found; at most PROBLEMS_PER_KIND of each kind (plus a summary line where a check gave up). */
  readonly problems: readonly VerifyProblem[];
  /** Problems found beyond PROBLEMS_PER_KIND of their kind and left out of `problems`. */
  readonly problemsOmitted: number;
}

/** A report lists this many problems of one kind; a log with a million bad rows needs no million lines. */
export const PROBLEMS_PER_KIND = 100;
/** Progress is reported every this many entries. */
export const PROGRESS_INTERVAL = 65_536;
/**
 * Index anomalies tracked before the order check gives up. It keeps one
 * interval per anomaly and inserts in O(intervals), so this bounds both the
 * memory and the time a shuffled export can cost; the report lists at most
 * PROBLEMS_PER_KIND of each kind anyway.
 */
const MAX_INDEX_RUNS = 10_000;
/** Leaf hashes compared per storedLeafHashes call while localising a root mismatch. */
const LOCALISE_CHUNK = 4096;

/** Verifies the whole log in `source` against the log key; see the module comment for what is checked. */
export async function verifyLog(source: VerifySource, options: VerifyOptions): Promise<VerifyReport> {
  const problems = new Problems();
  const claimedSize = await source.size();
  const validClaim = isCount(claimedSize);
  if (!validClaim) problems.add({ kind: 'size_mismatch', message: `the log claims an invalid size (${String(claimedSize)})` });

  const stored = (await source.checkpoints()).map((note) => openLogCheckpoint(note, options.logKey, false, problems));
  const trusted = (options.trusted ?? []).map((note) => openLogCheckpoint(note, options.logKey, true, problems));
  const signed = [...stored, ...trusted].filter((candidate) => candidate !== undefined);

  // Pass 1: stream the entries once, computing the root at each signed size.
  const targets = [...new Set(signed.map(({ checkpoint }) => checkpoint.size))].sort((a, b) => a - b);
  const scan = new EntryScan(targets, options.checkCanonical ?? true, problems, options.onProgress, validClaim ? claimedSize : 0);
  for await (const item of source.entries()) {
    if (Array.isArray(item)) for (const entry of item as readonly VerifyEntry[]) scan.add(entry);
    else scan.add(item as VerifyEntry);
  }
  const count = scan.finish();
  if (validClaim && count !== claimedSize) {
    const first = Math.min(count, claimedSize);
    problems.add({
      kind: 'size_mismatch',
      index: first,
      message: `the log claims ${claimedSize} entries but holds ${count}${count < claimedSize ? ' (entries were removed)' : ' (entries were added beyond its head)'}`,
    });
  }

  // Checkpoints against the recomputed roots.
  const roots = scan.roots;
  checkSameSizeAgreement(signed, problems);
  const good: SignedCheckpoint[] = [];
  const bad: SignedCheckpoint[] = [];
  for (const candidate of [...signed].sort((a, b) => a.checkpoint.size - b.checkpoint.size)) {
    const root = roots.get(candidate.checkpoint.size); // undefined beyond the end: a rollback
    if (root !== undefined && equalBytes(root, candidate.checkpoint.rootHash)) good.push(candidate);
    else bad.push(candidate);
  }
  await reportBadCheckpoints(source, bad, good, count, problems);

  const latest = good.reduce<SignedCheckpoint | undefined>((best, candidate) => (best === undefined || isLater(candidate, best) ? candidate : best), undefined);
  const list = problems.list;
  const firstBadIndex = problems.firstBadIndex();
  return {
    ok: list.length === 0,
    entries: count,
    checkpointsChecked: stored.length + trusted.length,
    ...(latest === undefined ? {} : { latest: latest.checkpoint, latestNote: latest.note }),
    ...(firstBadIndex === undefined ? {} : { firstBadIndex }),
    problems: list,
    problemsOmitted: problems.omitted,
  };
}

// ---------------------------------------------------------------------------
// Checkpoints

interface SignedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: string;
  readonly trusted: boolean;
}

/** Opens one note with the log key; a note that does not open becomes a problem and `undefined`. */
function openLogCheckpoint(note: unknown, logKey: NoteVerifier, trusted: boolean, problems: Problems): SignedCheckpoint | undefined {
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
function checkSameSizeAgreement(signed: readonly SignedCheckpoint[], problems: Problems): void {
  const bySize = new Map<number, SignedCheckpoint>();
  const reported = new Set<number>();
  for (const candidate of signed) {
    const { size, rootHash } = candidate.checkpoint;
    const first = bySize.get(size);
    if (first === undefined) bySize.set(size, candidate);
    else if (!equalBytes(first.checkpoint.rootHash, rootHash) && !reported.has(size)) {
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
async function reportBadCheckpoints(
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
  const hasher = new TreeHasher();
  let position = 0;
  let chunkStart = start;
  let chunk: Uint8Array[] = [];
  const compare = async (): Promise<number | undefined> => {
    const storedHashes = await readStored(chunkStart, chunkStart + chunk.length);
    for (let i = 0; i < chunk.length; i++) {
      const storedHash: unknown = storedHashes[i];
      if (!types.isUint8Array(storedHash) || !equalBytes(storedHash, chunk[i]!)) return chunkStart + i;
    }
    chunkStart += chunk.length;
    chunk = [];
    return undefined;
  };
  for await (const item of source.entries()) {
    const batch = Array.isArray(item) ? (item as readonly VerifyEntry[]) : [item as VerifyEntry];
    for (const entry of batch) {
      if (position >= start && position < end) {
        chunk.push(hasher.leaf(entryBytes(entry)));
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
function isLater(a: SignedCheckpoint, b: SignedCheckpoint): boolean {
  if (a.checkpoint.size !== b.checkpoint.size) return a.checkpoint.size > b.checkpoint.size;
  const timeA = a.checkpoint.time ?? -1;
  const timeB = b.checkpoint.time ?? -1;
  if (timeA !== timeB) return timeA > timeB;
  return !a.trusted && b.trusted;
}

// ---------------------------------------------------------------------------
// The streaming pass

/**
 * Consumes entries one at a time: checks index and form, hashes the leaf,
 * extends the compact range and records the root at every target size.
 * Memory: the compact range (log2 n hashes) plus one interval per index
 * anomaly (none in an intact log).
 */
class EntryScan {
  /** Roots at each target size reached (size 0 included when targeted). */
  readonly roots = new Map<number, Uint8Array>();
  readonly #targets: readonly number[];
  #nextTarget: number;
  #targetIndex = 0;
  readonly #checkCanonical: boolean;
  readonly #problems: Problems;
  readonly #onProgress: ((done: number, total: number) => void) | undefined;
  readonly #total: number;
  readonly #hasher = new TreeHasher();
  readonly #decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  /** Complete-subtree hashes, largest (leftmost) first: one per set bit of #count. */
  readonly #range: Uint8Array[] = [];
  #count = 0;
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
    const position = this.#count;
    const index: unknown = (entry as Partial<VerifyEntry> | null)?.index;
    const verdict = this.#indices.next(index);
    if (verdict !== 'next') this.#indexAnomaly(verdict, index, position);
    const bytes = entryBytes(entry);
    if (bytes !== (entry as Partial<VerifyEntry> | null)?.entry) this.#badEntry(index, position, 'is not a byte array');
    else if (this.#checkCanonical) this.#checkForm(bytes, index, position);

    // Append the leaf to the compact range: like a binary counter, every
    // trailing one bit of the old count merges two equal subtrees.
    let node = this.#hasher.leaf(bytes);
    const count = position + 1;
    for (let carry = count; carry % 2 === 0; carry /= 2) node = this.#hasher.node(this.#range.pop()!, node);
    this.#range.push(node);
    this.#count = count;
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
    this.#onProgress?.(this.#count, this.#total);
    return this.#count;
  }

  #reachTargets(): void {
    while (this.#nextTarget === this.#count) {
      this.roots.set(this.#count, this.#count === 0 ? EMPTY_ROOT : foldSubtrees(this.#range));
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

  #checkForm(bytes: Uint8Array, index: unknown, position: number): void {
    let text: string;
    try {
      text = this.#decoder.decode(bytes);
    } catch {
      this.#badEntry(index, position, 'is not valid UTF-8');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#badEntry(index, position, 'is not JSON');
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.#badEntry(index, position, 'is not a JSON object');
      return;
    }
    const form = canonicalForm(value, text);
    if (form !== 'canonical') this.#badEntry(index, position, form === 'not_canonical' ? 'is not in RFC 8785 canonical form (edited by hand?)' : 'has no canonical form (a lone surrogate or an out-of-range number)');
  }

  #badEntry(index: unknown, position: number, what: string): void {
    const where = isCount(index) ? index : position;
    this.#problems.add({ kind: 'bad_entry', index: where, message: `entry ${where} ${what}` });
  }
}

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
type IndexVerdict = 'next' | 'jump' | 'duplicate' | 'out_of_order' | 'invalid';

class IndexTracker {
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

// ---------------------------------------------------------------------------
// Canonical form

/**
 * True when `text` is JSON already in RFC 8785 (JCS) canonical form: the
 * `canonicalize` package, re-serialising the parsed value, gives `text` back.
 */
export function isCanonicalJson(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  return canonicalForm(value, text) === 'canonical';
}

/**
 * Whether `text`, which JSON.parse turned into `value`, is the RFC 8785 form
 * of `value`, as `canonicalize` writes it.
 *
 * Fast path, about 1.5x cheaper than canonicalize on audit events (which are
 * all canonical): JSON.stringify serialises strings and numbers exactly as
 * canonicalize does (RFC 8785 3.2.2 defers to ECMAScript's JSON.stringify for
 * both) and differs only in key order (own-property order, where JCS sorts by
 * UTF-16 code units) and in not refusing lone surrogates. So when
 * JSON.stringify(value) === text, the keys of every object are already in
 * ascending code-unit order, and text has no lowercase `\ud` escape (the
 * only way JSON.stringify writes a lone surrogate), canonicalize(value) is
 * text too. Otherwise canonicalize decides, so every refusal comes from it:
 * e.g. {"10":1,"9":2} is canonical, yet V8 lists the key "9" first and the
 * fast path falls through.
 */
function canonicalForm(value: unknown, text: string): 'canonical' | 'not_canonical' | 'no_canonical_form' {
  try {
    if (JSON.stringify(value) === text && !text.includes('\\ud') && keysAscending(value)) return 'canonical';
  } catch {
    // Nesting too deep for the recursion: let canonicalize (iterative) decide.
  }
  try {
    return canonicalize(value) === text ? 'canonical' : 'not_canonical';
  } catch {
    return 'no_canonical_form'; // canonicalize refuses lone surrogates and non-finite numbers
  }
}

/** Every object in `value` lists its own keys in strictly ascending UTF-16 code-unit order (JS `<` on strings). */
function keysAscending(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) {
    for (const element of value as unknown[]) if (!keysAscending(element)) return false;
    return true;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record); // the order JSON.stringify writes them in
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0 && !(keys[i - 1]! < key)) return false;
    const child = record[key];
    if (typeof child === 'object' && child !== null && !keysAscending(child)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Helpers

/**
 * RFC 9162 2.1.1 hashes, SHA-256(0x00 || entry) for a leaf and
 * SHA-256(0x01 || left || right) for a node: what merkle's leafHash and
 * nodeHash compute (the tests pin roots to merkle's rootHash), minus their
 * per-call argument checks and result copies. Each is one one-shot
 * crypto.hash call over a reused input buffer, cheaper than a
 * createHash().update().digest() chain for short inputs; the verifier makes
 * two such calls per entry, so they bound its speed when the form check is
 * off. Buffers never escape and hashing is synchronous, so reuse is safe.
 */
class TreeHasher {
  #leafInput = new Uint8Array(4096); // [0] stays 0x00, the leaf prefix
  readonly #nodeInput = Uint8Array.of(0x01, ...new Uint8Array(64));

  leaf(entry: Uint8Array): Uint8Array {
    const length = entry.length + 1;
    if (length > this.#leafInput.length) {
      let size = this.#leafInput.length;
      while (size < length) size *= 2;
      this.#leafInput = new Uint8Array(size);
    }
    this.#leafInput.set(entry, 1);
    return hash('sha256', this.#leafInput.subarray(0, length), 'buffer');
  }

  node(left: Uint8Array, right: Uint8Array): Uint8Array {
    this.#nodeInput.set(left, 1);
    this.#nodeInput.set(right, 33);
    return hash('sha256', this.#nodeInput, 'buffer');
  }
}

const EMPTY_ENTRY = new Uint8Array(0);

/** The entry's bytes, or an empty entry when a malformed source gave no byte array (reported as bad_entry; the position still counts). */
function entryBytes(entry: VerifyEntry): Uint8Array {
  const bytes: unknown = (entry as Partial<VerifyEntry> | null)?.entry;
  return types.isUint8Array(bytes) ? bytes : EMPTY_ENTRY;
}

/** Collects problems, keeping at most PROBLEMS_PER_KIND of each kind, and what firstBadIndex needs of all of them. */
class Problems {
  readonly list: VerifyProblem[] = [];
  omitted = 0;
  #exact: number | undefined;
  /** Ranges [start, end) of range problems (one per bad checkpoint at most). */
  readonly #ranges: { start: number; end: number }[] = [];
  readonly #perKind = new Map<VerifyProblemKind, number>();

  /** Records a problem; `always` lists it even past PROBLEMS_PER_KIND (for a summary the reader must see). */
  add(problem: VerifyProblem, always = false): void {
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

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

// Roots and leaf hashes are public: no constant-time comparison needed.
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
