/**
 * Dynamic client registration (RFC 7591) and management (RFC 7592) over
 * HTTP: open in development, gated by the initial access token, or off;
 * every management call needs the client's own registration access token.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry } from '../../src/audit/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const INITIAL_TOKEN = 'initial-7b1e0c55-94f2-4d0b-a3c8-2f6e9d1b7a40';

async function call(server: TestServer, method: string, path: string, body?: unknown, token?: string) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

const service = { client_name: 'Reports', grant_types: ['client_credentials'], redirect_uris: [], scope: 'openid' };
const webApp = { client_name: 'Shop', redirect_uris: ['https://shop.example.com/callback'], scope: 'openid email' };

describe('dynamic client registration, open (development default)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ fixedPort: true });
  });
  after(async () => {
    await server.close();
  });

  it('registers a client that can then use its credentials, and shows the secret only once', async () => {
    const metadata = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(metadata['registration_endpoint'], `${server.running.authorizationServer.issuer}/register`);
    const created = await call(server, 'POST', '/register', service);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.headers.get('cache-control'), 'no-store');
    const { client_id: clientId, client_secret: secret, registration_access_token: token, registration_client_uri: uri } = created.body as Record<string, string>;
    assert.match(secret!, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(token);
    assert.equal(uri, `${server.running.authorizationServer.issuer}/register/${clientId}`);
    assert.equal(created.body['client_secret_expires_at'], 0);
    const tokens = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    assert.equal(tokens.status, 200);
    const read = await call(server, 'GET', `/register/${clientId}`, undefined, token);
    assert.equal(read.status, 200);
    assert.equal(read.body['client_secret'], undefined, 'the secret is never shown again');
    assert.equal(read.body['client_name'], 'Reports');
  });

  it('refuses invalid metadata with RFC 7591 errors and creates nothing', async () => {
    const before = (await server.running.authorizationServer.clients.list()).length;
    const cases: [unknown, string][] = [
      [{ ...webApp, redirect_uris: ['https://shop.example.com/callback#frag'] }, 'invalid_redirect_uri'],
      [{ ...webApp, redirect_uris: ['https://*.example.com/callback'] }, 'invalid_redirect_uri'],
      [{ ...webApp, redirect_uris: ['http://shop.example.com/callback'] }, 'invalid_redirect_uri'],
      [{ ...webApp, response_types: ['token'] }, 'invalid_client_metadata'],
      [{ ...webApp, client_secret: 'my-own-weak-secret' }, 'invalid_client_metadata'],
      [{ ...service, token_endpoint_auth_method: 'none' }, 'invalid_client_metadata'],
      [{ ...webApp, scope: 'openid admin' }, 'invalid_client_metadata'],
      [[1, 2], 'invalid_client_metadata'],
    ];
    for (const [body, error] of cases) {
      const answer = await call(server, 'POST', '/register', body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body['error'], error, JSON.stringify(body));
      assert.ok(typeof answer.body['error_description'] === 'string');
    }
    const malformed = await call(server, 'POST', '/register', '{"client_name": ');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body['error'], 'invalid_request');
    assert.equal((await server.running.authorizationServer.clients.list()).length, before, 'nothing was created');
  });

  it('manages a registration only with its own registration access token (RFC 7592)', async () => {
    const mine = (await call(server, 'POST', '/register', webApp)).body as Record<string, string>;
    const theirs = (await call(server, 'POST', '/register', webApp)).body as Record<string, string>;
    const path = `/register/${mine['client_id']!}`;
    for (const token of [undefined, 'wrong-token', theirs['registration_access_token']]) {
      const refused = await call(server, 'GET', path, undefined, token);
      assert.equal(refused.status, 401, String(token));
      assert.equal(refused.body['error'], 'invalid_token');
      assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    assert.equal((await call(server, 'GET', '/register/no-such-client', undefined, mine['registration_access_token'])).status, 401, 'unknown and wrong look alike');
    const token = mine['registration_access_token'];
    const changed = await call(server, 'PUT', path, { ...webApp, client_id: mine['client_id'], redirect_uris: ['https://shop.example.com/new-callback'] }, token);
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(changed.body['redirect_uris'], ['https://shop.example.com/new-callback']);
    const wrongId = await call(server, 'PUT', path, { ...webApp, client_id: theirs['client_id'] }, token);
    assert.equal(wrongId.status, 400);
    const wrongSecret = await call(server, 'PUT', path, { ...webApp, client_id: mine['client_id'], client_secret: 'not-the-secret' }, token);
    assert.equal(wrongSecret.status, 400);
    const deleted = await call(server, 'DELETE', path, undefined, token);
    assert.equal(deleted.status, 204);
    assert.equal((await call(server, 'GET', path, undefined, token)).status, 401);
    assert.equal(await server.running.authorizationServer.clients.get(mine['client_id']!), null);
  });

  it('audits registrations and changes without any secret', async () => {
    const created = (await call(server, 'POST', '/register', service)).body as Record<string, string>;
    const size = await server.running.ledger.size();
    const rows = await server.running.stores.durable.auditLog.entries(0, size);
    const text = rows.map((row) => Buffer.from(row.entry).toString('utf8')).join('\n');
    assert.ok(rows.some((row) => decodeEntry(row.entry).type === 'client.registered' && decodeEntry(row.entry).client === created['client_id']));
    assert.ok(!text.includes(created['client_secret']!) && !text.includes(created['registration_access_token']!));
  });
});

describe('dynamic client registration gated by an initial access token, and off', () => {
  let gated: TestServer;
  let off: TestServer;
  before(async () => {
    gated = await startTestServer({ fixedPort: true, env: { PORTCULLIS_OAUTH_REGISTRATION: 'token', PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN: INITIAL_TOKEN } });
    off = await startTestServer({ fixedPort: true, env: { PORTCULLIS_OAUTH_REGISTRATION: 'off' } });
  });
  after(async () => {
    await gated.close();
    await off.close();
  });

  it('needs the initial access token when registration is token', async () => {
    assert.equal((await call(gated, 'POST', '/register', service)).status, 401);
    assert.equal((await call(gated, 'POST', '/register', service, `${INITIAL_TOKEN}x`)).status, 401);
    assert.equal((await call(gated, 'POST', '/register', service, INITIAL_TOKEN)).status, 201);
  });

  it('refuses everyone and advertises no endpoint when registration is off', async () => {
    const refused = await call(off, 'POST', '/register', service);
    assert.equal(refused.status, 403);
    assert.equal(refused.body['error'], 'access_denied');
    const metadata = (await (await fetch(`${off.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(metadata['registration_endpoint'], undefined);
  });
});
