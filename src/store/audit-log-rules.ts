import type { TreeNodeAddress } from './ports.ts';

/** Most entries one `append` takes: bounds a transaction's size and time. */
export const MAX_APPEND_BATCH = 10_000;
/** Most entries one `entries` call returns. */
export const MAX_ENTRY_PAGE = 1000;

/** Argument checks every audit-log driver applies before touching its database. */
export function checkAppend(entries: readonly Uint8Array[], recordedAt: number): void {
  if (entries.length === 0 || entries.length > MAX_APPEND_BATCH) {
    throw new RangeError(`an append takes 1 to ${MAX_APPEND_BATCH} entries, got ${entries.length}`);
  }
  if (!Number.isSafeInteger(recordedAt) || recordedAt < 0) throw new TypeError('recordedAt must be a non-negative integer (ms)');
  for (const entry of entries) {
    if (!(entry instanceof Uint8Array) || entry.length === 0) throw new TypeError('an audit entry must be a non-empty Uint8Array');
  }
}

export function assertEntryRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`bad entry range [${start}, ${end})`);
  }
}

export function assertNodeAddresses(addresses: readonly TreeNodeAddress[]): void {
  for (const { level, index } of addresses) {
    if (!Number.isSafeInteger(level) || level < 0 || level > 63 || !Number.isSafeInteger(index) || index < 0) {
      throw new RangeError(`bad tree node address (${level}, ${index})`);
    }
  }
}
