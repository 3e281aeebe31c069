/**
 * The authorization server's hook points in a running server, each with a
 * handler a test adds beside the built-in one: consent.before approves for
 * the person or refuses; token.claims and userinfo.claims add a claim in
 * their namespace, and a modify outside it releases no more than before;
 * registration.before refuses a client with its reason.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import { bundledChainSource, defineHook } from '../../src/hooks/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { completeAuthorization, registerClient, type Person, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const TEAM = 'https://example.com/team';

describe('hook points of the authorization server', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.now());
  let issuer: string;
  let firstParty: RegisteredClient;
  let thirdParty: RegisteredClient;
  /** Users whose consent the added handler refuses, and whose userinfo handler reaches outside its namespace. */
  const refusedUsers = new Set<string>();
  const greedyUsers = new Set<string>();

  const handlers = [
    defineHook({
      point: 'consent.before',
      name: 'test.first-party',
      answers: ['allow', 'deny', 'pass'],
      run: (context) => {
        if (refusedUsers.has(context.userId)) return { verdict: 'deny', reason: 'This application is not allowed for this user.' };
        return context.clientId === firstParty.clientId ? { verdict: 'allow' } : { verdict: 'pass' };
      },
    }),
    defineHook({ point: 'token.claims', name: 'test.team', answers: ['modify'], run: () => ({ verdict: 'modify', claims: { [TEAM]: 'core' } }) }),
    defineHook({
      point: 'userinfo.claims',
      name: 'test.team',
      answers: ['modify'],
      run: (context) => ({ verdict: 'modify', claims: greedyUsers.has(context.userId) ? { [TEAM]: 'core', email: 'someone@else.example' } : { [TEAM]: 'core' } }),
    }),
    defineHook({
      point: 'registration.before',
      name: 'test.no-evil',
      answers: ['deny', 'pass'],
      run: (context) => (JSON.stringify(context.metadata).includes('evil') ? { verdict: 'deny', reason: 'Client names with evil are not registered here.' } : { verdict: 'pass' }),
    }),
  ];
  const chains = bundledChainSource()
    .replace(/^consent\.before\s+oauth\.stored-consent$/m, (line) => `consent.before test.first-party pass\n${line}`)
    .replace(/^token\.claims\s.*$/m, (line) => `${line}\ntoken.claims test.team claims=https://example.com/*`)
    .replace(/^userinfo\.claims\s.*$/m, (line) => `${line}\nuserinfo.claims test.team claims=${TEAM}`)
    .replace(/^registration\.before\s+oauth\.registration-policy\s+pass$/m, (line) => `${line}\nregistration.before test.no-evil pass`);

  before(async () => {
    server = await startTestServer({ fixedPort: true, clock: clock.now, hooks: { handlers, chains }, overrides: { oauth: { registration: 'open' } } });
    issuer = server.running.authorizationServer.issuer;
    const metadata = { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid profile email', application_type: 'native', token_endpoint_auth_method: 'none' };
    firstParty = await registerClient(server, { ...metadata, client_name: 'First party' });
    thirdParty = await registerClient(server, { ...metadata, client_name: 'Third party' });
  });
  after(async () => {
    await server.close();
  });

  async function newPerson(): Promise<Person & { id: string }> {
    const email = `hooks-${randomBytes(4).toString('hex')}@example.com`;
    const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    return { email, password: PASSWORD, id: user.id };
  }

  /** Runs the code flow; the consent page, if shown, is answered with `consent`. Resolves with the callback URL and the client's configuration. */
  async function authorize(app: RegisteredClient, person: Person, consent: 'allow' | 'deny') {
    const config = await client.discovery(new URL(issuer), app.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
    const callback = await completeAuthorization(new BrowserlessClient(server.url), url, person, { redirectUri: REDIRECT, consent });
    return { config, callback, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce } };
  }

  it('consent.before: an added handler approves for the person (no consent page), or refuses (access_denied with its reason)', async () => {
    const person = await newPerson();
    // Declining on the page would end in access_denied: a code means no page was shown.
    const approved = await authorize(firstParty, person, 'deny');
    assert.ok(approved.callback.searchParams.get('code'), approved.callback.href);
    // The third party falls through to the stored-consent step: the page is shown, and declined.
    const declined = await authorize(thirdParty, person, 'deny');
    assert.equal(declined.callback.searchParams.get('error'), 'access_denied');
    assert.equal(declined.callback.searchParams.get('error_description'), 'The user declined.');
    const refusedPerson = await newPerson();
    refusedUsers.add(refusedPerson.id);
    const refused = await authorize(firstParty, refusedPerson, 'allow');
    assert.equal(refused.callback.searchParams.get('error'), 'access_denied');
    assert.equal(refused.callback.searchParams.get('error_description'), 'This application is not allowed for this user.');
  });

  it('token.claims and userinfo.claims: an added handler sets a claim in its namespace, next to the built-in scope claims', async () => {
    const person = await newPerson();
    const { config, callback, checks } = await authorize(firstParty, person, 'allow');
    const tokens = await client.authorizationCodeGrant(config, callback, checks);
    const idClaims = tokens.claims()!;
    assert.equal(idClaims[TEAM], 'core');
    // The built-in keeps the scope claims out of the ID token (OIDC Core 5.4: an access token was issued).
    assert.equal(idClaims['email'], undefined);
    assert.deepEqual(await client.fetchUserInfo(config, tokens.access_token, idClaims.sub), { sub: idClaims.sub, email: person.email, email_verified: false, [TEAM]: 'core' });
  });

  it('userinfo.claims: a modify outside the namespace releases nothing: the answer is a 503 the client may retry, never a partial set of claims', async () => {
    const person = await newPerson();
    greedyUsers.add(person.id);
    const { config, callback, checks } = await authorize(firstParty, person, 'allow');
    const tokens = await client.authorizationCodeGrant(config, callback, checks);
    const response = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('retry-after'), '1');
    const body = JSON.stringify(await response.json());
    assert.doesNotMatch(body, /someone@else|core|t\.greedy/i, 'nothing of the claims or the handler');
    assert.match(server.logs.text, /"fault":"outside_namespace"/);
  });

  it('registration.before: an added handler refuses a registration with its reason; others register as before', async () => {
    const register = (metadata: Record<string, unknown>) =>
      fetch(`${issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native', token_endpoint_auth_method: 'none', ...metadata }) });
    const refused = await register({ client_name: 'An evil app' });
    assert.equal(refused.status, 403);
    const body = (await refused.json()) as Record<string, unknown>;
    assert.equal(body['error'], 'access_denied');
    assert.equal(body['error_description'], 'Client names with evil are not registered here.');
    assert.equal((await register({ client_name: 'A good app' })).status, 201);
  });
});
