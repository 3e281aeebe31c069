/**
 * The client side: a `fetch` that proves possession of a DPoP key on every
 * request (RFC 9449 section 4). Each call signs a fresh proof with `htm`,
 * `htu` (the URL without query and fragment), `iat`, a random `jti`, and,
 * when an access token goes with it, `ath` (section 4.2) and the
 * `Authorization: DPoP` header (section 7.1). It remembers each server's
 * latest `DPoP-Nonce` (section 8.2: a nonce is per server) and, when a
 * server refuses with use_dpop_nonce (a 401 challenge from a resource
 * server, section 9; a 400 JSON error from an authorization server,
 * section 8), retries once with the nonce it was given.
 */
import { createHash, randomUUID } from 'node:crypto';
import { exportJWK, SignJWT, type CryptoKey, type JWK, type KeyObject } from 'jose';
import { DPOP_ALGORITHMS } from './dpop.ts';

export interface DPoPKeyPair {
  readonly privateKey: CryptoKey | KeyObject;
  readonly publicKey: CryptoKey | KeyObject;
}

export interface DPoPFetchOptions {
  /** A WebCrypto CryptoKeyPair or a pair of node:crypto KeyObjects. */
  readonly keyPair: DPoPKeyPair;
  /** The proof's JWS algorithm, one of EdDSA, Ed25519, ES256, ES384, PS256, RS256. */
  readonly alg: string;
  readonly fetch?: typeof fetch;
  /** Milliseconds since the epoch; `Date.now` by default. */
  readonly clock?: () => number;
}

export interface DPoPRequestInit extends RequestInit {
  /** The DPoP-bound access token: sent as `Authorization: DPoP …` and hashed into `ath`. */
  readonly accessToken?: string;
}

export type DPoPFetch = ((input: string | URL, init?: DPoPRequestInit) => Promise<Response>) & {
  /** The public JWK the proofs carry (its RFC 7638 thumbprint is the `jkt` tokens are bound to). */
  readonly jwk: () => Promise<JWK>;
};

/** Servers whose nonce is remembered at most (oldest forgotten first). */
const MAX_SERVERS = 100;
/** The public members of a JWK by key type (RFC 7638 section 3.2); nothing private ever enters a proof. */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { OKP: ['kty', 'crv', 'x'], EC: ['kty', 'crv', 'x', 'y'], RSA: ['kty', 'n', 'e'] };

export function createDPoPFetch(options: DPoPFetchOptions): DPoPFetch {
  if (!(DPOP_ALGORITHMS as readonly string[]).includes(options.alg)) throw new TypeError(`DPoP proofs use ${DPOP_ALGORITHMS.join(', ')}, not ${options.alg}`);
  const send = options.fetch ?? fetch;
  const clock = options.clock ?? Date.now;
  const nonces = new Map<string, string>();
  let publicJwk: Promise<JWK> | undefined;

  const jwk = () =>
    (publicJwk ??= exportJWK(options.keyPair.publicKey).then((exported) => {
      const members = PUBLIC_MEMBERS[exported.kty ?? ''];
      if (members === undefined) throw new TypeError('a DPoP key must be an OKP, EC or RSA key');
      return Object.fromEntries(members.map((name) => [name, exported[name as keyof JWK]]));
    }));

  async function proof(method: string, url: URL, accessToken: string | undefined): Promise<string> {
    const claims: Record<string, string | number> = { htm: method, htu: `${url.origin}${url.pathname}`, iat: Math.floor(clock() / 1000), jti: randomUUID() };
    if (accessToken !== undefined) claims['ath'] = createHash('sha256').update(accessToken).digest('base64url');
    const nonce = nonces.get(url.origin);
    if (nonce !== undefined) claims['nonce'] = nonce;
    return new SignJWT(claims).setProtectedHeader({ alg: options.alg, typ: 'dpop+jwt', jwk: await jwk() }).sign(options.keyPair.privateKey);
  }

  function remember(origin: string, response: Response): string | undefined {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce === null || nonce === '') return undefined;
    nonces.delete(origin);
    nonces.set(origin, nonce);
    if (nonces.size > MAX_SERVERS) nonces.delete(nonces.keys().next().value!);
    return nonce;
  }

  async function attempt(url: URL, init: DPoPRequestInit): Promise<Response> {
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    let token = init.accessToken;
    if (token !== undefined) headers.set('authorization', `DPoP ${token}`);
    else {
      // A token the caller put in the header itself is bound just the same.
      const match = /^DPoP\s+(\S+)$/i.exec(headers.get('authorization') ?? '');
      if (match !== null) token = match[1];
    }
    headers.set('dpop', await proof(method, url, token));
    const rest: RequestInit = { ...init };
    delete (rest as { accessToken?: string }).accessToken;
    return send(url, { ...rest, method, headers });
  }

  const dpopFetch = async (input: string | URL, init: DPoPRequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const used = nonces.get(url.origin);
    const response = await attempt(url, init);
    const fresh = remember(url.origin, response);
    // A stream body cannot be sent twice; then the refusal goes to the caller.
    const replayable = init.body === undefined || init.body === null || !(init.body instanceof ReadableStream);
    if (fresh === undefined || fresh === used || !replayable || !(await asksForNonce(response))) return response;
    await response.body?.cancel();
    const retried = await attempt(url, init);
    remember(url.origin, retried);
    return retried;
  };
  return Object.assign(dpopFetch, { jwk });
}

/** RFC 9449 section 9 (a resource server's 401 challenge) or section 8 (an authorization server's 400 error). */
async function asksForNonce(response: Response): Promise<boolean> {
  if (response.status === 401) return /\berror="use_dpop_nonce"/.test(response.headers.get('www-authenticate') ?? '');
  if (response.status !== 400) return false;
  try {
    return ((await response.clone().json()) as { error?: unknown }).error === 'use_dpop_nonce';
  } catch {
    return false;
  }
}
