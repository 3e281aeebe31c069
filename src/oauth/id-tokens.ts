/**
 * ID tokens (OpenID Connect Core 1.0 section 2 and 3.1.3.6), signed with the
 * algorithm the client registered (id_token_signed_response_alg).
 */
import { createHash } from 'node:crypto';
import type { Claims, HookChains } from '../hooks/index.ts';
import type { Clock } from '../store/index.ts';
import { tokenHashAlgorithm } from '../crypto/index.ts';
import { releasedClaims } from './hooks.ts';
import { signJwt, type Keyring, type SigningAlgorithm } from '../tokens/index.ts';

export interface IdTokenRequest {
  readonly clientId: string;
  readonly subject: string;
  readonly algorithm: SigningAlgorithm;
  readonly authTime: number;
  readonly nonce?: string;
  readonly amr: readonly string[];
  readonly sid?: string;
  /** The access token issued with it: at_hash binds the two (section 3.1.3.6). */
  readonly accessToken: string;
  /** What the token.claims chain added (extraClaims); the protocol's claims above always win. */
  readonly claims?: Claims;
}

export class IdTokens {
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #issuer: string;
  readonly #ttlSeconds: number;
  readonly #hooks: HookChains;
  readonly #claimValues: (userId: string) => Promise<Claims | null>;

  /** `hooks`: the chains with token.claims; `claimValues`: a user's claim values, read only when a handler asks. */
  constructor(options: { keyring: Keyring; clock: Clock; issuer: string; ttlSeconds: number; hooks: HookChains; claimValues: (userId: string) => Promise<Claims | null> }) {
    this.#hooks = options.hooks;
    this.#claimValues = options.claimValues;
    this.#keyring = options.keyring;
    this.#clock = options.clock;
    this.#issuer = options.issuer;
    this.#ttlSeconds = options.ttlSeconds;
  }

  /** The token.claims chain: the claims the ID token carries beyond the protocol's own; throws when the chain refuses (releasedClaims). */
  async extraClaims(request: { userId: string; clientId: string; scopes: readonly string[]; accessTokenIssued: boolean }): Promise<Claims> {
    return releasedClaims(await this.#hooks.claims('token.claims', { ...request, claimValues: () => this.#claimValues(request.userId) }, {}), 'token.claims');
  }

  issue(request: IdTokenRequest): string {
    const iat = Math.floor(this.#clock() / 1000);
    return signJwt(this.#keyring.signingKey(request.algorithm), {
      // First, so no added claim can stand in for a protocol claim below
      // (the chain's namespaces already leave those out: RESERVED_CLAIMS).
      ...request.claims,
      iss: this.#issuer,
      sub: request.subject,
      aud: request.clientId,
      exp: iat + this.#ttlSeconds,
      iat,
      auth_time: Math.floor(request.authTime / 1000),
      ...(request.nonce !== undefined && { nonce: request.nonce }),
      at_hash: tokenHash(request.accessToken, request.algorithm),
      // RFC 8176 authentication method references.
      ...(request.amr.length > 0 && { amr: request.amr }),
      ...(request.sid !== undefined && { sid: request.sid }),
      // Email and profile claims come from the token.claims chain
      // (oidc.id-token-scope-claims): OIDC Core section 5.4 puts them here
      // only when no access token is issued, and every flow here
      // (response_type=code) issues one, so they come from /userinfo.
    });
  }
}

/**
 * OIDC Core section 3.1.3.6: the left half of the hash of the token's ASCII
 * octets, with the hash of the JWS algorithm: SHA-256 for ES256, RS256 and
 * PS256; for EdDSA with Ed25519, SHA-512 (the OpenID Foundation's choice for
 * Ed25519, as its conformance suite checks it). The algorithm table
 * (crypto/algorithms.ts) holds the choice.
 */
export function tokenHash(token: string, algorithm: SigningAlgorithm): string {
  const digest = createHash(tokenHashAlgorithm(algorithm)).update(token, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}
