/**
 * Security review 6: a private_key_jwt client assertion names this server
 * by its issuer identifier (or, during the transition, exactly the token
 * endpoint URL), as one string (draft-ietf-oauth-rfc7523bis). An assertion
 * made for another endpoint, or with several audiences, is refused: a
 * malicious authorization server that advertises our endpoint as its own
 * must not be able to replay what a client signed for it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { registerClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('security review 6: private_key_jwt audience', () => {
  let server: TestServer;
  let issuer: string;
  let clientId: string;
  const key = generateKeyPairSync('ed25519');

  const assertion = (aud: string | string[]) =>
    new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer(clientId).setSubject(clientId).setAudience(aud).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);

  /**
   * A token request with an unknown code: a client that authenticates gets
   * invalid_grant (400), one that does not gets invalid_client (401).
   */
  const tokenRequest = async (aud: string | string[]) => {
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: randomBytes(32).toString('base64url'),
        code_verifier: randomBytes(32).toString('base64url'),
        redirect_uri: 'https://app.example/cb',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(aud),
      }),
    });
    return { status: response.status, error: ((await response.json()) as { error?: string }).error };
  };

  before(async () => {
    server = await startTestServer({ fixedPort: true });
    issuer = server.running.authorizationServer.issuer;
    const jwk = { ...(await exportJWK(key.publicKey)), alg: 'EdDSA', use: 'sig' } as JWK;
    clientId = (await registerClient(server, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } })).clientId;
  });
  after(async () => {
    await server.close();
  });

  it('accepts the issuer identifier, and exactly the token endpoint URL', async () => {
    for (const aud of [issuer, `${issuer}/token`]) {
      assert.deepEqual(await tokenRequest(aud), { status: 400, error: 'invalid_grant' }, aud);
    }
  });

  it('refuses another endpoint of this server as the audience (/jwks, /register, /par, /logout)', async () => {
    for (const path of ['/jwks', '/register', '/par', '/logout', '/introspect']) {
      assert.deepEqual(await tokenRequest(`${issuer}${path}`), { status: 401, error: 'invalid_client' }, path);
    }
  });

  it('refuses an array audience, even one naming the token endpoint or only the issuer', async () => {
    for (const aud of [['https://other-as.example/token', `${issuer}/token`], [issuer, 'https://other-as.example'], [issuer]]) {
      assert.deepEqual(await tokenRequest(aud), { status: 401, error: 'invalid_client' }, JSON.stringify(aud));
    }
  });

  it('refuses a near miss: a trailing slash, another scheme or host', async () => {
    for (const aud of [`${issuer}/`, `${issuer}/token/`, issuer.replace('http://', 'https://'), 'https://other-as.example/token']) {
      assert.deepEqual(await tokenRequest(aud), { status: 401, error: 'invalid_client' }, aud);
    }
  });
});
