/**
 * The `privacy` scope (issue 15), driven by openid-client (discovery, code
 * flow, UserInfo, introspection) against a real server with configured
 * purposes:
 * - a person signing in during an authorization is asked the purposes
 *   based on consent first, and the authorization still completes;
 * - with `privacy`, the ID token, UserInfo and introspection carry
 *   `privacy_opt_out` and `privacy_consents` (granted purposes only, with
 *   the version granted); UserInfo and introspection show the choices as
 *   they are now (an opt-out by GPC after the token was issued);
 * - without `privacy`, none of them;
 * - discovery lists the scope and its claims; the consent page names the
 *   purposes each requested scope serves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import { BrowserlessClient, type PageResponse } from '../support/browserless-client.ts';
import { completeAuthorization, registerClient, type Person, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'https://shop.example/callback';
const PURPOSES = [
  { id: 'newsletter', description: 'Send you our newsletter', legalBasis: 'consent', version: 1, scopes: ['email'] },
  { id: 'analytics', description: 'Measure how the shop is used', legalBasis: 'consent', version: 3 },
  { id: 'delivery', description: 'Deliver what you ordered', legalBasis: 'contract', version: 1, scopes: ['email', 'privacy'] },
] as const;

describe('the privacy scope: claims for applications (openid-client)', () => {
  let server: TestServer;
  let issuer: string;
  let app: RegisteredClient;

  before(async () => {
    server = await startTestServer({ fixedPort: true, overrides: { privacy: { purposes: PURPOSES } } });
    issuer = server.running.authorizationServer.issuer;
    app = await registerClient(server, { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email privacy', client_name: 'Shop', token_endpoint_auth_method: 'client_secret_basic' }, ['privacy']);
  });
  after(async () => {
    await server.close();
  });

  async function newPerson(): Promise<Person & { id: string }> {
    const email = `privacy-${randomBytes(4).toString('hex')}@example.com`;
    const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    return { email, password: PASSWORD, id: user.id };
  }

  /** openid-client runs the code flow for `scope` in `browser`; resolves with its configuration and the tokens. */
  async function signInWith(browser: BrowserlessClient, person: Person, scope: string) {
    const config = await client.discovery(new URL(issuer), app.clientId, app.clientSecret, client.ClientSecretBasic(app.clientSecret), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
    const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT, purposes: 'grant' });
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    return { config, tokens, sub: tokens.claims()!.sub };
  }

  it('discovery lists the privacy scope and its claims', async () => {
    const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { claims_supported: string[]; scopes_supported: string[] };
    assert.ok(metadata.scopes_supported.includes('privacy'));
    assert.ok(metadata.claims_supported.includes('privacy_opt_out'));
    assert.ok(metadata.claims_supported.includes('privacy_consents'));
  });

  it('a person is asked the purposes while an authorization waits, and it completes; the ID token and UserInfo carry the privacy claims; the consent page names each scope\'s purposes', async () => {
    const person = await newPerson();
    const pages: PageResponse[] = [];
    const browser = new BrowserlessClient(server.url, { observe: (page) => pages.push(page) });
    const { config, tokens, sub } = await signInWith(browser, person, 'openid email privacy');
    const asked = pages.find((page) => page.body.includes('action="/privacy/purposes"'));
    assert.ok(asked, 'the purposes were asked during the flow');
    // Its form ends in redirects to the application: CSP3 form-action names it (and nothing else).
    assert.match(asked.headers.get('content-security-policy') ?? '', /form-action 'self' https:\/\/shop\.example;/);
    const consent = pages.find((page) => page.body.includes('action="/authorize/consent"'))?.body ?? '';
    assert.match(consent, /See your email address<br><span class="hint">Used for: Send you our newsletter \(legal basis: your consent [^;]*; Deliver what you ordered \(legal basis: needed for our contract/);
    assert.match(consent, /Know your privacy choices[^<]*<br><span class="hint">Used for: Deliver what you ordered/);
    assert.doesNotMatch(consent, /Measure how the shop is used/, 'a purpose with no scope is not named under any');
    const idClaims = tokens.claims()!;
    assert.equal(idClaims['privacy_opt_out'], false);
    assert.deepEqual(idClaims['privacy_consents'], { newsletter: 1, analytics: 3 });
    assert.equal(idClaims['email'], undefined, 'the email scope claims still come from UserInfo');
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
    assert.deepEqual(userinfo, { sub, email: person.email, email_verified: false, privacy_opt_out: false, privacy_consents: { newsletter: 1, analytics: 3 } });
  });

  it('UserInfo and introspection show the choices as they are now: a GPC opt-out on a page and a withdrawal after the token was issued', async () => {
    const person = await newPerson();
    const browser = new BrowserlessClient(server.url);
    const { config, tokens, sub } = await signInWith(browser, person, 'openid privacy');
    const before = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(before.active, true);
    assert.equal(before['privacy_opt_out'], false);
    // The same browser, now sending Global Privacy Control, opens a page.
    assert.equal((await browser.get('/account', { 'sec-gpc': '1' })).status, 200);
    await server.running.preferences.decide(person.id, [{ purpose: 'analytics', granted: false }], 'account');
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
    assert.deepEqual(userinfo, { sub, privacy_opt_out: true, privacy_consents: { newsletter: 1 } }, 'a withdrawn purpose is left out');
    const introspected = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected.sub, sub);
    assert.equal(introspected['privacy_opt_out'], true);
    assert.deepEqual(introspected['privacy_consents'], { newsletter: 1 });
  });

  it('without the privacy scope: no privacy claim in the ID token, UserInfo or introspection', async () => {
    const person = await newPerson();
    await server.running.preferences.setOptOut(person.id, true, 'admin', { actor: 'admin' });
    const { config, tokens, sub } = await signInWith(new BrowserlessClient(server.url), person, 'openid email');
    const idClaims = tokens.claims()!;
    assert.equal(idClaims['privacy_opt_out'], undefined);
    assert.equal(idClaims['privacy_consents'], undefined);
    assert.deepEqual(await client.fetchUserInfo(config, tokens.access_token, sub), { sub, email: person.email, email_verified: false });
    const introspected = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected['privacy_opt_out'], undefined);
    assert.equal(introspected['privacy_consents'], undefined);
  });

  it('a resource cannot define the privacy scope, and client_credentials cannot ask for it', async () => {
    await assert.rejects(server.running.authorizationServer.resources.create({ uri: 'https://api.shop.example', scopes: ['privacy'] }, { actor: 'test' }), /privacy scope/);
    const machine = await registerClient(server, { redirect_uris: [], grant_types: ['client_credentials'], scope: 'privacy' }, ['privacy']);
    const answer = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${machine.clientId}:${machine.clientSecret!}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=privacy',
    });
    assert.equal(answer.status, 400);
    assert.equal(((await answer.json()) as { error: string }).error, 'invalid_scope');
  });
});
