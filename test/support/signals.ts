/**
 * A stand-in SSF transmitter for the `portcullis/sdk/signals` tests: keys
 * made with jose, SETs signed with them, and a node:http server with the
 * SSF configuration (SSF 1.0 section 7.1) and the JWKS, counting how often
 * each is fetched. More routes (poll, WebSocket) are added by the tests
 * through `route`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { SECURITY_EVENT_TYPES, SET_TYP } from '../../src/sdk/security-events.ts';

export const AUDIENCE = 'https://receiver.example.com/';

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

export async function signingKey(alg: 'ES256' | 'EdDSA' | 'RS256' = 'ES256', kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** The claims of a well-formed SET from `issuer` to AUDIENCE; `overrides` replace or (as undefined) remove claims. */
export function setClaims(issuer: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: issuer,
    aud: AUDIENCE,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    sub_id: { format: 'iss_sub', iss: issuer, sub: 'user-1' },
    events: { [SECURITY_EVENT_TYPES.sessionRevoked]: { event_timestamp: 1_767_225_600 } },
    ...overrides,
  };
  for (const [name, value] of Object.entries(overrides)) if (value === undefined) delete claims[name];
  return claims;
}

/** Signs `claims` as a SET with `key` (typ and alg overridable to build bad ones). */
export function signSet(claims: Record<string, unknown>, key: SigningKey, header: { typ?: string; alg?: string; kid?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: header.alg ?? key.alg, typ: header.typ ?? SET_TYP, kid: header.kid ?? key.kid })
    .sign(key.privateKey);
}

/** An alg "none" SET (RFC 7519 section 6): header.payload. with an empty signature. */
export function unsecuredSet(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: SET_TYP })}.${part(claims)}.`;
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface Transmitter {
  readonly issuer: string;
  readonly server: Server;
  /** The keys the JWKS lists now; change at will. */
  keys: SigningKey[];
  /** How often each path was requested. */
  readonly hits: Map<string, number>;
  route(path: string, handler: Route): void;
  sign(overrides?: Record<string, unknown>, key?: SigningKey): Promise<string>;
  close(): Promise<void>;
}

export async function startTransmitter(keys: SigningKey[]): Promise<Transmitter> {
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const handler = routes.get(path);
    if (handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve(handler(req, res)).catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const transmitter: Transmitter = {
    issuer,
    server,
    keys,
    hits,
    route: (path, handler) => routes.set(path, handler),
    sign: (overrides = {}, key = transmitter.keys[0]!) => signSet(setClaims(issuer, overrides), key),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const json = (res: ServerResponse, body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  transmitter.route('/.well-known/ssf-configuration', (_req, res) =>
    json(res, {
      issuer,
      jwks_uri: `${issuer}/jwks.json`,
      delivery_methods_supported: ['urn:ietf:rfc:8935', 'urn:ietf:rfc:8936'],
      configuration_endpoint: `${issuer}/ssf/stream`,
      status_endpoint: `${issuer}/ssf/status`,
      verification_endpoint: `${issuer}/ssf/verify`,
    }),
  );
  transmitter.route('/jwks.json', (_req, res) => json(res, { keys: transmitter.keys.map((key) => key.jwk) }));
  return transmitter;
}
