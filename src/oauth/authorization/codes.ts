/**
 * Authorization codes (RFC 6749 section 4.1.2): 256 random bits, kept only
 * as a hash in the hot store, redeemable once. Redemption is one atomic
 * `consume`, so of any number of concurrent redemptions exactly one gets the
 * grant. A spent code leaves a marker naming what it was exchanged for, so a
 * second use can revoke those tokens (RFC 6749 section 10.5, RFC 9700
 * section 4.2.4 / 2.1.1).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { HotStore } from '../../store/index.ts';

/** What the code stands for: everything the token endpoint checks and issues from. */
export interface AuthorizationGrant {
  readonly clientId: string;
  /** The redirect URI the authorization response went to. */
  readonly redirectUri: string;
  /** Whether the authorization request named it (absent on codes from before: treated as named). */
  readonly redirectUriGiven?: boolean;
  readonly scope: string;
  readonly resources: readonly string[];
  readonly codeChallenge: string;
  readonly nonce?: string;
  readonly userId: string;
  /** The signed-in session the code came from (its store handle). */
  readonly sessionHandle: string;
  readonly authTime: number;
  readonly amr: readonly string[];
  /** RFC 9449 section 10: a code bound to a DPoP key by `dpop_jkt`. */
  readonly dpopJkt?: string;
  readonly issuedAt: number;
}

/** What a redeemed code was exchanged for. */
export interface CodeRedemption {
  readonly clientId: string;
  readonly userId: string;
  readonly accessTokenJti: string;
  readonly accessTokenExpiresAt: number;
  readonly refreshFamilyId?: string;
}

const codeKey = (hash: string) => `oauth:code:${hash}`;
const spentKey = (hash: string) => `oauth:code-spent:${hash}`;
/** A spent code is remembered this long: past its own life and its tokens'. */
const SPENT_MEMORY_MS = 60 * 60 * 1000;
const CODE_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function hashCode(code: string): string {
  return createHash('sha256').update(code).digest('base64url');
}

export class AuthorizationCodes {
  readonly #hot: HotStore;
  readonly #ttlMs: number;

  constructor(options: { hot: HotStore; ttlSeconds: number }) {
    this.#hot = options.hot;
    this.#ttlMs = options.ttlSeconds * 1000;
  }

  async issue(grant: AuthorizationGrant): Promise<string> {
    const code = randomBytes(32).toString('base64url');
    await this.#hot.set(codeKey(hashCode(code)), JSON.stringify(grant), this.#ttlMs);
    return code;
  }

  /**
   * Takes the code: its grant the first time, `spent` with what it was
   * exchanged for when it was already redeemed, or `unknown`.
   */
  async redeem(code: string): Promise<{ outcome: 'ok'; grant: AuthorizationGrant; hash: string } | { outcome: 'spent'; redemption: CodeRedemption | null } | { outcome: 'unknown' }> {
    if (!CODE_PATTERN.test(code)) return { outcome: 'unknown' };
    const hash = hashCode(code);
    const taken = await this.#hot.consume(codeKey(hash));
    if (taken !== null) {
      // Marked at once, so a replay racing the exchange is seen as a replay.
      await this.#hot.set(spentKey(hash), 'pending', SPENT_MEMORY_MS);
      return { outcome: 'ok', grant: JSON.parse(taken) as AuthorizationGrant, hash };
    }
    const spent = await this.#hot.get(spentKey(hash));
    if (spent === null) return { outcome: 'unknown' };
    return { outcome: 'spent', redemption: spent === 'pending' ? null : (JSON.parse(spent) as CodeRedemption) };
  }

  /** Records what the code was exchanged for, for a later replay to revoke. */
  async recordRedemption(hash: string, redemption: CodeRedemption): Promise<void> {
    await this.#hot.set(spentKey(hash), JSON.stringify(redemption), SPENT_MEMORY_MS);
  }
}
