/**
 * RFC 8705 end to end, over a real HTTPS listener that asks for client
 * certificates (test/support/mtls.ts), with certificates made by openssl:
 * tls_client_auth by each registered name type (section 2.1),
 * self_signed_tls_client_auth (section 2.2), certificate-bound access tokens
 * in the JWT and in introspection (sections 3.1, 3.2), a bound token at
 * userinfo (section 3), the bound refresh tokens of a public client
 * (section 4), and the coexistence with DPoP (one binding per token).
 *
 * The attacks, each tried and refused: no certificate, a certificate of
 * another client, the right names from an untrusted CA, an unregistered or
 * expired self-signed certificate, a bound token or refresh token over
 * another certificate or none; and a certificate guesser stopped by the same
 * throttle as a secret guesser (CLIENT_AUTH_FAILURES_PER_MINUTE).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { ALPHA, BETA, MtlsClient, jwtPayload, makeTestPki, startMtlsListener, type MtlsListener, type TestPki } from '../support/mtls.ts';
import { completeAuthorization, OFFERED_SCOPES } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const REDIRECT = 'http://127.0.0.1:8080/callback';
const PASSWORD = 'correct horse battery staple';
/** The per-network limit of failed client authentications a minute (client-auth.ts). */
const LIMIT = 100;
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('RFC 8705 mutual-TLS client authentication and certificate-bound tokens', () => {
  const clock = new ManualClock(Date.now());
  let pki: TestPki;
  let server: TestServer;
  let listener: MtlsListener;
  let issuer: string;
  /** HTTPS clients by the certificate they present. */
  let as: Record<'alpha' | 'beta' | 'foreignAlpha' | 'selfSigned' | 'otherSelfSigned' | 'none', MtlsClient>;
  const ids: Record<string, string> = {};
  let secretClient: { id: string; secret: string };
  let boundSecretClient: { id: string; secret: string };

  const url = (path: string) => `${listener.url}${path}`;
  const plainForm = async (path: string, params: Record<string, string>, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params) });
    return { status: response.status, headers: response.headers, body: (await response.json().catch(() => ({}))) as Record<string, unknown> };
  };
  const clientCredentials = (client: MtlsClient, clientId: string, headers: Record<string, string> = {}) => client.form(url('/token'), { grant_type: 'client_credentials', client_id: clientId }, headers);

  async function register(name: string, metadata: Record<string, unknown>): Promise<{ id: string; secret?: string }> {
    const checked = validateClientMetadata({ client_name: name, ...metadata }, { allowedScopes: OFFERED_SCOPES, defaultSigningAlgorithm: 'EdDSA', operator: true });
    const registered = await server.running.authorizationServer.clients.register(checked, { actor: 'test' }, { approved: true });
    ids[name] = registered.client.client_id;
    return { id: registered.client.client_id, ...(registered.clientSecret !== undefined && { secret: registered.clientSecret }) };
  }

  async function ledgerTypes(from: number): Promise<string[]> {
    const rows = await server.running.stores.durable.auditLog.entries(from, await server.running.ledger.size());
    return rows.map((row) => decodeEntry(row.entry).type);
  }

  const service = { grant_types: ['client_credentials'], scope: 'openid' };
  const tls = { ...service, token_endpoint_auth_method: 'tls_client_auth' };

  before(async () => {
    pki = makeTestPki();
    // The certificates' notBefore is when openssl made them: the clock starts after it.
    clock.advance(Date.now() + 1000 - clock.now());
    server = await startTestServer({ fixedPort: true, clock: clock.now, env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' } });
    issuer = server.running.authorizationServer.issuer;
    listener = await startMtlsListener(server.running.app, pki);
    as = {
      alpha: new MtlsClient(pki, pki.alpha),
      beta: new MtlsClient(pki, pki.beta),
      foreignAlpha: new MtlsClient(pki, pki.foreignAlpha),
      selfSigned: new MtlsClient(pki, pki.selfSigned),
      otherSelfSigned: new MtlsClient(pki, pki.otherSelfSigned),
      none: new MtlsClient(pki),
    };
    await register('by-uri', { ...tls, tls_client_auth_san_uri: ALPHA.uri });
    await register('by-dn', { ...tls, tls_client_auth_subject_dn: ALPHA.dn });
    await register('by-dns', { ...tls, tls_client_auth_san_dns: ALPHA.dns });
    await register('by-ip', { ...tls, tls_client_auth_san_ip: ALPHA.ip });
    await register('by-email', { ...tls, tls_client_auth_san_email: ALPHA.email });
    await register('beta-uri', { ...tls, tls_client_auth_san_uri: BETA.uri });
    await register('self-dn', { ...tls, tls_client_auth_subject_dn: 'CN=self-signed one' });
    await register('self-signed', { ...service, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [pki.jwk(pki.selfSigned)] } });
    await register('par-client', { token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_dns: ALPHA.dns, redirect_uris: [REDIRECT], scope: 'openid' });
    await register('public-app', { token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [REDIRECT], scope: 'openid email offline_access' });
    const plain = await register('secret', service);
    secretClient = { id: plain.id, secret: plain.secret! };
    const bound = await register('secret-bound', { ...service, tls_client_certificate_bound_access_tokens: true });
    boundSecretClient = { id: bound.id, secret: bound.secret! };
  });
  after(async () => {
    for (const client of Object.values(as ?? {})) await client.close();
    await listener?.close();
    await server?.close();
    pki?.remove();
  });

  it('tls_client_auth by SPIFFE URI SAN: a signed access token bound to the certificate, cnf shown by introspection, revocable', async () => {
    const answer = await clientCredentials(as.alpha, ids['by-uri']!);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['token_type'], 'Bearer', 'RFC 8705 defines no token type: a certificate-bound token is used as a Bearer token');
    const token = answer.body['access_token'] as string;
    const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer, currentDate: new Date(clock.now()) });
    assert.deepEqual(payload['cnf'], { 'x5t#S256': pki.alpha.thumbprint });
    assert.equal(pki.alpha.thumbprint, createHash('sha256').update(pki.alpha.x509.raw).digest('base64url'));

    const introspected = await as.alpha.form(url('/introspect'), { token, client_id: ids['by-uri']! });
    assert.equal(introspected.status, 200);
    assert.equal(introspected.body['active'], true);
    assert.equal(introspected.body['token_type'], 'Bearer');
    assert.deepEqual(introspected.body['cnf'], { 'x5t#S256': pki.alpha.thumbprint }, 'RFC 8705 section 3.2');

    const revoked = await as.alpha.form(url('/revoke'), { token, client_id: ids['by-uri']! });
    assert.equal(revoked.status, 200);
    assert.deepEqual((await as.alpha.form(url('/introspect'), { token, client_id: ids['by-uri']! })).body, { active: false });
  });

  it('tls_client_auth by subject DN, DNS, IP and email SAN: each registered name type matches alpha', async () => {
    for (const name of ['by-dn', 'by-dns', 'by-ip', 'by-email']) {
      const answer = await clientCredentials(as.alpha, ids[name]!);
      assert.equal(answer.status, 200, `${name}: ${JSON.stringify(answer.body)}`);
      assert.deepEqual(jwtPayload(answer.body['access_token'] as string)['cnf'], { 'x5t#S256': pki.alpha.thumbprint });
    }
  });

  it('refuses a trusted certificate with other names: invalid_client, no token', async () => {
    for (const [client, clientId] of [
      [as.alpha, ids['beta-uri']!],
      [as.beta, ids['by-uri']!],
      [as.beta, ids['by-dn']!],
      [as.beta, ids['by-dns']!],
      [as.beta, ids['by-ip']!],
      [as.beta, ids['by-email']!],
    ] as const) {
      const answer = await clientCredentials(client, clientId);
      assert.equal(answer.status, 401, JSON.stringify(answer.body));
      assert.equal(answer.body['error'], 'invalid_client');
      assert.equal(answer.body['access_token'], undefined);
    }
  });

  it('refuses a certificate client that presents no certificate, over TLS or plain HTTP', async () => {
    const overTls = await clientCredentials(as.none, ids['by-uri']!);
    assert.equal(overTls.status, 401);
    assert.equal(overTls.body['error'], 'invalid_client');
    assert.match(overTls.body['error_description'] as string, /presented none/);
    const plain = await plainForm('/token', { grant_type: 'client_credentials', client_id: ids['by-uri']! });
    assert.equal(plain.status, 401);
    assert.equal(plain.body['error'], 'invalid_client');
    // Nor can the client switch to a secret it does not have.
    const withSecret = await clientCredentials(as.alpha, ids['by-uri']!, { authorization: basic(ids['by-uri']!, 'x'.repeat(43)) });
    assert.equal(withSecret.status, 401);
  });

  it('refuses the right names from a CA the listener does not trust (the socket is not authorized)', async () => {
    for (const name of ['by-uri', 'by-dn', 'by-dns']) {
      const answer = await clientCredentials(as.foreignAlpha, ids[name]!);
      assert.equal(answer.status, 401);
      assert.equal(answer.body['error'], 'invalid_client');
      assert.match(answer.body['error_description'] as string, /not issued by a CA this server trusts/);
    }
    // A self-signed certificate naming the registered DN is untrusted too.
    const selfNamed = await clientCredentials(as.selfSigned, ids['self-dn']!);
    assert.equal(selfNamed.status, 401);
  });

  it('self_signed_tls_client_auth: the registered certificate authenticates and binds; another one, a CA-issued one or none does not', async () => {
    const answer = await clientCredentials(as.selfSigned, ids['self-signed']!);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(jwtPayload(answer.body['access_token'] as string)['cnf'], { 'x5t#S256': pki.selfSigned.thumbprint });
    for (const client of [as.otherSelfSigned, as.alpha, as.none]) {
      const refused = await clientCredentials(client, ids['self-signed']!);
      assert.equal(refused.status, 401);
      assert.equal(refused.body['error'], 'invalid_client');
    }
  });

  it('self_signed_tls_client_auth: the registered certificate is refused outside its validity period (by the server clock)', async () => {
    clock.advance(2 * 86_400_000);
    try {
      const expired = await clientCredentials(as.selfSigned, ids['self-signed']!);
      assert.equal(expired.status, 401);
      assert.match(expired.body['error_description'] as string, /expired or not yet valid/);
    } finally {
      clock.advance(-2 * 86_400_000);
    }
    clock.advance(-2 * 86_400_000);
    try {
      const early = await clientCredentials(as.selfSigned, ids['self-signed']!);
      assert.equal(early.status, 401);
    } finally {
      clock.advance(2 * 86_400_000);
    }
  });

  it('tls_client_certificate_bound_access_tokens: a secret client gets bound tokens with its certificate and is refused without one; an unflagged one is not bound', async () => {
    const bound = await as.alpha.form(url('/token'), { grant_type: 'client_credentials' }, { authorization: basic(boundSecretClient.id, boundSecretClient.secret) });
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    assert.deepEqual(jwtPayload(bound.body['access_token'] as string)['cnf'], { 'x5t#S256': pki.alpha.thumbprint });
    const withoutCertificate = await plainForm('/token', { grant_type: 'client_credentials' }, { authorization: basic(boundSecretClient.id, boundSecretClient.secret) });
    assert.equal(withoutCertificate.status, 400);
    assert.equal(withoutCertificate.body['error'], 'invalid_request');
    const unflagged = await as.alpha.form(url('/token'), { grant_type: 'client_credentials' }, { authorization: basic(secretClient.id, secretClient.secret) });
    assert.equal(unflagged.status, 200);
    assert.equal(jwtPayload(unflagged.body['access_token'] as string)['cnf'], undefined, 'a client that authenticated otherwise and did not ask gets an unbound token');
  });

  it('DPoP and a certificate: the proof binds the token (cnf.jkt only); a client registered for certificate-bound tokens may not send one', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const proof = () =>
      new SignJWT({ jti: randomUUID(), htm: 'POST', htu: `${issuer}/token`, iat: Math.floor(clock.now() / 1000) }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(privateKey);
    const answer = await clientCredentials(as.alpha, ids['by-uri']!, { dpop: await proof() });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['token_type'], 'DPoP');
    assert.deepEqual(jwtPayload(answer.body['access_token'] as string)['cnf'], { jkt: await calculateJwkThumbprint(jwk) });
    const refused = await as.alpha.form(url('/token'), { grant_type: 'client_credentials' }, { authorization: basic(boundSecretClient.id, boundSecretClient.secret), dpop: await proof() });
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'invalid_request');
  });

  it('PAR authenticates tls_client_auth clients the same way', async () => {
    const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
    const push = (client: MtlsClient) =>
      client.form(url('/par'), { client_id: ids['par-client']!, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
    const pushed = await push(as.alpha);
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    assert.match(pushed.body['request_uri'] as string, /^urn:ietf:params:oauth:request_uri:/);
    for (const client of [as.beta, as.none, as.foreignAlpha]) assert.equal((await push(client)).status, 401);
  });

  it('a public client: tokens bound to its certificate; userinfo and refresh refuse another certificate or none (sections 3 and 4)', async () => {
    const email = `mtls-${randomBytes(4).toString('hex')}@example.com`;
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const verifier = randomBytes(32).toString('base64url');
    const authorization = new URL('/authorize', server.url);
    authorization.search = new URLSearchParams({
      response_type: 'code',
      client_id: ids['public-app']!,
      redirect_uri: REDIRECT,
      scope: 'openid email offline_access',
      state: 'st',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const callback = await completeAuthorization(new BrowserlessClient(server.url), authorization, { email, password: PASSWORD }, { redirectUri: REDIRECT });
    const code = callback.searchParams.get('code')!;
    const redeemed = await as.alpha.form(url('/token'), { grant_type: 'authorization_code', client_id: ids['public-app']!, code, code_verifier: verifier, redirect_uri: REDIRECT });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    const accessToken = redeemed.body['access_token'] as string;
    const refreshToken = redeemed.body['refresh_token'] as string;
    assert.deepEqual(jwtPayload(accessToken)['cnf'], { 'x5t#S256': pki.alpha.thumbprint });

    // Section 3: the resource (userinfo) serves the token only with its certificate.
    const bearer = { authorization: `Bearer ${accessToken}` };
    const served = await as.alpha.get(url('/userinfo'), bearer);
    assert.equal(served.status, 200, JSON.stringify(served.body));
    assert.equal(served.body['email'], email);
    for (const attempt of [() => as.beta.get(url('/userinfo'), bearer), () => as.none.get(url('/userinfo'), bearer), () => as.selfSigned.get(url('/userinfo'), bearer)]) {
      const refused = await attempt();
      assert.equal(refused.status, 401);
      assert.equal(refused.body['error'], 'invalid_token');
      assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
    }
    const plain = await fetch(`${server.url}/userinfo`, { headers: bearer });
    assert.equal(plain.status, 401, 'a stolen bound token is useless over plain HTTP');
    assert.match(plain.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);

    // Section 4: the public client's refresh token is bound too.
    const refresh = (client: MtlsClient) => client.form(url('/token'), { grant_type: 'refresh_token', client_id: ids['public-app']!, refresh_token: refreshToken });
    for (const client of [as.beta, as.none, as.selfSigned]) {
      const refused = await refresh(client);
      assert.equal(refused.status, 400);
      assert.equal(refused.body['error'], 'invalid_grant');
    }
    const plainRefresh = await plainForm('/token', { grant_type: 'refresh_token', client_id: ids['public-app']!, refresh_token: refreshToken });
    assert.equal(plainRefresh.status, 400);
    assert.equal(plainRefresh.body['error'], 'invalid_grant');
    // The refused attempts changed nothing: the holder of the certificate still refreshes.
    const refreshed = await refresh(as.alpha);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.deepEqual(jwtPayload(refreshed.body['access_token'] as string)['cnf'], { 'x5t#S256': pki.alpha.thumbprint });
  });

  it('throttles failed certificate authentications like wrong secrets: the right certificate is refused while throttled, other networks are not', async () => {
    const attacker = '198.51.100.7';
    const before = await server.running.ledger.size();
    for (let i = 0; i < LIMIT; i++) {
      const answer = await clientCredentials(i % 2 === 0 ? as.foreignAlpha : as.beta, ids['by-uri']!, { 'x-forwarded-for': attacker });
      assert.equal(answer.status, 401);
    }
    const throttled = await clientCredentials(as.alpha, ids['by-uri']!, { 'x-forwarded-for': '198.51.100.8' });
    assert.equal(throttled.status, 429);
    assert.equal(throttled.body['error'], 'temporarily_unavailable');
    const retryAfter = Number(throttled.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60);
    // One count for every credential: a secret from that network waits too.
    assert.equal((await as.alpha.form(url('/token'), { grant_type: 'client_credentials' }, { authorization: basic(secretClient.id, secretClient.secret), 'x-forwarded-for': attacker })).status, 429);
    assert.equal((await clientCredentials(as.alpha, ids['by-uri']!, { 'x-forwarded-for': '203.0.113.20' })).status, 200, 'the real client elsewhere is not affected');
    const added = await ledgerTypes(before);
    assert.ok(added.length >= 1 && added.length <= 4 && added.every((type) => type === 'client.auth.failed' || type === 'token.issued'), added.join(', '));
    clock.advance(60_000);
    assert.equal((await clientCredentials(as.alpha, ids['by-uri']!, { 'x-forwarded-for': attacker })).status, 200, 'accepted once the window is over');
  });
});
