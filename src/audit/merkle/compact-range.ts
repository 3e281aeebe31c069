/**
 * Compact ranges: a tree of `size` leaves summarised by the hashes of the
 * complete subtrees that cover [0, size), one per set bit of size, largest
 * (leftmost) first. RFC 9162 section 2.1.1 splits D[n] at the largest power
 * of two below n, and again on the right part, so these subtrees are exactly
 * the nodes of that recursion that are complete; folding their hashes right
 * to left gives MTH(D[n]). (The name and idea: transparency-dev/merkle
 * docs/compact_ranges.md; the C2SP tlog-tiles spec addresses the same
 * complete subtrees as hashes by level and index.)
 *
 * Appending a leaf works like incrementing a binary counter: every trailing
 * one bit of the old size merges the two rightmost equal-sized subtrees into
 * their parent. That is the one append of the code base: the ledger stores
 * every node it reports (tree.ts, AuditAppendPlan.extend), the verifier
 * folds the range at each checkpoint size (verify-entries.ts), and rootHash
 * and the in-memory proofs below use it over a list of leaf hashes.
 */
import { isCount, largestPowerOfTwoAtMost, setBits } from './bits.ts';
import { assertHash, childrenHash, emptyRoot } from './hash.ts';

/** A complete subtree: the MTH of the 2^level leaves [index * 2^level, (index + 1) * 2^level). */
export interface SubtreeAddress {
  readonly level: number;
  readonly index: number;
}

/** A complete subtree and its hash: what the ledger stores per node. */
export interface SubtreeHash extends SubtreeAddress {
  readonly hash: Uint8Array;
}

/**
 * The compact range [0, size) of a growing tree. Memory: one hash per set
 * bit of size, so at most 53. Hashes are shared with the caller, never
 * copied or mutated.
 */
export class CompactRange {
  readonly #hashes: Uint8Array[];
  #size: number;

  /**
   * A range of `size` leaves from its subtree hashes, in the order
   * completeSubtrees(0, size) addresses them (the ledger reads them from
   * stored nodes). No arguments: the empty tree. Throws RangeError on a bad
   * size or the wrong number of hashes, TypeError on a hash that is not 32
   * bytes.
   */
  constructor(size = 0, hashes: readonly Uint8Array[] = []) {
    if (!isCount(size)) throw new RangeError(`tree size must be a non-negative safe integer, got ${String(size)}`);
    const count = Array.isArray(hashes) ? String(hashes.length) : 'none';
    if (count !== String(setBits(size))) throw new RangeError(`a compact range of ${size} leaves has ${setBits(size)} subtree hashes, got ${count}`);
    this.#hashes = hashes.map((hash: unknown, i) => {
      assertHash(hash, `subtree hash ${i}`);
      return hash;
    });
    this.#size = size;
  }

  /** Leaves appended so far (with those the range started from). */
  get size(): number {
    return this.#size;
  }

  /** The subtree hashes, largest first: completeSubtrees(0, size) addresses them. */
  hashes(): Uint8Array[] {
    return [...this.#hashes];
  }

  /**
   * Appends the leaf whose hash is `leafHash` (leafHash(entry), not the
   * entry). `onNode` sees every subtree this completes, the leaf first and
   * then each merge, bottom up: for leaf i, (0, i) and (l, (i + 1) / 2^l - 1)
   * for every l >= 1 with 2^l dividing i + 1. Throws TypeError unless
   * leafHash is 32 bytes, RangeError past 2^53 - 1 leaves.
   */
  append(leafHash: Uint8Array, onNode?: (node: SubtreeHash) => void): void {
    assertHash(leafHash, 'leaf hash');
    const index = this.#size;
    if (index === Number.MAX_SAFE_INTEGER) throw new RangeError('the tree is full');
    let node = leafHash;
    onNode?.({ level: 0, index, hash: node });
    let level = 0;
    for (let count = index + 1; count % 2 === 0; count /= 2) {
      node = childrenHash(this.#hashes.pop()!, node);
      level++;
      onNode?.({ level, index: (index + 1) / 2 ** level - 1, hash: node });
    }
    this.#hashes.push(node);
    this.#size = index + 1;
  }

  /** MTH(D[size]) (RFC 9162 2.1.1), a fresh array; the empty tree gives the empty-tree root. */
  root(): Uint8Array {
    return foldSubtrees(this.#hashes);
  }
}

/**
 * Folds the hashes of consecutive complete subtrees, left to right and of
 * strictly decreasing size (as completeSubtrees returns them), into the MTH
 * of the range they cover: h0, h1, ..., hk gives
 * nodeHash(h0, nodeHash(h1, ... nodeHash(hk-1, hk))). That is RFC 9162
 * 2.1.1's split at the largest power of two, applied repeatedly. No hashes
 * give the empty-tree root; one hash gives a copy of it. Throws TypeError on
 * a hash that is not 32 bytes.
 */
export function foldSubtrees(hashes: readonly Uint8Array[]): Uint8Array {
  let last = hashes.at(-1);
  if (last === undefined) return emptyRoot();
  assertHash(last, 'subtree hash');
  last = last.slice();
  for (let i = hashes.length - 2; i >= 0; i--) {
    const left = hashAt(hashes, i);
    assertHash(left, 'left');
    last = childrenHash(left, last);
  }
  return last;
}

/**
 * Splits the leaf range [start, end) into the complete subtrees that cover
 * it, left to right, largest first (one per set bit of end - start), so that
 * foldSubtrees over their hashes gives MTH(D[start:end]). Every range that
 * inclusionProofNodes and consistencyProofNodes return qualifies, as does
 * [0, size) for a root (the compact range of size). start must be a
 * multiple of the largest power of two not above end - start, else the
 * pieces are not nodes of the tree and this throws RangeError. An empty
 * range gives [].
 */
export function completeSubtrees(start: number, end: number): SubtreeAddress[] {
  if (!isCount(start) || !isCount(end) || start > end) throw new RangeError(`invalid leaf range [${String(start)}, ${String(end)})`);
  const subtrees: SubtreeAddress[] = [];
  if (start === end) return subtrees;
  let width = largestPowerOfTwoAtMost(end - start);
  if (start % width !== 0) throw new RangeError(`leaf range [${start}, ${end}) does not start on a subtree boundary`);
  let level = 0;
  while (2 ** level < width) level++;
  for (let offset = start; offset < end; width /= 2, level--) {
    if (end - offset >= width) {
      subtrees.push({ level, index: offset / width });
      offset += width;
    }
  }
  return subtrees;
}

/** MTH(D[n]) over leaf hashes (RFC 9162 2.1.1); the empty list gives the empty-tree root. Throws TypeError on a hash that is not 32 bytes. */
export function rootHash(leafHashes: readonly Uint8Array[]): Uint8Array {
  return rangeHash(leafHashes, 0, leafHashes.length);
}

/** MTH(D[start:end]) over leaf hashes, in end - start - 1 node hashes and O(log n) memory. */
export function rangeHash(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const range = new CompactRange();
  for (let i = start; i < end; i++) range.append(hashAt(leafHashes, i));
  return range.root();
}

function hashAt(hashes: readonly Uint8Array[], i: number): Uint8Array {
  const value = hashes[i];
  if (value === undefined) throw new TypeError(`missing hash at position ${i}`);
  return value;
}
