/**
 * An authorization server in memory, for the resource-server SDK's tests:
 * signing keys it can rotate, its metadata and JWKS served through an
 * injected fetch that counts requests and sends the Cache-Control the test
 * chooses, and RFC 9068 access tokens with any claim or header changed.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { FetchLike } from '../../src/sdk/index.ts';
import { ManualClock } from './clock.ts';

export const ISSUER = 'https://as.example.com';
export const AUDIENCE = 'https://api.example.com';

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

export class TokenIssuer {
  readonly clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  readonly keys: SigningKey[] = [];
  /** Every URL fetched, in order. */
  readonly requests: string[] = [];
  cacheControl: string | undefined = 'public, max-age=300';
  /** When set, the JWKS endpoint answers this status. */
  failWith: number | undefined;
  metadataIssuer = ISSUER;

  static async create(algs: readonly string[] = ['EdDSA']): Promise<TokenIssuer> {
    const issuer = new TokenIssuer();
    for (const alg of algs) await issuer.addKey(alg);
    return issuer;
  }

  nowSeconds(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  /** A new key, published from the next JWKS fetch on (what a rotation does). */
  async addKey(alg: string, kid = randomUUID()): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const key = { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
    this.keys.push(key);
    return key;
  }

  get jwksRequests(): number {
    return this.requests.filter((url) => url.endsWith('/jwks')).length;
  }

  readonly fetch: FetchLike = async (url) => {
    this.requests.push(url);
    if (url === `${ISSUER}/.well-known/oauth-authorization-server`) return Response.json({ issuer: this.metadataIssuer, jwks_uri: `${ISSUER}/jwks` });
    if (url === `${ISSUER}/jwks`) {
      if (this.failWith !== undefined) return new Response('no', { status: this.failWith });
      const headers: Record<string, string> = { 'content-type': 'application/jwk-set+json' };
      if (this.cacheControl !== undefined) headers['cache-control'] = this.cacheControl;
      return new Response(JSON.stringify({ keys: this.keys.map((key) => key.jwk) }), { headers });
    }
    return new Response('not found', { status: 404 });
  };

  /** An access token; `claims` and `header` override the defaults (undefined removes one). */
  async token(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: SigningKey = this.keys.at(-1)!): Promise<string> {
    const now = this.nowSeconds();
    const payload: Record<string, unknown> = { iss: ISSUER, aud: AUDIENCE, sub: 'user-1', client_id: 'app-1', jti: randomUUID(), iat: now, exp: now + 300, scope: 'things:read things:write', ...claims };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    const protectedHeader: Record<string, unknown> = { alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header };
    for (const [name, value] of Object.entries(protectedHeader)) if (value === undefined) delete protectedHeader[name];
    return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
  }
}
