import { randomBytes } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import type { Algorithm, Options as Argon2Options } from '@node-rs/argon2';
import { isBreachedPassword } from './breached-passwords.ts';

/**
 * Passwords: the policy a new password must pass, and argon2id hashing.
 *
 * - Policy (NIST SP 800-63B rev. 3 section 5.1.1.2, rev. 4 section 3.1.1.2): 8 to 256 code points after
 *   NFKC normalisation, each code point counted once; no composition rules;
 *   refused when on the shipped breached-password list or when it contains
 *   the account's email local part.
 * - Storage: argon2id PHC strings through @node-rs/argon2, whose hash and
 *   verify run on the libuv thread pool (napi AsyncTask), never on the event
 *   loop. Parameters are configurable but never below the OWASP minimum;
 *   a successful verify reports `needsRehash` when the stored parameters are
 *   not the current ones, so the caller re-hashes on that login (OWASP
 *   Password Storage Cheat Sheet, "Upgrading the Work Factor").
 * - No user enumeration: `verifyDummy` does the same work as a real verify
 *   for an unknown or disabled account, and `verify` does it too for a stored
 *   value that is not a usable hash.
 */

export interface PasswordHashParameters {
  /** Argon2 `m`: memory per hash, in KiB. */
  readonly memoryCostKiB: number;
  /** Argon2 `t`: passes over the memory. */
  readonly timeCost: number;
  /** Argon2 `p`: lanes. */
  readonly parallelism: number;
}

/**
 * The five argon2id configurations of the OWASP Password Storage Cheat Sheet,
 * section "Argon2id" (cheatsheetseries.owasp.org/cheatsheets/
 * Password_Storage_Cheat_Sheet.html). The sheet rates them as equally strong,
 * trading memory for passes; a configuration is accepted when it has at least
 * the memory of one of them with at least its passes.
 */
export const OWASP_ARGON2ID_CONFIGURATIONS: readonly PasswordHashParameters[] = Object.freeze([
  { memoryCostKiB: 47_104, timeCost: 1, parallelism: 1 },
  { memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 },
  { memoryCostKiB: 12_288, timeCost: 3, parallelism: 1 },
  { memoryCostKiB: 9_216, timeCost: 4, parallelism: 1 },
  { memoryCostKiB: 7_168, timeCost: 5, parallelism: 1 },
]);

/**
 * The cheat sheet's summary recommendation (argon2id with 19 MiB, 2 passes,
 * 1 lane), and Portcullis's default. About 11 ms per hash on a 2-core
 * development machine, off the event loop.
 */
export const OWASP_MINIMUM: PasswordHashParameters = Object.freeze({ memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 });

/**
 * Upper bounds. Larger values are almost certainly a configuration mistake
 * (bytes given as KiB, say) and would let one login pin a core for seconds or
 * exhaust memory; a stored hash beyond them is treated as unusable rather
 * than computed.
 */
export const PASSWORD_HASH_MAXIMUM: PasswordHashParameters = Object.freeze({ memoryCostKiB: 1_048_576, timeCost: 64, parallelism: 64 });

/** NIST SP 800-63B section 5.1.1.2: at least 8; at least 64 SHOULD be allowed. */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

/**
 * Input longer than this many UTF-16 code units is refused before it is
 * normalised. Composition shrinks text by a small factor (a Hangul syllable
 * from three jamo, a letter with two marks), far below 16, so no password
 * that normalises to 256 code points is lost; it bounds the work one request
 * can ask for.
 */
const RAW_INPUT_MAX_UNITS = PASSWORD_MAX_LENGTH * 16;

/** Bytes of argon2 output; the library's default, and what needsRehash expects. */
const HASH_BYTES = 32;
const MIN_SALT_BYTES = 16;

export type PasswordPolicyCode = 'too_short' | 'too_long' | 'breached' | 'contains_identifier' | 'invalid';

/** A new password was refused. The message is safe to show the user; it never contains the password. */
export class PasswordPolicyError extends Error {
  override readonly name = 'PasswordPolicyError';
  readonly code: PasswordPolicyCode;

  constructor(code: PasswordPolicyCode, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * NFKC (NIST SP 800-63B section 5.1.1.2 names NFKC or NFKD), applied both
 * when a password is set and at every login, so "é" typed as one code point
 * or as "e" plus a combining accent, or a fullwidth "Ａ" and "A", are the
 * same password.
 */
export function normalisePassword(password: string): string {
  return password.normalize('NFKC');
}

/**
 * Checks a new password and returns its normalised form, the one to hash.
 * Throws PasswordPolicyError, in this order:
 * - `invalid`: lone surrogates, control characters, or code points
 *   unassigned in this Node's Unicode version (a later version could give
 *   them a normalisation, and the stored password would stop matching);
 * - `too_short` / `too_long`: fewer than 8 or more than 256 code points
 *   after NFKC;
 * - `breached`: on the shipped list of common breached passwords, ignoring
 *   case (see breached-passwords.ts);
 * - `contains_identifier`: contains the local part of `context.email` (or
 *   its part before a "+" tag), ignoring case, when that is at least 4 code
 *   points long.
 */
export function checkNewPassword(password: string, context?: { readonly email?: string | undefined }): string {
  if (password.length > RAW_INPUT_MAX_UNITS) throw new PasswordPolicyError('too_long', `a password has at most ${PASSWORD_MAX_LENGTH} characters`);
  if (!password.isWellFormed()) throw new PasswordPolicyError('invalid', 'the password contains an invalid character');
  const normalised = normalisePassword(password);
  if (/[\p{Cc}\p{Cn}]/u.test(normalised)) throw new PasswordPolicyError('invalid', 'the password contains a control or unassigned character');
  const length = codePointLength(normalised);
  if (length < PASSWORD_MIN_LENGTH) throw new PasswordPolicyError('too_short', `a password has at least ${PASSWORD_MIN_LENGTH} characters`);
  if (length > PASSWORD_MAX_LENGTH) throw new PasswordPolicyError('too_long', `a password has at most ${PASSWORD_MAX_LENGTH} characters`);
  if (isBreachedPassword(normalised)) throw new PasswordPolicyError('breached', 'this password is too common: it appears in lists of breached passwords');
  if (context?.email !== undefined) {
    const lowered = normalised.toLowerCase();
    for (const identifier of emailIdentifiers(context.email)) {
      if (lowered.includes(identifier)) throw new PasswordPolicyError('contains_identifier', 'the password must not contain your email address or its name part');
    }
  }
  return normalised;
}

/** The local part of an address, and its base before a "+" tag, normalised, lowercased, each at least 4 code points. */
function emailIdentifiers(email: string): string[] {
  const at = email.lastIndexOf('@');
  const localPart = normalisePassword(at === -1 ? email : email.slice(0, at)).toLowerCase();
  const plus = localPart.indexOf('+');
  const candidates = plus > 0 ? [localPart, localPart.slice(0, plus)] : [localPart];
  return candidates.filter((candidate) => codePointLength(candidate) >= 4);
}

export interface PasswordVerification {
  /** The password matches the stored hash. */
  readonly ok: boolean;
  /** Only when `ok`: the stored hash was made with other parameters; hash the password again and store it. */
  readonly needsRehash: boolean;
}

interface StoredHash extends PasswordHashParameters {
  readonly saltBytes: number;
  readonly hashBytes: number;
}

export class PasswordHasher {
  readonly parameters: PasswordHashParameters;
  readonly #options: Argon2Options;
  /**
   * An argon2id PHC string with the current parameters, a random salt and a
   * random "hash" that no password produces: verifying against it costs
   * exactly what a real verify costs (derive with these m, t, p and salt,
   * then compare) and always fails. Built without hashing, so the
   * constructor stays synchronous and cheap.
   */
  readonly #dummyHash: string;

  /** Throws a RangeError naming the field when a parameter is not an integer, below the OWASP minimum or above PASSWORD_HASH_MAXIMUM. */
  constructor(parameters: PasswordHashParameters) {
    validateParameters(parameters);
    this.parameters = Object.freeze({ memoryCostKiB: parameters.memoryCostKiB, timeCost: parameters.timeCost, parallelism: parameters.parallelism });
    this.#options = {
      algorithm: ARGON2ID,
      memoryCost: parameters.memoryCostKiB,
      timeCost: parameters.timeCost,
      parallelism: parameters.parallelism,
      outputLen: HASH_BYTES,
    };
    this.#dummyHash = `$argon2id$v=19$m=${parameters.memoryCostKiB},t=${parameters.timeCost},p=${parameters.parallelism}$${phcBase64(randomBytes(MIN_SALT_BYTES))}$${phcBase64(randomBytes(HASH_BYTES))}`;
  }

  /**
   * Hashes a password (normalised first) into a PHC string
   * `$argon2id$v=19$m=…,t=…,p=…$salt$hash` with a fresh 16-byte salt.
   * Call checkNewPassword first; this only refuses text that cannot be
   * encoded faithfully (lone surrogates), with PasswordPolicyError `invalid`.
   */
  async hash(password: string): Promise<string> {
    if (!password.isWellFormed()) throw new PasswordPolicyError('invalid', 'the password contains an invalid character');
    return argon2Hash(normalisePassword(password), this.#options);
  }

  /**
   * Checks a password against a stored PHC string. Never throws. A stored
   * value that is not an argon2id v19 PHC string within PASSWORD_HASH_MAXIMUM
   * (empty, bcrypt, argon2i, a "disabled" marker, …) gives `ok: false` after
   * the same work as verifyDummy, so it cannot be told apart by timing.
   */
  async verify(phc: string, password: string): Promise<PasswordVerification> {
    const candidate = preparePassword(password);
    if (candidate === undefined) return { ok: false, needsRehash: false };
    const stored = parsePhc(phc);
    if (stored === undefined) {
      await this.#verifyAgainstDummy(candidate);
      return { ok: false, needsRehash: false };
    }
    let ok: boolean;
    try {
      ok = await argon2Verify(phc, candidate);
    } catch {
      // The library refused the parameters (m below 8 per lane, say): as unusable as a malformed string.
      await this.#verifyAgainstDummy(candidate);
      return { ok: false, needsRehash: false };
    }
    return { ok, needsRehash: ok && this.#differsFromCurrent(stored) };
  }

  /**
   * For an unknown or disabled account: the same work as a wrong-password
   * verify with the current parameters, then false, so the response and its
   * timing do not tell whether the account exists.
   */
  async verifyDummy(password: string): Promise<false> {
    const candidate = preparePassword(password);
    if (candidate !== undefined) await this.#verifyAgainstDummy(candidate);
    return false;
  }

  async #verifyAgainstDummy(candidate: string): Promise<void> {
    try {
      await argon2Verify(this.#dummyHash, candidate);
    } catch {
      // Cannot happen with parameters validated at construction; the answer is false either way.
    }
  }

  #differsFromCurrent(stored: StoredHash): boolean {
    return (
      stored.memoryCostKiB !== this.parameters.memoryCostKiB ||
      stored.timeCost !== this.parameters.timeCost ||
      stored.parallelism !== this.parameters.parallelism ||
      stored.hashBytes !== HASH_BYTES ||
      stored.saltBytes < MIN_SALT_BYTES
    );
  }
}

// @node-rs/argon2 declares Algorithm as an ambient const enum, which
// `isolatedModules` cannot inline, and its runtime object is empty.
const ARGON2ID = 2 satisfies Algorithm.Argon2id;

/**
 * The password as it is hashed, or undefined when it cannot match any
 * stored password (lone surrogates, longer than any valid password). The
 * refusal depends only on the input, never on the account, so answering it
 * early tells nothing about the account.
 */
function preparePassword(password: string): string | undefined {
  if (password.length > RAW_INPUT_MAX_UNITS || !password.isWellFormed()) return undefined;
  return normalisePassword(password);
}

function validateParameters(parameters: PasswordHashParameters): void {
  for (const field of ['memoryCostKiB', 'timeCost', 'parallelism'] as const) {
    const value = parameters[field];
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`password hashing: ${field} must be a positive integer, got ${String(value)}`);
    if (value > PASSWORD_HASH_MAXIMUM[field]) throw new RangeError(`password hashing: ${field} ${value} is above the maximum ${PASSWORD_HASH_MAXIMUM[field]}`);
  }
  const minimumMemory = minimumMemoryCostKiB(parameters.timeCost);
  if (parameters.memoryCostKiB < minimumMemory) {
    throw new RangeError(
      `password hashing: memoryCostKiB ${parameters.memoryCostKiB} is below the OWASP minimum of ${minimumMemory} for timeCost ${parameters.timeCost} (argon2id, OWASP Password Storage Cheat Sheet)`,
    );
  }
}

/** The least memory any OWASP configuration with at most `timeCost` passes uses: more passes buy less memory, never the reverse. */
function minimumMemoryCostKiB(timeCost: number): number {
  let minimum = Number.POSITIVE_INFINITY;
  for (const configuration of OWASP_ARGON2ID_CONFIGURATIONS) {
    if (configuration.timeCost <= timeCost) minimum = Math.min(minimum, configuration.memoryCostKiB);
  }
  return minimum;
}

// PHC string format (P-H-C/phc-string-format): decimal without leading
// zeros, B64 without padding. Only argon2id version 19 is accepted: it is
// all Portcullis writes, and an argon2i or argon2d string in the store was
// not written by it.
const PHC_ARGON2ID = /^\$argon2id\$v=19\$m=([1-9]\d{0,9}),t=([1-9]\d{0,9}),p=([1-9]\d{0,2})\$([A-Za-z0-9+/]{11,86})\$([A-Za-z0-9+/]{22,86})$/;

function parsePhc(phc: string): StoredHash | undefined {
  const match = PHC_ARGON2ID.exec(phc);
  if (match === null) return undefined;
  const stored: StoredHash = {
    memoryCostKiB: Number(match[1]),
    timeCost: Number(match[2]),
    parallelism: Number(match[3]),
    saltBytes: Math.floor((match[4]!.length * 3) / 4),
    hashBytes: Math.floor((match[5]!.length * 3) / 4),
  };
  if (
    stored.memoryCostKiB > PASSWORD_HASH_MAXIMUM.memoryCostKiB ||
    stored.timeCost > PASSWORD_HASH_MAXIMUM.timeCost ||
    stored.parallelism > PASSWORD_HASH_MAXIMUM.parallelism
  ) {
    return undefined;
  }
  return stored;
}

function phcBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

function codePointLength(text: string): number {
  return [...text].length;
}
