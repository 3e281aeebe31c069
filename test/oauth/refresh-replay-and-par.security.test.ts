/**
 * Regressions found by a security review of the authorization server:
 * - a DPoP-bound refresh token replayed within the grace window got the
 *   stored successor without a proof of the family's key (RFC 9449 section 5);
 * - a pushed authorization request kept the client's secret in plain text
 *   in the hot store with its parameters (RFC 6749 section 10.1).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { completeAuthorization } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';

interface Answer {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  token_type?: string;
  request_uri?: string;
  error?: string;
  error_description?: string;
}

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

describe('security review findings', () => {
  let server: TestServer;
  let issuer: string;
  let email: string;
  let publicClient: string;
  let postClient: { id: string; secret: string };

  const form = async (path: string, params: Record<string, string>, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params) });
    return { status: response.status, body: (await response.json().catch(() => ({}))) as Answer };
  };

  /** A DPoP proof (RFC 9449 section 4.2) for POST /token, signed by `key`. */
  const proofFor = async (key: Awaited<ReturnType<typeof generateKeyPair>>) =>
    new SignJWT({ jti: randomUUID(), htm: 'POST', htu: `${issuer}/token`, iat: Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
      .sign(key.privateKey);

  before(async () => {
    server = await startTestServer({ fixedPort: true });
    issuer = server.running.authorizationServer.issuer;
    email = `review-${randomBytes(4).toString('hex')}@example.com`;
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const register = (metadata: Record<string, unknown>) =>
      server.running.authorizationServer.clients.register(validateClientMetadata(metadata, { allowedScopes: ['openid', 'profile', 'email', 'offline_access'], defaultSigningAlgorithm: 'EdDSA' }), { actor: 'test' });
    const base = { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid email offline_access' };
    publicClient = (await register({ ...base, application_type: 'native', client_name: 'Public SPA', token_endpoint_auth_method: 'none' })).client.client_id;
    const post = await register({ ...base, client_name: 'PAR web app', token_endpoint_auth_method: 'client_secret_post' });
    postClient = { id: post.client.client_id, secret: post.clientSecret! };
  });
  after(async () => {
    await server.close();
  });

  /** A DPoP-bound token set for the public client: code redeemed with a proof of `key`. */
  async function boundTokens(key: Awaited<ReturnType<typeof generateKeyPair>>): Promise<Answer> {
    const browser = new BrowserlessClient(server.url);
    const { verifier, challenge } = pkce();
    const url = `/authorize?${new URLSearchParams({ response_type: 'code', client_id: publicClient, redirect_uri: REDIRECT, scope: 'openid email offline_access', state: 's', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' }).toString()}`;
    const callback = await completeAuthorization(browser, url, { email, password: PASSWORD }, { redirectUri: REDIRECT });
    const code = callback.searchParams.get('code');
    assert.ok(code, callback.toString());
    const tokens = await form('/token', { grant_type: 'authorization_code', client_id: publicClient, code, code_verifier: verifier, redirect_uri: REDIRECT }, { dpop: await proofFor(key) });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.body.token_type, 'DPoP');
    assert.ok(tokens.body.refresh_token);
    return tokens.body;
  }

  it(
    'a DPoP-bound refresh token replayed within the grace window without any proof is refused',
    async () => {
      const key = await generateKeyPair('ES256');
      const first = await boundTokens(key);
      // The legitimate client refreshes with its key: RT1 becomes the "previous" token.
      const rotated = await form('/token', { grant_type: 'refresh_token', client_id: publicClient, refresh_token: first.refresh_token! }, { dpop: await proofFor(key) });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      // Without the key, the family refuses a refresh of its current token ...
      const currentWithoutKey = await form('/token', { grant_type: 'refresh_token', client_id: publicClient, refresh_token: rotated.body.refresh_token! });
      assert.equal(currentWithoutKey.status, 400);
      assert.equal(currentWithoutKey.body.error, 'invalid_grant');
      // ... and must refuse the just-rotated one just the same (RFC 9449 section 5).
      const replay = await form('/token', { grant_type: 'refresh_token', client_id: publicClient, refresh_token: first.refresh_token! });
      assert.equal(replay.status, 400, `a replay without the DPoP key got ${JSON.stringify(replay.body).slice(0, 200)}`);
      assert.equal(replay.body.error, 'invalid_grant');
      assert.equal(replay.body.refresh_token, undefined);
      assert.equal(replay.body.id_token, undefined);
    },
  );

  it(
    "a DPoP-bound refresh token replayed within the grace window with another key's proof is refused",
    async () => {
      const key = await generateKeyPair('ES256');
      const attacker = await generateKeyPair('ES256');
      const first = await boundTokens(key);
      const rotated = await form('/token', { grant_type: 'refresh_token', client_id: publicClient, refresh_token: first.refresh_token! }, { dpop: await proofFor(key) });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      const replay = await form('/token', { grant_type: 'refresh_token', client_id: publicClient, refresh_token: first.refresh_token! }, { dpop: await proofFor(attacker) });
      assert.equal(replay.status, 400, `a replay with another key got ${JSON.stringify(replay.body).slice(0, 200)}`);
      assert.equal(replay.body.error, 'invalid_grant');
    },
  );

  it(
    'a pushed authorization request does not keep the client secret in the hot store',
    async () => {
      const { challenge } = pkce();
      const pushed = await form('/par', {
        client_id: postClient.id,
        client_secret: postClient.secret,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      });
      assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
      const reference = pushed.body.request_uri!.slice('urn:ietf:params:oauth:request_uri:'.length);
      const stored = await server.running.stores.hot.get(`oauth:par:${createHash('sha256').update(reference).digest('base64url')}`);
      assert.ok(stored !== null, 'the pushed request is in the hot store');
      assert.ok(!stored.includes(postClient.secret), 'the client secret is stored in plaintext with the pushed request');
    },
  );
});
