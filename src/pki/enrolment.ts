/**
 * One-time enrolment tokens (`portcullis ca token`): a short-lived JWT
 * signed by the keyring, naming what its bearer may have in one
 * certificate. Single use across instances: the first redemption claims
 * its `jti` in the hot store (shared by every instance) until it expires,
 * so a replay, here or on another instance, is refused.
 */
import type { DomainEvents, EventContext } from '../events/index.ts';
import type { Clock, HotStore } from '../store/index.ts';
import { JwtError, randomId, signJwt, verifyJwt, type SigningAlgorithm, type SigningKey, type VerificationKeys } from '../tokens/index.ts';
import { AuthorityError } from './errors.ts';
import { parseAllowedName } from './policy.ts';
import { parseSpiffeId } from '../sdk/mtls/index.ts';

/** RFC 8725 section 3.11: a type of its own, so no other JWT of this issuer passes for one. */
export const ENROLMENT_TOKEN_TYPE = 'portcullis-enrolment+jwt';
/** An enrolment token is for bootstrapping now, not a standing credential. */
export const MAX_ENROLMENT_TTL_MS = 24 * 3_600_000;
const REPLAY_PREFIX = 'ca:enrolment:';

export interface EnrolmentTokensOptions {
  readonly keyring: VerificationKeys & { signingKey(alg: SigningAlgorithm): SigningKey };
  readonly algorithm: SigningAlgorithm;
  readonly hot: HotStore;
  readonly clock: Clock;
  readonly events: DomainEvents;
  readonly issuer: string;
  readonly trustDomain: string;
}

export interface EnrolmentGrant {
  readonly jti: string;
  /** Allowed names, written as `--cert-san` takes them. */
  readonly names: readonly string[];
  readonly expiresAt: number;
}

export class EnrolmentTokens {
  readonly #options: EnrolmentTokensOptions;

  constructor(options: EnrolmentTokensOptions) {
    this.#options = options;
  }

  /** Where the token may be used: its audience. */
  get audience(): string {
    return `${this.#options.issuer.replace(/\/$/, '')}/ca/sign`;
  }

  async create(request: { readonly names: readonly string[]; readonly ttlMs: number; readonly context?: EventContext }): Promise<{ readonly token: string; readonly jti: string; readonly expiresAt: Date }> {
    if (!Number.isSafeInteger(request.ttlMs) || request.ttlMs < 1000 || request.ttlMs > MAX_ENROLMENT_TTL_MS) throw new RangeError('an enrolment token lives between 1 second and 24 hours');
    // In their one spelling (DNS lower case, IP canonical), as the policy compares them.
    const names = [...new Set(request.names.map((name) => parseAllowedName(name).written))];
    const uris = names.filter((name) => name.startsWith('spiffe:'));
    if (uris.length !== 1) throw new RangeError('an enrolment token names exactly one SPIFFE ID (--san spiffe://...), plus any dns: and ip: names');
    if (parseSpiffeId(uris[0]!).trustDomain !== this.#options.trustDomain) throw new RangeError(`${uris[0]} is outside this CA's trust domain ${this.#options.trustDomain}`);
    const now = this.#options.clock();
    const jti = randomId(16);
    const expiresAt = now + request.ttlMs;
    const token = signJwt(
      this.#options.keyring.signingKey(this.#options.algorithm),
      { iss: this.#options.issuer, aud: this.audience, sub: uris[0], jti, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000), sans: names },
      { typ: ENROLMENT_TOKEN_TYPE },
    );
    await this.#options.events.emit({ type: 'ca.enrolment.created', outcome: 'success', actorService: 'admin', ...request.context, detail: { jti, spiffeId: uris[0]!, names: names.length, expiresAt: new Date(expiresAt).toISOString() } });
    return { token, jti, expiresAt: new Date(expiresAt) };
  }

  /** Checks signature, type, issuer, audience and lifetime; does not use the token up (redeem does). */
  verify(token: string): EnrolmentGrant {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = verifyJwt(token, this.#options.keyring, { now: this.#options.clock(), issuer: this.#options.issuer, audience: this.audience, typ: ENROLMENT_TOKEN_TYPE }));
    } catch (error) {
      if (error instanceof JwtError) throw new AuthorityError('enrolment_refused', 'the enrolment token is not valid (signature, type, audience or lifetime)');
      throw error;
    }
    const { jti, sans, exp } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || typeof exp !== 'number' || !Array.isArray(sans) || !sans.every((name) => typeof name === 'string')) {
      throw new AuthorityError('enrolment_refused', 'the enrolment token does not name its certificate');
    }
    return { jti, names: sans, expiresAt: exp * 1000 };
  }

  /** Uses the token up; false when it was used before (on any instance). */
  redeem(grant: EnrolmentGrant): Promise<boolean> {
    const ttlMs = Math.max(1000, grant.expiresAt - this.#options.clock() + 60_000);
    return this.#options.hot.setIfAbsent(`${REPLAY_PREFIX}${grant.jti}`, '1', Math.ceil(ttlMs));
  }
}
