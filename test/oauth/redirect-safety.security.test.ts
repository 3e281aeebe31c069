/**
 * Where the server sends a browser, tried as an attacker would (security
 * review 2026-12, findings 5, 12, 13, 16, 19, 20): no open redirect through
 * the URIs a self-registered client chose, at /logout or on /authorize
 * errors; loopback redirect URIs with any port for native apps only; a
 * token request without redirect_uri when /authorize had none; an
 * id_token_hint for another person; a PAR request_uri presented by another
 * client; the consent page naming where it leads. On the embedded stores,
 * and on PostgreSQL + Redis when their URLs are set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { signJwt } from '../../src/tokens/index.ts';
import { BrowserlessClient, csrfField, type PageResponse } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { completeAuthorization, registerClient, type Person } from '../support/oauth-flow.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const EVIL_LANDING = 'https://evil.example/landing';
const EVIL_AFTER_LOGOUT = 'https://evil.example/phish';
const APPROVED_REDIRECT = 'http://127.0.0.1:8080/callback';

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

const authorizePath = (params: Record<string, string | undefined>) =>
  `/authorize?${new URLSearchParams(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined)).toString()}`;

/** A page the server answered instead of a redirect: no script, forms only to itself. */
function assertPlainPage(answer: PageResponse, formTargets = "'self'"): void {
  assert.equal(answer.location, null);
  const csp = answer.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, new RegExp(`form-action ${formTargets};`));
  assert.ok(!/<script/i.test(answer.body), 'no script');
  assert.ok(!/http-equiv="refresh"/i.test(answer.body), 'no automatic redirect');
}

for (const backend of testBackends) describe(`redirect safety (security review 5, 12, 13, 16, 19, 20) (${backend})`, () => {
  let server: TestServer;
  const clock = new ManualClock(Date.now());
  let alice: Person & { id: string };
  let bob: Person & { id: string };
  /** Registered through POST /register: nobody approved it. */
  let selfRegistered: string;
  /** Made by an operator: approved. */
  let approved: string;
  let nativeApp: string;
  let webApp: string;
  let service: { id: string; secret: string };
  let issuer: string;

  const token = async (params: Record<string, string>, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params) });
    return { status: response.status, body: (await response.json()) as Record<string, string | undefined> };
  };

  /** A whole code flow as `person` in `browser`; resolves with the callback URL and the PKCE verifier. */
  async function codeFlow(browser: BrowserlessClient, person: Person, clientId: string, redirectUri: string, extra: Record<string, string | undefined> = {}) {
    const { verifier, challenge } = pkce();
    const path = authorizePath({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid email', state: 's', code_challenge: challenge, code_challenge_method: 'S256', ...extra });
    const callback = await completeAuthorization(browser, new URL(path, server.url), person, { redirectUri: extra['redirect_uri'] ?? redirectUri });
    return { callback, verifier };
  }

  async function idTokenFor(person: Person, clientId: string, redirectUri: string): Promise<{ browser: BrowserlessClient; idToken: string }> {
    const browser = new BrowserlessClient(server.url);
    const { callback, verifier } = await codeFlow(browser, person, clientId, redirectUri);
    const code = callback.searchParams.get('code');
    assert.ok(code, callback.toString());
    const answer = await token({ grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: redirectUri });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return { browser, idToken: answer.body['id_token']! };
  }

  before(async () => {
    server = await startTestServer({ fixedPort: true, clock: clock.now, backend });
    issuer = server.running.authorizationServer.issuer;
    const accounts = server.running.identity.accounts;
    const suffix = randomBytes(4).toString('hex');
    alice = { email: `alice-${suffix}@example.com`, password: PASSWORD, id: (await accounts.createUser(`alice-${suffix}@example.com`, PASSWORD, { actor: 'test' })).id };
    bob = { email: `bob-${suffix}@example.com`, password: PASSWORD, id: (await accounts.createUser(`bob-${suffix}@example.com`, PASSWORD, { actor: 'test' })).id };
    const registered = await fetch(`${server.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Your <b>Bank</b>', redirect_uris: [EVIL_LANDING], post_logout_redirect_uris: [EVIL_AFTER_LOGOUT], token_endpoint_auth_method: 'none', scope: 'openid email' }),
    });
    assert.equal(registered.status, 201);
    selfRegistered = ((await registered.json()) as { client_id: string }).client_id;
    approved = (await registerClient(server, { client_name: 'Mail', redirect_uris: [APPROVED_REDIRECT], token_endpoint_auth_method: 'none', application_type: 'native', scope: 'openid email' })).clientId;
    nativeApp = (
      await registerClient(server, {
        client_name: 'Desktop app',
        redirect_uris: ['http://127.0.0.1:8080/cb', 'http://[::1]:8080/cb', 'http://localhost:8080/cb'],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        scope: 'openid email',
      })
    ).clientId;
    webApp = (await registerClient(server, { client_name: 'Local web app', redirect_uris: ['http://127.0.0.1:8080/cb'], token_endpoint_auth_method: 'none', scope: 'email' })).clientId;
    const confidential = await registerClient(server, { client_name: 'Pushing app', redirect_uris: [APPROVED_REDIRECT], scope: 'openid email' });
    service = { id: confidential.clientId, secret: confidential.clientSecret! };
  });
  after(async () => {
    await server.close();
  });

  describe('security review 5: no open redirect through a self-registered client\'s URIs', () => {
    it('GET /logout with client_id and a post_logout_redirect_uri, no session: a page naming the host, no 303', async () => {
      const stranger = new BrowserlessClient(server.url);
      const answer = await stranger.get(`/logout?${new URLSearchParams({ client_id: selfRegistered, post_logout_redirect_uri: EVIL_AFTER_LOGOUT, state: 'x' }).toString()}`);
      assert.equal(answer.status, 200);
      assertPlainPage(answer);
      assert.match(answer.body, /asks to send you to <strong>evil\.example<\/strong>/);
      assert.match(answer.body, /<a href="https:\/\/evil\.example\/phish\?state=x" id="continue">Continue to evil\.example<\/a>/);
      assert.match(answer.body, /Your &lt;b&gt;Bank&lt;\/b&gt;/, 'the self-chosen name is escaped');
    });

    it('POST /logout the same way, no session: the same page, no 303', async () => {
      const stranger = new BrowserlessClient(server.url);
      const answer = await stranger.post('/logout', { client_id: selfRegistered, post_logout_redirect_uri: EVIL_AFTER_LOGOUT });
      assert.equal(answer.status, 200);
      assertPlainPage(answer);
      assert.match(answer.body, /Continue to evil\.example/);
    });

    it('a signed-in person signs out, then is only offered the link; the form cannot redirect there', async () => {
      const { browser } = await idTokenFor(alice, approved, APPROVED_REDIRECT);
      const ask = await browser.get(`/logout?${new URLSearchParams({ client_id: selfRegistered, post_logout_redirect_uri: EVIL_AFTER_LOGOUT }).toString()}`);
      assert.equal(ask.status, 200);
      assertPlainPage(ask);
      assert.match(ask.body, /Afterwards you can choose whether to continue to evil\.example/);
      const fields = Object.fromEntries([...ask.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((match) => [match[1]!, match[2]!.replaceAll('&amp;', '&')]));
      const done = await browser.post('/logout', fields);
      assert.equal(done.status, 200);
      assertPlainPage(done);
      assert.equal(browser.cookie('__Host-portcullis'), undefined, 'signed out');
      assert.match(done.body, /Continue to evil\.example/);
    });

    it('an unapproved client\'s own id_token_hint opens no redirect: its owner can mint one, so the page only offers a link', async () => {
      const { browser, idToken } = await idTokenFor(alice, selfRegistered, EVIL_LANDING);
      const ask = await browser.get(`/logout?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: EVIL_AFTER_LOGOUT, state: 'y' }).toString()}`);
      assert.equal(ask.status, 200);
      const fields = Object.fromEntries([...ask.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((match) => [match[1]!, match[2]!.replaceAll('&amp;', '&')]));
      const done = await browser.post('/logout', fields);
      assert.equal(done.location, null, 'signed out, not sent on');
      assert.match(done.body, /Continue to evil\.example/);
      const again = await new BrowserlessClient(server.url).get(`/logout?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: EVIL_AFTER_LOGOUT }).toString()}`);
      assert.equal(again.location, null, 'not signed in: still only a link');
      assert.match(again.body, /Continue to evil\.example/);
    });

    it('with an id_token_hint issued to an approved client, the sign-out returns to its URI at once', async () => {
      const approvedAfterLogout = 'https://app.example/signed-out';
      const app = (await registerClient(server, { client_name: 'Approved app', redirect_uris: [APPROVED_REDIRECT], post_logout_redirect_uris: [approvedAfterLogout], token_endpoint_auth_method: 'none', application_type: 'native', scope: 'openid email' })).clientId;
      // A person of its own: each sign-in from a new browser counts toward the account's slowdown.
      const carol = `carol-${randomBytes(4).toString('hex')}@example.com`;
      await server.running.identity.accounts.createUser(carol, PASSWORD, { actor: 'test' });
      const { browser, idToken } = await idTokenFor({ email: carol, password: PASSWORD }, app, APPROVED_REDIRECT);
      const ask = await browser.get(`/logout?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: approvedAfterLogout, state: 'y' }).toString()}`);
      assert.equal(ask.status, 200);
      assert.match(ask.headers.get('content-security-policy')!, /form-action 'self' https:\/\/app\.example;/, 'the form may end at the confirmed address');
      const fields = Object.fromEntries([...ask.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((match) => [match[1]!, match[2]!.replaceAll('&amp;', '&')]));
      const done = await browser.post('/logout', fields);
      assert.equal(done.status, 303);
      assert.equal(done.location, `${approvedAfterLogout}?state=y`);
      const again = await new BrowserlessClient(server.url).get(`/logout?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: approvedAfterLogout }).toString()}`);
      assert.equal(again.status, 303, 'not signed in: straight back');
      assert.equal(again.location, approvedAfterLogout);
    });

    it('a hint issued to another client does not confirm this client\'s return address', async () => {
      const { idToken } = await idTokenFor(bob, approved, APPROVED_REDIRECT);
      const answer = await new BrowserlessClient(server.url).get(`/logout?${new URLSearchParams({ id_token_hint: idToken, client_id: selfRegistered, post_logout_redirect_uri: EVIL_AFTER_LOGOUT }).toString()}`);
      assert.equal(answer.status, 400);
      assert.equal(answer.location, null);
      assert.ok(!answer.body.includes('evil.example'));
    });

    it('/authorize with response_type=x for an unapproved client: an interstitial page naming the host, not a 303', async () => {
      const stranger = new BrowserlessClient(server.url);
      const answer = await stranger.get(authorizePath({ client_id: selfRegistered, redirect_uri: EVIL_LANDING, response_type: 'x', state: 'st' }));
      assert.equal(answer.status, 200);
      assertPlainPage(answer);
      assert.match(answer.body, /<h1>Continue to evil\.example\?<\/h1>/);
      const link = /<a href="([^"]+)" id="continue">Continue to evil\.example<\/a>/.exec(answer.body)?.[1]?.replaceAll('&amp;', '&');
      assert.ok(link !== undefined, 'the person may still choose to go');
      const target = new URL(link);
      assert.equal(target.origin + target.pathname, EVIL_LANDING);
      assert.equal(target.searchParams.get('error'), 'unsupported_response_type');
      assert.equal(target.searchParams.get('state'), 'st');
      assert.equal(target.searchParams.get('iss'), issuer);
      assert.match(answer.body, /Your &lt;b&gt;Bank&lt;\/b&gt;/);
    });

    it('prompt=none without a session, for an unapproved client: the interstitial too', async () => {
      const answer = await new BrowserlessClient(server.url).get(
        authorizePath({ client_id: selfRegistered, redirect_uri: EVIL_LANDING, response_type: 'code', scope: 'openid', prompt: 'none', code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      );
      assert.equal(answer.status, 200);
      assertPlainPage(answer);
      assert.match(answer.body, /error=login_required/);
    });

    it('an approved client gets its error redirect as before', async () => {
      const answer = await new BrowserlessClient(server.url).get(authorizePath({ client_id: approved, redirect_uri: APPROVED_REDIRECT, response_type: 'x', state: 'st' }));
      assert.equal(answer.status, 303);
      const target = new URL(answer.location!);
      assert.equal(target.origin + target.pathname, APPROVED_REDIRECT);
      assert.equal(target.searchParams.get('error'), 'unsupported_response_type');
    });

    it('once an operator approves the client, its errors redirect', async () => {
      const registered = await fetch(`${server.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['https://partner.example/cb'], token_endpoint_auth_method: 'none' }) });
      const clientId = ((await registered.json()) as { client_id: string }).client_id;
      const path = authorizePath({ client_id: clientId, redirect_uri: 'https://partner.example/cb', response_type: 'x' });
      assert.equal((await new BrowserlessClient(server.url).get(path)).status, 200);
      assert.equal(await server.running.authorizationServer.clients.approve(clientId, { actor: 'test' }), true);
      const answer = await new BrowserlessClient(server.url).get(path);
      assert.equal(answer.status, 303);
      assert.match(answer.location!, /^https:\/\/partner\.example\/cb\?error=unsupported_response_type/);
    });

    it('a successful flow for an unapproved client still ends at its redirect URI, after sign-in and consent', async () => {
      const { callback } = await codeFlow(new BrowserlessClient(server.url), bob, selfRegistered, EVIL_LANDING);
      assert.ok(callback.searchParams.get('code'));
    });
  });

  describe('security review 20: the consent page names where the person will be sent', () => {
    async function consentPageFor(clientId: string, redirectUri: string): Promise<PageResponse> {
      const browser = new BrowserlessClient(server.url);
      const login = await browser.get(`/login`);
      const signedIn = await browser.post('/login', { _csrf: csrfField(login.body)!, email: alice.email, password: PASSWORD });
      assert.equal(signedIn.status, 303);
      const answer = await browser.get(authorizePath({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid email', prompt: 'consent', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
      assert.equal(answer.status, 200, answer.body.slice(0, 300));
      assert.match(answer.body, /action="\/authorize\/consent"/);
      return answer;
    }

    it('for a self-registered client: the redirect host, and that its name is unchecked', async () => {
      const answer = await consentPageFor(selfRegistered, EVIL_LANDING);
      assert.match(answer.body, /You will be sent to <strong>evil\.example<\/strong>/);
      assert.match(answer.body, /id="unreviewed"/);
      assert.match(answer.body, /Allow Your &lt;b&gt;Bank&lt;\/b&gt; to access your account\?/);
    });

    it('for an approved client: the redirect host, with its port', async () => {
      const answer = await consentPageFor(approved, APPROVED_REDIRECT);
      assert.match(answer.body, /You will be sent to <strong>127\.0\.0\.1:8080<\/strong>/);
      assert.ok(!answer.body.includes('id="unreviewed"'));
    });
  });

  describe('security review 12: loopback redirect URIs take any port, for native apps only', () => {
    const start = (clientId: string, redirectUri: string) =>
      new BrowserlessClient(server.url).get(authorizePath({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'email', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));

    it('a native app on 127.0.0.1 or [::1] with another port is let through to sign-in', async () => {
      for (const uri of ['http://127.0.0.1:51234/cb', 'http://127.0.0.1/cb', 'http://[::1]:4000/cb']) {
        const answer = await start(nativeApp, uri);
        assert.equal(answer.status, 303, uri);
        assert.match(answer.location!, /^\/login\?/, uri);
      }
    });

    it('the code is redeemed with the redirect URI actually used, not the registered one', async () => {
      const used = 'http://127.0.0.1:51234/cb';
      const { callback, verifier } = await codeFlow(new BrowserlessClient(server.url), alice, nativeApp, used);
      assert.equal(callback.origin + callback.pathname, used);
      const code = callback.searchParams.get('code')!;
      const registered = await token({ grant_type: 'authorization_code', client_id: nativeApp, code, code_verifier: verifier, redirect_uri: 'http://127.0.0.1:8080/cb' });
      assert.equal(registered.status, 400);
      assert.equal(registered.body['error'], 'invalid_grant');
      const second = await codeFlow(new BrowserlessClient(server.url), alice, nativeApp, used);
      const redeemed = await token({ grant_type: 'authorization_code', client_id: nativeApp, code: second.callback.searchParams.get('code')!, code_verifier: second.verifier, redirect_uri: used });
      assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    });

    it('anything but the port still matches exactly; localhost and web apps match exactly', async () => {
      for (const [clientId, uri] of [
        [nativeApp, 'http://127.0.0.1:51234/cb/'],
        [nativeApp, 'http://127.0.0.1:51234/other'],
        [nativeApp, 'http://127.0.0.1:51234/cb?x=1'],
        [nativeApp, 'https://127.0.0.1:51234/cb'],
        [nativeApp, 'http://127.0.0.2:51234/cb'],
        [nativeApp, 'http://127.0.0.1:99999/cb'],
        [nativeApp, 'http://127.0.0.1:51234@evil.example/cb'],
        [nativeApp, 'http://localhost:51234/cb'],
        [webApp, 'http://127.0.0.1:51234/cb'],
      ] as const) {
        const answer = await start(clientId, uri);
        assert.equal(answer.status, 400, uri);
        assert.equal(answer.location, null, uri);
        assert.match(answer.body, /not one this application registered/, uri);
      }
      assert.equal((await start(nativeApp, 'http://localhost:8080/cb')).status, 303, 'localhost exactly as registered');
    });
  });

  describe('security review 13: redirect_uri at the token endpoint only when /authorize had it', () => {
    it('left out at /authorize, it may be left out at the token endpoint', async () => {
      const { callback, verifier } = await codeFlow(new BrowserlessClient(server.url), alice, webApp, 'http://127.0.0.1:8080/cb', { redirect_uri: undefined, scope: 'email' });
      assert.equal(callback.origin + callback.pathname, 'http://127.0.0.1:8080/cb');
      const answer = await token({ grant_type: 'authorization_code', client_id: webApp, code: callback.searchParams.get('code')!, code_verifier: verifier });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    });

    it('left out at /authorize, a different one at the token endpoint is still refused', async () => {
      const { callback, verifier } = await codeFlow(new BrowserlessClient(server.url), alice, webApp, 'http://127.0.0.1:8080/cb', { redirect_uri: undefined, scope: 'email' });
      const answer = await token({ grant_type: 'authorization_code', client_id: webApp, code: callback.searchParams.get('code')!, code_verifier: verifier, redirect_uri: 'http://127.0.0.1:8080/other' });
      assert.equal(answer.body['error'], 'invalid_grant');
    });

    it('given at /authorize, the token request must give it too', async () => {
      const { callback, verifier } = await codeFlow(new BrowserlessClient(server.url), alice, webApp, 'http://127.0.0.1:8080/cb', { scope: 'email' });
      const answer = await token({ grant_type: 'authorization_code', client_id: webApp, code: callback.searchParams.get('code')!, code_verifier: verifier });
      assert.equal(answer.status, 400);
      assert.equal(answer.body['error'], 'invalid_grant');
    });
  });

  describe('security review 16: id_token_hint names the person who must be signed in', () => {
    let aliceBrowser: BrowserlessClient;
    let aliceHint: string;
    let bobHint: string;
    const silent = (hint: string, extra: Record<string, string> = {}) =>
      aliceBrowser.get(authorizePath({ response_type: 'code', client_id: approved, redirect_uri: APPROVED_REDIRECT, scope: 'openid email', state: 'h', prompt: 'none', id_token_hint: hint, code_challenge: pkce().challenge, code_challenge_method: 'S256', ...extra }));
    const errorOf = (answer: PageResponse) => {
      assert.equal(answer.status, 303, answer.body.slice(0, 200));
      return new URL(answer.location!).searchParams.get('error');
    };

    before(async () => {
      ({ browser: aliceBrowser, idToken: aliceHint } = await idTokenFor(alice, approved, APPROVED_REDIRECT));
      ({ idToken: bobHint } = await idTokenFor(bob, approved, APPROVED_REDIRECT));
    });

    it('prompt=none with a hint for another person answers login_required, not a code for whoever is signed in', async () => {
      assert.equal(errorOf(await silent(bobHint)), 'login_required');
    });

    it('prompt=none with a hint for the person signed in gives a code', async () => {
      const answer = await silent(aliceHint);
      assert.equal(answer.status, 303);
      assert.ok(new URL(answer.location!).searchParams.get('code'));
    });

    it('an expired hint still names its person; a forged one, or one for another client, names nobody', async () => {
      const keyring = server.running.authorizationServer.keyring;
      const now = Math.floor(clock.now() / 1000);
      const expired = signJwt(keyring.signingKey('EdDSA'), { iss: issuer, sub: alice.id, aud: approved, iat: now - 7200, exp: now - 3600 });
      assert.ok(new URL((await silent(expired)).location!).searchParams.get('code'), 'expired but ours: accepted');
      const stranger = generateKeyPairSync('ed25519');
      const forged = await new SignJWT({ sub: alice.id }).setProtectedHeader({ alg: 'EdDSA', kid: decodeProtectedHeader(aliceHint).kid! }).setIssuer(issuer).setAudience(approved).setIssuedAt(now).setExpirationTime(now + 600).sign(stranger.privateKey);
      assert.equal(errorOf(await silent(forged)), 'login_required');
      const otherClient = signJwt(keyring.signingKey('EdDSA'), { iss: issuer, sub: alice.id, aud: nativeApp, iat: now, exp: now + 600 });
      assert.equal(errorOf(await silent(otherClient)), 'login_required');
      const accessToken = signJwt(keyring.signingKey('EdDSA'), { iss: issuer, sub: alice.id, aud: approved, iat: now, exp: now + 600 }, { typ: 'at+jwt' });
      assert.equal(errorOf(await silent(accessToken)), 'login_required', 'an access token is no ID token');
    });

    it('without prompt=none, a hint for another person asks to sign in again', async () => {
      const answer = await aliceBrowser.get(authorizePath({ response_type: 'code', client_id: approved, redirect_uri: APPROVED_REDIRECT, scope: 'openid email', id_token_hint: bobHint, code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
      assert.equal(answer.status, 303);
      assert.match(answer.location!, /^\/login\?reauth=1&return_to=/);
    });
  });

  describe('security review 19: a PAR request_uri is consumed only by its own client', () => {
    it('another client_id is refused and does not burn it; the right client still uses it', async () => {
      const { challenge } = pkce();
      const pushed = await fetch(`${server.url}/par`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${service.id}:${service.secret}`).toString('base64')}` },
        body: new URLSearchParams({ response_type: 'code', redirect_uri: APPROVED_REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }),
      });
      assert.equal(pushed.status, 201);
      const requestUri = ((await pushed.json()) as { request_uri: string }).request_uri;
      const wrong = await new BrowserlessClient(server.url).get(`/authorize?${new URLSearchParams({ client_id: approved, request_uri: requestUri }).toString()}`);
      assert.equal(wrong.status, 400);
      assert.equal(wrong.location, null);
      const right = await new BrowserlessClient(server.url).get(`/authorize?${new URLSearchParams({ client_id: service.id, request_uri: requestUri }).toString()}`);
      assert.equal(right.status, 303, right.body.slice(0, 300));
      assert.match(right.location!, /^\/login\?/);
      const again = await new BrowserlessClient(server.url).get(`/authorize?${new URLSearchParams({ client_id: service.id, request_uri: requestUri }).toString()}`);
      assert.equal(again.status, 400, 'still one use');
    });

    it('raced by its own client and by others, a request_uri is used exactly once, by its own client', async () => {
      const { challenge } = pkce();
      const pushed = await fetch(`${server.url}/par`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${service.id}:${service.secret}`).toString('base64')}` },
        body: new URLSearchParams({ response_type: 'code', redirect_uri: APPROVED_REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }),
      });
      const requestUri = ((await pushed.json()) as { request_uri: string }).request_uri;
      const attempt = (clientId: string) => new BrowserlessClient(server.url).get(`/authorize?${new URLSearchParams({ client_id: clientId, request_uri: requestUri }).toString()}`);
      const answers = await Promise.all(Array.from({ length: 40 }, (_, index) => attempt(index % 2 === 0 ? service.id : approved)));
      const used = answers.map((answer, index) => ({ answer, own: index % 2 === 0 })).filter(({ answer }) => answer.status === 303);
      assert.equal(used.length, 1, 'exactly one use');
      assert.equal(used[0]!.own, true, 'and by the client that pushed it');
      assert.ok(answers.every((answer) => answer.status === 303 || answer.status === 400));
    });
  });
});
