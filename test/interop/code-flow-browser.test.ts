/**
 * The authorization code flow in real Chromium, with `openid-client` as the
 * relying party: the library builds the request (PKCE S256, state, nonce),
 * Chromium signs in and consents on the real pages, the library redeems the
 * code and validates the ID token, then RP-initiated logout signs the
 * person out and returns to the registered URI. Screenshots of each page go
 * to test-artifacts/screenshots/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import * as client from 'openid-client';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { TestBrowser, requireChromium, screenshot } from '../support/browser.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const EMAIL = 'chromium-flow@example.com';

describe('authorization code flow in Chromium with openid-client', () => {
  let server: TestServer | undefined;
  let browser: TestBrowser | undefined;
  let app: Server | undefined;
  let appUrl: string;
  let config: client.Configuration;

  before(async () => {
    requireChromium();
    // The relying party's own pages: a callback and a signed-out page.
    const rp = (app = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><title>App</title><h1>${request.url?.startsWith('/signed-out') ? 'App: signed out' : 'App: callback'}</h1>`);
    }));
    await new Promise<void>((resolve) => rp.listen(0, '127.0.0.1', resolve));
    appUrl = `http://127.0.0.1:${(rp.address() as { port: number }).port}`;
    server = await startTestServer({ fixedPort: true });
    await server.running.identity.accounts.createUser(EMAIL, PASSWORD, { actor: 'test' });
    const metadata = validateClientMetadata(
      {
        client_name: 'Chromium test app',
        redirect_uris: [`${appUrl}/callback`],
        post_logout_redirect_uris: [`${appUrl}/signed-out`],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        scope: 'openid email',
      },
      { allowedScopes: ['openid', 'email'], defaultSigningAlgorithm: 'EdDSA' },
    );
    const clientId = (await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true })).client.client_id;
    config = await client.discovery(new URL(server.running.authorizationServer.issuer), clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    browser = await TestBrowser.launch(server.url);
  });
  after(async () => {
    // Whatever failed in before(), the servers close, so the file's process can end (first-hour D2).
    try {
      await browser?.close();
    } finally {
      await server?.close();
      if (app !== undefined) await new Promise((resolve) => app!.close(resolve));
    }
  });

  it('signs in, consents, returns a code the library redeems and verifies, then signs out through the client', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authorizationUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: `${appUrl}/callback`,
      scope: 'openid email',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const { page } = await browser!.newPage();
    await page.goto(authorizationUrl.href);
    await page.getByLabel('Email address').waitFor();
    await screenshot(page, 'oauth-login');
    await page.getByLabel('Email address').pressSequentially(EMAIL);
    await page.getByLabel('Password').pressSequentially(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /Allow Chromium test app/ }).waitFor();
    await screenshot(page, 'oauth-consent');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${appUrl}/callback`));

    const tokens = await client.authorizationCodeGrant(config, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const claims = tokens.claims()!;
    assert.equal(claims.iss, server!.running.authorizationServer.issuer);
    assert.equal(claims.aud, config.clientMetadata().client_id);
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(userinfo.email, EMAIL);

    const endSession = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${appUrl}/signed-out`, state: 'bye' });
    await page.goto(endSession.href);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await screenshot(page, 'oauth-logout-confirm');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${appUrl}/signed-out`));
    assert.equal(new URL(page.url()).searchParams.get('state'), 'bye');
    assert.deepEqual(browser!.cspViolations(), [], 'no page broke its CSP');
    await assert.rejects(client.fetchUserInfo(config, tokens.access_token, claims.sub), 'the access token ended with the session');
  });

  it('with consent remembered, the sign-in form itself ends at the application (its CSP form-action names the redirect)', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    // prompt=login: sign in again even though consent is remembered, so the
    // login form's POST redirects through /authorize/resume to the app.
    const url = client.buildAuthorizationUrl(config, { redirect_uri: `${appUrl}/callback`, scope: 'openid email', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, prompt: 'login' });
    const { page } = await browser!.newPage();
    await page.goto(url.href);
    await page.getByLabel('Email address').pressSequentially(EMAIL);
    await page.getByLabel('Password').pressSequentially(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((target) => target.href.startsWith(`${appUrl}/callback`));
    await screenshot(page, 'oauth-callback-after-login');
    const tokens = await client.authorizationCodeGrant(config, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state });
    assert.ok(tokens.access_token);
    assert.deepEqual(browser!.cspViolations(), []);
  });
});
