/**
 * Random identifiers for the hot path (token ids). Each call to
 * `randomBytes` is a separate trip into the system's CSPRNG; drawing 4 KiB
 * at a time and handing out slices gives the same bytes from the same
 * generator for a fraction of the cost (node's own randomUUID does this).
 * Every byte is handed out once.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** `bytes` random bytes (at most 256) as base64url text. */
export function randomId(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 256) throw new RangeError('randomId: 1 to 256 bytes');
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString('base64url', offset, offset + bytes);
  // Spent bytes are overwritten, so nothing handed out stays readable in the pool.
  pool.fill(0, offset, offset + bytes);
  offset += bytes;
  return id;
}
