/**
 * Resource servers (security review 2 and 14) over real HTTP, on every
 * backend: a token's audience and API scopes come only from registered
 * resources and from what an operator granted the client; dynamic
 * registration cannot grant itself API scopes; an unregistered resource is
 * invalid_target everywhere; consent is remembered per resource; a
 * resource's algorithm signs its tokens; only the client a token was issued
 * to, or the resource server it is for, may introspect it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { ResourceRegistryError } from '../../src/oauth/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { completeAuthorization, registerClient, type Person, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const API = 'https://api.example.com';
const PAYMENTS = 'https://payments.internal.example/';
const SIGNED_API = 'https://signed.example.com/v1';
const B_API = 'https://b-api.example.com';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const INITIAL_ACCESS_TOKEN = 'iat-'.padEnd(40, 'x');

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

for (const backend of testBackends) {
  describe(`resource servers (${backend})`, () => {
    let server: TestServer;
    let issuer: string;
    let person: Person;
    /** Acts for API: may introspect API's tokens. */
    let apiServer: RegisteredClient;
    /** A user-facing app granted api:read. */
    let app: RegisteredClient;
    /** Another confidential client, not acting for anything. */
    let stranger: RegisteredClient;
    /** A user-facing app that refreshes, granted scopes of two APIs. */
    let refresher: RegisteredClient;

    const form = async (path: string, params: Record<string, string | string[]>, authorization?: string) => {
      const body = new URLSearchParams();
      for (const [name, value] of Object.entries(params)) for (const one of [value].flat()) body.append(name, one);
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization !== undefined && { authorization }) }, body });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const json = async (method: string, path: string, body: unknown, authorization?: string) => {
      const response = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(authorization !== undefined && { authorization }) }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const claimsOf = async (token: string, audience: string) => {
      const jwks = createLocalJWKSet((await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] });
      return (await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' })).payload;
    };
    const introspect = async (token: string, caller: RegisteredClient) => (await form('/introspect', { token }, basic(caller.clientId, caller.clientSecret!))).body;

    /** The authorization URL of a code flow for `app`, with PKCE. */
    const authorizationUrl = (extra: Record<string, string> = {}, client = app) => {
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL(`${server.url}/authorize`);
      url.search = new URLSearchParams({
        client_id: client.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid api:read',
        state: 'st',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        ...extra,
      }).toString();
      return { url, verifier };
    };
    /** A user's access token for `app`, through sign-in and consent. */
    const userTokens = async (browser: BrowserlessClient, extra: Record<string, string> = {}, client = app) => {
      const { url, verifier } = authorizationUrl(extra, client);
      const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
      const code = callback.searchParams.get('code');
      assert.ok(code !== null, `no code: ${callback.search}`);
      const answer = await form('/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, basic(client.clientId, client.clientSecret!));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body as { access_token: string; refresh_token?: string };
    };
    const userToken = async (browser: BrowserlessClient, extra: Record<string, string> = {}) => (await userTokens(browser, extra)).access_token;

    before(async () => {
      server = await startTestServer({ fixedPort: true, backend, env: { PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN: INITIAL_ACCESS_TOKEN, PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN_SCOPES: 'openid,api:read' } });
      issuer = server.running.authorizationServer.issuer;
      person = { email: `rs-${randomBytes(4).toString('hex')}@example.com`, password: 'correct horse battery staple' };
      await server.running.identity.accounts.createUser(person.email, person.password, { actor: 'test' });
      apiServer = await registerClient(server, { client_name: 'API itself', grant_types: ['client_credentials'] });
      stranger = await registerClient(server, { client_name: 'Stranger', grant_types: ['client_credentials'] });
      app = await registerClient(server, { client_name: 'App', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid api:read signed:read' }, ['api:read', 'signed:read']);
      const resources = server.running.authorizationServer.resources;
      await resources.create({ uri: API, scopes: ['api:read', 'api:write', 'api:admin'], clients: [apiServer.clientId] }, { actor: 'test' });
      await resources.create({ uri: SIGNED_API, scopes: ['signed:read'], accessTokenAlg: 'RS256' }, { actor: 'test' });
      await resources.create({ uri: B_API, scopes: ['b:read'] }, { actor: 'test' });
      refresher = await registerClient(server, { client_name: 'Refresher', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid offline_access api:read b:read' }, ['api:read', 'b:read']);
    });
    after(async () => {
      await server?.close();
    });

    it('security review 2: an open registration asking for api:admin is refused, and client_credentials for an unregistered resource is invalid_target', async () => {
      const escalation = await json('POST', '/register', { grant_types: ['client_credentials'], scope: 'api:admin api:read' });
      assert.equal(escalation.status, 400);
      assert.equal(escalation.body['error'], 'invalid_client_metadata');
      assert.match(String(escalation.body['error_description']), /"api:admin".*not offered to this client/);

      // What the review did next, with a client that registered what it may (no API scope).
      const plain = await json('POST', '/register', { grant_types: ['client_credentials'] });
      assert.equal(plain.status, 201, JSON.stringify(plain.body));
      const auth = basic(plain.body['client_id'] as string, plain.body['client_secret'] as string);
      const foreign = await form('/token', { grant_type: 'client_credentials', scope: 'api:admin', resource: PAYMENTS }, auth);
      assert.equal(foreign.status, 400);
      assert.equal(foreign.body['error'], 'invalid_target');
      const unregistered = await form('/token', { grant_type: 'client_credentials', scope: 'api:admin' }, auth);
      assert.equal(unregistered.body['error'], 'invalid_scope', 'a scope the client was not granted');
      const anyResource = await form('/token', { grant_type: 'client_credentials', resource: PAYMENTS }, auth);
      assert.equal(anyResource.body['error'], 'invalid_target', 'not even an empty-scope token for another audience');
      // Review of the merge: nor for a REGISTERED resource it was granted no scope of.
      const registeredApi = await form('/token', { grant_type: 'client_credentials', resource: API }, auth);
      assert.equal(registeredApi.body['error'], 'invalid_target', 'a registered API is no audience for a client granted none of its scopes');
    });

    it('a user-facing client may name only a resource it was granted a scope of (RFC 8707 section 2, RFC 9700 section 2.3)', async () => {
      const registered = await json('POST', '/register', { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', scope: 'openid' });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const selfRegistered = registered.body['client_id'] as string;
      for (const endpoint of ['/authorize', '/par']) {
        const url = new URL(`${server.url}/authorize`);
        const params = { client_id: selfRegistered, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', resource: API, state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' };
        if (endpoint === '/par') {
          const pushed = await form('/par', params);
          assert.equal(pushed.body['error'], 'invalid_target', '/par');
        } else {
          for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
          const answer = await new BrowserlessClient(server.url).get(url.toString());
          assert.ok(answer.location === null || !answer.location.includes('code='), 'no code');
          assert.match(answer.location ?? answer.body, /invalid_target|invalid%5Ftarget/, '/authorize');
        }
      }
    });

    it('an operator-granted client gets its token with aud = the resource that owns its scope, with or without a resource parameter', async () => {
      const service = await registerClient(server, { client_name: 'Billing job', grant_types: ['client_credentials'], scope: 'api:read' }, ['api:read']);
      const auth = basic(service.clientId, service.clientSecret!);
      const variants: Record<string, string>[] = [{ scope: 'api:read' }, { scope: 'api:read', resource: API }, { resource: API }];
      for (const params of variants) {
        const answer = await form('/token', { grant_type: 'client_credentials', ...params }, auth);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        const claims = await claimsOf(answer.body['access_token'] as string, API);
        assert.equal(claims.aud, API, JSON.stringify(params));
        assert.equal(claims['scope'], 'api:read');
      }
      const widened = await form('/token', { grant_type: 'client_credentials', scope: 'api:write' }, auth);
      assert.equal(widened.body['error'], 'invalid_scope', 'only what the operator granted');
      const wrongResource = await form('/token', { grant_type: 'client_credentials', scope: 'api:read', resource: SIGNED_API }, auth);
      assert.equal(wrongResource.body['error'], 'invalid_scope', 'a scope that is not one of the requested resource');
    });

    it('a registration with the initial access token gets what oauth.initialAccessTokenScopes allows, and an RFC 7592 update cannot widen any client', async () => {
      const withToken = await json('POST', '/register', { grant_types: ['client_credentials'], scope: 'api:read' }, `Bearer ${INITIAL_ACCESS_TOKEN}`);
      assert.equal(withToken.status, 201, JSON.stringify(withToken.body));
      assert.equal((await json('POST', '/register', { grant_types: ['client_credentials'], scope: 'api:write' }, `Bearer ${INITIAL_ACCESS_TOKEN}`)).body['error'], 'invalid_client_metadata');

      const open = await json('POST', '/register', { redirect_uris: [REDIRECT], scope: 'openid email' });
      assert.equal(open.status, 201);
      for (const [registered, scope] of [
        [open.body, 'openid email api:read'],
        [withToken.body, 'api:read api:write'],
      ] as const) {
        const clientId = registered['client_id'] as string;
        const uri = `/register/${encodeURIComponent(clientId)}`;
        const bearer = `Bearer ${registered['registration_access_token'] as string}`;
        const serverFields = ['registration_access_token', 'registration_client_uri', 'client_secret_expires_at', 'client_id_issued_at'];
        const metadata = Object.fromEntries(Object.entries(registered).filter(([name]) => !serverFields.includes(name)));
        const update = await json('PUT', uri, { ...metadata, scope }, bearer);
        assert.equal(update.status, 400, `${scope}: ${JSON.stringify(update.body)}`);
        assert.equal(update.body['error'], 'invalid_client_metadata');
        const read = await fetch(`${server.url}${uri}`, { headers: { authorization: bearer } });
        assert.equal(((await read.json()) as Record<string, unknown>)['scope'], registered['scope'], 'nothing changed');
        const narrowed = await json('PUT', uri, { ...metadata }, bearer);
        assert.equal(narrowed.status, 200, `keeping its scopes is allowed: ${JSON.stringify(narrowed.body)}`);
      }
    });

    it('an unregistered resource is invalid_target at /authorize (redirected with state), /par and /token', async () => {
      const browser = new BrowserlessClient(server.url);
      const { url } = authorizationUrl({ resource: PAYMENTS });
      const answer = await browser.get(url.toString());
      assert.ok(answer.status === 302 || answer.status === 303, String(answer.status));
      const location = new URL(answer.location!);
      assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
      assert.equal(location.searchParams.get('error'), 'invalid_target');
      assert.equal(location.searchParams.get('state'), 'st');

      const { url: notOfResource } = authorizationUrl({ resource: SIGNED_API });
      assert.equal(new URL((await browser.get(notOfResource.toString())).location!).searchParams.get('error'), 'invalid_scope', 'api:read is not a scope of that resource');

      const pushed = await form('/par', Object.fromEntries(new URL(authorizationUrl({ resource: PAYMENTS }).url).searchParams), basic(app.clientId, app.clientSecret!));
      assert.equal(pushed.status, 400);
      assert.equal(pushed.body['error'], 'invalid_target');

      const grants: Record<string, string>[] = [{ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT, code_verifier: 'v'.repeat(43) }, { grant_type: 'refresh_token', refresh_token: 'x' }];
      for (const grant of grants) {
        const refused = await form('/token', { ...grant, resource: PAYMENTS }, basic(app.clientId, app.clientSecret!));
        assert.equal(refused.body['error'], 'invalid_target', grant.grant_type);
      }
    });

    it('consent is remembered per resource: a later request for another resource asks again', async () => {
      const browser = new BrowserlessClient(server.url);
      const token = await userToken(browser);
      assert.equal((await claimsOf(token, API)).aud, API, 'the resource that owns api:read');
      // Remembered: the same request passes with prompt=none ...
      const again = new URL((await browser.get(authorizationUrl({ prompt: 'none' }).url.toString())).location!);
      assert.ok(again.searchParams.get('code') !== null, again.search);
      // ... but not one for a resource the user has not approved.
      const { url } = authorizationUrl({ prompt: 'none', scope: 'openid', resource: SIGNED_API });
      const other = new URL((await browser.get(url.toString())).location!);
      assert.equal(other.searchParams.get('error'), 'consent_required');
    });

    it('a refresh may name fewer of the granted resources, with their scopes only, never another resource (RFC 8707 section 2.2)', async () => {
      const granted = await userTokens(new BrowserlessClient(server.url), { scope: 'openid offline_access api:read b:read' }, refresher);
      assert.deepEqual((await claimsOf(granted.access_token, API)).aud, [API, B_API], 'the resources owning the two API scopes');
      const auth = basic(refresher.clientId, refresher.clientSecret!);
      const outside = await form('/token', { grant_type: 'refresh_token', refresh_token: granted.refresh_token!, resource: SIGNED_API }, auth);
      assert.equal(outside.body['error'], 'invalid_target', 'registered, but not part of the grant');
      const narrowed = await form('/token', { grant_type: 'refresh_token', refresh_token: granted.refresh_token!, resource: B_API }, auth);
      assert.equal(narrowed.status, 200, `the refused refresh spent nothing: ${JSON.stringify(narrowed.body)}`);
      const claims = await claimsOf(narrowed.body['access_token'] as string, B_API);
      assert.equal(claims.aud, B_API);
      assert.equal(claims['scope'], 'openid offline_access b:read');
      const wrongScope = await form('/token', { grant_type: 'refresh_token', refresh_token: narrowed.body['refresh_token'] as string, resource: B_API, scope: 'api:read' }, auth);
      assert.equal(wrongScope.body['error'], 'invalid_scope', 'api:read is not a scope of b-api');
    });

    it('a resource registered with --access-token-alg RS256 gets RS256 access tokens; others the server default', async () => {
      const service = await registerClient(server, { client_name: 'Signed job', grant_types: ['client_credentials'], scope: 'signed:read api:read' }, ['signed:read', 'api:read']);
      const auth = basic(service.clientId, service.clientSecret!);
      const signed = await form('/token', { grant_type: 'client_credentials', scope: 'signed:read' }, auth);
      assert.equal(decodeProtectedHeader(signed.body['access_token'] as string).alg, 'RS256');
      assert.equal((await claimsOf(signed.body['access_token'] as string, SIGNED_API)).aud, SIGNED_API);
      const plain = await form('/token', { grant_type: 'client_credentials', scope: 'api:read' }, auth);
      assert.equal(decodeProtectedHeader(plain.body['access_token'] as string).alg, 'EdDSA');
      const mixed = await form('/token', { grant_type: 'client_credentials', scope: 'signed:read api:read' }, auth);
      assert.equal(mixed.body['error'], 'invalid_target', 'one token cannot be signed two ways');
    });

    it('security review 14: a third client introspecting a user\'s token gets inactive; the resource server it is for gets active', async () => {
      const token = await userToken(new BrowserlessClient(server.url));
      assert.deepEqual(await introspect(token, stranger), { active: false });
      const seen = await introspect(token, apiServer);
      assert.equal(seen['active'], true);
      assert.equal(seen['aud'], API);
      assert.equal((await introspect(token, app))['active'], true, 'the client it was issued to');
    });

    it('scope names are unique across resources, also when 8 operators race to create them', async () => {
      const resources = server.running.authorizationServer.resources;
      await assert.rejects(resources.create({ uri: 'https://copy.example.com', scopes: ['api:read'] }, { actor: 'test' }), (error: unknown) => error instanceof ResourceRegistryError && error.code === 'scope_taken');
      await assert.rejects(resources.create({ uri: 'https://x.example.com/#frag', scopes: ['x:read'] }, { actor: 'test' }), (error: unknown) => error instanceof ResourceRegistryError && error.code === 'invalid');
      await assert.rejects(resources.create({ uri: 'https://x.example.com', scopes: ['openid'] }, { actor: 'test' }), (error: unknown) => error instanceof ResourceRegistryError && error.code === 'invalid');
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => resources.create({ uri: `https://race-${i}.example.com`, scopes: [`race:${i}`, 'race:shared'] }, { actor: 'test' })));
      const won = results.filter((result) => result.status === 'fulfilled');
      assert.equal(won.length, 1, 'exactly one resource owns race:shared');
      const owner = (won[0] as PromiseFulfilledResult<{ uri: string }>).value.uri;
      assert.equal(await resources.ownerOf('race:shared'), owner);
      const losers = (await resources.list()).filter((resource) => resource.uri.startsWith('https://race-') && resource.uri !== owner);
      assert.deepEqual(losers, [], 'no loser was stored');
      // A loser's own scopes were freed again: they can be created now.
      const loserIndex = [...Array(8).keys()].find((i) => `https://race-${i}.example.com` !== owner)!;
      await resources.create({ uri: `https://again-${loserIndex}.example.com`, scopes: [`race:${loserIndex}`] }, { actor: 'test' });
    });
  });
}
