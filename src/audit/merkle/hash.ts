/**
 * The hashes of the RFC 9162 section 2.1.1 Merkle tree, with SHA-256: leaf
 * hashes, interior node hashes and the empty-tree root. Every other part of
 * merkle/ (compact ranges, proofs) and the ledger and the verifier hash
 * through these functions only.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { types } from 'node:util';

/** Bytes in a SHA-256 hash: every leaf hash, node hash, root and proof element. */
export const HASH_SIZE = 32;

// RFC 9162 2.1.1: the 0x00 / 0x01 prefixes give leaves and interior nodes
// distinct preimages, so a leaf can never be passed off as a node (second
// preimage defence).
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = 0x01;

// One one-shot crypto.hash call over a reused input buffer measured about
// 1.5x faster than a createHash().update().update().digest() chain for the
// short inputs that dominate: every node (65 bytes) and an audit entry
// (a few hundred bytes). The buffers never escape and hashing is
// synchronous, so reuse is safe. Entries too long for the leaf buffer are
// hashed in place with update() calls instead of being copied.
const nodeInput = new Uint8Array(1 + 2 * HASH_SIZE);
nodeInput[0] = NODE_PREFIX;
const LEAF_INPUT_SIZE = 16 * 1024;
const leafInput = new Uint8Array(LEAF_INPUT_SIZE); // [0] stays 0x00, the leaf prefix

/** Plain Uint8Array view (no copy) of a Buffer, so results compare equal to any Uint8Array. */
function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** A 32-byte Uint8Array (from any realm: util.types also accepts arrays made in a vm context). */
export function isHash(value: unknown): value is Uint8Array {
  return types.isUint8Array(value) && value.length === HASH_SIZE;
}

export function assertHash(value: unknown, what: string): asserts value is Uint8Array {
  if (!isHash(value)) throw new TypeError(`${what} must be a ${HASH_SIZE}-byte Uint8Array`);
}

/** Leaf hash: SHA-256(0x00 || entry) (RFC 9162 2.1.1, MTH({d0})). */
export function leafHash(entry: Uint8Array): Uint8Array {
  if (types.isUint8Array(entry) && entry.length < LEAF_INPUT_SIZE) {
    leafInput.set(entry, 1);
    return view(oneShotHash('sha256', leafInput.subarray(0, entry.length + 1), 'buffer'));
  }
  return view(createHash('sha256').update(LEAF_PREFIX).update(entry).digest());
}

/** Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 2.1.1). Throws TypeError unless both are 32-byte hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  assertHash(left, 'left');
  assertHash(right, 'right');
  return childrenHash(left, right);
}

/**
 * nodeHash without the argument checks, for callers inside merkle/ whose
 * inputs are hashes this module computed or checked already (a compact
 * range appends one per leaf on average, so the checks would show).
 */
export function childrenHash(left: Uint8Array, right: Uint8Array): Uint8Array {
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
 * True when a and b are Uint8Arrays with the same bytes. Roots, proofs and
 * leaf hashes are public, so a plain comparison is fine (no secret to leak
 * through timing).
 */
export function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  if (!types.isUint8Array(a) || !types.isUint8Array(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
