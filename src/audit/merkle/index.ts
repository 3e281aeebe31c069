/**
 * The Merkle tree of the audit ledger, exactly as RFC 9162 section 2.1
 * (Certificate Transparency 2.0) defines it, with SHA-256. Pure functions:
 * no I/O, nothing imported from the rest of Portcullis (only node:crypto and
 * node:util), so the ledger, the offline verifier and the public package
 * entry `portcullis/audit/merkle` run the very same code.
 *
 *   hash.ts           leaf and node hashes, the empty root (RFC 9162 2.1.1)
 *   compact-range.ts  complete subtrees, the append, roots (RFC 9162 2.1.1)
 *   proof.ts          inclusion and consistency proofs (RFC 9162 2.1.3, 2.1.4)
 *
 * Notation (RFC 9162 2.1.1): D[n] is the list of n entries, D[a:b] the
 * entries a..b-1, MTH(D[n]) the Merkle Tree Hash of a list.
 *
 * Stored-node layout (for the ledger). The ledger keeps the hash of every
 * *complete* subtree, addressed as (level, index) like the hashes of the
 * C2SP tlog-tiles spec: the MTH of the leaves [index * 2^level,
 * (index + 1) * 2^level). Level 0 holds the leaf hashes. CompactRange.append
 * reports each subtree a new leaf completes. With those rows a proof or a
 * root reads O(log n) nodes, never the leaves:
 *
 *   const nodes = inclusionProofNodes(index, size); // or consistencyProofNodes(m, n)
 *   const parts = nodes.map((node) => completeSubtrees(node.start, node.end));
 *   const rows = await nodeStore.get(parts.flat()); // one query, any order
 *   const proof = parts.map((part) => foldSubtrees(part.map(({ level, index }) => rows.get(level, index))));
 *   const root = foldSubtrees(completeSubtrees(0, size).map(({ level, index }) => rows.get(level, index)));
 *
 * At most one node of a proof is an incomplete subtree (the one that ends at
 * the tree size), so a proof needs fewer than 2 * log2(size) + 2 stored nodes.
 * inclusionProof and consistencyProof are that same recipe over an
 * in-memory array of leaf hashes.
 */
export { EMPTY_ROOT, emptyRoot, equalHashes, leafHash, nodeHash } from './hash.ts';
export { CompactRange, completeSubtrees, foldSubtrees, rootHash, type SubtreeAddress, type SubtreeHash } from './compact-range.ts';
export {
  consistencyProof,
  consistencyProofNodes,
  inclusionProof,
  inclusionProofNodes,
  verifyConsistency,
  verifyInclusion,
  type ProofNode,
} from './proof.ts';
