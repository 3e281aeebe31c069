/**
 * The adapters on real servers listening on loopback ports, called with
 * fetch: the Fastify plugin (decorated request, route scopes, refusals with
 * WWW-Authenticate and a JSON body, routes outside its scope untouched),
 * the Express middleware, the node:http middleware over mutual TLS with a
 * certificate-bound token, and createDPoPFetch (a proof per request, one
 * retry on use_dpop_nonce with the server's DPoP-Nonce, never more).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { calculateJwkThumbprint, generateKeyPair } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { createDPoPFetch, createVerifier, createVerifierMiddleware, fastifyVerifier, type AuthenticatedRequest, type Verifier, type VerifySuccess } from '../../src/sdk/index.ts';
import { makeTestPki } from '../support/mtls.ts';
import { AUDIENCE, ISSUER, TokenIssuer } from '../support/token-issuer.ts';

let issuer: TokenIssuer;
let verifier: Verifier;
let nonce = 'n-1';

before(async () => {
  issuer = await TokenIssuer.create(['ES256']);
  // The issuer lives in memory; the clock is real here, so tokens are signed for now.
  issuer.clock.advance(Date.now() - issuer.clock.now());
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, realm: 'things' });
});

const listening = (port: number) => `http://127.0.0.1:${port}`;

describe('Fastify plugin', () => {
  let app: FastifyInstance;
  let base: string;
  let seen = 0;

  before(async () => {
    app = Fastify();
    app.addHook('onRequest', async () => {
      seen++;
    });
    await app.register(async (api) => {
      await api.register(fastifyVerifier, { verifier: createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, realm: 'things', dpopNonce: { current: () => nonce } }) });
      api.get('/things', async (request) => ({ sub: (request as unknown as AuthenticatedRequest).auth.token.sub, binding: (request as unknown as AuthenticatedRequest).auth.binding }));
      api.delete('/things', async () => ({ deleted: true }));
      api.get('/admin', { config: { scopes: ['things:admin'] } }, async () => ({ admin: true }));
    });
    app.get('/public', async () => ({ open: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = listening((app.server.address() as AddressInfo).port);
  });
  after(async () => {
    await app.close();
  });

  it('lets a good token through and decorates the request', async () => {
    const response = await fetch(`${base}/things`, { headers: { authorization: `Bearer ${await issuer.token()}` } });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { sub: 'user-1', binding: 'none' });
  });

  it('answers a missing token with 401, the bare challenges and a JSON body', async () => {
    const response = await fetch(`${base}/things`);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="things", DPoP realm="things", algs="EdDSA Ed25519 ES256 ES384 PS256 RS256"');
    assert.deepEqual(await response.json(), { error: 'missing_token', error_description: 'the request has no access token' });
  });

  it('answers a bad token 401 invalid_token and a route needing more scope 403 insufficient_scope', async () => {
    const expired = await fetch(`${base}/things`, { headers: { authorization: `Bearer ${await issuer.token({ exp: issuer.nowSeconds() - 600 })}` } });
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate')!, /error="invalid_token"/);
    assert.deepEqual(await expired.json(), { error: 'invalid_token', error_description: 'the token has expired' });
    const admin = await fetch(`${base}/admin`, { headers: { authorization: `Bearer ${await issuer.token()}` } });
    assert.equal(admin.status, 403);
    assert.match(admin.headers.get('www-authenticate')!, /error="insufficient_scope", error_description="[^"]+", scope="things:admin"/);
    assert.equal((await fetch(`${base}/admin`, { headers: { authorization: `Bearer ${await issuer.token({ scope: 'things:admin' })}` } })).status, 200);
  });

  it('leaves routes outside the plugin\'s scope alone', async () => {
    assert.equal((await fetch(`${base}/public`)).status, 200);
  });

  it('createDPoPFetch: a DPoP-bound token, the nonce challenge answered by one retry with DPoP-Nonce', async () => {
    const keyPair = await generateKeyPair('ES256');
    const dpopFetch = createDPoPFetch({ keyPair, alg: 'ES256' });
    const token = await issuer.token({ cnf: { jkt: await calculateJwkThumbprint(await dpopFetch.jwk()) } });
    const before = seen;
    const response = await dpopFetch(`${base}/things?x=1`, { accessToken: token });
    assert.equal(response.status, 200, response.headers.get('www-authenticate') ?? '');
    assert.deepEqual(await response.json(), { sub: 'user-1', binding: 'dpop' });
    assert.equal(seen - before, 2, 'the first attempt without nonce, one retry with it');
    // The nonce is remembered: the next request needs no retry.
    const again = await dpopFetch(`${base}/things`, { accessToken: token });
    assert.equal(again.status, 200);
    assert.equal(seen - before, 3);
  });

  it('createDPoPFetch retries once only: a server that keeps changing its nonce gets the refusal back', async () => {
    const keyPair = await generateKeyPair('EdDSA');
    const counting: typeof fetch = async (input, init) => {
      nonce = `n-${Math.random()}`;
      return fetch(input, init);
    };
    const dpopFetch = createDPoPFetch({ keyPair, alg: 'EdDSA', fetch: counting });
    const token = await issuer.token({ cnf: { jkt: await calculateJwkThumbprint(await dpopFetch.jwk()) } });
    const before = seen;
    const response = await dpopFetch(`${base}/things`, { accessToken: token });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate')!, /error="use_dpop_nonce"/);
    assert.equal(seen - before, 2);
  });

  it('security: a proof captured from one request does not work for another URL or method, nor again', async () => {
    const keyPair = await generateKeyPair('ES256');
    let captured: Headers | undefined;
    const capture: typeof fetch = async (input, init) => {
      captured = new Headers(init?.headers);
      return fetch(input, init);
    };
    const dpopFetch = createDPoPFetch({ keyPair, alg: 'ES256', fetch: capture });
    const token = await issuer.token({ cnf: { jkt: await calculateJwkThumbprint(await dpopFetch.jwk()) } });
    assert.equal((await dpopFetch(`${base}/things`, { accessToken: token })).status, 200);
    const stolen = Object.fromEntries(captured!.entries());
    assert.equal((await fetch(`${base}/things`, { headers: stolen })).status, 401, 'replayed');
    assert.equal((await fetch(`${base}/admin`, { headers: stolen })).status, 401, 'another URL');
    assert.equal((await fetch(`${base}/things`, { method: 'DELETE', headers: stolen })).status, 401, 'another method');
    assert.equal((await fetch(`${base}/things`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'the bound token as a bearer token');
  });
});

describe('Express middleware', () => {
  let server: ReturnType<ReturnType<typeof express>['listen']>;
  let base: string;

  before(async () => {
    const app = express();
    app.use('/api', createVerifierMiddleware({ verifier, scopes: ['things:read'] }));
    app.get('/api/things', (req, res) => {
      res.json({ sub: (req as unknown as AuthenticatedRequest).auth.token.sub });
    });
    app.get('/open', (_req, res) => {
      res.json({ open: true });
    });
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    base = listening((server.address() as AddressInfo).port);
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('passes a good token to the route with req.auth', async () => {
    const response = await fetch(`${base}/api/things`, { headers: { authorization: `Bearer ${await issuer.token()}` } });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { sub: 'user-1' });
  });

  it('refuses: no token 401, a token without the scope 403, a forged one 401; other paths untouched', async () => {
    assert.equal((await fetch(`${base}/api/things`)).status, 401);
    const narrow = await fetch(`${base}/api/things`, { headers: { authorization: `Bearer ${await issuer.token({ scope: 'things:write' })}` } });
    assert.equal(narrow.status, 403);
    assert.deepEqual(await narrow.json(), { error: 'insufficient_scope', error_description: 'the token lacks a scope this request needs' });
    const token = await issuer.token();
    const forged = await fetch(`${base}/api/things`, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate')!, /error="invalid_token"/);
    assert.equal((await fetch(`${base}/open`)).status, 200);
  });

  it('a DPoP-bound token through createDPoPFetch (the mounted path is the htu)', async () => {
    const keyPair = await generateKeyPair('ES256');
    const dpopFetch = createDPoPFetch({ keyPair, alg: 'ES256' });
    const token = await issuer.token({ cnf: { jkt: await calculateJwkThumbprint(await dpopFetch.jwk()) } });
    const response = await dpopFetch(`${base}/api/things`, { accessToken: token });
    assert.equal(response.status, 200, response.headers.get('www-authenticate') ?? '');
  });
});

describe('node:http middleware over mutual TLS', () => {
  let pki: ReturnType<typeof makeTestPki>;
  let server: ReturnType<typeof createHttpsServer>;
  let base: string;

  before(async () => {
    pki = makeTestPki();
    const middleware = createVerifierMiddleware({ verifier });
    // rejectUnauthorized false: RFC 8705 section 3 binds to the certificate itself, self-signed ones included.
    server = createHttpsServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: false }, (req, res) =>
      middleware(req, res, () => {
        const auth = (req as unknown as { auth: VerifySuccess }).auth;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ binding: auth.binding }));
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    pki.remove();
  });

  const agentFor = (pem?: { cert: string; key: string }) => new Agent({ connect: { ca: pki.ca.cert, ...(pem !== undefined && { cert: pem.cert, key: pem.key }) } });

  it('a certificate-bound token works with its certificate, not with another or none', async () => {
    const token = await issuer.token({ cnf: { 'x5t#S256': pki.selfSigned.thumbprint } });
    const headers = { authorization: `Bearer ${token}` };
    const good = await undiciFetch(`${base}/things`, { headers, dispatcher: agentFor(pki.selfSigned) });
    assert.equal(good.status, 200);
    assert.deepEqual(await good.json(), { binding: 'certificate' });
    for (const agent of [agentFor(pki.alpha), agentFor()]) {
      const refused = await undiciFetch(`${base}/things`, { headers, dispatcher: agent });
      assert.equal(refused.status, 401);
      assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    }
  });
});
