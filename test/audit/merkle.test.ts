/**
 * The RFC 9162 section 2.1 Merkle tree of the audit ledger: published
 * Certificate Transparency test vectors, exhaustive checks against a direct
 * transcription of the RFC definitions, property tests for tampering and
 * malformed input, and agreement of the stored-node recipe (proof nodes ->
 * complete subtrees -> fold) with the in-memory proofs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  EMPTY_ROOT,
  completeSubtrees,
  consistencyProof,
  consistencyProofNodes,
  emptyRoot,
  foldSubtrees,
  inclusionProof,
  inclusionProofNodes,
  leafHash,
  nodeHash,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit/merkle/index.ts';
import { VECTOR_EMPTY_ROOT, VECTOR_INPUTS, VECTOR_NODES, VECTOR_ROOTS, fromHex } from '../support/merkle-vectors.ts';
import type { ProofNode } from '../../src/audit/merkle/index.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

// ---------------------------------------------------------------------------
// Published test vectors (data only, transcribed):
//  - google/certificate-transparency cpp/merkletree/merkle_tree_test.cc
//    (commit 0e901cacd1388fa16f78b184612f6cd16e5ceec1): kInputs,
//    kSHA256Roots, kSHA256Paths (1-based leaf numbers there, 0-based here),
//    kSHA256Proofs, kSHA256EmptyTreeHash.
//  - transparency-dev/merkle proof/verify_test.go
//    (commit 02194e9afb6c1d95b5381350007963aa70fff472): the same vectors plus
//    the consistency proof 6 -> 7.
//  - transparency-dev/merkle testonly/reference_test.go
//    (commit 141d627eab770a7e9a2514f46a8b6338e6d90874): 0-based inclusion
//    proofs 0/2, 1/2, 2/3, 1/5.
//  - transparency-dev/merkle testonly/constants.go
//    (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1): NodeHashes, the hash
//    of every complete subtree of the 8-leaf tree, by level and index.
// The inputs, roots and node hashes live in test/support/merkle-vectors.ts,
// shared with the compact-range test; the proofs follow here.
// ---------------------------------------------------------------------------

interface InclusionVector {
  readonly index: number;
  readonly size: number;
  readonly proof: readonly string[];
}

const INCLUSION_VECTORS: readonly InclusionVector[] = [
  // certificate-transparency kSHA256Paths {1, 1}, {1, 8}, {6, 8}, {3, 3}, {2, 5}
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  // transparency-dev/merkle TestRefInclusionProof {0, 2}, {1, 2}
  { index: 0, size: 2, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7'] },
  { index: 1, size: 2, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'] },
];

interface ConsistencyVector {
  readonly oldSize: number;
  readonly newSize: number;
  readonly proof: readonly string[];
}

const CONSISTENCY_VECTORS: readonly ConsistencyVector[] = [
  // certificate-transparency kSHA256Proofs
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'],
  },
  // transparency-dev/merkle proof/verify_test.go consistencyProofs {6, 7}
  {
    oldSize: 6,
    newSize: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

const vectorLeaves = VECTOR_INPUTS.map(leafHash);
const vectorRoot = (size: number): Uint8Array => fromHex(size === 0 ? VECTOR_EMPTY_ROOT : VECTOR_ROOTS[size - 1]!);
/** The "abacaba" hash of transparency-dev's verify_test.go: some valid-length hash that is nobody's root. */
const SOME_HASH = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456');

// ---------------------------------------------------------------------------
// Reference: RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 transcribed as recursive
// definitions over lists, deliberately naive, to cross-check the iterative
// code.
// ---------------------------------------------------------------------------

/** k: the largest power of two smaller than n, for n > 1. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function referenceMth(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256(new Uint8Array());
  if (leaves.length === 1) return leaves[0]!;
  const k = splitPoint(leaves.length);
  return sha256(Buffer.concat([Uint8Array.of(1), referenceMth(leaves.slice(0, k)), referenceMth(leaves.slice(k))]));
}

function referencePath(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  if (leaves.length === 1) return [];
  const k = splitPoint(leaves.length);
  return m < k
    ? [...referencePath(m, leaves.slice(0, k)), referenceMth(leaves.slice(k))]
    : [...referencePath(m - k, leaves.slice(k)), referenceMth(leaves.slice(0, k))];
}

function referenceSubproof(m: number, leaves: readonly Uint8Array[], haveOldRoot: boolean): Uint8Array[] {
  const n = leaves.length;
  if (m === n) return haveOldRoot ? [] : [referenceMth(leaves)];
  const k = splitPoint(n);
  return m <= k
    ? [...referenceSubproof(m, leaves.slice(0, k), haveOldRoot), referenceMth(leaves.slice(k))]
    : [...referenceSubproof(m - k, leaves.slice(k), false), referenceMth(leaves.slice(0, k))];
}

function referenceProof(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  return m === 0 ? [] : referenceSubproof(m, leaves, true);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Leaf hashes of a deterministic tree: entry i is the bytes of "entry i". */
function leavesOf(size: number): Uint8Array[] {
  return Array.from({ length: size }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
}

const LEAVES_64 = leavesOf(64);
const ROOTS_64 = Array.from({ length: 65 }, (_, n) => rootHash(LEAVES_64.slice(0, n)));

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

function withElement(proof: readonly Uint8Array[], position: number, value: Uint8Array): Uint8Array[] {
  return proof.map((element, i) => (i === position ? value : element));
}

/**
 * What the ledger does: stores every complete subtree as it completes on
 * append, by (level, index), exactly as the module comment describes.
 */
class NodeStore {
  readonly #nodes = new Map<string, Uint8Array>();
  size = 0;

  append(hash: Uint8Array): void {
    const i = this.size++;
    this.#nodes.set(`0:${i}`, hash);
    for (let level = 1; (i + 1) % 2 ** level === 0; level++) {
      const index = (i + 1) / 2 ** level - 1;
      this.#nodes.set(`${level}:${index}`, nodeHash(this.get(level - 1, 2 * index), this.get(level - 1, 2 * index + 1)));
    }
  }

  get(level: number, index: number): Uint8Array {
    const hash = this.#nodes.get(`${level}:${index}`);
    assert.ok(hash, `node ${level}:${index} is not stored`);
    return hash;
  }

  /** The recipe of the module comment: collect every address, fetch them in one batch, fold per proof node. */
  proof(nodes: readonly ProofNode[]): Uint8Array[] {
    const parts = nodes.map((node) => completeSubtrees(node.start, node.end));
    const fetched = new Map(parts.flat().map(({ level, index }) => [`${level}:${index}`, this.get(level, index)]));
    return parts.map((part) => foldSubtrees(part.map(({ level, index }) => fetched.get(`${level}:${index}`)!)));
  }

  root(size: number): Uint8Array {
    return foldSubtrees(completeSubtrees(0, size).map(({ level, index }) => this.get(level, index)));
  }
}

function storeOf(leaves: readonly Uint8Array[]): NodeStore {
  const store = new NodeStore();
  for (const leaf of leaves) store.append(leaf);
  return store;
}

/** The perturbations the certificate-transparency and transparency-dev verifier tests apply to a good inclusion proof. */
function inclusionProbes(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array) {
  const probes: [string, Parameters<typeof verifyInclusion>][] = [
    ['index - 1', [leaf, index - 1, size, proof, root]],
    ['index + 1', [leaf, index + 1, size, proof, root]],
    ['index ^ 2', [leaf, index ^ 2, size, proof, root]],
    ['size * 2', [leaf, index, size * 2, proof, root]],
    ['size / 2', [leaf, index, Math.floor(size / 2), proof, root]],
    ['wrong leaf', [leafHash(new TextEncoder().encode('WrongLeaf')), index, size, proof, root]],
    ['empty root', [leaf, index, size, proof, EMPTY_ROOT]],
    ['random root', [leaf, index, size, proof, SOME_HASH]],
    ['trailing garbage', [leaf, index, size, [...proof, new Uint8Array()], root]],
    ['trailing root', [leaf, index, size, [...proof, root], root]],
    ['preceding garbage', [leaf, index, size, [new Uint8Array(), ...proof], root]],
    ['preceding root', [leaf, index, size, [root, ...proof], root]],
  ];
  proof.forEach((_, i) => probes.push([`proof[${i}] replaced by the empty root`, [leaf, index, size, withElement(proof, i, EMPTY_ROOT), root]]));
  if (proof.length > 0) probes.push(['removed component', [leaf, index, size, proof.slice(0, -1), root]]);
  if (proof.length > 1) probes.push(['inserted component', [leaf, index, size, [proof[0]!, SOME_HASH, ...proof.slice(1)], root]]);
  return probes;
}

function consistencyProbes(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]) {
  const probes: [string, Parameters<typeof verifyConsistency>][] = [
    ['oldSize - 1', [oldSize - 1, newSize, oldRoot, newRoot, proof]],
    ['oldSize + 1', [oldSize + 1, newSize, oldRoot, newRoot, proof]],
    ['oldSize ^ 2', [oldSize ^ 2, newSize, oldRoot, newRoot, proof]],
    ['newSize * 2', [oldSize, newSize * 2, oldRoot, newRoot, proof]],
    ['newSize / 2', [oldSize, Math.floor(newSize / 2), oldRoot, newRoot, proof]],
    ['wrong old root', [oldSize, newSize, SOME_HASH, newRoot, proof]],
    ['wrong new root', [oldSize, newSize, oldRoot, SOME_HASH, proof]],
    ['swapped roots', [oldSize, newSize, newRoot, oldRoot, proof]],
    ['empty proof', [oldSize, newSize, oldRoot, newRoot, []]],
    ['trailing garbage', [oldSize, newSize, oldRoot, newRoot, [...proof, new Uint8Array()]]],
    ['trailing old root', [oldSize, newSize, oldRoot, newRoot, [...proof, oldRoot]]],
    ['trailing new root', [oldSize, newSize, oldRoot, newRoot, [...proof, newRoot]]],
    ['trailing last element', [oldSize, newSize, oldRoot, newRoot, [...proof, proof.at(-1)!]]],
    ['preceding garbage', [oldSize, newSize, oldRoot, newRoot, [new Uint8Array(), ...proof]]],
    ['preceding old root', [oldSize, newSize, oldRoot, newRoot, [oldRoot, ...proof]]],
    ['preceding new root', [oldSize, newSize, oldRoot, newRoot, [newRoot, ...proof]]],
    ['preceding proof[0]', [oldSize, newSize, oldRoot, newRoot, [proof[0]!, ...proof]]],
    ['truncated proof', [oldSize, newSize, oldRoot, newRoot, proof.slice(0, -1)]],
  ];
  proof.forEach((_, i) => probes.push([`proof[${i}] replaced by the empty root`, [oldSize, newSize, oldRoot, newRoot, withElement(proof, i, EMPTY_ROOT)]]));
  return probes;
}

function assertInclusionProbesFail(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  for (const [name, args] of inclusionProbes(leaf, index, size, proof, root)) {
    assert.equal(verifyInclusion(...args), false, `inclusion ${index}/${size}: ${name} verified`);
  }
}

function assertConsistencyProbesFail(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): void {
  for (const [name, args] of consistencyProbes(oldSize, newSize, oldRoot, newRoot, proof)) {
    assert.equal(verifyConsistency(...args), false, `consistency ${oldSize} -> ${newSize}: ${name} verified`);
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('merkle: hashing (RFC 9162 2.1.1)', () => {
  it('leafHash is SHA-256(0x00 || entry) and nodeHash is SHA-256(0x01 || left || right)', () => {
    const entry = new TextEncoder().encode('an audit event');
    assert.deepEqual(leafHash(entry), sha256(Buffer.concat([Uint8Array.of(0), entry])));
    const [left, right] = [vectorLeaves[0]!, vectorLeaves[1]!];
    assert.deepEqual(nodeHash(left, right), sha256(Buffer.concat([Uint8Array.of(1), left, right])));
    assert.equal(hex(nodeHash(left, right)), VECTOR_NODES[1]![0]);
  });

  it('returns plain 32-byte Uint8Arrays, not Buffers', () => {
    for (const hash of [leafHash(new Uint8Array()), nodeHash(SOME_HASH, SOME_HASH), rootHash(vectorLeaves), EMPTY_ROOT, emptyRoot()]) {
      assert.equal(Object.getPrototypeOf(hash), Uint8Array.prototype);
      assert.equal(hash.length, 32);
    }
  });

  it('the empty tree root is SHA-256 of the empty string, and emptyRoot() is a fresh copy', () => {
    assert.equal(hex(EMPTY_ROOT), VECTOR_EMPTY_ROOT);
    assert.equal(hex(rootHash([])), VECTOR_EMPTY_ROOT);
    const copy = emptyRoot();
    copy.fill(0);
    assert.equal(hex(EMPTY_ROOT), VECTOR_EMPTY_ROOT);
    assert.equal(hex(emptyRoot()), VECTOR_EMPTY_ROOT);
    assert.equal(hex(foldSubtrees([])), VECTOR_EMPTY_ROOT);
  });

  it('nodeHash, foldSubtrees and rootHash refuse hashes that are not 32 bytes', () => {
    assert.throws(() => nodeHash(new Uint8Array(31), SOME_HASH), TypeError);
    assert.throws(() => nodeHash(SOME_HASH, new Uint8Array(33)), TypeError);
    assert.throws(() => foldSubtrees([new Uint8Array(0)]), TypeError);
    assert.throws(() => rootHash([SOME_HASH, new Uint8Array(16)]), TypeError);
    assert.throws(() => rootHash([new Uint8Array(16)]), TypeError);
  });

  it('outputs never alias inputs', () => {
    const root = rootHash([SOME_HASH]);
    assert.deepEqual(root, SOME_HASH);
    assert.notEqual(root.buffer, SOME_HASH.buffer);
    const [element] = inclusionProof(0, [SOME_HASH, EMPTY_ROOT]);
    assert.notEqual(element!.buffer, EMPTY_ROOT.buffer);
  });
});

describe('merkle: published Certificate Transparency vectors', () => {
  it('leaf hashes and every complete subtree of the 8-leaf tree', () => {
    VECTOR_NODES.forEach((level, levelNumber) =>
      level.forEach((expected, index) => {
        const width = 2 ** levelNumber;
        assert.equal(hex(rootHash(vectorLeaves.slice(index * width, (index + 1) * width))), expected, `node ${levelNumber}:${index}`);
      }),
    );
  });

  it('roots for every size 0..8', () => {
    for (let size = 0; size <= 8; size++) assert.equal(hex(rootHash(vectorLeaves.slice(0, size))), hex(vectorRoot(size)), `size ${size}`);
  });

  for (const { index, size, proof } of INCLUSION_VECTORS) {
    it(`inclusion proof for leaf ${index} of ${size}`, () => {
      const leaves = vectorLeaves.slice(0, size);
      assert.deepEqual(inclusionProof(index, leaves).map(hex), proof);
      const published = proof.map(fromHex);
      assert.equal(verifyInclusion(vectorLeaves[index]!, index, size, published, vectorRoot(size)), true);
      assertInclusionProbesFail(vectorLeaves[index]!, index, size, published, vectorRoot(size));
    });
  }

  for (const { oldSize, newSize, proof } of CONSISTENCY_VECTORS) {
    it(`consistency proof ${oldSize} -> ${newSize}`, () => {
      assert.deepEqual(consistencyProof(oldSize, vectorLeaves.slice(0, newSize)).map(hex), proof);
      const published = proof.map(fromHex);
      assert.equal(verifyConsistency(oldSize, newSize, vectorRoot(oldSize), vectorRoot(newSize), published), true);
      if (published.length > 0) assertConsistencyProbesFail(oldSize, newSize, vectorRoot(oldSize), vectorRoot(newSize), published);
    });
  }

  it('inclusion: the invalid (index, size) probes of the published verifier tests', () => {
    for (const [index, size] of [
      [0, 0],
      [1, 0],
      [1, 1],
      [2, 1],
    ] as const) {
      assert.equal(verifyInclusion(SOME_HASH, index, size, [], EMPTY_ROOT), false);
      assert.equal(verifyInclusion(SOME_HASH, index, size, [], new Uint8Array()), false);
      assert.equal(verifyInclusion(new Uint8Array(), index, size, [], EMPTY_ROOT), false);
    }
    // A one-leaf tree: root and leaf hash are the same, the proof empty.
    const hash = leafHash(new TextEncoder().encode('data'));
    assert.equal(verifyInclusion(hash, 0, 1, [], hash), true);
    assert.equal(verifyInclusion(hash, 0, 1, [], new Uint8Array()), false);
    assert.equal(verifyInclusion(new Uint8Array(), 0, 1, [], hash), false);
  });

  it('consistency: the edge cases of the published verifier tests', () => {
    const other = SOME_HASH;
    // Always consistent, with an empty proof.
    assert.equal(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, []), true);
    assert.equal(verifyConsistency(0, 1, EMPTY_ROOT, vectorRoot(1), []), true);
    assert.equal(verifyConsistency(1, 1, vectorRoot(1), vectorRoot(1), []), true);
    // Time travel to the past.
    assert.equal(verifyConsistency(1, 0, vectorRoot(1), EMPTY_ROOT, []), false);
    assert.equal(verifyConsistency(2, 1, vectorRoot(2), vectorRoot(1), []), false);
    // Empty proof for a real extension.
    assert.equal(verifyConsistency(1, 2, vectorRoot(1), vectorRoot(2), []), false);
    // Roots that do not match.
    assert.equal(verifyConsistency(0, 0, EMPTY_ROOT, other, []), false);
    assert.equal(verifyConsistency(1, 1, EMPTY_ROOT, other, []), false);
    // Roots that match but a proof that is not empty.
    assert.equal(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), false);
    assert.equal(verifyConsistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), false);
    assert.equal(verifyConsistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), false);
  });

  it('consistency from size 0 requires the empty-tree root as the old root (stricter than the Go and C++ verifiers)', () => {
    assert.equal(verifyConsistency(0, 5, EMPTY_ROOT, vectorRoot(5), []), true);
    assert.equal(verifyConsistency(0, 5, vectorRoot(1), vectorRoot(5), []), false);
    assert.equal(verifyConsistency(0, 0, SOME_HASH, SOME_HASH, []), false);
  });

  it('every single-bit flip in a proof element, the root or the leaf hash fails (all proofs of the 8-leaf tree)', () => {
    for (let size = 1; size <= 8; size++) {
      const root = vectorRoot(size);
      for (let index = 0; index < size; index++) {
        const leaf = vectorLeaves[index]!;
        const proof = inclusionProof(index, vectorLeaves.slice(0, size));
        for (let bit = 0; bit < 256; bit++) {
          assert.equal(verifyInclusion(flipBit(leaf, bit), index, size, proof, root), false);
          assert.equal(verifyInclusion(leaf, index, size, proof, flipBit(root, bit)), false);
          proof.forEach((element, i) => assert.equal(verifyInclusion(leaf, index, size, withElement(proof, i, flipBit(element, bit)), root), false));
        }
      }
      for (let oldSize = 1; oldSize < size; oldSize++) {
        const oldRoot = vectorRoot(oldSize);
        const proof = consistencyProof(oldSize, vectorLeaves.slice(0, size));
        for (let bit = 0; bit < 256; bit++) {
          assert.equal(verifyConsistency(oldSize, size, flipBit(oldRoot, bit), root, proof), false);
          assert.equal(verifyConsistency(oldSize, size, oldRoot, flipBit(root, bit), proof), false);
          proof.forEach((element, i) => assert.equal(verifyConsistency(oldSize, size, oldRoot, root, withElement(proof, i, flipBit(element, bit))), false));
        }
      }
    }
  });
});

describe('merkle: exhaustive against the RFC 9162 definitions, sizes up to 64', () => {
  it('rootHash equals MTH for every size 0..64', () => {
    for (let size = 0; size <= 64; size++) assert.deepEqual(ROOTS_64[size], referenceMth(LEAVES_64.slice(0, size)), `size ${size}`);
  });

  it('every inclusion proof equals PATH(m, D[n]), verifies, and fails under the published perturbations', () => {
    for (let size = 1; size <= 64; size++) {
      const leaves = LEAVES_64.slice(0, size);
      for (let index = 0; index < size; index++) {
        const proof = inclusionProof(index, leaves);
        assert.deepEqual(proof, referencePath(index, leaves), `PATH(${index}, D[${size}])`);
        assert.equal(verifyInclusion(leaves[index]!, index, size, proof, ROOTS_64[size]!), true, `verify ${index}/${size}`);
        assertInclusionProbesFail(leaves[index]!, index, size, proof, ROOTS_64[size]!);
      }
    }
  });

  it('every consistency proof equals PROOF(m, D[n]), verifies, and fails under the published perturbations', () => {
    for (let newSize = 0; newSize <= 64; newSize++) {
      const leaves = LEAVES_64.slice(0, newSize);
      for (let oldSize = 0; oldSize <= newSize; oldSize++) {
        const proof = consistencyProof(oldSize, leaves);
        assert.deepEqual(proof, referenceProof(oldSize, leaves), `PROOF(${oldSize}, D[${newSize}])`);
        assert.equal(verifyConsistency(oldSize, newSize, ROOTS_64[oldSize]!, ROOTS_64[newSize]!, proof), true, `verify ${oldSize} -> ${newSize}`);
        if (proof.length > 0) assertConsistencyProbesFail(oldSize, newSize, ROOTS_64[oldSize]!, ROOTS_64[newSize]!, proof);
      }
    }
  });

  it('a proof for one leaf never verifies another leaf of the same tree (sizes up to 32)', () => {
    for (let size = 2; size <= 32; size++) {
      for (let index = 0; index < size; index++) {
        const proof = inclusionProof(index, LEAVES_64.slice(0, size));
        for (let other = 0; other < size; other++) {
          if (other !== index) assert.equal(verifyInclusion(LEAVES_64[index]!, other, size, proof, ROOTS_64[size]!), false);
        }
      }
    }
  });

  it('pins a property of RFC 9162 proofs: the tree size is bound by the signed root, not by the proof', () => {
    // PATH(0, D[4]) = [h1, MTH(D[2:4])] also passes 2.1.3.2 as leaf 0 of a
    // 3-leaf tree against the 4-leaf root. A verifier must take the size
    // from the same signed checkpoint as the root, never from the prover.
    const proof = inclusionProof(0, LEAVES_64.slice(0, 4));
    assert.equal(verifyInclusion(LEAVES_64[0]!, 0, 3, proof, ROOTS_64[4]!), true);
  });
});

describe('merkle: property tests (fast-check)', () => {
  const entries = fc.array(fc.uint8Array({ maxLength: 48 }), { minLength: 1, maxLength: 300 });

  it('inclusion proofs over random entries verify, and any single-bit flip fails', () => {
    fc.assert(
      fc.property(entries, fc.nat(), fc.nat(255), fc.nat(), (data, indexSeed, bit, elementSeed) => {
        const leaves = data.map(leafHash);
        const size = leaves.length;
        const index = indexSeed % size;
        const root = rootHash(leaves);
        const leaf = leaves[index]!;
        const proof = inclusionProof(index, leaves);
        assert.equal(verifyInclusion(leaf, index, size, proof, root), true);
        assert.equal(verifyInclusion(flipBit(leaf, bit), index, size, proof, root), false);
        assert.equal(verifyInclusion(leaf, index, size, proof, flipBit(root, bit)), false);
        if (proof.length > 0) {
          const position = elementSeed % proof.length;
          assert.equal(verifyInclusion(leaf, index, size, withElement(proof, position, flipBit(proof[position]!, bit)), root), false);
          assert.equal(verifyInclusion(leaf, index, size, proof.slice(0, -1), root), false);
          assert.equal(verifyInclusion(leaf, index, size, proof.slice(1), root), false);
        }
        assert.equal(verifyInclusion(leaf, index, size, [...proof, proof[0] ?? root], root), false);
        assert.equal(verifyInclusion(leaf, index, size, [root, ...proof], root), false);
      }),
      { numRuns: 200 },
    );
  });

  it('consistency proofs over random entries verify, and any single-bit flip fails', () => {
    fc.assert(
      fc.property(entries, fc.nat(), fc.nat(255), fc.nat(), (data, oldSeed, bit, elementSeed) => {
        const leaves = data.map(leafHash);
        const newSize = leaves.length;
        const oldSize = oldSeed % (newSize + 1);
        const oldRoot = rootHash(leaves.slice(0, oldSize));
        const newRoot = rootHash(leaves);
        const proof = consistencyProof(oldSize, leaves);
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof), true);
        assert.equal(verifyConsistency(oldSize, newSize, flipBit(oldRoot, bit), newRoot, proof), false);
        if (oldSize !== 0) assert.equal(verifyConsistency(oldSize, newSize, oldRoot, flipBit(newRoot, bit), proof), false);
        if (proof.length > 0) {
          const position = elementSeed % proof.length;
          assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, withElement(proof, position, flipBit(proof[position]!, bit))), false);
          assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.slice(0, -1)), false);
          assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.slice(1)), false);
        }
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, [...proof, newRoot]), false);
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, [oldRoot, ...proof]), false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('merkle: malformed input makes verification false, never an exception', () => {
  const index = 5;
  const size = 11;
  const leaf = LEAVES_64[index]!;
  const root = ROOTS_64[size]!;
  const proof = inclusionProof(index, LEAVES_64.slice(0, size));
  const oldSize = 6;
  const oldRoot = ROOTS_64[oldSize]!;
  const cProof = consistencyProof(oldSize, LEAVES_64.slice(0, size));

  const badHashes: unknown[] = [
    new Uint8Array(0),
    new Uint8Array(31),
    new Uint8Array(33),
    new Uint16Array(16), // 32 bytes, but not a Uint8Array
    new Uint8ClampedArray(32),
    new DataView(new ArrayBuffer(32)),
    new ArrayBuffer(32),
    Array.from({ length: 32 }, () => 0),
    hex(root),
    null,
    undefined,
    {},
  ];
  const badCounts: unknown[] = [-1, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 53, Number.MAX_VALUE, '5', 5n, null, undefined, {}];
  const badProofs: unknown[] = [
    null,
    undefined,
    'proof',
    root,
    { length: proof.length, 0: proof[0] },
    [...proof.slice(0, -1), undefined],
    [...proof.slice(0, -1), hex(proof.at(-1)!)],
    [...proof.slice(0, -1), proof.at(-1)!.subarray(1)],
    Array.from({ length: proof.length }),
  ];

  /** Calls with arguments of any runtime type, as an untyped caller could. */
  const callInclusion = (...args: unknown[]): unknown => (verifyInclusion as (...a: unknown[]) => unknown)(...args);
  const callConsistency = (...args: unknown[]): unknown => (verifyConsistency as (...a: unknown[]) => unknown)(...args);

  it('the untampered proofs used below verify', () => {
    assert.equal(verifyInclusion(leaf, index, size, proof, root), true);
    assert.equal(verifyConsistency(oldSize, size, oldRoot, root, cProof), true);
  });

  it('accepts Buffers (a Uint8Array subclass) as hashes', () => {
    assert.equal(verifyInclusion(Buffer.from(leaf), index, size, proof.map((p) => Buffer.from(p)), Buffer.from(root)), true);
  });

  it('verifyInclusion: bad hashes, counts and proofs', () => {
    for (const bad of badHashes) {
      assert.equal(callInclusion(bad, index, size, proof, root), false);
      assert.equal(callInclusion(leaf, index, size, proof, bad), false);
      assert.equal(callInclusion(leaf, index, size, withElement(proof, 0, bad as Uint8Array), root), false);
    }
    for (const bad of badCounts) {
      assert.equal(callInclusion(leaf, bad, size, proof, root), false, `index ${String(bad)}`);
      assert.equal(callInclusion(leaf, index, bad, proof, root), false, `size ${String(bad)}`);
    }
    for (const bad of badProofs) assert.equal(callInclusion(leaf, index, size, bad, root), false);
    assert.equal(verifyInclusion(leaf, size, size, proof, root), false);
    assert.equal(verifyInclusion(leaf, index, index, proof, root), false);
    assert.equal(verifyInclusion(leaf, 0, 0, [], EMPTY_ROOT), false);
    assert.equal(verifyInclusion(leaf, index, size, [...proof, ...proof, ...proof], root), false);
    assert.equal(verifyInclusion(leaf, index, size, Array.from({ length: 10_000 }, () => root), root), false);
  });

  it('verifyConsistency: bad hashes, counts and proofs', () => {
    for (const bad of badHashes) {
      assert.equal(callConsistency(oldSize, size, bad, root, cProof), false);
      assert.equal(callConsistency(oldSize, size, oldRoot, bad, cProof), false);
      assert.equal(callConsistency(oldSize, size, oldRoot, root, withElement(cProof, 0, bad as Uint8Array)), false);
      assert.equal(callConsistency(0, 0, bad, bad, []), false);
      assert.equal(callConsistency(3, 3, bad, bad, []), false);
    }
    for (const bad of badCounts) {
      assert.equal(callConsistency(bad, size, oldRoot, root, cProof), false, `oldSize ${String(bad)}`);
      assert.equal(callConsistency(oldSize, bad, oldRoot, root, cProof), false, `newSize ${String(bad)}`);
    }
    for (const bad of [...badProofs, { length: 0 }]) assert.equal(callConsistency(oldSize, size, oldRoot, root, bad), false);
    assert.equal(callConsistency(0, size, EMPTY_ROOT, root, { length: 0 }), false);
    assert.equal(verifyConsistency(size, oldSize, root, oldRoot, cProof), false);
    assert.equal(verifyConsistency(oldSize, size, oldRoot, root, [...cProof, ...cProof]), false);
    assert.equal(verifyConsistency(oldSize, size, oldRoot, root, Array.from({ length: 10_000 }, () => root)), false);
    // Sizes near 2^53 keep the arithmetic exact and still answer false.
    assert.equal(verifyConsistency(2 ** 53 - 2, 2 ** 53 - 1, oldRoot, root, cProof), false);
    assert.equal(verifyInclusion(leaf, 2 ** 53 - 2, 2 ** 53 - 1, proof, root), false);
  });

  it('any value in any argument position: a boolean, never a throw (fast-check)', () => {
    const anything = fc.anything({ withTypedArray: true, withBigInt: true, withMap: true, withSet: true, withSparseArray: true });
    fc.assert(
      fc.property(anything, fc.nat(4), (value, position) => {
        const inclusionArgs: unknown[] = [leaf, index, size, proof, root];
        inclusionArgs[position] = value;
        const consistencyArgs: unknown[] = [oldSize, size, oldRoot, root, cProof];
        consistencyArgs[position] = value;
        const a = callInclusion(...inclusionArgs);
        const b = callConsistency(...consistencyArgs);
        assert.equal(typeof a, 'boolean');
        assert.equal(typeof b, 'boolean');
        // A value that is not a number cannot stand in for an index or size,
        // and nothing fast-check generates is a 32-byte Uint8Array equal to
        // the hash it replaces.
        if (typeof value !== 'number' && !Array.isArray(value)) {
          assert.equal(a, false);
          assert.equal(b, false);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('merkle: proof generation refuses bad arguments with RangeError', () => {
  it('inclusionProof and inclusionProofNodes', () => {
    for (const bad of [-1, 11, 12, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => inclusionProof(bad, LEAVES_64.slice(0, 11)), RangeError);
      assert.throws(() => inclusionProofNodes(bad, 11), RangeError);
    }
    assert.throws(() => inclusionProof(0, []), RangeError);
    assert.throws(() => inclusionProofNodes(0, 0), RangeError);
    assert.throws(() => inclusionProofNodes(0, 2 ** 53), RangeError);
  });

  it('consistencyProof and consistencyProofNodes', () => {
    for (const bad of [-1, 12, 1.5, Number.NaN]) {
      assert.throws(() => consistencyProof(bad, LEAVES_64.slice(0, 11)), RangeError);
      assert.throws(() => consistencyProofNodes(bad, 11), RangeError);
    }
    assert.throws(() => consistencyProofNodes(0, -1), RangeError);
    assert.throws(() => consistencyProofNodes(1, 2 ** 53), RangeError);
    assert.deepEqual(consistencyProof(0, LEAVES_64.slice(0, 11)), []);
    assert.deepEqual(consistencyProof(11, LEAVES_64.slice(0, 11)), []);
    assert.deepEqual(consistencyProof(0, []), []);
  });

  it('completeSubtrees', () => {
    assert.throws(() => completeSubtrees(1, 3), RangeError); // width 2 at an odd start
    assert.throws(() => completeSubtrees(2, 7), RangeError); // width 4 at start 2
    assert.throws(() => completeSubtrees(4, 3), RangeError);
    assert.throws(() => completeSubtrees(-1, 3), RangeError);
    assert.throws(() => completeSubtrees(0, 0.5), RangeError);
    assert.throws(() => completeSubtrees(0, 2 ** 53), RangeError);
  });
});

describe('merkle: stored-node proofs (proof nodes -> complete subtrees -> fold)', () => {
  it('completeSubtrees splits a range into aligned subtrees, largest first', () => {
    assert.deepEqual(completeSubtrees(0, 0), []);
    assert.deepEqual(completeSubtrees(0, 1), [{ level: 0, index: 0 }]);
    assert.deepEqual(completeSubtrees(0, 7), [
      { level: 2, index: 0 },
      { level: 1, index: 2 },
      { level: 0, index: 6 },
    ]);
    assert.deepEqual(completeSubtrees(8, 14), [
      { level: 2, index: 2 },
      { level: 1, index: 6 },
    ]);
    assert.deepEqual(completeSubtrees(2 ** 52, 2 ** 53 - 1).length, 52);
    assert.deepEqual(completeSubtrees(2 ** 52, 2 ** 53 - 1)[0], { level: 51, index: 2 });
  });

  it('the node descriptions of the 8-leaf vectors name the published node hashes', () => {
    const store = storeOf(vectorLeaves);
    VECTOR_NODES.forEach((level, levelNumber) => level.forEach((expected, index) => assert.equal(hex(store.get(levelNumber, index)), expected)));
    // Leaf 5 of 8: its sibling leaf 4, then [6, 8), then [0, 4), as in the published vector.
    assert.deepEqual(inclusionProofNodes(5, 8), [
      { start: 4, end: 5 },
      { start: 6, end: 8 },
      { start: 0, end: 4 },
    ]);
    assert.deepEqual(consistencyProofNodes(6, 8), [
      { start: 4, end: 6 },
      { start: 6, end: 8 },
      { start: 0, end: 4 },
    ]);
    assert.deepEqual(consistencyProofNodes(4, 8), [{ start: 4, end: 8 }]);
  });

  it('agrees with the in-memory proofs and roots for every size, index and old size up to 64', () => {
    const store = new NodeStore();
    for (let size = 1; size <= 64; size++) {
      store.append(LEAVES_64[size - 1]!);
      const leaves = LEAVES_64.slice(0, size);
      assert.deepEqual(store.root(size), ROOTS_64[size]);
      for (let index = 0; index < size; index++) assert.deepEqual(store.proof(inclusionProofNodes(index, size)), inclusionProof(index, leaves));
      for (let oldSize = 0; oldSize <= size; oldSize++) {
        assert.deepEqual(store.root(oldSize), ROOTS_64[oldSize]);
        assert.deepEqual(store.proof(consistencyProofNodes(oldSize, size)), consistencyProof(oldSize, leaves));
      }
    }
  });

  it('agrees at random sizes up to 5000 (fast-check)', () => {
    const leaves = leavesOf(5000);
    const store = storeOf(leaves);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.nat(), fc.nat(), (size, indexSeed, oldSeed) => {
        const index = indexSeed % size;
        const oldSize = oldSeed % (size + 1);
        const prefix = leaves.slice(0, size);
        const root = store.root(size);
        assert.deepEqual(root, rootHash(prefix));
        const proof = store.proof(inclusionProofNodes(index, size));
        assert.deepEqual(proof, inclusionProof(index, prefix));
        assert.equal(verifyInclusion(leaves[index]!, index, size, proof, root), true);
        const cProof = store.proof(consistencyProofNodes(oldSize, size));
        assert.deepEqual(cProof, consistencyProof(oldSize, prefix));
        assert.equal(verifyConsistency(oldSize, size, store.root(oldSize), root, cProof), true);
      }),
      { numRuns: 25 },
    );
  });

  it('proof nodes tile the tree, at most one is incomplete, and a proof reads O(log n) stored nodes (sizes up to 2^53 - 1)', () => {
    const check = (nodes: readonly ProofNode[], size: number): void => {
      const addresses = nodes.flatMap((node) => completeSubtrees(node.start, node.end));
      const incomplete = nodes.filter((node) => completeSubtrees(node.start, node.end).length > 1);
      assert.ok(incomplete.length <= 1);
      assert.ok(incomplete.every((node) => node.end === size));
      assert.ok(addresses.length < 2 * Math.log2(size) + 2, `${addresses.length} nodes for size ${size}`);
      for (const { level, index } of addresses) assert.ok(Number.isSafeInteger(index * 2 ** level) && (index + 1) * 2 ** level <= size);
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.nat(), fc.nat(), (size, indexSeed, oldSeed) => {
        const index = indexSeed % size;
        // The inclusion nodes and the leaf itself cover [0, size) exactly once.
        const nodes = inclusionProofNodes(index, size);
        const ranges = [...nodes, { start: index, end: index + 1 }].sort((a, b) => a.start - b.start);
        ranges.reduce((covered, range) => {
          assert.equal(range.start, covered);
          return range.end;
        }, 0);
        assert.equal(ranges.at(-1)!.end, size);
        check(nodes, size);
        const oldSize = oldSeed % (size + 1);
        const cNodes = consistencyProofNodes(oldSize, size);
        for (const node of cNodes) assert.ok(node.start < node.end && node.end <= size);
        check(cNodes, size);
      }),
      { numRuns: 500 },
    );
  });
});
