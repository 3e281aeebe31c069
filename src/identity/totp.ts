/**
 * TOTP second factor (RFC 6238), with the parameters every authenticator app
 * supports: HMAC-SHA-1, 6 digits, a 30-second time step, T0 = 0.
 *
 * The one-time property is ours to enforce (RFC 6238 section 5.2: "the
 * verifier MUST NOT accept the second attempt of the OTP after the successful
 * validation has been issued for the first OTP"). {@link TotpVerifier} does it
 * in the hot store, atomically, so that it holds across instances.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ScureBase32Plugin, generate, generateURI } from 'otplib';
import { compareAndSetLoop, keep, write, type Clock, type HotStore, type VersionedValue } from '../store/index.ts';

export const TOTP_ALGORITHM = 'sha1';
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** RFC 4226 section 4 R6 asks for at least 128 bits and recommends 160. */
export const TOTP_SECRET_BYTES = 20;
/**
 * Steps accepted either side of the current one: RFC 6238 section 5.2
 * recommends "at most one time step" of allowed network delay.
 */
export const TOTP_WINDOW_STEPS = 1;

const PERIOD_MS = TOTP_PERIOD_SECONDS * 1000;
/**
 * How long the replay keys live. A code for step S is acceptable while the
 * current step is in [S - 1, S + 1], so at most three periods after the
 * earliest moment it can be accepted (the start of step S - 1); one more
 * period absorbs clock skew between instances and the store.
 */
const REPLAY_TTL_MS = (2 * TOTP_WINDOW_STEPS + 2) * PERIOD_MS;
/**
 * Every failed compare-and-set on the last-step register means another
 * submission for this user was accepted for a different step in the
 * meantime; only a handful of steps are ever acceptable at once, so a few
 * rounds always settle it. Running out signals a broken store.
 */
const MAX_REGISTER_ATTEMPTS = 8;
/** Longer inputs are not codes; refuse them before any regex work. */
const MAX_CODE_INPUT_LENGTH = 32;

const base32 = new ScureBase32Plugin();

export type TotpResult = 'ok' | 'invalid' | 'replayed';

/** A new shared secret: 160 random bits, Base32 without padding (32 characters). */
export function generateTotpSecret(): { secret: string } {
  return { secret: base32.encode(new Uint8Array(randomBytes(TOTP_SECRET_BYTES)), { padding: false }) };
}

export interface TotpUriOptions {
  readonly secret: string;
  /** The service name the authenticator app shows, e.g. the organisation. */
  readonly issuer: string;
  /** Which account of that service, e.g. the user's email address. */
  readonly account: string;
}

/**
 * The `otpauth://totp/...` URI an authenticator app scans as a QR code, in
 * the Google Authenticator Key Uri Format: label `issuer:account` (each part
 * percent-encoded) and the issuer again as the `issuer` parameter, which
 * newer apps prefer. Default algorithm, digits and period are left implicit,
 * as the format allows and some apps require.
 *
 * @throws {TypeError} when issuer or account is empty or contains a colon,
 *   which the format forbids (the colon separates them in the label).
 */
export function totpUri(options: TotpUriOptions): string {
  for (const [name, value] of [
    ['issuer', options.issuer],
    ['account', options.account],
  ] as const) {
    if (value.length === 0 || value.includes(':')) throw new TypeError(`totp ${name} must be non-empty and contain no colon`);
  }
  return generateURI({
    issuer: options.issuer,
    label: options.account,
    secret: options.secret,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });
}

/** The 6-digit code for the time step that contains `timeMs` (ms since the epoch). */
export async function totpCodeAt(secret: string, timeMs: number): Promise<string> {
  return codeForStep(secret, Math.floor(timeMs / PERIOD_MS));
}

function codeForStep(secret: string, step: number): Promise<string> {
  return generate({
    secret,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epoch: step * TOTP_PERIOD_SECONDS,
  });
}

/** Exactly six ASCII digits after removing the spaces apps show and users paste ("123 456"). */
function normaliseCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > MAX_CODE_INPUT_LENGTH) return null;
  const code = input.replace(/\s/gu, '');
  return /^[0-9]{6}$/.test(code) ? code : null;
}

export interface TotpVerifierOptions {
  readonly hot: HotStore;
  readonly clock: Clock;
}

/**
 * Checks TOTP codes and makes each one single-use.
 *
 * Replay defence, in the hot store, per user:
 * - `totp:last:<user>` holds the last accepted step. A code is accepted only
 *   for a step strictly greater, so neither the same code again nor a code
 *   of an earlier window that is still inside the ±1 tolerance can follow a
 *   newer one. The register advances by compare-and-set on its version:
 *   the CAS is the point where a submission is decided, so any two
 *   acceptances are ordered and the later one has the greater step.
 * - `totp:used:<user>:<step>` is claimed with `setIfAbsent` before the
 *   register moves. It alone guarantees that one step is accepted at most
 *   once for a user, whatever happens to the register (for instance its
 *   version restarting at 1 if it expired between our read and our write).
 * Both keys outlive the acceptance window of their step. A crash between the
 * claim and the register write fails safe: that code is refused and the
 * user waits for the next one.
 */
export class TotpVerifier {
  readonly #hot: HotStore;
  readonly #clock: Clock;

  constructor(options: TotpVerifierOptions) {
    this.#hot = options.hot;
    this.#clock = options.clock;
  }

  /**
   * 'invalid' for a malformed or wrong code (without touching the store);
   * 'replayed' for a right code whose step, or a later one, was already
   * accepted for this user; 'ok' exactly once per step otherwise.
   * Throws (a stored-data fault, not a user error) when `secret` is not
   * Base32 of at least 16 bytes.
   */
  async verify(userId: string, secret: string, code: string): Promise<TotpResult> {
    const normalised = normaliseCode(code);
    if (normalised === null) return 'invalid';
    const step = await this.#matchingStep(secret, normalised);
    if (step === null) return 'invalid';

    const user = encodeURIComponent(userId);
    const lastKey = `totp:last:${user}`;
    const last = await this.#hot.getVersioned(lastKey);
    // Cheap early refusal of a stale code; the decision is the CAS below.
    if (last !== null && parseStep(last.value) >= step) return 'replayed';
    if (!(await this.#hot.setIfAbsent(`totp:used:${user}:${step}`, '1', REPLAY_TTL_MS))) return 'replayed';

    const read = () => this.#hot.getVersioned(lastKey);
    const stale = (register: VersionedValue | null) => register !== null && parseStep(register.value) >= step;
    const { result } = await compareAndSetLoop<VersionedValue | null, string, TotpResult>({
      attempts: MAX_REGISTER_ATTEMPTS,
      // The register as read before the claim: the first round writes on it.
      initial: { snapshot: last },
      read,
      decide: (register) => (stale(register) ? keep('replayed') : write(String(step), 'ok')),
      write: async (register, value) => (await this.#hot.compareAndSet(lastKey, register?.version ?? 0, value, REPLAY_TTL_MS)) !== null,
      // After the last lost race, a newer acceptance still means "replayed".
      exhausted: async (): Promise<TotpResult> => {
        if (stale(await read())) return 'replayed';
        throw new Error('TOTP replay register kept changing; the hot store is not keeping its compare-and-set promise');
      },
    });
    return result;
  }

  /**
   * The step within the tolerance window whose code matches, the newest if
   * several do. Every candidate is compared, in constant time, so the time
   * taken does not depend on which (if any) matched.
   */
  async #matchingStep(secret: string, code: string): Promise<number | null> {
    const current = Math.floor(this.#clock() / PERIOD_MS);
    const given = Buffer.from(code, 'ascii');
    let matched: number | null = null;
    for (let step = current - TOTP_WINDOW_STEPS; step <= current + TOTP_WINDOW_STEPS; step++) {
      const expected = Buffer.from(await codeForStep(secret, step), 'ascii');
      if (timingSafeEqual(expected, given)) matched = step;
    }
    return matched;
  }
}

/** A register value that is not a step (corrupt) reads as "nothing accepted yet" and is overwritten. */
function parseStep(value: string): number {
  return /^[0-9]+$/.test(value) ? Number(value) : Number.NEGATIVE_INFINITY;
}
