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
 * is a compact range (merkle/compact-range.ts, the same append the ledger
 * runs: one complete subtree per set bit of the count, so O(log n) memory);
 * when the stream reaches the size of a checkpoint, folding the range gives
 * the root at that size.
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
 *
 * The parts, one job each: verify-types.ts (the source, options and report),
 * verify-entries.ts (the streaming pass), verify-indices.ts (the index
 * sequence), verify-canonical.ts (the form check), verify-checkpoints.ts
 * (signatures, agreement, bad checkpoints and localising them),
 * verify-problems.ts (the bounded problem list). This file runs them in order.
 */
import { equalHashes } from './merkle/index.ts';
import { checkSameSizeAgreement, isLater, openLogCheckpoint, reportBadCheckpoints, type SignedCheckpoint } from './verify-checkpoints.ts';
import { EntryScan } from './verify-entries.ts';
import { isCount } from './verify-indices.ts';
import { Problems } from './verify-problems.ts';
import type { VerifyEntry, VerifyOptions, VerifyReport, VerifySource } from './verify-types.ts';

export { isCanonicalJson } from './verify-canonical.ts';
export { PROGRESS_INTERVAL } from './verify-entries.ts';
export { PROBLEMS_PER_KIND } from './verify-problems.ts';
export type { VerifyEntry, VerifyOptions, VerifyProblem, VerifyProblemKind, VerifyReport, VerifySource } from './verify-types.ts';

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
    if (root !== undefined && equalHashes(root, candidate.checkpoint.rootHash)) good.push(candidate);
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
