/**
 * Equality of two public-length strings (thumbprints, hashes) without an
 * early exit on the first differing byte: the bound values are secrets'
 * fingerprints, and a timing oracle on them would help forge a match.
 */
import { timingSafeEqual } from 'node:crypto';

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  // The lengths are those of fixed-size digests: not a secret.
  return left.length === right.length && timingSafeEqual(left, right);
}
