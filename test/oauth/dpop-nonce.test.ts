/**
 * DPoP server nonces (RFC 9449 section 8) when `oauth.dpopRequireNonce` is
 * on: a proof without a nonce is refused with `use_dpop_nonce` and a fresh
 * nonce in DPoP-Nonce (400 at the token endpoint, a 401 DPoP challenge at
 * userinfo); `openid-client` picks the nonce up and retries on its own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('DPoP with server nonces required', () => {
  let server: TestServer;
  let config: client.Configuration;
  let clientId: string;
  let secret: string;

  before(async () => {
    server = await startTestServer({ fixedPort: true, env: { PORTCULLIS_OAUTH_DPOP_REQUIRE_NONCE: 'true' } });
    await server.running.authorizationServer.resources.create({ uri: 'https://reports.example.com', scopes: ['reports:read'] }, { actor: 'test' });
    const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'reports:read' }, { allowedScopes: ['openid', 'reports:read'], defaultSigningAlgorithm: 'EdDSA' });
    const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' });
    clientId = registered.client.client_id;
    secret = registered.clientSecret!;
    config = await client.discovery(new URL(server.running.authorizationServer.issuer), clientId, secret, client.ClientSecretBasic(secret), { execute: [client.allowInsecureRequests] });
  });
  after(async () => {
    await server.close();
  });

  it('asks for a nonce, and a client that sends it back gets a DPoP-bound token', async () => {
    const keyPair = await client.randomDPoPKeyPair('ES256');
    const dpop = client.getDPoPHandle(config, keyPair);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'reports:read' }, { DPoP: dpop });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const introspected = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(introspected.active, true);
    assert.equal((introspected['cnf'] as { jkt?: string } | undefined)?.jkt !== undefined, true);
  });

  it('refuses a proof without a nonce with use_dpop_nonce and hands out a nonce that works', async () => {
    const keyPair = await client.randomDPoPKeyPair('ES256');
    const dpop = client.getDPoPHandle(config, keyPair);
    // A first attempt without any nonce: the library reports the refusal it got.
    let nonceHeader: string | null = null;
    const observing: typeof fetch = async (...args) => {
      const response = await fetch(...args);
      nonceHeader ??= response.headers.get('dpop-nonce');
      if (response.status === 400) {
        const body = (await response.clone().json()) as { error?: string };
        assert.equal(body.error, 'use_dpop_nonce');
      }
      return response;
    };
    const observed = await client.discovery(new URL(server.running.authorizationServer.issuer), clientId, secret, client.ClientSecretBasic(secret), { execute: [client.allowInsecureRequests] });
    observed[client.customFetch] = observing;
    const tokens = await client.clientCredentialsGrant(observed, { scope: 'reports:read' }, { DPoP: dpop });
    assert.ok(tokens.access_token, 'the retry with the nonce succeeded');
    assert.ok(nonceHeader !== null, 'the refusal carried a DPoP-Nonce header');
  });
});
