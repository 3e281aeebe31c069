/**
 * Access tokens as JWTs (RFC 9068): signed with the keyring's current key on
 * the hot path (node:crypto, synchronous), checked back by the same keyring
 * for introspection and userinfo, and revocable before they expire through a
 * denylist in the hot store that lives exactly until the token's `exp`.
 *
 * Every revocation is also kept in the durable store (revocation-records.ts)
 * until its mark lapses, written before the mark: a hot store that comes
 * back empty (no persistence, a failover to an empty replica) must not make
 * revoked tokens usable again (RFC 7009 section 2). Such a loss is noticed
 * by a sentinel key the hot store holds once it has every mark; while it is
 * missing, checks read the durable records, and the marks are copied back.
 */
import type { DomainEvents } from '../events/index.ts';
import type { HookChains } from '../hooks/index.ts';
import { releasedClaims } from './hooks.ts';
import type { RevocationRecords } from './revocation-records.ts';
import type { Clock, HotStore } from '../store/index.ts';
import { JwtError, randomId, signJwtAsync, verifyJwtAsync, type Keyring, type SigningAlgorithm } from '../tokens/index.ts';

/** RFC 9068 section 2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/**
 * How far in this instance's future a token's `iat` or `nbf` may be
 * (seconds): the clock skew allowed between the instances of one deployment
 * (issue 16), the "few minutes" of leeway of RFC 7519 sections 4.1.4 and
 * 4.1.5. Without it a token one instance has just issued is refused by
 * another whose clock is behind. `exp` gets no leeway (RFC 9068 section 4:
 * the current time must be before it).
 */
export const MAX_INSTANCE_SKEW_SECONDS = 300;

export interface AccessTokenRequest {
  readonly clientId: string;
  /** The user, or for client_credentials the client itself (RFC 9068 section 2.2). */
  readonly subject: string;
  readonly scope: string;
  readonly audience: string | readonly string[];
  readonly algorithm?: SigningAlgorithm;
  /** Extra claims: auth_time, sid, acr, cnf (RFC 9449 section 6). */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** What the access-token.claims chain is told: the grant, and the user (null for client_credentials). */
  readonly grant: { readonly type: string; readonly userId: string | null };
}

export interface IssuedAccessToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresIn: number;
  readonly expiresAt: number;
}

/** The claims of a valid access token, as introspection reports them (RFC 7662 section 2.2). */
export interface AccessTokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | string[];
  readonly client_id: string;
  readonly scope: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly [claim: string]: unknown;
}

export interface AccessTokenOptions {
  readonly keyring: Keyring;
  readonly hot: HotStore;
  readonly clock: Clock;
  readonly issuer: string;
  readonly ttlSeconds: number;
  readonly defaultAlgorithm: SigningAlgorithm;
  /** Whether the client a token was issued to still exists: a deleted client's tokens end with it. */
  readonly clientExists?: (clientId: string) => Promise<boolean>;
  /** Whether the user a token was issued for is still active: a disabled or deleted user's tokens end too. */
  /** `issuedAt` (ms): tokens issued at or before the user's `tokensNotBefore` are refused. */
  readonly userIsActive?: (userId: string, issuedAt?: number) => Promise<boolean>;
  /** Told of every revocation (`tokens.revoked`), so other instances drop their cached answers at once. */
  readonly events?: Pick<DomainEvents, 'emit'>;
  /**
   * How long a "not revoked" answer is reused (default REVOCATION_RECHECK_MS);
   * longer while revocations arrive as events (src/events freshness.ts).
   */
  readonly revocationRecheckMs?: () => number;
  /** The chains with access-token.claims (what plugins add to every access token); none run when absent. */
  readonly hooks?: HookChains;
  /**
   * The durable copy of every revocation, which survives the hot store
   * losing its data; absent (unit tests of other things), revocations live
   * in the hot store alone.
   */
  readonly revocations?: RevocationRecords;
}

const DENYLIST = 'oauth:revoked-at:';
/**
 * Tokens whose signature was verified, by their exact text: resource servers
 * introspect the same token many times, and a verified JWT stays verified.
 * Each hit still checks that the signing key is published (a revoked key
 * ends its tokens at once), that the token has not expired, and the
 * revocation lists. Bounded; the oldest entry goes first.
 */
const VERIFIED_CACHE_ENTRIES = 10_000;
/**
 * How long a "not revoked" answer for a cached token is reused before the
 * hot store is asked again. Revocations made by this instance take effect
 * here at once (they drop the cached answer); one made by another instance
 * sharing the hot store arrives as a `tokens.revoked` event where a
 * deployment-wide bus carries them, and otherwise takes effect here within
 * this time, the "propagation delay" RFC 7009 section 2.2 allows for.
 */
export const REVOCATION_RECHECK_MS = 1000;

interface VerifiedToken {
  readonly claims: AccessTokenClaims;
  readonly kid: string;
  /** Until when (performance.now()) the revocation lists need not be read again. */
  liveUntil: number;
}
/** Sessions that ended: their access tokens (claim `sid`) are revoked with them. */
const ENDED_SESSIONS = 'oauth:revoked-sid:';
/**
 * The sentinel: present once the hot store holds every durable revocation
 * (its value is when they were copied). A hot store that lost its data has
 * lost it too, so its marks' silence proves nothing then. Every hot key has
 * a time to live (ports.ts): a long one; when it lapses the marks are only
 * copied again.
 */
const GENERATION = 'oauth:revocations-generation';
const GENERATION_TTL_MS = 30 * 24 * 3_600_000;
/**
 * The sentinel's value while a copy is under way (checks still read the
 * durable records). Renewed after every page; an instance that died while
 * copying leaves it to lapse, and the next check starts over.
 */
const COPYING = 'copying';
const COPYING_TTL_MS = 60_000;

export class AccessTokens {
  readonly #options: AccessTokenOptions;
  readonly #verified = new Map<string, VerifiedToken>();
  /**
   * The cached texts by jti, so a revocation drops every cached answer for
   * the token: an ECDSA signature has two valid forms (s and n - s), so one
   * token can arrive as more than one text.
   */
  readonly #byJti = new Map<string, Set<string>>();
  readonly #recheckMs: () => number;
  /** The copy of the durable revocations into the hot store under way here, if any: one at a time. */
  #restoring: Promise<void> | undefined;

  constructor(options: AccessTokenOptions) {
    this.#options = options;
    this.#recheckMs = options.revocationRecheckMs ?? (() => REVOCATION_RECHECK_MS);
  }

  get ttlSeconds(): number {
    return this.#options.ttlSeconds;
  }

  async issue(request: AccessTokenRequest): Promise<IssuedAccessToken> {
    const { keyring, clock, issuer, ttlSeconds, hooks } = this.#options;
    const audience = typeof request.audience === 'string' ? [request.audience] : request.audience;
    // Before anything is signed: a refusal (a plugin's deny, or its failure) issues no token.
    const added =
      hooks === undefined
        ? undefined
        : releasedClaims(
            await hooks.claims('access-token.claims', { userId: request.grant.userId, clientId: request.clientId, grantType: request.grant.type, scopes: request.scope === '' ? [] : request.scope.split(' '), audience }, {}),
            'access-token.claims',
          );
    const iat = Math.floor(clock() / 1000);
    const exp = iat + ttlSeconds;
    // 128 bits: unguessable, and the denylist key.
    const jti = randomId(16);
    const payload = {
      // First, so no added claim can stand in for a protocol claim below
      // (the chain's namespaces already leave those out: RESERVED_CLAIMS).
      ...added,
      iss: issuer,
      sub: request.subject,
      aud: request.audience,
      exp,
      iat,
      jti,
      client_id: request.clientId,
      scope: request.scope,
      ...request.claims,
    };
    const token = await signJwtAsync(keyring.signingKey(request.algorithm ?? this.#options.defaultAlgorithm), payload, { typ: ACCESS_TOKEN_TYPE });
    return { token, jti, expiresIn: ttlSeconds, expiresAt: exp };
  }

  /**
   * The token's claims when it is one of ours, unexpired and not revoked;
   * null otherwise (introspection answers `active: false` for every such
   * case alike, RFC 7662 section 2.2).
   */
  async check(token: string): Promise<AccessTokenClaims | null> {
    const verified = await this.#verifiedToken(token);
    if (verified === null) return null;
    const { claims } = verified;
    const now = performance.now();
    if (now >= verified.liveUntil) {
      const sid = typeof claims['sid'] === 'string' ? claims['sid'] : undefined;
      const { hot, revocations } = this.#options;
      // The sentinel in the same round trip (the common path costs one more
      // read, no more time), sent after the marks: a store that had lost
      // them by then has lost it too.
      const [revoked, sessionEnded, generation] = await Promise.all([hot.get(DENYLIST + claims.jti), sid === undefined ? null : hot.get(ENDED_SESSIONS + sid), revocations === undefined ? null : hot.get(GENERATION)]);
      let ended = revoked !== null || sessionEnded !== null;
      if (!ended && revocations !== undefined && (generation === null || generation === COPYING)) {
        // The hot store lost its data (or its marks are being put back): the durable records answer until they are.
        void this.restoreRevocations().catch(() => {
          // The sentinel is still missing: the next check tries again.
        });
        ended = await revocations.revoked(claims.jti, sid);
      }
      if (ended) {
        this.#forget(token);
        return null;
      }
      // Only while it is still cached: a revocation during the read dropped it.
      if (this.#verified.get(token) === verified) verified.liveUntil = now + this.#recheckMs();
    }
    if (this.#options.clientExists !== undefined && !(await this.#options.clientExists(claims.client_id))) return null;
    // client_credentials tokens name the client as their subject; the others name a user.
    if (claims.sub !== claims.client_id && this.#options.userIsActive !== undefined && !(await this.#options.userIsActive(claims.sub, claims.iat * 1000))) return null;
    return claims;
  }

  /**
   * Signature, type, issuer and lifetime only, for revocation: no
   * revocation check, and `exp` allowed MAX_INSTANCE_SKEW_SECONDS of leeway,
   * since a token this instance sees as just expired may still be live at an
   * instance whose clock is behind (RFC 7009 section 2.1: the token must
   * stop working).
   */
  async decode(token: string): Promise<AccessTokenClaims | null> {
    const verified = await this.#verifiedToken(token);
    if (verified !== null) return verified.claims;
    if (token.length > 8192) return null;
    try {
      const { payload } = await verifyJwtAsync(token, this.#options.keyring, { now: this.#options.clock(), issuer: this.#options.issuer, typ: ACCESS_TOKEN_TYPE, clockToleranceSeconds: MAX_INSTANCE_SKEW_SECONDS });
      if (typeof payload['jti'] !== 'string' || typeof payload['client_id'] !== 'string' || typeof payload['sub'] !== 'string') return null;
      return payload as unknown as AccessTokenClaims;
    } catch (error) {
      if (error instanceof JwtError) return null;
      throw error;
    }
  }

  async #verifiedToken(token: string): Promise<VerifiedToken | null> {
    if (token.length > 8192) return null;
    const now = this.#options.clock();
    const cached = this.#verified.get(token);
    if (cached !== undefined) {
      if (cached.claims.exp * 1000 > now && this.#options.keyring.verificationKey(cached.kid) !== undefined) return cached;
      this.#forget(token);
      return null;
    }
    try {
      const { header, payload } = await verifyJwtAsync(token, this.#options.keyring, { now, issuer: this.#options.issuer, typ: ACCESS_TOKEN_TYPE, futureToleranceSeconds: MAX_INSTANCE_SKEW_SECONDS });
      if (typeof payload['jti'] !== 'string' || typeof payload['client_id'] !== 'string' || typeof payload['sub'] !== 'string') return null;
      const verified: VerifiedToken = { claims: payload as unknown as AccessTokenClaims, kid: header['kid'] as string, liveUntil: 0 };
      // Oldest first: the expired ones go (tokens are cached about when they are issued, so in roughly
      // the order they expire), then the oldest if it is still full. The cache holds the tokens alive now.
      for (const [text, entry] of this.#verified) {
        if (entry.claims.exp * 1000 > now && this.#verified.size < VERIFIED_CACHE_ENTRIES) break;
        this.#forget(text);
      }
      this.#verified.set(token, verified);
      const texts = this.#byJti.get(verified.claims.jti);
      if (texts === undefined) this.#byJti.set(verified.claims.jti, new Set([token]));
      else texts.add(token);
      return verified;
    } catch (error) {
      if (error instanceof JwtError) return null;
      throw error;
    }
  }

  #forget(token: string): void {
    const cached = this.#verified.get(token);
    if (cached === undefined) return;
    this.#verified.delete(token);
    const texts = this.#byJti.get(cached.claims.jti);
    texts?.delete(token);
    if (texts?.size === 0) this.#byJti.delete(cached.claims.jti);
  }

  /**
   * Puts the token on the denylist until it expires (RFC 7009 section 2).
   * Resolves true the first time, false when it was already revoked.
   */
  async revoke(claims: AccessTokenClaims): Promise<boolean> {
    return this.revokeJti(claims.jti, claims.exp);
  }

  /** Revokes every access token of a session, for as long as any of them can live. */
  async revokeSid(sid: string): Promise<void> {
    // A token issued just before by an instance whose clock is ahead lives that much longer here.
    const ttlMs = (this.#options.ttlSeconds + MAX_INSTANCE_SKEW_SECONDS + 60) * 1000;
    // Durable first: a sign-out that completed outlives the hot store's data.
    await this.#options.revocations?.remember('sid', sid, this.#options.clock() + ttlMs);
    await this.#options.hot.set(ENDED_SESSIONS + sid, '1', ttlMs);
    this.forgetSession(sid);
    await this.#options.events?.emit({ type: 'tokens.revoked', sid });
  }

  /** Drops the cached answers for a session's tokens (it ended here, or on another instance: its event). */
  forgetSession(sid: string): void {
    for (const [token, cached] of this.#verified) if (cached.claims['sid'] === sid) this.#forget(token);
  }

  /** Drops the cached answer for one token (revoked here, or on another instance). */
  forgetJti(jti: string): void {
    for (const text of [...(this.#byJti.get(jti) ?? [])]) this.#forget(text);
  }

  /** Drops every cached answer (revocation events may have been missed). */
  forgetAll(): void {
    this.#verified.clear();
    this.#byJti.clear();
  }

  /** Revokes by id, for tokens known only by their record (a refresh family, a spent code). */
  async revokeJti(jti: string, exp: number): Promise<boolean> {
    this.forgetJti(jti);
    // Until the token has expired at every instance, the one whose clock is
    // furthest behind included (MAX_INSTANCE_SKEW_SECONDS), not only here.
    const until = (exp + MAX_INSTANCE_SKEW_SECONDS) * 1000;
    const ttlMs = until - this.#options.clock();
    if (ttlMs <= 0) return false;
    // Durable first, so a revocation acknowledged to the client survives the
    // hot store's data (RFC 7009 section 2). Whether it is the first one is
    // still the mark's to say: a retry after a failed mark write is first.
    await this.#options.revocations?.remember('jti', jti, until);
    const first = await this.#options.hot.setIfAbsent(DENYLIST + jti, '1', Math.ceil(ttlMs));
    // Dropped again after the write: a check that raced it must not re-cache "live".
    this.forgetJti(jti);
    if (first) await this.#options.events?.emit({ type: 'tokens.revoked', jti });
    return first;
  }

  /**
   * Copies every durable revocation that has not lapsed back into the hot
   * store, then writes the sentinel: at start, and when a check finds the
   * sentinel gone. One copy at a time here; a copy another instance has
   * under way (the sentinel says so) is left to it. The sentinel moves from
   * COPYING to done by compare-and-set on its version, renewed after every
   * page: a hot store that loses its data again during the copy loses that
   * version too, so no sentinel is written over a partial copy.
   */
  restoreRevocations(): Promise<void> {
    this.#restoring ??= this.#restore().finally(() => {
      this.#restoring = undefined;
    });
    return this.#restoring;
  }

  async #restore(): Promise<void> {
    const { hot, revocations, clock } = this.#options;
    if (revocations === undefined || (await hot.getVersioned(GENERATION)) !== null) return;
    // From absent only: a copy another instance began a moment ago is left to it.
    let version = await hot.compareAndSet(GENERATION, 0, COPYING, COPYING_TTL_MS);
    if (version === null) return;
    for await (const page of revocations.unexpired()) {
      const now = clock();
      await Promise.all(page.filter((kept) => kept.until > now).map((kept) => hot.set((kept.kind === 'jti' ? DENYLIST : ENDED_SESSIONS) + kept.value, '1', Math.ceil(kept.until - now))));
      version = await hot.compareAndSet(GENERATION, version, COPYING, COPYING_TTL_MS);
      // Lost again, or lapsed: the next check starts over.
      if (version === null) return;
    }
    await hot.compareAndSet(GENERATION, version, String(clock()), GENERATION_TTL_MS);
  }
}
