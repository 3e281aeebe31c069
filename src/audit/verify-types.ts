/**
 * The data the offline verifier (verify.ts) reads and answers: the source it
 * reads a log from, its options, and the report with its problem kinds.
 * Types only, shared by the verifier's parts.
 */
import type { Checkpoint, NoteVerifier } from './checkpoint/index.ts';

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
