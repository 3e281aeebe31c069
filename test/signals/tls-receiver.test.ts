/**
 * A signal receiver that authenticates with its certificate alone, end to
 * end on a real deployment with the built-in CA and the mTLS listener
 * (`caDeployment`, `tls.mtlsPort`): an operator-approved `tls_client_auth`
 * client (RFC 8705 section 2.1.2, `tls_client_auth_san_uri` = its SPIFFE
 * ID) with an X509-SVID from the CA (`POST /ca/sign` with an enrolment
 * token) gets a certificate-bound access token (`cnf.x5t#S256`, section
 * 3.1) at `/token` over the mTLS listener, without a secret, and over the
 * same listener with the same certificate creates a poll stream
 * (`/signals/stream`) and polls it (`/signals/poll/:id`, RFC 8936): the SET
 * for an account being disabled arrives and verifies against /jwks.
 *
 * Refused, each by its own rule (and shown to work once that rule is met):
 * - the bound token on the plain listener, which presents no certificate
 *   (401 invalid_token; the same token over mTLS works);
 * - the bound token over mTLS with another client's valid certificate
 *   (401 invalid_token; that certificate works with its own token);
 * - the bound token of a tls_client_auth client an operator has not
 *   approved, over its own certificate (403; the same token works once the
 *   client is approved).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { newKeyAndRequest } from '../../src/cli/agent/agent.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { DELIVERY_METHODS, SECURITY_EVENT_TYPES, SET_TYP } from '../../src/sdk/index.ts';
import { TRUST_DOMAIN, type CaDeployment } from '../support/ca.ts';
import { testBackends } from '../support/server.ts';
import { startSignalsCaDeployment, type SignalsCaDeployment } from '../support/signals-deployment.ts';

/** A tls_client_auth receiver: its client id, SPIFFE ID, an X509-SVID for it, and an HTTPS agent presenting that certificate. */
interface TlsReceiver {
  readonly clientId: string;
  readonly spiffeId: string;
  /** RFC 8705 section 3.1: base64url SHA-256 of the leaf certificate's DER. */
  readonly thumbprint: string;
  readonly agent: Agent;
}

interface Answer {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: Record<string, unknown>;
}

/** The payload of a JWT, unverified (only to read `cnf`; the SETs are verified with jose). */
function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

for (const backend of testBackends) {
  describe(`a tls_client_auth signal receiver over the mTLS listener (${backend})`, () => {
    let ca: CaDeployment;
    let mtlsPort: number;
    let bundle: string;
    let alice: TlsReceiver;
    let bob: TlsReceiver;
    let mallory: TlsReceiver;
    const agents: Agent[] = [];
    let deployment: SignalsCaDeployment | undefined;

    before(async () => {
      deployment = await startSignalsCaDeployment('portcullis-signals-tls-receiver-', backend);
      ({ ca, mtlsPort, bundle } = deployment);
      alice = await tlsReceiver('alice', true);
      bob = await tlsReceiver('bob', true);
      mallory = await tlsReceiver('mallory', false);
    });

    after(async () => {
      for (const agent of agents) await agent.close();
      await deployment?.remove();
    });


    /**
     * A client_credentials client with scope ssf:stream that authenticates by
     * its SPIFFE ID (tls_client_auth, no secret), approved by an operator or
     * not, and an X509-SVID for that ID from the CA (an enrolment token, so
     * the client needs no other scope).
     */
    async function tlsReceiver(name: string, approved: boolean): Promise<TlsReceiver> {
      const spiffeId = `spiffe://${TRUST_DOMAIN}/ns/signals/sa/${name}`;
      const metadata = validateClientMetadata(
        { client_name: name, grant_types: ['client_credentials'], scope: 'ssf:stream', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: spiffeId },
        { allowedScopes: ['ssf:stream'], defaultSigningAlgorithm: 'EdDSA', operator: true },
      );
      const registered = await ca.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved });
      assert.equal(registered.clientSecret, undefined, 'the certificate is the credential');
      const { token: enrolment } = await ca.running.runtime.get('pki').enrolment.create({ names: [spiffeId], ttlMs: 600_000 });
      const { keyPem, csrPem } = newKeyAndRequest({ spiffeId, dns: [], ips: [] });
      const response = await fetch(`${ca.url}/ca/sign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr: csrPem, enrolment_token: enrolment }) });
      assert.equal(response.status, 201, await response.clone().text());
      const chain = await response.text();
      const leaf = new X509Certificate(chain);
      const agent = new Agent({ connect: { ca: bundle, cert: chain, key: keyPem } });
      agents.push(agent);
      return { clientId: registered.client.client_id, spiffeId, thumbprint: createHash('sha256').update(leaf.raw).digest('base64url'), agent };
    }

    const mtlsUrl = (path: string): string => `https://127.0.0.1:${mtlsPort}${path}`;

    /** A request over the mTLS listener, presenting `who`'s certificate. */
    async function overMtls(who: TlsReceiver, method: string, path: string, options: { readonly token?: string; readonly json?: unknown; readonly form?: Record<string, string> } = {}): Promise<Answer> {
      const headers: Record<string, string> = {
        ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }),
        ...(options.json !== undefined && { 'content-type': 'application/json' }),
        ...(options.form !== undefined && { 'content-type': 'application/x-www-form-urlencoded' }),
      };
      const body = options.json !== undefined ? JSON.stringify(options.json) : options.form !== undefined ? new URLSearchParams(options.form).toString() : undefined;
      const response = await undiciFetch(mtlsUrl(path), { method, headers, dispatcher: who.agent, ...(body !== undefined && { body }) });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
    }

    /** The same request on the plain listener (no TLS, so no certificate). */
    async function overPlain(method: string, path: string, token: string, json?: unknown): Promise<Answer> {
      const response = await fetch(`${ca.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(json !== undefined && { 'content-type': 'application/json' }) }, ...(json !== undefined && { body: JSON.stringify(json) }) });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
    }

    /** RFC 8705 client_credentials at /token over the mTLS listener: the client id and the certificate, no secret; the access token, bound to `who`'s certificate. */
    async function boundToken(who: TlsReceiver): Promise<string> {
      const answer = await overMtls(who, 'POST', '/token', { form: { grant_type: 'client_credentials', client_id: who.clientId, scope: 'ssf:stream' } });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body['token_type'], 'Bearer');
      const token = answer.body['access_token'] as string;
      const claims = jwtPayload(token);
      assert.deepEqual(claims['cnf'], { 'x5t#S256': who.thumbprint }, 'bound to the certificate of the connection');
      assert.equal(claims['sub'], who.clientId, 'the client acting for itself');
      assert.equal(claims['client_id'], who.clientId);
      assert.ok(String(claims['scope']).split(' ').includes('ssf:stream'));
      const audiences = typeof claims['aud'] === 'string' ? [claims['aud']] : (claims['aud'] as string[]);
      assert.ok(audiences.includes(`${ca.running.authorizationServer.issuer.replace(/\/$/, '')}/signals`), `for the signals resource: ${JSON.stringify(claims['aud'])}`);
      return token;
    }

    const pollStream = { delivery: { method: DELIVERY_METHODS.poll }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] };

    async function disableSomeone(): Promise<string> {
      const user = await ca.running.identity.accounts.createUser(`tls-receiver-${Date.now()}-${Math.random()}@example.com`, null, { actor: 'test' });
      await ca.running.identity.accounts.setDisabled(user.id, true, { actor: 'admin' });
      return user.id;
    }

    /** Verifies a SET as a receiver would: the JWKS the SSF configuration names, the issuer, the stream's audience and typ. */
    async function verifySet(set: string, streamId: string): Promise<Record<string, unknown>> {
      const configuration = (await (await fetch(`${ca.url}/.well-known/ssf-configuration`)).json()) as { issuer: string; jwks_uri: string };
      const stream = (await ca.running.signals.transmitter.streams.get(streamId))!.data;
      const { payload, protectedHeader } = await jwtVerify(set, createRemoteJWKSet(new URL(configuration.jwks_uri)), { issuer: configuration.issuer, audience: stream.aud, typ: SET_TYP });
      assert.equal(protectedHeader.typ, SET_TYP);
      return payload;
    }

    function assertInvalidToken(answer: Answer, message: string): void {
      assert.equal(answer.status, 401, `${message}: ${JSON.stringify(answer.body)}`);
      assert.match(answer.headers.get('www-authenticate') ?? '', /error="invalid_token"/, message);
    }

    it('gets a certificate-bound token at /token over mTLS (no secret), creates a poll stream with it over the same certificate, and polls a SET that verifies against /jwks', async () => {
      const token = await boundToken(alice);
      const created = await overMtls(alice, 'POST', '/signals/stream', { token, json: pollStream });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const streamId = created.body['stream_id'] as string;
      const delivery = created.body['delivery'] as { method: string; endpoint_url: string };
      assert.equal(delivery.method, DELIVERY_METHODS.poll);
      const pollPath = new URL(delivery.endpoint_url).pathname;
      assert.equal(pollPath, `/signals/poll/${streamId}`);

      const empty = await overMtls(alice, 'POST', pollPath, { token, json: { returnImmediately: true } });
      assert.equal(empty.status, 200, JSON.stringify(empty.body));
      assert.deepEqual(empty.body['sets'], {}, 'nothing before the event');

      const userId = await disableSomeone();
      // A long poll: answers as soon as the event is there (it already is).
      const polled = await overMtls(alice, 'POST', pollPath, { token, json: { returnImmediately: false } });
      assert.equal(polled.status, 200, JSON.stringify(polled.body));
      const sets = polled.body['sets'] as Record<string, string>;
      const jtis = Object.keys(sets);
      assert.equal(jtis.length, 1, JSON.stringify(polled.body));
      const payload = await verifySet(sets[jtis[0]!]!, streamId);
      assert.equal(payload['jti'], jtis[0]);
      assert.deepEqual(Object.keys(payload['events'] as Record<string, unknown>), [SECURITY_EVENT_TYPES.accountDisabled]);
      assert.deepEqual(payload['sub_id'], { format: 'iss_sub', iss: ca.running.authorizationServer.issuer, sub: userId });

      const acknowledged = await overMtls(alice, 'POST', pollPath, { token, json: { ack: jtis, returnImmediately: true } });
      assert.equal(acknowledged.status, 200);
      assert.deepEqual(acknowledged.body['sets'], {}, 'acknowledged: not sent again');
    });

    it('refuses the certificate-bound token on the plain listener, which presents no certificate (401 invalid_token); the same token works over mTLS', async () => {
      const token = await boundToken(alice);
      assertInvalidToken(await overPlain('POST', '/signals/stream', token, pollStream), 'create on the plain listener');
      assertInvalidToken(await overPlain('GET', '/signals/stream', token), 'list on the plain listener');
      const created = await overMtls(alice, 'POST', '/signals/stream', { token, json: pollStream });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const streamId = created.body['stream_id'] as string;
      assertInvalidToken(await overPlain('POST', `/signals/poll/${streamId}`, token, { returnImmediately: true }), 'poll on the plain listener');
      assert.equal((await overMtls(alice, 'POST', `/signals/poll/${streamId}`, { token, json: { returnImmediately: true } })).status, 200);
    });

    it('refuses the certificate-bound token over mTLS with another client’s valid certificate (401 invalid_token); that certificate works with its own token', async () => {
      const aliceToken = await boundToken(alice);
      const created = await overMtls(alice, 'POST', '/signals/stream', { token: aliceToken, json: pollStream });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const streamId = created.body['stream_id'] as string;

      assertInvalidToken(await overMtls(bob, 'POST', '/signals/stream', { token: aliceToken, json: pollStream }), 'create with bob’s certificate');
      assertInvalidToken(await overMtls(bob, 'GET', `/signals/stream?stream_id=${streamId}`, { token: aliceToken }), 'read with bob’s certificate');
      assertInvalidToken(await overMtls(bob, 'POST', `/signals/poll/${streamId}`, { token: aliceToken, json: { returnImmediately: true } }), 'poll with bob’s certificate');

      const bobsOwn = await overMtls(bob, 'GET', '/signals/stream', { token: await boundToken(bob) });
      assert.equal(bobsOwn.status, 200, 'bob’s certificate is valid: it works with bob’s own token');
      assert.equal((await overMtls(alice, 'GET', `/signals/stream?stream_id=${streamId}`, { token: aliceToken })).status, 200);
    });

    it('refuses the bound token of a tls_client_auth client an operator has not approved, over its own certificate (403); the same token works once approved', async () => {
      const token = await boundToken(mallory);
      const refused = await overMtls(mallory, 'POST', '/signals/stream', { token, json: pollStream });
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal((await overMtls(mallory, 'GET', '/signals/stream', { token })).status, 403);
      assert.deepEqual(await ca.running.signals.transmitter.manager.list(mallory.clientId), [], 'no stream was created');

      assert.equal(await ca.running.authorizationServer.clients.approve(mallory.clientId, { actor: 'test' }), true);
      const created = await overMtls(mallory, 'POST', '/signals/stream', { token, json: pollStream });
      assert.equal(created.status, 201, `approval was the only thing missing: ${JSON.stringify(created.body)}`);
    });
  });
}
