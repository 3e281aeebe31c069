/**
 * The rotation schedule: pure functions of the stored keys, the policy and
 * the clock (RFC 7517 section 5, RFC 7515 section 4.1.4). No I/O, no key
 * material: the same answers on every instance that reads the same keys.
 */
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../crypto/index.ts';
import { KeyringError, type KeyringPolicy, type StoredKey } from './keyring-types.ts';

/** The `tokens.*` settings a keyring policy is made from. */
export interface KeyringPolicySettings {
  readonly keyRotationIntervalMs: number;
  readonly jwksMaxAgeSeconds: number;
  readonly keyringRefreshMs: number;
  readonly accessTokenTtlSeconds: number;
  readonly idTokenTtlSeconds: number;
}

/**
 * Verifiers allow this much clock skew past a token's `exp`, so a retired
 * key stays published that much longer.
 */
export const VERIFIER_CLOCK_TOLERANCE_SECONDS = 60;

/**
 * The policy the `tokens.*` settings give: the same for the server and the
 * `keys` command, so both retire keys on one schedule.
 */
export function keyringPolicy(tokens: KeyringPolicySettings, extraLifetimeSeconds = VERIFIER_CLOCK_TOLERANCE_SECONDS): KeyringPolicy {
  return {
    rotationIntervalMs: tokens.keyRotationIntervalMs,
    jwksMaxAgeSeconds: tokens.jwksMaxAgeSeconds,
    maxTokenLifetimeSeconds: Math.max(tokens.accessTokenTtlSeconds, tokens.idTokenTtlSeconds) + extraLifetimeSeconds,
    refreshMs: tokens.keyringRefreshMs,
  };
}

export function checkPolicy(policy: KeyringPolicy): void {
  for (const name of ['rotationIntervalMs', 'jwksMaxAgeSeconds', 'maxTokenLifetimeSeconds', 'refreshMs'] as const) {
    const value = policy[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new KeyringError(`keyring policy ${name} must be a positive integer`);
  }
}

export function byActivation(a: Pick<StoredKey, 'activatesAt' | 'createdAt' | 'kid'>, b: Pick<StoredKey, 'activatesAt' | 'createdAt' | 'kid'>): number {
  return a.activatesAt - b.activatesAt || a.createdAt - b.createdAt || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);
}

/** A key revoked before its activation never signed, so it never retired anything. */
function tookOver(key: StoredKey): boolean {
  return key.revokedAt === undefined || key.revokedAt > key.activatesAt;
}

/** The keys of one algorithm that signed or will sign, in the order they take over. */
export function chainOf<K extends { readonly stored: StoredKey }>(keys: readonly K[], alg: SigningAlgorithm): K[] {
  return keys.filter((key) => key.stored.alg === alg && tookOver(key.stored)).sort((a, b) => byActivation(a.stored, b.stored));
}

/**
 * The key that signs at `now`: the one that took over last, unless it was
 * revoked. A key made to sign at once (the first keys, a revoked key's
 * replacement: `activatesAt` = `createdAt`) signs at once on every instance,
 * also on one whose clock is a little behind the instance that made it;
 * else that instance would make keys of its own, or have none to sign with.
 */
export function currentIn<K extends { readonly stored: StoredKey }>(chain: readonly K[], now: number): K | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const key = chain[i]!;
    if (key.stored.activatesAt > now) continue;
    if (key.stored.revokedAt === undefined) return key;
    break;
  }
  return chain.find(({ stored }) => stored.revokedAt === undefined && stored.activatesAt > now && stored.activatesAt === stored.createdAt);
}

export function wrap(keys: readonly StoredKey[]): { stored: StoredKey }[] {
  return keys.map((stored) => ({ stored }));
}

/** When each key stops signing and leaves the document, from the stored keys alone. */
export function lifetimes(keys: readonly StoredKey[], policy: KeyringPolicy): Map<string, { retiredAt?: number; removeAt?: number }> {
  const lifetimeMs = policy.maxTokenLifetimeSeconds * 1000;
  const result = new Map<string, { retiredAt?: number; removeAt?: number }>();
  for (const key of keys) {
    if (key.revokedAt !== undefined) result.set(key.kid, { removeAt: key.revokedAt + lifetimeMs });
  }
  for (const alg of SIGNING_ALGORITHMS) {
    const chain = chainOf(wrap(keys), alg);
    chain.forEach(({ stored }, i) => {
      const successor = chain[i + 1];
      if (stored.revokedAt !== undefined || successor === undefined) return;
      // Tokens it signed until its successor took over live at most one
      // token lifetime more; until then verifiers need it (RFC 7517 section 5).
      result.set(stored.kid, { retiredAt: successor.stored.activatesAt, removeAt: successor.stored.activatesAt + lifetimeMs });
    });
  }
  return result;
}
