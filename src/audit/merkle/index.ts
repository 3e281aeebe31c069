/**
 * The Merkle tree of the audit ledger, exactly as RFC 9162 section 2.1
 * (Certificate Transparency 2.0) defines it, with SHA-256. Pure functions:
 * no I/O, no state, nothing imported from the rest of Portcullis, so the
 * offline verifier and the ledger run the very same code.
 *
 * Notation (RFC 9162 2.1.1): D[n] is the list of n entries, D[a:b] the
 * entries a..b-1, MTH(D[n]) the Merkle Tree Hash of a list.
 *
 * Stored-node layout (for the ledger). The ledger keeps the hash of every
 * *complete* subtree, addressed as (level, index): the MTH of the leaves
 * [index * 2^level, (index + 1) * 2^level). Level 0 holds the leaf hashes.
 * Appending leaf i completes (0, i) and, for every level l >= 1 with
 * (i + 1) divisible by 2^l, the node (l, (i + 1) / 2^l - 1), whose hash is
 * nodeHash((l - 1, 2j), (l - 1, 2j + 1)) for j = (i + 1) / 2^l - 1.
 * With those rows a proof or a root reads O(log n) nodes, never the leaves:
 *
 *   const nodes = inclusionProofNodes(index, size); // or consistencyProofNodes(m, n)
 *   const parts = nodes.map((node) => completeSubtrees(node.start, node.end));
 *   const rows = await nodeStore.get(parts.flat()); // one query, any order
 *   const proof = parts.map((part) => foldSubtrees(part.map(({ level, index }) => rows.get(level, index))));
 *   const root = foldSubtrees(completeSubtrees(0, size).map(({ level, index }) => rows.get(level, index)));
 *
 * At most one node of a proof is an incomplete subtree (the one that ends at
 * the tree size), so a proof needs fewer than 2 * log2(size) + 2 stored nodes.
 * inclusionProof and consistencyProof below are that same recipe over an
 * in-memory array of leaf hashes.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { types } from 'node:util';

/** Bytes in a SHA-256 hash: every leaf hash, node hash, root and proof element. */
const HASH_SIZE = 32;

/** A proof element is the MTH of the leaves [start, end) (start inclusive, end exclusive). */
export interface ProofNode {
  readonly start: number;
  readonly end: number;
}

/** A complete subtree: the MTH of the 2^level leaves [index * 2^level, (index + 1) * 2^level). */
export interface SubtreeAddress {
  readonly level: number;
  readonly index: number;
}

// RFC 9162 2.1.1: the 0x00 / 0x01 prefixes give leaves and interior nodes
// distinct preimages, so a leaf can never be passed off as a node (second
// preimage defence).
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = 0x01;

// nodeHash hashes a fixed 65-byte input. Copying both children into one
// reused buffer and hashing it in one call measured about 1.5x faster than a
// createHash().update().update().update() chain, and node hashes dominate the
// cost of building a tree. The buffer never escapes and hashing is
// synchronous, so reuse is safe.
const nodeInput = new Uint8Array(1 + 2 * HASH_SIZE);
nodeInput[0] = NODE_PREFIX;

/** Plain Uint8Array view (no copy) of a Buffer, so results compare equal to any Uint8Array. */
function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function isHash(value: unknown): value is Uint8Array {
  // util.types.isUint8Array also accepts arrays from other realms (vm contexts).
  return types.isUint8Array(value) && value.length === HASH_SIZE;
}

function assertHash(value: Uint8Array, what: string): void {
  if (!isHash(value)) throw new TypeError(`${what} must be a ${HASH_SIZE}-byte Uint8Array`);
}

/** Leaf hash: SHA-256(0x00 || entry) (RFC 9162 2.1.1, MTH({d0})). */
export function leafHash(entry: Uint8Array): Uint8Array {
  // Two update() calls hash the entry in place: no concatenated copy of a
  // possibly large entry.
  return view(createHash('sha256').update(LEAF_PREFIX).update(entry).digest());
}

/** Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 2.1.1). Throws TypeError unless both are 32-byte hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  assertHash(left, 'left');
  assertHash(right, 'right');
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_SIZE);
  return view(oneShotHash('sha256', nodeInput, 'buffer'));
}

/** MTH({}) = SHA-256() (RFC 9162 2.1.1). Shared: never mutate it; emptyRoot() returns a fresh copy. */
export const EMPTY_ROOT: Uint8Array = view(createHash('sha256').digest());

/** A fresh copy of the empty-tree root, SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return EMPTY_ROOT.slice();
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
  for (let i = hashes.length - 2; i >= 0; i--) last = nodeHash(hashAt(hashes, i), last);
  return last;
}

/** MTH(D[n]) over leaf hashes (RFC 9162 2.1.1); the empty list gives the empty-tree root. Throws TypeError on a hash that is not 32 bytes. */
export function rootHash(leafHashes: readonly Uint8Array[]): Uint8Array {
  return rangeHash(leafHashes, 0, leafHashes.length);
}

/**
 * The inclusion proof PATH(index, D[n]) of RFC 9162 2.1.3.1 for the leaf at
 * `index` in the tree of all `leafHashes` (n = leafHashes.length), deepest
 * sibling first. Hashes O(n) leaves: for a stored tree, use
 * inclusionProofNodes with stored nodes (module comment). Throws RangeError
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

/**
 * Splits the leaf range [start, end) into the complete subtrees that cover
 * it, left to right, largest first (one per set bit of end - start), so that
 * foldSubtrees over their hashes gives MTH(D[start:end]). Every range that
 * inclusionProofNodes and consistencyProofNodes return qualifies, as does
 * [0, size) for a root. start must be a multiple of the largest power of two
 * not above end - start, else the pieces are not nodes of the tree and this
 * throws RangeError. An empty range gives [].
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

// Proofs over an in-memory array: the stored-node recipe of the module
// comment, with each complete subtree hashed from its leaves.
function proofFromLeaves(nodes: readonly ProofNode[], leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return nodes.map(({ start, end }) =>
    foldSubtrees(completeSubtrees(start, end).map(({ level, index }) => rangeHash(leafHashes, index * 2 ** level, (index + 1) * 2 ** level))),
  );
}

/**
 * MTH(D[start:end]) in end - start - 1 node hashes and O(log n) memory: a
 * stack of complete subtrees works like a binary counter (after k leaves it
 * holds one subtree per set bit of k, largest first), and the final fold
 * joins them as RFC 9162 2.1.1's recursion does.
 */
function rangeHash(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const stack: Uint8Array[] = [];
  for (let i = start; i < end; i++) {
    let node = hashAt(leafHashes, i);
    for (let count = i - start + 1; count % 2 === 0; count /= 2) node = nodeHash(popHash(stack), node);
    stack.push(node);
  }
  return foldSubtrees(stack);
}

function hashAt(hashes: readonly Uint8Array[], i: number): Uint8Array {
  const value = hashes[i];
  if (value === undefined) throw new TypeError(`missing hash at position ${i}`);
  return value;
}

function popHash(stack: Uint8Array[]): Uint8Array {
  const value = stack.pop();
  if (value === undefined) throw new Error('unreachable: subtree stack underflow');
  return value;
}

// Sizes reach 2^53 - 1, beyond the 32 bits of JavaScript's bitwise
// operators, so the bit steps of the RFC algorithms use arithmetic.
function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isOdd(value: number): boolean {
  return value % 2 === 1;
}

function half(value: number): number {
  return Math.floor(value / 2);
}

function isPowerOfTwo(value: number): boolean {
  return value === largestPowerOfTwoAtMost(value);
}

/** For value >= 1. Exact where Math.log2 may round up just below a power of two. */
function largestPowerOfTwoAtMost(value: number): number {
  let power = 1;
  while (power * 2 <= value) power *= 2;
  return power;
}

/** The k of RFC 9162 2.1.1: the largest power of two smaller than value, for value >= 2. */
function largestPowerOfTwoBelow(value: number): number {
  return largestPowerOfTwoAtMost(value - 1);
}

// Roots and proofs are public, so a plain comparison is fine here (no
// secret to leak through timing).
function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < HASH_SIZE; i++) if (a[i] !== b[i]) return false;
  return true;
}
