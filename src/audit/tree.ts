/**
 * The ledger's stored Merkle tree: how an append extends it and how roots
 * and proofs are read back from stored nodes. Layout (merkle/index.ts): the
 * hash of every complete subtree (level, index) is stored when it completes,
 * so a root or a proof reads O(log n) nodes in one query, never the leaves.
 */
import type { AuditAppendPlan, AuditLogStore, TreeNode, TreeNodeAddress } from '../store/index.ts';
import { CompactRange, completeSubtrees, consistencyProofNodes, foldSubtrees, inclusionProofNodes, leafHash, type ProofNode } from './merkle/index.ts';

/**
 * Extends the tree: the frontier of a log of `size` entries is its compact
 * range (merkle/compact-range.ts), one complete subtree per set bit of size,
 * largest first. Each new leaf is appended to that range, and every subtree
 * the append completes (the leaf, then each merge) is a node to store.
 */
export const appendPlan: AuditAppendPlan = {
  frontier: (size) => completeSubtrees(0, size),
  extend(size, frontierHashes, entries) {
    const range = new CompactRange(size, frontierHashes);
    const written: TreeNode[] = [];
    const store = (node: TreeNode): void => {
      written.push(node);
    };
    for (const entry of entries) range.append(leafHash(entry), store);
    return written;
  },
};

/** Reads the hashes of several leaf ranges, each folded from its complete subtrees, in one store query. */
async function rangeHashes(store: AuditLogStore, ranges: readonly ProofNode[]): Promise<Uint8Array[]> {
  const parts = ranges.map((range) => completeSubtrees(range.start, range.end));
  const addresses = uniqueAddresses(parts.flat());
  const hashes = await store.nodes(addresses);
  const byAddress = new Map<string, Uint8Array>();
  addresses.forEach((address, i) => {
    const hash = hashes[i];
    if (hash === undefined) throw new MissingTreeNodeError(address);
    byAddress.set(key(address), hash);
  });
  return parts.map((part) => foldSubtrees(part.map((address) => byAddress.get(key(address))!)));
}

/** MTH of the first `size` entries, from stored nodes. */
export async function storedRootHash(store: AuditLogStore, size: number): Promise<Uint8Array> {
  const [root] = await rangeHashes(store, [{ start: 0, end: size }]);
  return root!;
}

/** RFC 9162 2.1.3.1 inclusion proof of `index` in the tree of `size`, from stored nodes. */
export async function storedInclusionProof(store: AuditLogStore, index: number, size: number): Promise<{ leafHash: Uint8Array; proof: Uint8Array[] }> {
  const [leaf, ...proof] = await rangeHashes(store, [{ start: index, end: index + 1 }, ...inclusionProofNodes(index, size)]);
  return { leafHash: leaf!, proof };
}

/** Distinct node addresses asked for per store query by storedInclusionProofs. */
const PROOF_ADDRESSES_PER_QUERY = 5000;

/**
 * RFC 9162 2.1.3.1 inclusion proofs of every entry of `indices` in the tree
 * of `size` (size <= the log's size), in the order asked. The proofs of
 * many entries share most of their nodes (all of them the few near the
 * root), so the distinct addresses are read once, in one `nodes` query per
 * PROOF_ADDRESSES_PER_QUERY of them, not one query per entry; a proof
 * element shared by several proofs is folded once, and the proofs share
 * that one Uint8Array (read them, never mutate them).
 */
export async function storedInclusionProofs(store: AuditLogStore, indices: readonly number[], size: number): Promise<Uint8Array[][]> {
  const proofs = indices.map((index) => inclusionProofNodes(index, size));
  const parts = new Map<string, TreeNodeAddress[]>();
  for (const proof of proofs) {
    for (const node of proof) {
      const range = rangeKey(node);
      if (!parts.has(range)) parts.set(range, completeSubtrees(node.start, node.end));
    }
  }
  const addresses = uniqueAddresses([...parts.values()].flat());
  const byAddress = new Map<string, Uint8Array>();
  for (let offset = 0; offset < addresses.length; offset += PROOF_ADDRESSES_PER_QUERY) {
    const chunk = addresses.slice(offset, offset + PROOF_ADDRESSES_PER_QUERY);
    const hashes = await store.nodes(chunk);
    chunk.forEach((address, i) => {
      const hash = hashes[i];
      if (hash === undefined) throw new MissingTreeNodeError(address);
      byAddress.set(key(address), hash);
    });
  }
  const folded = new Map<string, Uint8Array>();
  for (const [range, part] of parts) folded.set(range, foldSubtrees(part.map((address) => byAddress.get(key(address))!)));
  return proofs.map((proof) => proof.map((node) => folded.get(rangeKey(node))!));
}

/** RFC 9162 2.1.4.1 consistency proof from `oldSize` to `newSize`, from stored nodes. */
export async function storedConsistencyProof(store: AuditLogStore, oldSize: number, newSize: number): Promise<Uint8Array[]> {
  return rangeHashes(store, consistencyProofNodes(oldSize, newSize));
}

/** A node the layout promises is not in the store: the store is damaged (or edited). */
export class MissingTreeNodeError extends Error {
  override readonly name = 'MissingTreeNodeError';
  constructor(address: TreeNodeAddress) {
    super(`the audit log's tree node (${address.level}, ${address.index}) is missing`);
  }
}

function key(address: TreeNodeAddress): string {
  return `${address.level}:${address.index}`;
}

function rangeKey(node: ProofNode): string {
  return `${node.start}-${node.end}`;
}

function uniqueAddresses(addresses: readonly TreeNodeAddress[]): TreeNodeAddress[] {
  const seen = new Map<string, TreeNodeAddress>();
  for (const address of addresses) seen.set(key(address), address);
  return [...seen.values()];
}
