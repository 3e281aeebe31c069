/**
 * Inclusion and consistency proofs of RFC 9162 sections 2.1.3 and 2.1.4:
 * which subtrees a proof consists of (as leaf ranges, for a store that keeps
 * complete subtrees), the proofs over an in-memory list of leaf hashes, and
 * the verification algorithms.
 */
import { half, isCount, isOdd, isPowerOfTwo, largestPowerOfTwoBelow } from './bits.ts';
import { completeSubtrees, foldSubtrees, rangeHash } from './compact-range.ts';
import { EMPTY_ROOT, equalHashes, isHash, nodeHash } from './hash.ts';

/** A proof element is the MTH of the leaves [start, end) (start inclusive, end exclusive). */
export interface ProofNode {
  readonly start: number;
  readonly end: number;
}

/**
 * The inclusion proof PATH(index, D[n]) of RFC 9162 2.1.3.1 for the leaf at
 * `index` in the tree of all `leafHashes` (n = leafHashes.length), deepest
 * sibling first. Hashes O(n) leaves: for a stored tree, use
 * inclusionProofNodes with stored nodes (index.ts). Throws RangeError
 * unless 0 <= index < n.
 */
export function inclusionProof(index: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return proofFromLeaves(inclusionProofNodes(index, leafHashes.length), leafHashes);
}

/**
 * The consistency proof PROOF(oldSize, D[n]) of RFC 9162 2.1.4.1 between the
 * tree of the first `oldSize` leaves and the tree of all `leafHashes`. The
 * RFC defines it for 0 < oldSize < n; oldSize 0 or n gives []. Hashes O(n)
 * leaves, like inclusionProof. Throws RangeError unless 0 <= oldSize <= n.
 */
export function consistencyProof(oldSize: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return proofFromLeaves(consistencyProofNodes(oldSize, leafHashes.length), leafHashes);
}

/**
 * Verifies an inclusion proof with the algorithm of RFC 9162 2.1.3.2: that
 * `leafHash` is leaf `index` of the tree of `size` leaves whose root is
 * `root`. Returns false, never throws, on any malformed input: hashes that
 * are not 32-byte Uint8Arrays, sizes or indices that are not safe integers,
 * index >= size, a proof that is too short or too long.
 *
 * Take `size` from the same signed checkpoint as `root`, never from the
 * prover: an RFC 9162 proof does not bind the size on its own (the proof for
 * leaf 0 of a 4-leaf tree also passes as leaf 0 of 3 against that root).
 */
export function verifyInclusion(leafHash: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!isHash(leafHash) || !isHash(root) || !Array.isArray(proof)) return false;
  if (!isCount(size) || !isCount(index) || index >= size) return false; // step 1
  let fn = index; // step 2
  let sn = size - 1;
  let r = leafHash; // step 3
  for (let i = 0; i < proof.length; i++) {
    // step 4
    const p: unknown = proof[i];
    if (!isHash(p) || sn === 0) return false; // sn 0: the proof is too long
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      // fn even (so fn === sn): the node was the last of its level with no
      // right sibling, and the tree promoted it unchanged until it became a
      // right child; p is its left sibling at that level. Skip the levels
      // it was promoted through (step 4.1.2).
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalHashes(r, root); // step 5; sn > 0: the proof is too short
}

/**
 * Verifies a consistency proof with the algorithm of RFC 9162 2.1.4.2: that
 * the tree of `oldSize` leaves with root `oldRoot` is a prefix of the tree of
 * `newSize` leaves with root `newRoot`. The RFC algorithm covers
 * 0 < oldSize < newSize; for the edges, as PROOF() gives an empty proof there:
 * oldSize === newSize needs an empty proof and equal roots; oldSize === 0
 * needs an empty proof and oldRoot equal to the empty-tree root (any 32-byte
 * newRoot extends the empty tree). Returns false, never throws, on any
 * malformed input (bad hashes or sizes, oldSize > newSize, wrong proof length).
 */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!isHash(oldRoot) || !isHash(newRoot) || !Array.isArray(proof)) return false;
  if (!isCount(oldSize) || !isCount(newSize) || oldSize > newSize) return false;
  if (oldSize === 0) return proof.length === 0 && equalHashes(oldRoot, EMPTY_ROOT) && (newSize > 0 || equalHashes(newRoot, EMPTY_ROOT));
  if (oldSize === newSize) return proof.length === 0 && equalHashes(oldRoot, newRoot);
  if (proof.length === 0) return false; // step 1
  // Step 2: when oldSize is a power of two the old root is itself a node of
  // the new tree and the proof omits it; start from oldRoot instead of
  // prepending it (no copy of the proof).
  let next = 0;
  const first: unknown = isPowerOfTwo(oldSize) ? oldRoot : proof[next++];
  if (!isHash(first)) return false;
  let fn = oldSize - 1; // step 3
  let sn = newSize - 1;
  while (isOdd(fn)) {
    // step 4
    fn = half(fn);
    sn = half(sn);
  }
  let fr = first; // step 5
  let sr = first;
  for (; next < proof.length; next++) {
    // step 6
    const c: unknown = proof[next];
    if (!isHash(c) || sn === 0) return false; // sn 0: the proof is too long
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        // Promoted levels, as in verifyInclusion (step 6.1.3).
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalHashes(fr, oldRoot) && equalHashes(sr, newRoot); // step 7
}

/**
 * The elements of PATH(index, D[size]) (RFC 9162 2.1.3.1) as leaf ranges, in
 * proof order (deepest sibling first). Only the element that ends at `size`
 * can be an incomplete subtree. Throws RangeError unless 0 <= index < size.
 */
export function inclusionProofNodes(index: number, size: number): ProofNode[] {
  if (!isCount(size) || size === 0) throw new RangeError(`tree size must be a positive safe integer, got ${String(size)}`);
  if (!isCount(index) || index >= size) throw new RangeError(`leaf index must be an integer in [0, ${size}), got ${String(index)}`);
  const nodes: ProofNode[] = [];
  // Walk down from the root: D[start:end] is the subtree holding the leaf.
  // The RFC recursion appends the sibling at each level after the deeper
  // path, so the collected siblings are reversed at the end.
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const split = start + largestPowerOfTwoBelow(end - start); // k of 2.1.3.1
    if (index < split) {
      nodes.push({ start: split, end }); // PATH(m, D[0:k]) : MTH(D[k:n])
      end = split;
    } else {
      nodes.push({ start, end: split }); // PATH(m - k, D[k:n]) : MTH(D[0:k])
      start = split;
    }
  }
  return nodes.reverse();
}

/**
 * The elements of PROOF(oldSize, D[newSize]) (RFC 9162 2.1.4.1) as leaf
 * ranges, in proof order. oldSize 0 or newSize gives []. Only the element
 * that ends at newSize can be an incomplete subtree. Throws RangeError
 * unless 0 <= oldSize <= newSize.
 */
export function consistencyProofNodes(oldSize: number, newSize: number): ProofNode[] {
  if (!isCount(newSize)) throw new RangeError(`new tree size must be a non-negative safe integer, got ${String(newSize)}`);
  if (!isCount(oldSize) || oldSize > newSize) throw new RangeError(`old tree size must be an integer in [0, ${newSize}], got ${String(oldSize)}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  const nodes: ProofNode[] = [];
  // SUBPROOF(m, D[start:end], haveOldRoot), walked down iteratively.
  let start = 0;
  let end = newSize;
  let haveOldRoot = true;
  while (oldSize < end) {
    const split = start + largestPowerOfTwoBelow(end - start); // k of 2.1.4.1
    if (oldSize <= split) {
      nodes.push({ start: split, end }); // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
      end = split;
    } else {
      nodes.push({ start, end: split }); // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
      start = split;
      haveOldRoot = false;
    }
  }
  // SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's last subtree is
  // not a node the verifier already knows, so the proof carries it.
  if (!haveOldRoot) nodes.push({ start, end });
  return nodes.reverse();
}

// Proofs over an in-memory array: the stored-node recipe of index.ts, with
// each complete subtree hashed from its leaves.
function proofFromLeaves(nodes: readonly ProofNode[], leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return nodes.map(({ start, end }) =>
    foldSubtrees(completeSubtrees(start, end).map(({ level, index }) => rangeHash(leafHashes, index * 2 ** level, (index + 1) * 2 ** level))),
  );
}
