/**
 * Sign-out as OAuth clients see it: RP-initiated logout (OIDC RP-Initiated
 * Logout 1.0) with registered post-logout redirect URIs only, the session's
 * tokens ending with it, and a signed back-channel logout token (OIDC
 * Back-Channel Logout 1.0) delivered through the outbox to a real HTTP
 * listener: retried while the client fails, the same jti on every copy,
 * given up on a 400 (section 2.8).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const AFTER_LOGOUT = 'http://127.0.0.1:8080/signed-out';

/** Signs a fresh browser in through /authorize and returns it with its tokens. */
async function signInWithTokens(server: TestServer, clientId: string, email: string) {
  const browser = new BrowserlessClient(server.url);
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, scope: 'openid email offline_access', state: 's', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' });
  const toLogin = await browser.get(`/authorize?${query.toString()}`);
  const loginPage = await browser.get(toLogin.location!);
  const returnTo = /name="return_to" value="([^"]+)"/.exec(loginPage.body)![1]!.replaceAll('&amp;', '&');
  const signedIn = await browser.post('/login', { _csrf: csrfField(loginPage.body)!, email, password: PASSWORD, return_to: returnTo });
  let step = await browser.get(signedIn.location!);
  if (step.status === 200) {
    const interaction = /name="interaction" value="([^"]+)"/.exec(step.body)![1]!;
    step = await browser.post('/authorize/consent', { _csrf: csrfField(step.body)!, interaction, decision: 'allow' });
  }
  const code = new URL(step.location!).searchParams.get('code')!;
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: REDIRECT }),
  });
  const tokens = (await response.json()) as { access_token: string; refresh_token: string; id_token: string };
  return { browser, tokens };
}


/**
 * A client's back-channel logout endpoint: records every body, answers a
 * logout for a session (by its sid) with the statuses queued for it in
 * `answers` (200 once they run out, and for any other session), and
 * resolves `next(sid)` on the arrival of that session's logout.
 */
class LogoutReceiver {
  readonly received: string[] = [];
  readonly answers = new Map<string, number[]>();
  readonly #waiters: { readonly sid: string | undefined; readonly resolve: (body: string) => void }[] = [];
  readonly server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      this.received.push(body);
      const sid = sidOf(body);
      response.writeHead((sid === undefined ? undefined : this.answers.get(sid)?.shift()) ?? 200).end();
      for (const waiter of this.#waiters.filter((candidate) => candidate.sid === undefined || candidate.sid === sid)) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(body);
      }
    });
  });
  next(sid?: string): Promise<string> {
    return new Promise((resolve) => this.#waiters.push({ sid, resolve }));
  }
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }
  close(): Promise<unknown> {
    return new Promise((resolve) => this.server.close(resolve));
  }
}

function sidOf(body: string): string | undefined {
  try {
    const sid = decodeJwt(logoutTokenOf(body))['sid'];
    return typeof sid === 'string' ? sid : undefined;
  } catch {
    return undefined;
  }
}

const logoutTokenOf = (body: string) => new URLSearchParams(body).get('logout_token')!;

describe('RP-initiated and back-channel logout', () => {
  let server: TestServer;
  const receiver = new LogoutReceiver();
  const received = receiver.received;
  let clientId: string;
  let email: string;

  before(async () => {
    const port = await receiver.listen();
    server = await startTestServer({ fixedPort: true });
    email = `bob-${randomBytes(4).toString('hex')}@example.com`;
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const metadata = validateClientMetadata(
      {
        client_name: 'Mail app',
        redirect_uris: [REDIRECT],
        post_logout_redirect_uris: [AFTER_LOGOUT],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        scope: 'openid email offline_access',
        backchannel_logout_uri: `http://127.0.0.1:${port}/backchannel`,
      },
      { allowedScopes: ['openid', 'email', 'offline_access'], defaultSigningAlgorithm: 'EdDSA' },
    );
    clientId = (await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true })).client.client_id;
  });
  after(async () => {
    await server.close();
    await receiver.close();
  });

  const signedInWithTokens = () => signInWithTokens(server, clientId, email);

  const userinfoStatus = async (token: string) => (await fetch(`${server.url}/userinfo`, { headers: { authorization: `Bearer ${token}` } })).status;
  const refreshError = async (token: string) =>
    ((await (await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', client_id: clientId, refresh_token: token }) })).json()) as { error?: string }).error;

  it('asks, signs out, returns to the registered URI with state, ends the tokens and tells the client', async () => {
    const { browser, tokens } = await signedInWithTokens();
    assert.equal(await userinfoStatus(tokens.access_token), 200);
    const query = new URLSearchParams({ id_token_hint: tokens.id_token, post_logout_redirect_uri: AFTER_LOGOUT, state: 'bye-1' });
    const confirm = await browser.get(`/logout?${query.toString()}`);
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, /Mail app asks to sign you out/);
    const fields = Object.fromEntries([...confirm.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((match) => [match[1]!, match[2]!.replaceAll('&amp;', '&')]));
    const sid = decodeJwt(tokens.id_token)['sid'] as string;
    const delivered = receiver.next(sid);
    const done = await browser.post('/logout', fields);
    assert.equal(done.status, 303);
    assert.equal(done.location, `${AFTER_LOGOUT}?state=bye-1`);
    assert.equal(browser.cookie('__Host-portcullis'), undefined, 'the session cookie is gone');
    assert.equal(await userinfoStatus(tokens.access_token), 401, 'the session\'s access token ended with it');
    assert.equal(await refreshError(tokens.refresh_token), 'invalid_grant', 'and its refresh token');

    const logoutToken = logoutTokenOf(await delivered);
    assert.equal(received.filter((body) => sidOf(body) === sid).length, 1, 'one back-channel logout delivered');
    const jwks = createLocalJWKSet((await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] });
    const { payload, protectedHeader } = await jwtVerify(logoutToken, jwks, { issuer: server.running.authorizationServer.issuer, audience: clientId, typ: 'logout+jwt' });
    assert.ok(protectedHeader.alg);
    assert.deepEqual(payload['events'], { 'http://schemas.openid.net/event/backchannel-logout': {} });
    assert.equal(payload['sid'], sid);
    assert.equal(payload.sub, decodeJwt(tokens.id_token).sub);
    assert.equal(payload['nonce'], undefined, 'a logout token never carries a nonce (section 2.4)');
  });

  it('never redirects to an unregistered post_logout_redirect_uri, or without a client', async () => {
    const { browser, tokens } = await signedInWithTokens();
    const queries: Record<string, string>[] = [
      { id_token_hint: tokens.id_token, post_logout_redirect_uri: 'https://attacker.example/after' },
      { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${AFTER_LOGOUT}/x` },
      { post_logout_redirect_uri: AFTER_LOGOUT },
      { id_token_hint: 'not-a-token', post_logout_redirect_uri: AFTER_LOGOUT },
    ];
    for (const query of queries) {
      const answer = await browser.get(`/logout?${new URLSearchParams(query).toString()}`);
      assert.equal(answer.status, 400, JSON.stringify(query));
      assert.equal(answer.location, null);
      assert.match(answer.body, /You can still sign out here/);
    }
    assert.equal(await userinfoStatus(tokens.access_token), 200, 'nothing was signed out');
  });

  it('refuses a forged sign-out (another site, no token) and keeps the session', async () => {
    const { browser, tokens } = await signedInWithTokens();
    const forged = await browser.post('/logout', { post_logout_redirect_uri: AFTER_LOGOUT, client_id: clientId }, { origin: 'https://attacker.example', 'sec-fetch-site': 'cross-site' });
    assert.equal(forged.status, 403);
    assert.equal(await userinfoStatus(tokens.access_token), 200);
    assert.ok(browser.cookie('__Host-portcullis'));
  });

  it('signing a session out from another device\'s account page ends that session\'s tokens', async () => {
    const { browser: phone, tokens } = await signedInWithTokens();
    const { browser: laptop } = await signedInWithTokens();
    assert.equal(await userinfoStatus(tokens.access_token), 200);
    const account = await laptop.get('/account');
    const handles = [...account.body.matchAll(/name="session" value="([^"]+)"/g)].map((match) => match[1]!);
    for (const handle of handles) {
      const answer = await laptop.post('/account/sessions/revoke', { _csrf: csrfField(account.body)!, session: handle });
      assert.equal(answer.status, 303);
    }
    assert.equal((await phone.get('/account')).status, 303, 'the phone is signed out');
    assert.equal(await userinfoStatus(tokens.access_token), 401, 'and its application\'s access token ended');
    assert.equal(await refreshError(tokens.refresh_token), 'invalid_grant', 'and its refresh token');
  });

  it('retries a client that fails, with one jti on every copy, and queues a session\'s logout once however often it ends', async () => {
    const { browser, tokens } = await signedInWithTokens();
    const userId = decodeJwt(tokens.id_token).sub!;
    const [session] = await server.running.identity.accounts.sessions.list(userId);
    assert.ok(session);
    const sid = decodeJwt(tokens.id_token)['sid'] as string;
    receiver.answers.set(sid, [503]);
    const failedOnce = server.logs.next(/"reason":"HTTP 503; retried with backoff"/);
    const first = receiver.next(sid);
    const account = await browser.get('/account');
    assert.equal((await browser.post('/logout', { _csrf: csrfField(account.body)! })).status, 200, 'the person is signed out while the client fails');
    const refused = logoutTokenOf(await first);
    await failedOnce;
    const retried = logoutTokenOf(await receiver.next(sid));
    assert.equal(decodeJwt(retried).jti, decodeJwt(refused).jti, 'a retry is the same logout for the client (section 2.6 jti)');
    assert.equal(decodeJwt(retried)['sid'], decodeJwt(tokens.id_token)['sid']);
    // A sign-out retried after a failure between its commit and its clean-up queues nothing new.
    await server.running.authorizationServer.logout.signedInTo(session.handle, clientId);
    assert.deepEqual(await server.running.authorizationServer.logout.sessionEnded({ userId, sessionHandle: session.handle }, {}), { queued: 0 });
  });

  it('gives up on a 400 (section 2.8: the client could not log out with that token) and says so', async () => {
    const { browser, tokens } = await signedInWithTokens();
    const sid = decodeJwt(tokens.id_token)['sid'] as string;
    receiver.answers.set(sid, [400]);
    const givenUp = server.logs.next(/"reason":"HTTP 400; not retried"/);
    const refused = receiver.next(sid);
    const account = await browser.get('/account');
    assert.equal((await browser.post('/logout', { _csrf: csrfField(account.body)! })).status, 200);
    await refused;
    assert.match(await givenUp, /back-channel logout not delivered/);
  });

  it('sends a person who is already signed out back to the registered URI when an id_token_hint confirms it, and otherwise only offers a link', async () => {
    const { browser, tokens } = await signedInWithTokens();
    const account = await browser.get('/account');
    assert.equal((await browser.post('/logout', { _csrf: csrfField(account.body)! })).status, 200);
    const hinted = await browser.get(`/logout?${new URLSearchParams({ id_token_hint: tokens.id_token, post_logout_redirect_uri: AFTER_LOGOUT, state: 'x' }).toString()}`);
    assert.equal(hinted.status, 303);
    assert.equal(hinted.location, `${AFTER_LOGOUT}?state=x`);
    // Security review 5: client_id alone is no proof the client asked.
    const stranger = new BrowserlessClient(server.url);
    const answer = await stranger.get(`/logout?${new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: AFTER_LOGOUT, state: 'x' }).toString()}`);
    assert.equal(answer.status, 200);
    assert.equal(answer.location, null);
    assert.match(answer.body, /<a href="http:\/\/127\.0\.0\.1:8080\/signed-out\?state=x" id="continue">Continue to 127\.0\.0\.1:8080<\/a>/);
  });
});

describe('back-channel logout in production posture: no private networks', () => {
  let server: TestServer;
  let receiver: Server;
  let hits = 0;
  let clientId: string;
  const email = 'dana@example.com';
  before(async () => {
    receiver = createServer((_request, response) => {
      hits += 1;
      response.writeHead(200).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    server = await startTestServer({ fixedPort: true, env: { PORTCULLIS_OAUTH_BACKCHANNEL_LOGOUT_PRIVATE_NETWORKS: 'false' } });
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const metadata = validateClientMetadata(
      {
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        scope: 'openid email offline_access',
        backchannel_logout_uri: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/backchannel`,
      },
      { allowedScopes: ['openid', 'email', 'offline_access'], defaultSigningAlgorithm: 'EdDSA' },
    );
    clientId = (await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true })).client.client_id;
  });
  after(async () => {
    await server.close();
    await new Promise((resolve) => receiver.close(resolve));
  });

  it('signs out but never posts to a loopback back-channel URI, and records the refusal', async () => {
    const { browser } = await signInWithTokens(server, clientId, email);
    const account = await browser.get('/account');
    const before = await server.running.ledger.size();
    const refused = server.logs.next(/"reason":"refused: not a public address; not retried"/);
    const done = await browser.post('/logout', { _csrf: csrfField(account.body)! });
    assert.equal(done.status, 200);
    const entries = await server.running.stores.durable.auditLog.entries(before, await server.running.ledger.size());
    const revoked = entries.map((row) => decodeEntry(row.entry)).find((entry) => entry.type === 'token.revoked');
    assert.equal(revoked?.detail?.['backchannelQueued'], 1);
    assert.match(await refused, /back-channel logout not delivered/);
    assert.equal(hits, 0, 'nothing reached the loopback listener');
  });
});
