/**
 * Recovery codes: single-use fallbacks for a lost second factor, shown to
 * the user once and stored only as keyed hashes.
 *
 * Stored record (durable `RecordStore`):
 *   collection  {@link RECOVERY_CODES_COLLECTION} (callers pass it in)
 *   id          the user id; one set per user, regenerating replaces it
 *   data        {@link StoredRecoveryCodes}:
 *               { scheme: 'hmac-sha256-v1',
 *                 codes: [{ hash: base64url HMAC-SHA-256, usedAt: ms | null }] }
 * The record's version is what makes each code single-use: marking a code
 * used is a compare-and-set update from the version the code was found in.
 *
 * Why a keyed fast hash and not argon2: each code carries 60 random bits,
 * far beyond what a password holds, so a slow hash adds little; the HMAC key
 * (derived from the master key by the caller, never stored beside the
 * hashes) means a copy of the database alone cannot be searched offline at
 * all. Online guessing is bounded by the second-factor throttle: wrong
 * codes count per account across sign-ins, slow down after a few and lock
 * after 100 (THROTTLE in throttle.ts, NIST SP 800-63B 5.2.2); a right
 * password does not reset that count.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { codec, collection, keep, systemClock, write, type Clock, type Collection, type RecordStore } from '../store/index.ts';

export const RECOVERY_CODES_COLLECTION = 'recovery_codes';
export const DEFAULT_RECOVERY_CODE_COUNT = 10;

/**
 * Crockford's Base32 alphabet: digits and lowercase letters without i, l, o
 * and u, so that no two characters are easily mistaken for one another.
 * 32 symbols = 5 bits each; 12 symbols = 60 bits per code.
 */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const CODE_SYMBOLS = 12;
const GROUP = 4;
const HASH_SCHEME = 'hmac-sha256-v1';
const MIN_KEY_BYTES = 32;
/**
 * Each failed compare-and-set means another code of this user was used (or
 * the set replaced) in the meantime; a set has at most a few codes, so a
 * few rounds always settle it.
 */
const MAX_UPDATE_ATTEMPTS = 16;

export interface StoredRecoveryCode {
  /** base64url HMAC-SHA-256 of the normalised code. */
  readonly hash: string;
  /** When the code was used (ms since the epoch), null while unused. */
  readonly usedAt: number | null;
}

export interface StoredRecoveryCodes {
  readonly scheme: typeof HASH_SCHEME;
  readonly codes: readonly StoredRecoveryCode[];
}

export class RecoveryCodeStoreError extends Error {
  override readonly name = 'RecoveryCodeStoreError';
}

/** A user's set, checked by {@link parseStored} on every read. */
function recoveryCodeSets(records: RecordStore, name: string): Collection<StoredRecoveryCodes> {
  return collection(records, { name, codec: codec(parseStored) });
}

/**
 * The same records for replacing a set: a replacement needs nothing of the
 * old set, not even that it parses, so a set of an unknown shape is
 * replaced too rather than locking its user out of new codes.
 */
function replaceableSets(records: RecordStore, name: string): Collection<unknown> {
  return collection(records, { name, codec: codec((data: unknown) => data) });
}

/**
 * A fresh set: `codes` to show the user once ('xxxx-xxxx-xxxx'), `stored`
 * to save with {@link saveRecoveryCodes}. `key` is the HMAC key (at least
 * 256 bits; derive it from the master key for this purpose).
 */
export function generateRecoveryCodes(key: Uint8Array, count = DEFAULT_RECOVERY_CODE_COUNT): { codes: string[]; stored: StoredRecoveryCodes } {
  assertKey(key);
  if (!Number.isSafeInteger(count) || count < 1 || count > 100) throw new RangeError('recovery code count must be an integer from 1 to 100');
  const symbols = new Set<string>();
  while (symbols.size < count) symbols.add(randomSymbols());
  const codes = [...symbols].map(format);
  return {
    codes,
    stored: { scheme: HASH_SCHEME, codes: [...symbols].map((code) => ({ hash: hmac(key, code).toString('base64url'), usedAt: null })) },
  };
}

/** Stores a new set for the user, replacing (and so invalidating) any previous one. */
export async function saveRecoveryCodes(records: RecordStore, collection: string, userId: string, stored: StoredRecoveryCodes): Promise<void> {
  await replaceableSets(records, collection).mutate(userId, () => write(stored), {
    attempts: MAX_UPDATE_ATTEMPTS,
    exhausted: () => {
      throw new RecoveryCodeStoreError('recovery codes kept changing while being replaced');
    },
  });
}

/**
 * Uses one recovery code: true exactly once per code, false for a wrong,
 * malformed or already used code (or a user without codes). Input may use
 * any case, dashes and spaces, and i/l/o for 1/1/0.
 *
 * The code is marked used by a compare-and-set update from the record
 * version it was found unused in; a conflict re-reads and re-checks, so of
 * any number of concurrent uses of one code exactly one succeeds.
 */
export async function consumeRecoveryCode(
  records: RecordStore,
  collection: string,
  userId: string,
  code: string,
  key: Uint8Array,
  clock: Clock = systemClock,
): Promise<boolean> {
  assertKey(key);
  const normalised = normaliseRecoveryCode(code);
  if (normalised === null) return false;
  const given = hmac(key, normalised);
  const { result } = await recoveryCodeSets(records, collection).mutate(
    userId,
    (record) => {
      if (record === null) return keep(false);
      const stored = record.data;
      const index = findUnused(stored, given);
      if (index === null) return keep(false);
      const codes = stored.codes.map((entry, i) => (i === index ? { hash: entry.hash, usedAt: clock() } : entry));
      return write({ scheme: stored.scheme, codes }, true);
    },
    {
      attempts: MAX_UPDATE_ATTEMPTS,
      exhausted: () => {
        throw new RecoveryCodeStoreError('recovery codes kept changing while one was being used');
      },
    },
  );
  return result;
}

/** How many unused codes the user has left (0 without a set). */
export async function remainingRecoveryCodes(records: RecordStore, collection: string, userId: string): Promise<number> {
  const record = await recoveryCodeSets(records, collection).get(userId);
  if (record === null) return 0;
  return record.data.codes.filter((entry) => entry.usedAt === null).length;
}

/** The 12 symbols of a code, or null when the input cannot be one. */
export function normaliseRecoveryCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const symbols = input
    .toLowerCase()
    .replace(/[\s-]/gu, '')
    // Crockford's decoding rules: the letters left out read as the digits they resemble.
    .replace(/[il]/g, '1')
    .replace(/o/g, '0');
  if (symbols.length !== CODE_SYMBOLS) return null;
  for (const symbol of symbols) if (!ALPHABET.includes(symbol)) return null;
  return symbols;
}

/** Compares against every entry, so the time taken does not tell which one matched. */
function findUnused(stored: StoredRecoveryCodes, given: Buffer): number | null {
  let found: number | null = null;
  for (const [i, entry] of stored.codes.entries()) {
    const hash = Buffer.from(entry.hash, 'base64url');
    if (hash.length === given.length && timingSafeEqual(hash, given) && entry.usedAt === null) found = i;
  }
  return found;
}

function randomSymbols(): string {
  // 256 is a multiple of 32: the low five bits of a random byte are uniform.
  return Array.from(randomBytes(CODE_SYMBOLS), (byte) => ALPHABET[byte & 31]).join('');
}

function format(symbols: string): string {
  const groups: string[] = [];
  for (let i = 0; i < symbols.length; i += GROUP) groups.push(symbols.slice(i, i + GROUP));
  return groups.join('-');
}

function hmac(key: Uint8Array, normalised: string): Buffer {
  return createHmac('sha256', key).update(normalised, 'ascii').digest();
}

function assertKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) throw new TypeError(`recovery code key must be at least ${MIN_KEY_BYTES} bytes`);
}

function parseStored(data: unknown): StoredRecoveryCodes {
  const candidate = data as { scheme?: unknown; codes?: unknown } | null;
  const valid =
    typeof candidate === 'object' &&
    candidate !== null &&
    candidate.scheme === HASH_SCHEME &&
    Array.isArray(candidate.codes) &&
    (candidate.codes as unknown[]).every(isStoredCode);
  if (!valid) throw new RecoveryCodeStoreError('stored recovery codes have an unknown shape');
  return candidate as StoredRecoveryCodes;
}

function isStoredCode(entry: unknown): entry is StoredRecoveryCode {
  if (typeof entry !== 'object' || entry === null) return false;
  const { hash, usedAt } = entry as { hash?: unknown; usedAt?: unknown };
  return typeof hash === 'string' && (usedAt === null || typeof usedAt === 'number');
}
