/**
 * The resource-server SDK against a real Portcullis: client_credentials
 * tokens for a registered resource (RFC 9068 JWTs) verify through discovery
 * and the live JWKS; a DPoP-bound token obtained with createDPoPFetch at the
 * token endpoint is accepted by an Express resource server only with a
 * proof from the same key; and after the keyring replaces its signing key
 * the verifier meets the unknown kid, refetches the JWKS once, and refuses
 * tokens of the revoked key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { createDPoPFetch, createVerifier, createVerifierMiddleware, type AuthenticatedRequest, type FetchLike, type Verifier } from '../../src/sdk/index.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const API = 'https://reports.example.com';

describe('createVerifier with tokens from a running Portcullis', () => {
  let server: TestServer;
  let issuer: string;
  let client: RegisteredClient;
  let jwksFetches = 0;
  /** The verifier's clock: real time plus what a test moves it by (no sleeping). */
  let offset = 0;
  let verifier: Verifier;
  let resourceServer: Server;
  let resource: string;

  const counting: FetchLike = async (url, init) => {
    if (new URL(url).pathname === '/jwks') jwksFetches++;
    return fetch(url, init);
  };
  const basic = () => `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`;
  const tokenRequest = (params: Record<string, string>) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }).toString(),
  });
  const bearerToken = async () => {
    const response = await fetch(`${server.url}/token`, tokenRequest({ scope: 'reports:read' }));
    const body = (await response.json()) as { access_token: string; token_type: string };
    assert.equal(response.status, 200, JSON.stringify(body));
    return body.access_token;
  };

  before(async () => {
    server = await startTestServer({ fixedPort: true });
    issuer = server.running.authorizationServer.issuer;
    await server.running.authorizationServer.resources.create({ uri: API, scopes: ['reports:read', 'reports:write'] }, { actor: 'test' });
    client = await registerClient(server, { client_name: 'Reports job', grant_types: ['client_credentials'], scope: 'reports:read' }, ['reports:read']);
    verifier = createVerifier({ issuer, audience: API, fetch: counting, clock: () => Date.now() + offset, jwksRefetchIntervalSeconds: 30 });
    const app = express();
    app.use(createVerifierMiddleware({ verifier, scopes: ['reports:read'] }));
    app.get('/reports', (req, res) => {
      const { auth } = req as unknown as AuthenticatedRequest;
      res.json({ client: auth.token.client_id, binding: auth.binding });
    });
    await new Promise<void>((resolve) => {
      resourceServer = app.listen(0, '127.0.0.1', () => resolve());
    });
    resource = `http://127.0.0.1:${(resourceServer.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => resourceServer?.close(resolve));
    await server?.close();
  });

  it('verifies a client_credentials access token through discovery and the JWKS', async () => {
    const token = await bearerToken();
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    const result = await verifier.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${token}` } });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.token.client_id, client.clientId);
    assert.deepEqual(result.scopes, ['reports:read']);
    assert.equal(jwksFetches, 1);
    const response = await fetch(`${resource}/reports`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { client: client.clientId, binding: 'none' });
  });

  it('refuses a Portcullis token for another audience and needs the scope', async () => {
    const token = await bearerToken();
    const elsewhere = createVerifier({ issuer, audience: 'https://payments.example.com', fetch: counting });
    const result = await elsewhere.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${token}` } });
    assert.equal(result.ok ? 'accepted' : result.description, 'the token is for another audience');
    const needsWrite = await verifier.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${token}` } }, { scopes: ['reports:write'] });
    assert.equal(needsWrite.ok ? 200 : needsWrite.status, 403);
  });

  it('a DPoP-bound token from the token endpoint (createDPoPFetch) works at an Express resource server only with proofs of its key', async () => {
    const keyPair = await generateKeyPair('ES256');
    const dpopFetch = createDPoPFetch({ keyPair, alg: 'ES256' });
    const answer = await dpopFetch(`${server.url}/token`, tokenRequest({ scope: 'reports:read' }));
    const body = (await answer.json()) as { access_token: string; token_type: string };
    assert.equal(answer.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'DPoP');
    const jkt = await calculateJwkThumbprint(await dpopFetch.jwk());
    assert.deepEqual(decodeJwt(body.access_token)['cnf'], { jkt });

    const response = await dpopFetch(`${resource}/reports`, { accessToken: body.access_token });
    assert.equal(response.status, 200, response.headers.get('www-authenticate') ?? '');
    assert.deepEqual(await response.json(), { client: client.clientId, binding: 'dpop' });

    // The same token as a bearer token, or with proofs of another key, is refused.
    assert.equal((await fetch(`${resource}/reports`, { headers: { authorization: `Bearer ${body.access_token}` } })).status, 401);
    const thief = createDPoPFetch({ keyPair: await generateKeyPair('ES256'), alg: 'ES256' });
    const stolen = await thief(`${resource}/reports`, { accessToken: body.access_token });
    assert.equal(stolen.status, 401);
    assert.match(stolen.headers.get('www-authenticate') ?? '', /DPoP algs="[^"]+", error="invalid_dpop_proof"/);
  });

  it('after the keyring replaces its signing key, the unknown kid makes the verifier refetch the JWKS once', async () => {
    const before = await bearerToken();
    assert.ok((await verifier.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${before}` } })).ok);
    const fetchesBefore = jwksFetches;
    const keyring = server.running.authorizationServer.keyring;
    const oldKid = decodeProtectedHeader(before).kid!;
    // Revoking the signing key is the keyring's immediate rotation: a fresh key signs from now on.
    await keyring.revoke(oldKid);
    const after = await bearerToken();
    const newKid = decodeProtectedHeader(after).kid!;
    assert.notEqual(newKid, oldKid);
    // Past the refetch interval since the first fetch (the verifier's clock, not a sleep).
    offset += 31_000;
    const result = await verifier.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${after}` } });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(jwksFetches, fetchesBefore + 1, 'one refetch for the unknown kid');
    // The revoked key left the JWKS: its tokens no longer verify, and no further fetch is made for them.
    const old = await verifier.verify({ method: 'GET', url: `${resource}/reports`, headers: { authorization: `Bearer ${before}` } });
    assert.equal(old.ok ? 'accepted' : old.code, 'invalid_token');
    assert.equal(jwksFetches, fetchesBefore + 1, 'rate-limited');
  });
});
