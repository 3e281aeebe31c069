/**
 * Integer steps of the RFC 9162 section 2.1 algorithms. Tree sizes reach
 * 2^53 - 1, beyond the 32 bits of JavaScript's bitwise operators, so these
 * use arithmetic. Internal to merkle/: not part of the public entry.
 */

/** A tree size or leaf index: a non-negative safe integer. */
export function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

export function isOdd(value: number): boolean {
  return value % 2 === 1;
}

export function half(value: number): number {
  return Math.floor(value / 2);
}

export function isPowerOfTwo(value: number): boolean {
  return value === largestPowerOfTwoAtMost(value);
}

/** For value >= 1. Exact where Math.log2 may round up just below a power of two. */
export function largestPowerOfTwoAtMost(value: number): number {
  let power = 1;
  while (power * 2 <= value) power *= 2;
  return power;
}

/** The k of RFC 9162 2.1.1: the largest power of two smaller than value, for value >= 2. */
export function largestPowerOfTwoBelow(value: number): number {
  return largestPowerOfTwoAtMost(value - 1);
}

/** The number of set bits of a count: how many complete subtrees cover [0, count). */
export function setBits(value: number): number {
  let bits = 0;
  for (let rest = value; rest > 0; rest = half(rest)) if (isOdd(rest)) bits++;
  return bits;
}
