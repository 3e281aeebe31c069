/**
 * Access tokens as JWTs (RFC 9068): signed with the keyring's current key on
 * the hot path (node:crypto, synchronous), checked back by the same keyring
 * for introspection and userinfo, and revocable before they expire through a
 * denylist in the hot store that lives exactly until the token's `exp`.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, HotStore } from '../store/index.ts';
import { JwtError, signJwt, verifyJwt, type Keyring, type SigningAlgorithm } from '../tokens/index.ts';

/** RFC 9068 section 2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

export interface AccessTokenRequest {
  readonly clientId: string;
  /** The user, or for client_credentials the client itself (RFC 9068 section 2.2). */
  readonly subject: string;
  readonly scope: string;
  readonly audience: string | readonly string[];
  readonly algorithm?: SigningAlgorithm;
  /** Extra claims: auth_time, sid, acr, cnf (RFC 9449 section 6). */
  readonly claims?: Readonly<Record<string, unknown>>;
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
}

const DENYLIST = 'oauth:revoked-at:';
/** Sessions that ended: their access tokens (claim `sid`) are revoked with them. */
const ENDED_SESSIONS = 'oauth:revoked-sid:';

export class AccessTokens {
  readonly #options: AccessTokenOptions;

  constructor(options: AccessTokenOptions) {
    this.#options = options;
  }

  get ttlSeconds(): number {
    return this.#options.ttlSeconds;
  }

  issue(request: AccessTokenRequest): IssuedAccessToken {
    const { keyring, clock, issuer, ttlSeconds } = this.#options;
    const iat = Math.floor(clock() / 1000);
    const exp = iat + ttlSeconds;
    // 128 bits: unguessable, and the denylist key.
    const jti = randomBytes(16).toString('base64url');
    const payload = {
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
    const token = signJwt(keyring.signingKey(request.algorithm ?? this.#options.defaultAlgorithm), payload, { typ: ACCESS_TOKEN_TYPE });
    return { token, jti, expiresIn: ttlSeconds, expiresAt: exp };
  }

  /**
   * The token's claims when it is one of ours, unexpired and not revoked;
   * null otherwise (introspection answers `active: false` for every such
   * case alike, RFC 7662 section 2.2).
   */
  async check(token: string): Promise<AccessTokenClaims | null> {
    const claims = this.decode(token);
    if (claims === null) return null;
    const sid = typeof claims['sid'] === 'string' ? claims['sid'] : undefined;
    const [revoked, sessionEnded] = await Promise.all([this.#options.hot.get(DENYLIST + claims.jti), sid === undefined ? null : this.#options.hot.get(ENDED_SESSIONS + sid)]);
    if (revoked !== null || sessionEnded !== null) return null;
    return claims;
  }

  /** Signature, type, issuer and lifetime only: no revocation check. */
  decode(token: string): AccessTokenClaims | null {
    if (token.length > 8192) return null;
    try {
      const { payload } = verifyJwt(token, this.#options.keyring, { now: this.#options.clock(), issuer: this.#options.issuer, typ: ACCESS_TOKEN_TYPE });
      if (typeof payload['jti'] !== 'string' || typeof payload['client_id'] !== 'string' || typeof payload['sub'] !== 'string') return null;
      return payload as unknown as AccessTokenClaims;
    } catch (error) {
      if (error instanceof JwtError) return null;
      throw error;
    }
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
    await this.#options.hot.set(ENDED_SESSIONS + sid, '1', (this.#options.ttlSeconds + 60) * 1000);
  }

  /** Revokes by id, for tokens known only by their record (a refresh family, a spent code). */
  async revokeJti(jti: string, exp: number): Promise<boolean> {
    const ttlMs = exp * 1000 - this.#options.clock();
    if (ttlMs <= 0) return false;
    return this.#options.hot.setIfAbsent(DENYLIST + jti, '1', Math.ceil(ttlMs));
  }
}
