/**
 * The authorization code flow through the real sign-in and consent pages,
 * with a scripted browser (cookies, manual redirects) and a scripted client:
 * PKCE, ID token, userinfo, remembered consent, prompt and max_age, PAR,
 * refresh rotation. And the RFC 9700 refusals, each tried: missing or plain
 * PKCE, a wrong verifier, redirect URIs that merely resemble the registered
 * one, a reused or expired code, a code or refresh token of another client.
 * Races: 100 redemptions of one code, 100 refreshes of one token. Run on the
 * embedded stores, and on PostgreSQL + Redis when their URLs are set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';

interface Tokens {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  token_type?: string;
  scope?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
}

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

for (const backend of testBackends) {
  describe(`authorization code flow (${backend})`, () => {
    let server: TestServer;
    let issuer: string;
    const clock = new ManualClock(Date.now());
    let spa: string;
    let web: { id: string; secret: string };
    let other: { id: string; secret: string };
    let parOnly: { id: string; secret: string };
    let email: string;

    const form = async (path: string, params: Record<string, string>, headers: Record<string, string> = {}) => {
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params) });
      return { status: response.status, body: (await response.json().catch(() => ({}))) as Tokens & Record<string, unknown> };
    };
    const authorizeUrl = (clientId: string, params: Record<string, string> = {}, challenge = pkce().challenge) =>
      `/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, scope: 'openid email offline_access', state: 'st-1', nonce: 'n-1', code_challenge: challenge, code_challenge_method: 'S256', ...params }).toString()}`;

    /** Follows redirects within the server; stops at the client's redirect URI, or at a page. */
    async function follow(browser: BrowserlessClient, path: string): Promise<{ callback?: URL; page?: { status: number; body: string } }> {
      let next = path;
      for (let hops = 0; hops < 10; hops++) {
        const response = await browser.get(next);
        if (response.status !== 303 && response.status !== 302) return { page: { status: response.status, body: response.body } };
        const location = response.location!;
        if (location.startsWith(REDIRECT) || !location.startsWith('/')) return { callback: new URL(location) };
        next = location;
      }
      throw new Error('too many redirects');
    }

    async function signIn(browser: BrowserlessClient, loginPath: string) {
      const page = await browser.get(loginPath);
      assert.equal(page.status, 200);
      const returnTo = /name="return_to" value="([^"]+)"/.exec(page.body)?.[1]?.replaceAll('&amp;', '&');
      const answer = await browser.post('/login', { _csrf: csrfField(page.body)!, email, password: PASSWORD, ...(returnTo !== undefined && { return_to: returnTo }) });
      assert.equal(answer.status, 303, answer.body.slice(0, 300));
      return answer.location!;
    }

    /** The whole browser part: authorize, sign in if asked, consent if asked; resolves with the callback URL. */
    async function authorize(browser: BrowserlessClient, path: string, options: { consent?: 'allow' | 'deny' } = {}): Promise<URL> {
      const step = await follow(browser, path);
      if (step.page !== undefined && step.page.body.includes('action="/login"')) throw new Error('unexpected login page');
      // A redirect to /login shows as a page here only if follow stopped on it; follow handles /login pages below.
      return finish(browser, step, options);
    }

    async function finish(browser: BrowserlessClient, first: Awaited<ReturnType<typeof follow>>, options: { consent?: 'allow' | 'deny' }): Promise<URL> {
      let step = first;
      for (let rounds = 0; rounds < 4; rounds++) {
        if (step.callback !== undefined) return step.callback;
        const body = step.page!.body;
        if (body.includes('action="/login"')) throw new Error('login page reached without a redirect');
        if (body.includes('action="/authorize/consent"')) {
          const interaction = /name="interaction" value="([^"]+)"/.exec(body)![1]!;
          const answer = await browser.post('/authorize/consent', { _csrf: csrfField(body)!, interaction, decision: options.consent ?? 'allow' });
          assert.equal(answer.status, 303, answer.body.slice(0, 300));
          step = answer.location!.startsWith('/') ? await follow(browser, answer.location!) : { callback: new URL(answer.location!) };
          continue;
        }
        throw new Error(`unexpected page ${step.page!.status}: ${body.slice(0, 400)}`);
      }
      throw new Error('flow did not finish');
    }

    /** Starts at /authorize with no session: expects the login redirect, signs in, then finishes. */
    async function authorizeWithLogin(browser: BrowserlessClient, path: string, options: { consent?: 'allow' | 'deny' } = {}): Promise<URL> {
      const first = await browser.get(path);
      assert.equal(first.status, 303);
      assert.match(first.location!, /^\/login\?reauth=1&return_to=/);
      const back = await signIn(browser, first.location!);
      return finish(browser, await follow(browser, back), options);
    }

    const redeem = (clientId: string, code: string, verifier: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) =>
      form('/token', { grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: REDIRECT, ...extra }, headers);

    /** A fresh code for the SPA client, from a browser already signed in and consented. */
    async function freshCode(browser: BrowserlessClient, clientId = spa, params: Record<string, string> = {}) {
      const { verifier, challenge } = pkce();
      const callback = await authorize(browser, authorizeUrl(clientId, params, challenge));
      const code = callback.searchParams.get('code');
      assert.ok(code, `no code: ${callback.toString()}`);
      return { code, verifier };
    }

    let signedIn: BrowserlessClient;

    before(async () => {
      server = await startTestServer({ fixedPort: true, clock: clock.now, backend });
      issuer = server.running.authorizationServer.issuer;
      email = `alice-${randomBytes(4).toString('hex')}@example.com`;
      await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const register = async (metadata: Record<string, unknown>) =>
        server.running.authorizationServer.clients.register(validateClientMetadata(metadata, { allowedScopes: ['openid', 'profile', 'email', 'offline_access'], defaultSigningAlgorithm: 'EdDSA' }), { actor: 'test' }, { approved: true });
      const base = { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid email offline_access', application_type: 'native' };
      spa = (await register({ ...base, client_name: 'Notes app', token_endpoint_auth_method: 'none' })).client.client_id;
      const w = await register({ ...base, client_name: 'Web app', application_type: 'web', redirect_uris: [REDIRECT] });
      web = { id: w.client.client_id, secret: w.clientSecret! };
      const o = await register({ ...base, client_name: 'Other app', redirect_uris: [REDIRECT] });
      other = { id: o.client.client_id, secret: o.clientSecret! };
      const p = await register({ ...base, client_name: 'PAR app', require_pushed_authorization_requests: true });
      parOnly = { id: p.client.client_id, secret: p.clientSecret! };
      signedIn = new BrowserlessClient(server.url);
    });
    after(async () => {
      await server.close();
    });

    it('signs in, asks consent, and issues tokens a client verifies: ID token, access token, userinfo, refresh', async () => {
      const { verifier, challenge } = pkce();
      const callback = await authorizeWithLogin(signedIn, authorizeUrl(spa, {}, challenge));
      assert.equal(callback.origin + callback.pathname, REDIRECT);
      assert.equal(callback.searchParams.get('state'), 'st-1');
      assert.equal(callback.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');
      const tokens = await redeem(spa, callback.searchParams.get('code')!, verifier);
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      assert.equal(tokens.body.token_type, 'Bearer');
      assert.equal(tokens.body.scope, 'openid email offline_access');
      assert.ok(tokens.body.refresh_token);
      const jwks = createLocalJWKSet((await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] });
      const id = await jwtVerify(tokens.body.id_token!, jwks, { issuer, audience: spa, currentDate: new Date(clock.now()) });
      assert.equal(id.payload['nonce'], 'n-1');
      assert.ok(typeof id.payload['auth_time'] === 'number');
      assert.ok(typeof id.payload['sid'] === 'string');
      assert.deepEqual(id.payload['amr'], ['pwd']);
      const digest = createHash('sha512').update(tokens.body.access_token!).digest();
      assert.equal(id.payload['at_hash'], digest.subarray(0, 32).toString('base64url'), 'at_hash binds the access token');
      const access = await jwtVerify(tokens.body.access_token!, jwks, { issuer, typ: 'at+jwt', currentDate: new Date(clock.now()) });
      assert.equal(access.payload.sub, id.payload.sub);
      assert.equal(access.payload['client_id'], spa);
      const userinfo = await fetch(`${server.url}/userinfo`, { headers: { authorization: `Bearer ${tokens.body.access_token!}` } });
      assert.equal(userinfo.status, 200);
      assert.deepEqual(await userinfo.json(), { sub: id.payload.sub, email, email_verified: false });
      const refreshed = await form('/token', { grant_type: 'refresh_token', client_id: spa, refresh_token: tokens.body.refresh_token });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      assert.notEqual(refreshed.body.refresh_token, tokens.body.refresh_token, 'rotated');
    });

    it('remembers consent per client and scope set; asks again for more, or with prompt=consent', async () => {
      const remembered = await follow(signedIn, authorizeUrl(spa));
      assert.ok(remembered.callback?.searchParams.get('code'), 'no consent page the second time');
      const wider = await follow(signedIn, authorizeUrl(spa, { scope: 'openid email offline_access' }));
      assert.ok(wider.callback !== undefined);
      const forced = await follow(signedIn, authorizeUrl(spa, { prompt: 'consent' }));
      assert.match(forced.page?.body ?? '', /action="\/authorize\/consent"/);
      const denied = await authorize(signedIn, authorizeUrl(web.id), { consent: 'deny' });
      assert.equal(denied.searchParams.get('error'), 'access_denied');
      assert.equal(denied.searchParams.get('iss'), issuer);
      assert.equal(denied.searchParams.get('code'), null);
    });

    it('prompt=none answers login_required without a session and consent_required without consent', async () => {
      const stranger = new BrowserlessClient(server.url);
      const none = await follow(stranger, authorizeUrl(spa, { prompt: 'none' }));
      assert.equal(none.callback?.searchParams.get('error'), 'login_required');
      assert.equal(none.callback?.searchParams.get('state'), 'st-1');
      const noConsent = await follow(signedIn, authorizeUrl(other.id, { prompt: 'none' }));
      assert.equal(noConsent.callback?.searchParams.get('error'), 'consent_required');
    });

    it('prompt=login and max_age make the person sign in again; auth_time moves', async () => {
      const first = await signedIn.get(authorizeUrl(spa, { prompt: 'login' }));
      assert.equal(first.status, 303);
      assert.match(first.location!, /^\/login\?reauth=1/);
      clock.advance(2000);
      const back = await signIn(signedIn, first.location!);
      const done = await finish(signedIn, await follow(signedIn, back), {});
      assert.ok(done.searchParams.get('code'));
      clock.advance(5000);
      const aged = await signedIn.get(authorizeUrl(spa, { max_age: '1' }));
      assert.equal(aged.status, 303);
      assert.match(aged.location!, /^\/login\?reauth=1/, 'an older sign-in than max_age asks again');
    });

    it('refuses missing and plain PKCE and a wrong verifier (RFC 9700 section 2.1.1)', async () => {
      const missing = await follow(signedIn, authorizeUrl(spa).replace(/&code_challenge=[^&]+&code_challenge_method=S256/, ''));
      assert.equal(missing.callback?.searchParams.get('error'), 'invalid_request');
      const plain = await follow(signedIn, authorizeUrl(spa, { code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) }));
      assert.equal(plain.callback?.searchParams.get('error'), 'invalid_request');
      const { code } = await freshCode(signedIn);
      const wrong = await redeem(spa, code, pkce().verifier);
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.error, 'invalid_grant');
      const { code: again, verifier } = await freshCode(signedIn);
      const noVerifier = await form('/token', { grant_type: 'authorization_code', client_id: spa, code: again, redirect_uri: REDIRECT });
      assert.equal(noVerifier.body.error, 'invalid_request');
      assert.equal((await redeem(spa, again, verifier)).status, 200, 'a request refused for its shape did not spend the code');
    });

    it('never redirects to a redirect URI that only resembles the registered one (prefix, case, path, query)', async () => {
      for (const lookalike of [`${REDIRECT}x`, REDIRECT.replace('callback', 'CALLBACK'), `${REDIRECT}/extra`, `${REDIRECT}?x=1`, 'http://127.0.0.1:8080/', 'https://attacker.example/callback']) {
        const response = await signedIn.get(authorizeUrl(spa, { redirect_uri: lookalike }));
        assert.equal(response.status, 400, lookalike);
        assert.equal(response.location, null, `${lookalike}: no redirect anywhere`);
        assert.match(response.body, /redirect_uri is not one this application registered/);
      }
      const unknown = await signedIn.get(authorizeUrl('no-such-client'));
      assert.equal(unknown.status, 400);
      assert.equal(unknown.location, null);
      const { code, verifier } = await freshCode(signedIn);
      const mismatch = await redeem(spa, code, verifier, { redirect_uri: `${REDIRECT}/extra` });
      assert.equal(mismatch.body.error, 'invalid_grant');
    });

    it('refuses implicit and hybrid response types, and scopes the client did not register', async () => {
      for (const responseType of ['token', 'id_token', 'code id_token', 'code token']) {
        const answer = await follow(signedIn, authorizeUrl(spa, { response_type: responseType }));
        assert.equal(answer.callback?.searchParams.get('error'), 'unsupported_response_type', responseType);
        assert.equal(answer.callback?.searchParams.get('access_token'), null);
      }
      const scope = await follow(signedIn, authorizeUrl(spa, { scope: 'openid admin' }));
      assert.equal(scope.callback?.searchParams.get('error'), 'invalid_scope');
    });

    it('a code is single-use: the second use fails and revokes what the first one got (RFC 6749 section 10.5)', async () => {
      const { verifier, challenge } = pkce();
      const callback = await authorize(signedIn, authorizeUrl(web.id, {}, challenge));
      const code = callback.searchParams.get('code')!;
      const first = await redeem(web.id, code, verifier, {}, { authorization: basic(web.id, web.secret) });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const introspect = async (token: string) => (await form('/introspect', { token }, { authorization: basic(web.id, web.secret) })).body['active'];
      assert.equal(await introspect(first.body.access_token!), true);
      const before = await server.running.ledger.size();
      const second = await redeem(web.id, code, verifier, {}, { authorization: basic(web.id, web.secret) });
      assert.equal(second.status, 400);
      assert.equal(second.body.error, 'invalid_grant');
      assert.equal(await introspect(first.body.access_token!), false, 'the access token of the first use is revoked');
      assert.equal(await introspect(first.body.refresh_token!), false, 'and its refresh token');
      const entries = await server.running.stores.durable.auditLog.entries(before, await server.running.ledger.size());
      assert.ok(entries.some((row) => decodeEntry(row.entry).type === 'token.reuse_detected'), 'the reuse is in the ledger');
    });

    it('refuses a code at another client, and an expired code', async () => {
      const { code, verifier } = await freshCode(signedIn);
      const stolen = await redeem(other.id, code, verifier, {}, { authorization: basic(other.id, other.secret) });
      assert.equal(stolen.body.error, 'invalid_grant');
      const late = await freshCode(signedIn);
      if (backend === 'embedded') {
        clock.advance(61_000);
        const expired = await redeem(spa, late.code, late.verifier);
        assert.equal(expired.body.error, 'invalid_grant');
      }
    });

    it('of 100 concurrent redemptions of one code exactly one succeeds', async () => {
      const { code, verifier } = await freshCode(signedIn);
      const answers = await Promise.all(Array.from({ length: 100 }, () => redeem(spa, code, verifier)));
      assert.equal(answers.filter((answer) => answer.status === 200).length, 1);
      assert.ok(answers.filter((answer) => answer.status !== 200).every((answer) => answer.body.error === 'invalid_grant'));
    });

    it('100 concurrent refreshes of one token by its client all get the same successor, and the family stays valid', async () => {
      const { code, verifier } = await freshCode(signedIn);
      const tokens = await redeem(spa, code, verifier);
      const refresh = (token: string, clientId = spa) => form('/token', { grant_type: 'refresh_token', client_id: clientId, refresh_token: token });
      const answers = await Promise.all(Array.from({ length: 100 }, () => refresh(tokens.body.refresh_token!)));
      assert.ok(answers.every((answer) => answer.status === 200), JSON.stringify(answers.find((answer) => answer.status !== 200)?.body));
      const successors = new Set(answers.map((answer) => answer.body.refresh_token));
      assert.equal(successors.size, 1, 'one successor, not a fork');
      assert.equal(new Set(answers.map((answer) => answer.body.access_token)).size, 1, 'the same access token too');
      const next = await refresh([...successors][0]!);
      assert.equal(next.status, 200, 'the family is still valid');
    });

    it('a refresh replayed after the grace window, or by another client, revokes the whole family', async () => {
      const { code, verifier } = await freshCode(signedIn);
      const tokens = await redeem(spa, code, verifier);
      const refresh = (token: string) => form('/token', { grant_type: 'refresh_token', client_id: spa, refresh_token: token });
      const second = await refresh(tokens.body.refresh_token!);
      assert.equal(second.status, 200);
      clock.advance(11_000);
      const before = await server.running.ledger.size();
      const replay = await refresh(tokens.body.refresh_token!);
      assert.equal(replay.body.error, 'invalid_grant');
      const successor = await refresh(second.body.refresh_token!);
      assert.equal(successor.body.error, 'invalid_grant', 'the successor died with its family');
      const userinfo = await fetch(`${server.url}/userinfo`, { headers: { authorization: `Bearer ${second.body.access_token!}` } });
      assert.equal(userinfo.status, 401, 'and the access tokens of the family');
      const entries = await server.running.stores.durable.auditLog.entries(before, await server.running.ledger.size());
      assert.ok(entries.some((row) => decodeEntry(row.entry).type === 'token.reuse_detected'));

      const fresh = await freshCode(signedIn);
      const own = await redeem(spa, fresh.code, fresh.verifier);
      const byOther = await form('/token', { grant_type: 'refresh_token', refresh_token: own.body.refresh_token! }, { authorization: basic(other.id, other.secret) });
      assert.equal(byOther.body.error, 'invalid_grant');
      assert.equal((await refresh(own.body.refresh_token!)).body.error, 'invalid_grant', 'a token shown by another client is revoked');
    });

    it('pushed authorization requests: one-time request_uri, and required where the client registered it', async () => {
      const direct = await follow(signedIn, authorizeUrl(parOnly.id));
      assert.equal(direct.callback?.searchParams.get('error'), 'invalid_request', 'this client must use PAR');
      const { verifier, challenge } = pkce();
      const pushed = await form(
        '/par',
        { response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'par-state', code_challenge: challenge, code_challenge_method: 'S256' },
        { authorization: basic(parOnly.id, parOnly.secret) },
      );
      assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
      const requestUri = pushed.body['request_uri'] as string;
      assert.match(requestUri, /^urn:ietf:params:oauth:request_uri:/);
      assert.equal(pushed.body['expires_in'], 60);
      const path = `/authorize?${new URLSearchParams({ client_id: parOnly.id, request_uri: requestUri }).toString()}`;
      const callback = await authorize(signedIn, path);
      assert.equal(callback.searchParams.get('state'), 'par-state');
      const tokens = await redeem(parOnly.id, callback.searchParams.get('code')!, verifier, {}, { authorization: basic(parOnly.id, parOnly.secret) });
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      const reused = await signedIn.get(path);
      assert.equal(reused.status, 400, 'a request_uri works once');
      const badPush = await form('/par', { response_type: 'code', redirect_uri: `${REDIRECT}x`, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }, { authorization: basic(parOnly.id, parOnly.secret) });
      assert.equal(badPush.status, 400);
      assert.equal(badPush.body.error, 'invalid_request');
      const unauthenticated = await form('/par', { client_id: parOnly.id, response_type: 'code', redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' });
      assert.equal(unauthenticated.status, 401);
    });

    it('withdrawing consent on the account page ends the application\'s refresh tokens', async () => {
      const { code, verifier } = await freshCode(signedIn);
      const tokens = await redeem(spa, code, verifier);
      const account = await signedIn.get('/account');
      assert.match(account.body, /Notes app/);
      const revoke = await signedIn.post('/account/applications/revoke', { _csrf: csrfField(account.body)!, client: spa });
      assert.equal(revoke.status, 303);
      const refresh = await form('/token', { grant_type: 'refresh_token', client_id: spa, refresh_token: tokens.body.refresh_token! });
      assert.equal(refresh.body.error, 'invalid_grant');
      const again = await follow(signedIn, authorizeUrl(spa));
      assert.match(again.page?.body ?? '', /action="\/authorize\/consent"/, 'consent is asked again');
    });

    it('a disabled user\'s access tokens stop working within a second, and their refresh at once', async () => {
      const other = `carol-${randomBytes(4).toString('hex')}@example.com`;
      const carol = await server.running.identity.accounts.createUser(other, PASSWORD, { actor: 'test' });
      const browser = new BrowserlessClient(server.url);
      const { verifier, challenge } = pkce();
      const first = await browser.get(authorizeUrl(web.id, {}, challenge));
      const loginPage = await browser.get(first.location!);
      const returnTo = /name="return_to" value="([^"]+)"/.exec(loginPage.body)![1]!.replaceAll('&amp;', '&');
      const signedIn = await browser.post('/login', { _csrf: csrfField(loginPage.body)!, email: other, password: PASSWORD, return_to: returnTo });
      const callback = await finish(browser, await follow(browser, signedIn.location!), {});
      const tokens = await redeem(web.id, callback.searchParams.get('code')!, verifier, {}, { authorization: basic(web.id, web.secret) });
      const introspect = async (token: string) => (await form('/introspect', { token }, { authorization: basic(web.id, web.secret) })).body['active'];
      assert.equal(await introspect(tokens.body.access_token!), true);
      await server.running.identity.accounts.setDisabled(carol.id, true, { actor: 'test' });
      const refresh = await form('/token', { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token! }, { authorization: basic(web.id, web.secret) });
      assert.equal(refresh.body.error, 'invalid_grant', 'no refresh for a disabled user');
      clock.advance(1500);
      assert.equal(await introspect(tokens.body.access_token!), false, 'the access token is inactive once the user cache expires');
    });

    it('refuses a forged consent form (another origin, or no token)', async () => {
      const page = await follow(signedIn, authorizeUrl(other.id, { prompt: 'consent' }));
      const interaction = /name="interaction" value="([^"]+)"/.exec(page.page!.body)![1]!;
      const forged = await signedIn.post('/authorize/consent', { _csrf: csrfField(page.page!.body)!, interaction, decision: 'allow' }, { origin: 'https://attacker.example', 'sec-fetch-site': 'cross-site' });
      assert.equal(forged.status, 403);
      const noToken = await signedIn.post('/authorize/consent', { interaction, decision: 'allow' });
      assert.equal(noToken.status, 403);
    });
  });
}
