/**
 * RFC 8705 in registration and discovery, over HTTP: a client may register
 * tls_client_auth or self_signed_tls_client_auth through RFC 7591 (the
 * metadata of section 2.1.2 and 2.2.2), but never the operator-only
 * `cert_sans`, which an RFC 7592 update neither shows nor loses; the
 * metadata advertises the methods, bound tokens (section 3.3) and, with
 * `tls.mtlsPort`, the mtls_endpoint_aliases (section 5).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorizationServerMetadata, openIdProviderMetadata } from '../../src/oauth/discovery.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/process.ts';
import { TestAuthority } from '../support/listener-authority.ts';
import { OpensslCa } from '../support/openssl-ca.ts';

async function call(server: TestServer, method: string, path: string, body?: unknown, token?: string) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

const service = { client_name: 'Meter', grant_types: ['client_credentials'], redirect_uris: [], scope: 'openid' };

describe('RFC 8705 dynamic registration', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ fixedPort: true });
  });
  after(async () => {
    await server.close();
  });

  it('registers a tls_client_auth client with its subject name and no secret', async () => {
    const created = await call(server, 'POST', '/register', { ...service, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: 'spiffe://example.org/meter', tls_client_certificate_bound_access_tokens: true });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body['token_endpoint_auth_method'], 'tls_client_auth');
    assert.equal(created.body['tls_client_auth_san_uri'], 'spiffe://example.org/meter');
    assert.equal(created.body['tls_client_certificate_bound_access_tokens'], true);
    assert.equal(created.body['client_secret'], undefined, 'the certificate is the credential');
  });

  it('refuses cert_sans (operator only), two subject names, or none, and creates nothing', async () => {
    const before = (await server.running.authorizationServer.clients.list()).length;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...service, cert_sans: ['spiffe://example.org/payments'] }, /operator only/],
      [{ ...service, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: 'spiffe://example.org/meter', cert_sans: ['spiffe://example.org/meter'] }, /operator only/],
      [{ ...service, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_dns: 'meter.example.com', tls_client_auth_subject_dn: 'CN=meter' }, /exactly one/],
      [{ ...service, token_endpoint_auth_method: 'tls_client_auth' }, /exactly one/],
      [{ ...service, token_endpoint_auth_method: 'self_signed_tls_client_auth' }, /x5c/],
    ];
    for (const [body, pattern] of cases) {
      const answer = await call(server, 'POST', '/register', body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body['error'], 'invalid_client_metadata');
      assert.match(answer.body['error_description'] as string, pattern);
    }
    assert.equal((await server.running.authorizationServer.clients.list()).length, before, 'nothing was created');
  });

  it('an RFC 7592 read does not show the operator\'s cert_sans, an update cannot set them, and a full-replacement update keeps them', async () => {
    const created = await call(server, 'POST', '/register', service);
    assert.equal(created.status, 201);
    const clientId = created.body['client_id'] as string;
    const token = created.body['registration_access_token'] as string;
    // The operator adds the names (as `portcullis client` would: through the registry, validated with operator rights).
    const registry = server.running.authorizationServer.clients;
    const stored = (await registry.get(clientId))!;
    const withSans = validateClientMetadata({ ...service, cert_sans: ['spiffe://example.org/meter', 'dns:meter.example.com'] }, { allowedScopes: ['openid'], operator: true });
    await registry.update(clientId, withSans, { actor: 'test' }, { expectedVersion: stored.version });

    const read = await call(server, 'GET', `/register/${clientId}`, undefined, token);
    assert.equal(read.status, 200);
    assert.equal(read.body['cert_sans'], undefined);
    // RFC 7592 section 2.2: the client sends its metadata back, without the server-owned fields.
    const echo = Object.fromEntries(Object.entries(read.body).filter(([name]) => !['registration_client_uri', 'client_id_issued_at', 'client_secret_expires_at'].includes(name)));
    const refused = await call(server, 'PUT', `/register/${clientId}`, { ...echo, cert_sans: ['spiffe://example.org/anything'] }, token);
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'invalid_client_metadata');
    const updated = await call(server, 'PUT', `/register/${clientId}`, { ...echo, client_name: 'Meter 2' }, token);
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.equal(updated.body['cert_sans'], undefined);
    assert.deepEqual((await registry.get(clientId))!.cert_sans, ['spiffe://example.org/meter', 'dns:meter.example.com'], 'the operator\'s names survive the client\'s update');
  });

  it('advertises the methods and bound tokens, and no aliases without tls.mtlsPort', async () => {
    const metadata = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    for (const field of ['token_endpoint_auth_methods_supported', 'introspection_endpoint_auth_methods_supported', 'revocation_endpoint_auth_methods_supported']) {
      const methods = metadata[field] as string[];
      assert.ok(methods.includes('tls_client_auth') && methods.includes('self_signed_tls_client_auth'), field);
    }
    assert.equal((metadata['introspection_endpoint_auth_methods_supported'] as string[]).includes('none'), false);
    assert.equal(metadata['tls_client_certificate_bound_access_tokens'], true);
    assert.equal(metadata['mtls_endpoint_aliases'], undefined);
  });
});

describe('RFC 8705 section 5: mtls_endpoint_aliases', () => {
  let server: TestServer;
  let mtlsPort: number;
  const caDir = mkdtempSync(join(tmpdir(), 'portcullis-aliases-ca-'));
  before(async () => {
    mtlsPort = await freePort();
    // An openssl-made CA gives the mTLS listener its trust and certificate (the built-in CA would need `ca init` first).
    const listenerAuthority = new TestAuthority(OpensslCa.create(caDir, 'aliases test CA'));
    server = await startTestServer({ fixedPort: true, overrides: { tls: { mtlsPort } }, listenerAuthority });
  });
  after(async () => {
    await server.close();
    rmSync(caDir, { recursive: true, force: true });
  });

  it('names each certificate-taking endpoint on the mTLS port of the issuer\'s host, in both documents', async () => {
    const host = new URL(server.running.authorizationServer.issuer).hostname;
    const expected = {
      token_endpoint: `https://${host}:${mtlsPort}/token`,
      revocation_endpoint: `https://${host}:${mtlsPort}/revoke`,
      introspection_endpoint: `https://${host}:${mtlsPort}/introspect`,
      userinfo_endpoint: `https://${host}:${mtlsPort}/userinfo`,
      pushed_authorization_request_endpoint: `https://${host}:${mtlsPort}/par`,
    };
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const metadata = (await (await fetch(`${server.url}${path}`)).json()) as Record<string, unknown>;
      assert.deepEqual(metadata['mtls_endpoint_aliases'], expected, path);
      assert.equal(metadata['token_endpoint'], `${server.running.authorizationServer.issuer}/token`, 'the main endpoints stay where they were');
    }
  });

  it('keeps the issuer\'s path prefix and leaves port 0 (not known yet) out', () => {
    const options = { issuer: 'https://id.example.com/tenant-a', scopes: [], registration: false };
    const aliases = authorizationServerMetadata({ ...options, mtlsPort: 9443 })['mtls_endpoint_aliases'] as Record<string, string>;
    assert.equal(aliases['token_endpoint'], 'https://id.example.com:9443/tenant-a/token');
    assert.equal(aliases['pushed_authorization_request_endpoint'], 'https://id.example.com:9443/tenant-a/par');
    assert.equal((openIdProviderMetadata({ ...options, mtlsPort: 9443 })['mtls_endpoint_aliases'] as Record<string, string>)['userinfo_endpoint'], 'https://id.example.com:9443/tenant-a/userinfo');
    assert.equal(authorizationServerMetadata({ ...options, mtlsPort: 0 })['mtls_endpoint_aliases'], undefined);
    const ipv6 = authorizationServerMetadata({ ...options, issuer: 'https://[2001:db8::1]', mtlsPort: 9443 })['mtls_endpoint_aliases'] as Record<string, string>;
    assert.equal(ipv6['token_endpoint'], 'https://[2001:db8::1]:9443/token');
  });
});
