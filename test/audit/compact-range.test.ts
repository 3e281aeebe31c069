/**
 * merkle/compact-range.ts: the one append the ledger (AuditAppendPlan) and
 * the offline verifier share. Appending reports exactly the complete
 * subtrees of the RFC 9162 2.1.1 tree, a range resumed from its stored
 * frontier continues as if it had never stopped, and malformed frontiers
 * and leaves are refused.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { CompactRange, completeSubtrees, leafHash, rootHash, type SubtreeHash } from '../../src/audit/merkle/index.ts';
import { VECTOR_EMPTY_ROOT, VECTOR_INPUTS, VECTOR_NODES, VECTOR_ROOTS } from '../support/merkle-vectors.ts';
import { appendPlan } from '../../src/audit/tree.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** RFC 9162 2.1.1 MTH over leaf hashes, transcribed directly (recursive split at the largest power of two below n). */
function referenceRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return new Uint8Array(createHash('sha256').digest());
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  const left = referenceRoot(leaves.slice(0, k));
  const right = referenceRoot(leaves.slice(k));
  return new Uint8Array(createHash('sha256').update(Uint8Array.of(1)).update(left).update(right).digest());
}

const leavesOf = (count: number): Uint8Array[] => Array.from({ length: count }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));

describe('merkle: compact range', () => {
  it('appending the 8 vector inputs reports every published node, leaf first then each merge, and the published root after each', () => {
    const range = new CompactRange();
    const reported: string[] = [];
    VECTOR_INPUTS.forEach((input, i) => {
      range.append(leafHash(input), (node) => reported.push(`${node.level}/${node.index}/${hex(node.hash)}`));
      assert.equal(range.size, i + 1);
      assert.equal(hex(range.root()), VECTOR_ROOTS[i]);
    });
    const expected = [
      '0/0', '0/1', '1/0', '0/2', '0/3', '1/1', '2/0', '0/4', '0/5', '1/2', '0/6', '0/7', '1/3', '2/1', '3/0',
    ].map((address) => {
      const [level, index] = address.split('/').map(Number) as [number, number];
      return `${address}/${VECTOR_NODES[level]![index]!}`;
    });
    assert.deepEqual(reported, expected);
  });

  it('the empty range has the empty-tree root, and root() returns a fresh array each time', () => {
    const range = new CompactRange();
    assert.equal(hex(range.root()), VECTOR_EMPTY_ROOT);
    const root = range.root();
    root.fill(0);
    assert.equal(hex(range.root()), VECTOR_EMPTY_ROOT);
  });

  it('holds one hash per set bit of its size, addressed as completeSubtrees(0, size), and agrees with the RFC definition for every size up to 130', () => {
    const leaves = leavesOf(130);
    const range = new CompactRange();
    const stored = new Map<string, Uint8Array>();
    for (let size = 1; size <= leaves.length; size++) {
      range.append(leaves[size - 1]!, (node) => stored.set(`${node.level}/${node.index}`, node.hash));
      const prefix = leaves.slice(0, size);
      assert.deepEqual(range.root(), referenceRoot(prefix), `size ${size}`);
      assert.deepEqual(range.root(), rootHash(prefix));
      const frontier = completeSubtrees(0, size);
      assert.equal(range.hashes().length, frontier.length);
      frontier.forEach(({ level, index }, i) => {
        const covered = leaves.slice(index * 2 ** level, (index + 1) * 2 ** level);
        assert.deepEqual(range.hashes()[i], referenceRoot(covered), `size ${size}, subtree ${level}/${index}`);
        assert.deepEqual(stored.get(`${level}/${index}`), range.hashes()[i], 'the frontier is made of reported nodes');
      });
    }
    // Every complete subtree of the 130-leaf tree was reported exactly once.
    let expected = 0;
    for (let level = 0; 2 ** level <= 130; level++) expected += Math.floor(130 / 2 ** level);
    assert.equal(stored.size, expected);
  });

  it('a range resumed from its size and frontier hashes continues exactly as the uninterrupted one (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), (split, more) => {
        const leaves = leavesOf(split + more);
        const whole = new CompactRange();
        const wholeNodes: SubtreeHash[] = [];
        for (const leaf of leaves) whole.append(leaf, (node) => wholeNodes.push(node));
        const first = new CompactRange();
        const firstNodes: SubtreeHash[] = [];
        for (const leaf of leaves.slice(0, split)) first.append(leaf, (node) => firstNodes.push(node));
        const resumed = new CompactRange(split, first.hashes());
        for (const leaf of leaves.slice(split)) resumed.append(leaf, (node) => firstNodes.push(node));
        assert.equal(resumed.size, split + more);
        assert.deepEqual(resumed.root(), whole.root());
        assert.deepEqual(firstNodes, wholeNodes);
      }),
      { numRuns: 60 },
    );
  });

  it("the ledger's append plan stores what the range reports, from the stored frontier", () => {
    const entries = Array.from({ length: 21 }, (_, i) => new TextEncoder().encode(`{"i":${i}}`));
    const range = new CompactRange();
    const expected: SubtreeHash[] = [];
    for (const entry of entries) range.append(leafHash(entry), (node) => expected.push(node));
    const stored = new Map<string, Uint8Array>();
    const written: SubtreeHash[] = [];
    for (const [start, end] of [[0, 5], [5, 6], [6, 16], [16, 21]] as const) {
      const frontierHashes = appendPlan.frontier(start).map(({ level, index }) => stored.get(`${level}/${index}`)!);
      for (const node of appendPlan.extend(start, frontierHashes, entries.slice(start, end))) {
        stored.set(`${node.level}/${node.index}`, node.hash);
        written.push(node);
      }
    }
    assert.deepEqual(written, expected);
  });

  it('refuses a frontier of the wrong length, a hash that is not 32 bytes, and a bad size', () => {
    const leaves = leavesOf(3);
    assert.throws(() => new CompactRange(3, [leaves[0]!]), RangeError); // 3 = 0b11 needs two hashes
    assert.throws(() => new CompactRange(4, [leaves[0]!, leaves[1]!]), RangeError);
    assert.throws(() => new CompactRange(2, [leaves[0]!.subarray(1)]), TypeError);
    assert.throws(() => new CompactRange(1, ['not a hash' as unknown as Uint8Array]), TypeError);
    assert.throws(() => new CompactRange(-1), RangeError);
    assert.throws(() => new CompactRange(1.5, [leaves[0]!]), RangeError);
    assert.throws(() => new CompactRange(2 ** 53, []), RangeError);
    assert.throws(() => new CompactRange(1, undefined), RangeError);
    assert.equal(new CompactRange(3, [leaves[0]!, leaves[1]!]).size, 3);
  });

  it('refuses a leaf hash that is not 32 bytes and leaves the range unchanged', () => {
    const range = new CompactRange();
    range.append(leafHash(Uint8Array.of(1)));
    const before = range.root();
    assert.throws(() => range.append(new Uint8Array(31)), TypeError);
    assert.throws(() => range.append(Array.from({ length: 32 }, () => 0) as unknown as Uint8Array), TypeError);
    assert.equal(range.size, 1);
    assert.deepEqual(range.root(), before);
  });

  it('leafHash agrees with SHA-256(0x00 || entry) for entries on both sides of its reused input buffer', () => {
    for (const length of [0, 1, 255, 16 * 1024 - 2, 16 * 1024 - 1, 16 * 1024, 100_000]) {
      const entry = new Uint8Array(length).map((_, i) => (i * 31) & 0xff);
      const expected = createHash('sha256').update(Uint8Array.of(0)).update(entry).digest();
      assert.equal(hex(leafHash(entry)), expected.toString('hex'), `length ${length}`);
    }
    // A result is not overwritten by the next call (the input buffer is reused, the output is not).
    const first = leafHash(Uint8Array.of(1));
    const copy = first.slice();
    leafHash(Uint8Array.of(2));
    assert.deepEqual(first, copy);
  });
});
