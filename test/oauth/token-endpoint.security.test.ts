/**
 * The token, introspection and revocation endpoints over real HTTP:
 * client_credentials with each client authentication method, RFC 9068
 * access tokens verified with `jose` against the published JWKS, and the
 * refusals: wrong or doubled credentials, replayed or forged assertions,
 * scopes beyond the registration, bad input. Revocation is raced.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata, type ClientMetadata } from '../../src/oauth/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

interface TokenAnswer {
  access_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
  request_id?: string;
}

const ORDERS_API = 'https://api.example.com/orders';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('token endpoint: client_credentials, introspection, revocation', () => {
  let server: TestServer;
  let issuer: string;
  let confidential: { id: string; secret: string };
  let postClient: { id: string; secret: string };
  let other: { id: string; secret: string };
  let publicClient: string;
  let jwtClient: string;
  const jwtKey = generateKeyPairSync('ed25519');

  const form = (path: string, params: Record<string, string | string[]>, headers: Record<string, string> = {}) => {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) for (const one of [value].flat()) body.append(name, one);
    return fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
  };
  const token = async (params: Record<string, string | string[]>, headers: Record<string, string> = {}) => {
    const response = await form('/token', params, headers);
    return { status: response.status, headers: response.headers, body: (await response.json()) as TokenAnswer };
  };
  const ccToken = async (client = confidential, extra: Record<string, string | string[]> = {}) => {
    const answer = await token({ grant_type: 'client_credentials', ...extra }, { authorization: basic(client.id, client.secret) });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.access_token!;
  };
  const introspect = async (value: string, client = confidential) => {
    const response = await form('/introspect', { token: value }, { authorization: basic(client.id, client.secret) });
    assert.equal(response.status, 200);
    return (await response.json()) as Record<string, unknown>;
  };
  const register = async (metadata: Record<string, unknown>) => {
    const valid: ClientMetadata = validateClientMetadata(metadata, { allowedScopes: ['openid', 'profile', 'email', 'offline_access', 'orders:read', 'orders:write', 'a:read', 'b:read'], defaultSigningAlgorithm: 'EdDSA' });
    return server.running.authorizationServer.clients.register(valid, { actor: 'test' });
  };
  const assertion = (claims: Record<string, unknown>, options: { key?: typeof jwtKey.privateKey; alg?: string } = {}) =>
    new SignJWT({ jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: options.alg ?? 'EdDSA' })
      .setIssuer(jwtClient)
      .setSubject(jwtClient)
      .setAudience(issuer)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(options.key ?? jwtKey.privateKey);

  before(async () => {
    server = await startTestServer({ fixedPort: true });
    issuer = server.running.authorizationServer.issuer;

    const service = { grant_types: ['client_credentials'], redirect_uris: [], scope: 'orders:read orders:write' };
    // Granted scopes of the a and b APIs too: a client may name only resources it holds a scope of (RFC 8707 section 2).
    const a = await register({ ...service, scope: 'orders:read orders:write a:read b:read', client_name: 'billing' });
    confidential = { id: a.client.client_id, secret: a.clientSecret! };
    const b = await register({ ...service, token_endpoint_auth_method: 'client_secret_post' });
    postClient = { id: b.client.client_id, secret: b.clientSecret! };
    const c = await register({ ...service, scope: 'orders:read' });
    other = { id: c.client.client_id, secret: c.clientSecret! };
    publicClient = (await register({ redirect_uris: ['http://127.0.0.1:8080/cb'], token_endpoint_auth_method: 'none' })).client.client_id;
    const jwk = { ...(await exportJWK(jwtKey.publicKey)), alg: 'EdDSA', use: 'sig' } as JWK;
    jwtClient = (await register({ ...service, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } })).client.client_id;
    // API scopes exist as scopes of a registered resource (they were oauth.extraScopes);
    // `confidential` acts for the orders API, so it may introspect its tokens (RFC 7662 section 4).
    const resources = server.running.authorizationServer.resources;
    await resources.create({ uri: ORDERS_API, scopes: ['orders:read', 'orders:write'], clients: [confidential.id] }, { actor: 'test' });
    await resources.create({ uri: 'https://a.example.com', scopes: ['a:read'] }, { actor: 'test' });
    await resources.create({ uri: 'https://b.example.com', scopes: ['b:read'] }, { actor: 'test' });
  });
  after(async () => {
    await server.close();
  });

  it('publishes RFC 8414 metadata naming only what is served, and a cacheable JWKS', async () => {
    const metadata = (await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(metadata['issuer'], issuer);
    assert.equal(metadata['token_endpoint'], `${issuer}/token`);
    assert.deepEqual(metadata['grant_types_supported'], ['authorization_code', 'refresh_token', 'client_credentials']);
    assert.deepEqual(metadata['code_challenge_methods_supported'], ['S256'], 'PKCE S256 only, no plain');
    assert.deepEqual(metadata['response_types_supported'], ['code'], 'no implicit, no hybrid');
    assert.equal(metadata['authorization_response_iss_parameter_supported'], true);
    assert.ok((metadata['token_endpoint_auth_methods_supported'] as string[]).includes('private_key_jwt'));
    const jwks = await fetch(metadata['jwks_uri'] as string);
    assert.equal(jwks.status, 200);
    assert.match(jwks.headers.get('cache-control') ?? '', /^public, max-age=\d+$/);
    assert.match(jwks.headers.get('content-type') ?? '', /^application\/jwk-set\+json/);
    const keys = ((await jwks.json()) as { keys: Record<string, unknown>[] }).keys;
    assert.ok(keys.length >= 1);
    for (const key of keys) assert.equal(key['d'], undefined, 'no private key material');
  });

  it('issues an RFC 9068 access token that verifies offline against the JWKS', async () => {
    const answer = await token({ grant_type: 'client_credentials', scope: 'orders:read' }, { authorization: basic(confidential.id, confidential.secret) });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    assert.equal(answer.headers.get('pragma'), 'no-cache');
    assert.equal(answer.body.token_type, 'Bearer');
    assert.equal(answer.body.scope, 'orders:read');
    assert.equal(answer.body.expires_in, 600);
    const jwks = createLocalJWKSet((await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] });
    // The audience is the resource that owns the scope (security review 2), no longer the issuer.
    const { payload, protectedHeader } = await jwtVerify(answer.body.access_token!, jwks, { issuer, audience: ORDERS_API, typ: 'at+jwt' });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(payload.sub, confidential.id);
    assert.equal(payload['client_id'], confidential.id);
    assert.equal(payload['scope'], 'orders:read');
    assert.equal(payload.exp! - payload.iat!, 600);
    assert.match(payload.jti!, /^[A-Za-z0-9_-]{22}$/);
  });

  it('grants the registered scopes when none is asked, and a resource becomes the audience (RFC 8707)', async () => {
    const access = await ccToken(confidential, { resource: 'https://api.example.com/orders' });
    const claims = await introspect(access);
    assert.equal(claims['scope'], 'orders:read orders:write');
    assert.equal(claims['aud'], 'https://api.example.com/orders');
    const two = await introspect(await ccToken(confidential, { resource: ['https://a.example.com', 'https://b.example.com'] }));
    assert.deepEqual(two['aud'], ['https://a.example.com', 'https://b.example.com']);
    assert.equal(two['scope'], 'a:read b:read', 'the scopes of the named resources only');
  });

  it('authenticates with client_secret_post and with private_key_jwt', async () => {
    const post = await token({ grant_type: 'client_credentials', client_id: postClient.id, client_secret: postClient.secret });
    assert.equal(post.status, 200, JSON.stringify(post.body));
    const jwt = await token({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion({}) });
    assert.equal(jwt.status, 200, JSON.stringify(jwt.body));
    assert.equal((await introspect(jwt.body.access_token!))['client_id'], jwtClient);
  });

  it('refuses wrong, unknown, doubled and mismatched client credentials with invalid_client', async () => {
    const cases: { name: string; params: Record<string, string>; headers?: Record<string, string>; status: number; error: string }[] = [
      { name: 'wrong secret', params: {}, headers: { authorization: basic(confidential.id, `${confidential.secret}x`) }, status: 401, error: 'invalid_client' },
      { name: 'unknown client', params: {}, headers: { authorization: basic('nobody', confidential.secret) }, status: 401, error: 'invalid_client' },
      { name: 'no authentication', params: {}, status: 401, error: 'invalid_client' },
      { name: 'post for a basic client', params: { client_id: confidential.id, client_secret: confidential.secret }, status: 401, error: 'invalid_client' },
      { name: 'basic for a post client', params: {}, headers: { authorization: basic(postClient.id, postClient.secret) }, status: 401, error: 'invalid_client' },
      { name: 'two methods at once', params: { client_id: confidential.id, client_secret: confidential.secret }, headers: { authorization: basic(confidential.id, confidential.secret) }, status: 400, error: 'invalid_request' },
      { name: 'malformed basic', params: {}, headers: { authorization: 'Basic !!!' }, status: 401, error: 'invalid_client' },
      { name: 'public client', params: { client_id: publicClient }, status: 400, error: 'unauthorized_client' },
      { name: 'body client_id differs from basic', params: { client_id: other.id }, headers: { authorization: basic(confidential.id, confidential.secret) }, status: 400, error: 'invalid_request' },
    ];
    for (const test of cases) {
      const answer = await token({ grant_type: 'client_credentials', ...test.params }, test.headers ?? {});
      assert.equal(answer.status, test.status, `${test.name}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error, test.error, test.name);
      assert.equal(answer.body.access_token, undefined, test.name);
      assert.match(answer.body.request_id ?? '', /.+/, `${test.name}: request id`);
      if (test.headers?.authorization?.startsWith('Basic') && test.status === 401) assert.match(answer.headers.get('www-authenticate') ?? '', /^Basic /, test.name);
    }
  });

  it('refuses a wrong secret of the right length after the right one was accepted, and the old secret after a rotation', async () => {
    await ccToken();
    const flipped = confidential.secret.slice(0, -1) + (confidential.secret.endsWith('A') ? 'B' : 'A');
    const wrong = await token({ grant_type: 'client_credentials' }, { authorization: basic(confidential.id, flipped) });
    assert.equal(wrong.status, 401);
    const rotated = await server.running.authorizationServer.clients.rotateSecret(other.id, { actor: 'test' });
    const old = await token({ grant_type: 'client_credentials' }, { authorization: basic(other.id, other.secret) });
    assert.equal(old.status, 401, 'the old secret stops working at once');
    other = { id: other.id, secret: rotated };
    assert.equal((await token({ grant_type: 'client_credentials' }, { authorization: basic(other.id, other.secret) })).status, 200);
  });

  it('refuses a replayed, expired, foreign-audience or unsigned client assertion', async () => {
    const params = (value: string) => ({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: value });
    const once = await assertion({});
    assert.equal((await token(params(once))).status, 200);
    const replay = await token(params(once));
    assert.equal(replay.status, 401, 'the same jti twice');
    assert.equal(replay.body.error, 'invalid_client');
    const stranger = generateKeyPairSync('ed25519');
    const expired = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer(jwtClient).setSubject(jwtClient).setAudience(issuer).setIssuedAt(Math.floor(Date.now() / 1000) - 600).setExpirationTime(Math.floor(Date.now() / 1000) - 300).sign(jwtKey.privateKey);
    const foreign = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer(jwtClient).setSubject(jwtClient).setAudience('https://elsewhere.example').setExpirationTime('60s').sign(jwtKey.privateKey);
    const unsignedHeader = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const unsignedBody = Buffer.from(JSON.stringify({ iss: jwtClient, sub: jwtClient, aud: issuer, jti: randomUUID(), exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
    const longLived = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer(jwtClient).setSubject(jwtClient).setAudience(issuer).setExpirationTime('2h').sign(jwtKey.privateKey);
    for (const [name, value] of [
      ['signed by another key', await assertion({}, { key: stranger.privateKey })],
      ['expired', expired],
      ['another audience', foreign],
      ['alg none', `${unsignedHeader}.${unsignedBody}.`],
      ['valid for two hours', longLived],
    ] as const) {
      const answer = await token(params(value));
      assert.equal(answer.status, 401, `${name}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error, 'invalid_client', name);
    }
  });

  it('keeps scopes to the registration and refuses OpenID scopes without a user', async () => {
    for (const [scope, error] of [
      ['orders:write', 'invalid_scope'],
      ['openid', 'invalid_scope'],
      ['orders:read admin', 'invalid_scope'],
      ['bad"scope', 'invalid_scope'],
    ] as const) {
      const answer = await token({ grant_type: 'client_credentials', scope }, { authorization: basic(other.id, other.secret) });
      assert.equal(answer.status, 400, scope);
      assert.equal(answer.body.error, error, scope);
    }
    const fragment = await token({ grant_type: 'client_credentials', resource: 'https://api.example.com/#x' }, { authorization: basic(other.id, other.secret) });
    assert.equal(fragment.body.error, 'invalid_target');
  });

  it('answers malformed requests with RFC 6749 errors, never a 500', async () => {
    const auth = { authorization: basic(confidential.id, confidential.secret) };
    assert.equal((await token({}, auth)).body.error, 'invalid_request', 'no grant_type');
    assert.equal((await token({ grant_type: 'password', username: 'a', password: 'b' }, auth)).body.error, 'unsupported_grant_type');
    assert.equal((await token({ grant_type: 'implicit' }, auth)).body.error, 'unsupported_grant_type');
    assert.equal((await token({ grant_type: ['client_credentials', 'client_credentials'] }, auth)).body.error, 'invalid_request', 'repeated parameter');
    const json = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: '{"grant_type":"client_credentials"}' });
    assert.equal(json.status, 415);
    assert.equal(((await json.json()) as TokenAnswer).error, 'invalid_request');
    const huge = await form('/token', { grant_type: 'client_credentials', scope: 'x'.repeat(70_000) }, auth);
    assert.equal(huge.status, 413);
    const invalidUtf8 = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth }, body: Buffer.from([0x67, 0x72, 0x61, 0x6e, 0x74, 0x5f, 0x74, 0x79, 0x70, 0x65, 0x3d, 0xff, 0xfe]) });
    assert.ok(invalidUtf8.status >= 400 && invalidUtf8.status < 500, `invalid UTF-8: ${invalidUtf8.status}`);
  });

  it('introspects: active with the token claims for a valid token, inactive for anything else', async () => {
    const access = await ccToken();
    const active = await introspect(access);
    assert.equal(active['active'], true);
    assert.equal(active['client_id'], confidential.id);
    assert.equal(active['token_type'], 'Bearer');
    assert.equal(active['iss'], issuer);
    const [header, payload, signature] = access.split('.') as [string, string, string];
    const forged = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    forged['scope'] = 'orders:read orders:write admin';
    for (const inactive of [`${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${signature}`, 'not-a-token', `${access}x`, '']) {
      if (inactive === '') continue;
      assert.deepEqual(await introspect(inactive), { active: false });
    }
    const missing = await form('/introspect', {}, { authorization: basic(confidential.id, confidential.secret) });
    assert.equal(missing.status, 400);
  });

  it('refuses introspection to public and unauthenticated callers', async () => {
    const access = await ccToken();
    const anonymous = await form('/introspect', { token: access });
    assert.equal(anonymous.status, 401);
    const asPublic = await form('/introspect', { token: access, client_id: publicClient });
    assert.equal(asPublic.status, 401);
    assert.equal(((await asPublic.json()) as TokenAnswer).error, 'invalid_client');
  });

  it('revokes an access token until it expires; another client cannot revoke it; unknown tokens answer 200', async () => {
    const access = await ccToken();
    const byOther = await form('/revoke', { token: access }, { authorization: basic(other.id, other.secret) });
    assert.equal(byOther.status, 400);
    assert.equal(((await byOther.json()) as TokenAnswer).error, 'unauthorized_client');
    assert.equal((await introspect(access))['active'], true, 'still active after a refused revocation');
    const revoked = await form('/revoke', { token: access, token_type_hint: 'access_token' }, { authorization: basic(confidential.id, confidential.secret) });
    assert.equal(revoked.status, 200);
    assert.equal(await revoked.text(), '');
    assert.deepEqual(await introspect(access), { active: false });
    assert.equal((await form('/revoke', { token: 'garbage' }, { authorization: basic(confidential.id, confidential.secret) })).status, 200);
    const badHint = await form('/revoke', { token: access, token_type_hint: 'id_token' }, { authorization: basic(confidential.id, confidential.secret) });
    assert.equal(((await badHint.json()) as TokenAnswer).error, 'unsupported_token_type');
  });

  it('ends the tokens of a deleted client', async () => {
    const temporary = await register({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'orders:read' });
    const access = await ccToken({ id: temporary.client.client_id, secret: temporary.clientSecret! });
    assert.equal((await introspect(access))['active'], true);
    await server.running.authorizationServer.clients.delete(temporary.client.client_id, { actor: 'test' });
    assert.deepEqual(await introspect(access), { active: false });
  });

  it('records one revocation when 50 requests race to revoke one token, and no token in the ledger', async () => {
    const access = await ccToken();
    const before = await server.running.ledger.size();
    const answers = await Promise.all(Array.from({ length: 50 }, () => form('/revoke', { token: access }, { authorization: basic(confidential.id, confidential.secret) })));
    assert.ok(answers.every((answer) => answer.status === 200));
    const size = await server.running.ledger.size();
    const rows = await server.running.stores.durable.auditLog.entries(before, size);
    const revocations = rows.map((row) => decodeEntry(row.entry)).filter((entry) => entry.type === 'token.revoked');
    assert.equal(revocations.length, 1);
    const all = await server.running.stores.durable.auditLog.entries(0, size);
    const text = all.map((row) => Buffer.from(row.entry).toString('utf8')).join('\n');
    assert.ok(!text.includes(access), 'no access token in the ledger');
    assert.ok(!text.includes(access.split('.')[2]!), 'no signature in the ledger');
    assert.ok(!text.includes(confidential.secret), 'no client secret in the ledger');
    assert.ok(all.some((row) => decodeEntry(row.entry).type === 'token.issued'));
    assert.ok(!server.logs.text.includes(confidential.secret) && !server.logs.text.includes(access), 'no secret or token in the log');
  });
});
