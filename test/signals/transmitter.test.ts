/**
 * The SSF transmitter end to end against a real server: discovery, the
 * stream management API and who may use it, poll delivery (RFC 8936) with
 * acknowledgements, push delivery (RFC 8935) with retries, verification,
 * and subject removal. SETs are verified with jose against the server's
 * published JWKS, as a receiver would.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { SECURITY_EVENT_TYPES, type SecurityEventToken } from '../../src/sdk/index.ts';
import { createPushHandler } from '../../src/sdk/signals/index.ts';
import { setJti } from '../../src/signals/index.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

/** The stream configuration as a receiver reads it (SSF 1.0 section 8.1.1). */
interface StreamConfig {
  readonly stream_id: string;
  readonly aud: string;
  readonly events_requested: string[];
  readonly events_delivered: string[];
  readonly delivery: { method: string; endpoint_url?: string; authorization_header?: string };
  readonly description?: string;
  readonly set_signing_alg: string;
}

interface Receiver {
  readonly clientId: string;
  readonly token: string;
}

async function receiver(server: TestServer, options: { approved?: boolean; scope?: string } = {}): Promise<Receiver> {
  const scope = options.scope ?? 'ssf:stream';
  const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope }, { allowedScopes: ['openid', 'ssf:stream', 'other:scope'], defaultSigningAlgorithm: 'EdDSA' });
  const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: options.approved ?? true });
  const basic = Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64');
  const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
  assert.equal(response.status, 200, await response.clone().text());
  return { clientId: registered.client.client_id, token: ((await response.json()) as { access_token: string }).access_token };
}

function api(server: TestServer, who: Receiver | undefined, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: { ...(who !== undefined && { authorization: `Bearer ${who.token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

for (const backend of testBackends) {
  describe(`SSF transmitter (${backend})`, () => {
    let server: TestServer;
    let alice: Receiver;
    let jwks: ReturnType<typeof createRemoteJWKSet>;

    before(async () => {
      server = await startTestServer({ backend, fixedPort: true, overrides: { signals: { pushPrivateNetworks: true, pushTimeout: '2s', retryCeiling: '1s', maxStreamsPerClient: 20 } } });
      await server.running.authorizationServer.resources.create({ uri: 'https://other.example.com', scopes: ['other:scope'] }, { actor: 'test' });
      alice = await receiver(server);
      jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    });
    after(async () => {
      await server.close();
    });

    async function verifySet(set: string, audience: string): Promise<Record<string, unknown>> {
      assert.equal(decodeProtectedHeader(set).typ, 'secevent+jwt');
      const { payload } = await jwtVerify(set, jwks, { issuer: server.url, audience, typ: 'secevent+jwt' });
      return payload;
    }

    async function newUser(email: string): Promise<string> {
      return (await server.running.identity.accounts.createUser(email, null, { actor: 'test' })).id;
    }

    it('publishes its configuration (SSF 1.0 section 7.1)', async () => {
      const response = await fetch(`${server.url}/.well-known/ssf-configuration`);
      assert.equal(response.status, 200);
      const config = (await response.json()) as Record<string, unknown>;
      assert.equal(config['issuer'], server.url);
      assert.equal(config['jwks_uri'], `${server.url}/jwks`);
      assert.deepEqual(config['delivery_methods_supported'], ['urn:ietf:rfc:8935', 'urn:ietf:rfc:8936', 'urn:portcullis:ssf:delivery:websocket']);
      for (const endpoint of ['configuration_endpoint', 'status_endpoint', 'add_subject_endpoint', 'remove_subject_endpoint', 'verification_endpoint']) assert.match(String(config[endpoint]), /^http/);
    });

    it('refuses receivers without a token, with a bad one, without the scope, or not approved by an operator', async () => {
      const none = await api(server, undefined, 'GET', '/signals/stream');
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="portcullis-signals"');
      const forged = await api(server, { clientId: 'x', token: `${alice.token.slice(0, -4)}AAAA` }, 'GET', '/signals/stream');
      assert.equal(forged.status, 401);
      assert.match(forged.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      const unscoped = await api(server, await receiver(server, { scope: 'other:scope' }), 'GET', '/signals/stream');
      assert.equal(unscoped.status, 403);
      assert.match(unscoped.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
      const unapproved = await api(server, await receiver(server, { approved: false }), 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' } });
      assert.equal(unapproved.status, 403);
    });

    it('creates, reads, updates, replaces and deletes a stream; another receiver sees none of it', async () => {
      const created = await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled, 'https://example.com/unknown'], description: 'first' });
      assert.equal(created.status, 201);
      const stream = (await created.json()) as StreamConfig;
      assert.equal(stream['aud'], alice.clientId);
      assert.deepEqual(stream['events_delivered'], [SECURITY_EVENT_TYPES.accountDisabled]);
      assert.match(stream.delivery.endpoint_url ?? '', /\/signals\/poll\//);
      const id = stream['stream_id'];

      const patched = (await (await api(server, alice, 'PATCH', '/signals/stream', { stream_id: id, description: 'second', set_signing_alg: 'EdDSA' })).json()) as StreamConfig;
      assert.equal(patched['description'], 'second');
      assert.equal(patched['set_signing_alg'], 'EdDSA');
      assert.deepEqual(patched['events_requested'], [SECURITY_EVENT_TYPES.accountDisabled, 'https://example.com/unknown']);
      const replaced = (await (await api(server, alice, 'PUT', '/signals/stream', { stream_id: id, delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountPurged] })).json()) as StreamConfig;
      assert.equal(replaced['description'], undefined);
      assert.deepEqual(replaced['events_delivered'], [SECURITY_EVENT_TYPES.accountPurged]);
      const listed = (await (await api(server, alice, 'GET', '/signals/stream')).json()) as unknown[];
      assert.ok(listed.some((item) => (item as Record<string, unknown>)['stream_id'] === id));

      const bob = await receiver(server);
      assert.equal((await api(server, bob, 'GET', `/signals/stream?stream_id=${id}`)).status, 404);
      assert.equal((await api(server, bob, 'PATCH', '/signals/stream', { stream_id: id, description: 'hijack' })).status, 404);
      assert.equal((await api(server, bob, 'DELETE', `/signals/stream?stream_id=${id}`)).status, 404);
      assert.equal((await api(server, bob, 'POST', `/signals/poll/${id}`, {})).status, 404);
      assert.equal((await api(server, alice, 'GET', `/signals/stream?stream_id=${id}`)).status, 200, 'untouched by the other receiver');

      assert.equal((await api(server, alice, 'DELETE', `/signals/stream?stream_id=${id}`)).status, 204);
      assert.equal((await api(server, alice, 'GET', `/signals/stream?stream_id=${id}`)).status, 404);
    });

    it('refuses bad stream configurations with 400 and changes nothing', async () => {
      const before = ((await (await api(server, alice, 'GET', '/signals/stream')).json()) as unknown[]).length;
      for (const body of [
        'not json',
        { delivery: { method: 'urn:example:carrier-pigeon' } },
        { delivery: { method: 'urn:ietf:rfc:8935' } },
        { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: 'ftp://example.com/' } },
        { delivery: { method: 'urn:ietf:rfc:8936' }, set_signing_alg: 'HS256' },
        { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: 'all' },
        { delivery: { method: 'urn:ietf:rfc:8936' }, iss: 'https://evil.example' },
      ]) {
        const response = await fetch(`${server.url}/signals/stream`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.match(response.headers.get('content-type') ?? '', /problem\+json/);
      }
      assert.equal(((await (await api(server, alice, 'GET', '/signals/stream')).json()) as unknown[]).length, before);
    });

    it('delivers by poll: a SET per event, sent again until acknowledged, with the same jti', async () => {
      const stream = (await (await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountEnabled] })).json()) as StreamConfig;
      const id = stream['stream_id'];
      const userId = await newUser(`poll-${backend}@example.com`);
      await server.running.identity.accounts.setDisabled(userId, true, { actor: 'admin' });
      await server.running.identity.accounts.setDisabled(userId, false, { actor: 'admin' });

      // A long poll: answers as soon as the events are appended.
      const first = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { maxEvents: 10, returnImmediately: false })).json()) as { sets: Record<string, string>; moreAvailable: boolean };
      const jtis = Object.keys(first.sets);
      assert.ok(jtis.length >= 1);
      const payloads = await Promise.all(jtis.map((jti) => verifySet(first.sets[jti]!, alice.clientId)));
      const disabled = payloads.find((payload) => SECURITY_EVENT_TYPES.accountDisabled in (payload['events'] as object))!;
      assert.ok(disabled !== undefined);
      assert.deepEqual(disabled['sub_id'], { format: 'iss_sub', iss: server.url, sub: userId });
      assert.equal(typeof disabled['txn'], 'string');
      assert.equal(disabled['jti'], jtis[payloads.indexOf(disabled)]);

      // Not acknowledged: the same SETs again, same jti.
      const again = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { returnImmediately: true })).json()) as { sets: Record<string, string> };
      for (const jti of jtis) assert.ok(jti in again.sets, 'an unacknowledged SET is sent again');

      // Acknowledged: gone; the enable event follows in order.
      let seen = [...jtis];
      let acks = jtis;
      const types: string[] = payloads.map((payload) => Object.keys(payload['events'] as object)[0]!);
      while (!types.includes(SECURITY_EVENT_TYPES.accountEnabled)) {
        const next = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { ack: acks, returnImmediately: false })).json()) as { sets: Record<string, string> };
        for (const jti of acks) assert.ok(!(jti in next.sets), 'an acknowledged SET is not sent again');
        acks = Object.keys(next.sets);
        seen = [...seen, ...acks];
        for (const set of Object.values(next.sets)) types.push(Object.keys((await verifySet(set, alice.clientId))['events'] as object)[0]!);
      }
      assert.ok(types.indexOf(SECURITY_EVENT_TYPES.accountDisabled) < types.indexOf(SECURITY_EVENT_TYPES.accountEnabled), 'in order');
      const done = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { ack: acks, returnImmediately: true })).json()) as { sets: Record<string, string> };
      assert.deepEqual(done.sets, {});
    });

    it('answers a verification request with a verification event carrying the state, and throttles repeats', async () => {
      const id = ((await (await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' } })).json()) as Record<string, string>)['stream_id']!;
      assert.equal((await api(server, alice, 'POST', '/signals/verify', { stream_id: id, state: 'abc123' })).status, 204);
      assert.equal((await api(server, alice, 'POST', '/signals/verify', { stream_id: id, state: 'again' })).status, 429);
      const polled = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { returnImmediately: false })).json()) as { sets: Record<string, string> };
      const [set] = Object.values(polled.sets);
      const payload = await verifySet(set!, alice.clientId);
      assert.deepEqual(payload['events'], { [SECURITY_EVENT_TYPES.verification]: { state: 'abc123' } });
    });

    it('delivers by push with the receiver’s Authorization header, retries a receiver that fails, keeps order', async () => {
      const received: { authorization: string | undefined; type: string | undefined; set: string }[] = [];
      let failing = 2;
      let delivered: (() => void) | undefined;
      const endpoint: Server = createServer((request: IncomingMessage, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          if (failing > 0) {
            failing--;
            response.writeHead(503).end();
            return;
          }
          received.push({ authorization: request.headers.authorization, type: request.headers['content-type'], set: body });
          response.writeHead(202).end();
          if (received.length >= 2) delivered?.();
        });
      });
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/events`;
        const created = await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url, authorization_header: 'Bearer receiver-secret' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountPurged] });
        assert.equal(created.status, 201);
        const config = (await created.json()) as StreamConfig;
        assert.equal(config.delivery.authorization_header, undefined, 'the receiver’s secret is never read back');
        const arrived = new Promise<void>((resolve) => (delivered = resolve));
        const userId = await newUser(`push-${backend}@example.com`);
        await server.running.identity.accounts.setDisabled(userId, true, { actor: 'admin' });
        await server.running.identity.accounts.deleteUser(userId, { actor: 'admin' });
        await arrived;
        assert.equal(received[0]!.authorization, 'Bearer receiver-secret');
        assert.equal(received[0]!.type, 'application/secevent+jwt');
        const types = await Promise.all(received.map(async (item) => Object.keys((await verifySet(item.set, alice.clientId))['events'] as object)[0]));
        assert.deepEqual(types.slice(0, 2), [SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountPurged]);
        assert.equal(failing, 0, 'the failures were retried');
      } finally {
        await new Promise<void>((resolve) => endpoint.close(() => resolve()));
      }
    });

    it('pushes to a receiver built with portcullis/sdk/signals: it verifies each SET and passes it on once', async () => {
      const events: SecurityEventToken[] = [];
      let arrived: (() => void) | undefined;
      const handler = createPushHandler({
        issuer: server.url,
        audience: alice.clientId,
        authorization: 'Bearer sdk-receiver',
        onEvent: (set) => {
          events.push(set);
          arrived?.();
        },
      });
      const endpoint = createServer((request, response) => void handler(request, response));
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/ssf`;
        const created = await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url, authorization_header: 'Bearer sdk-receiver' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled], set_signing_alg: 'RS256' });
        assert.equal(created.status, 201);
        const got = new Promise<void>((resolve) => (arrived = resolve));
        const userId = await newUser(`sdk-push-${backend}@example.com`);
        await server.running.identity.accounts.setDisabled(userId, true, { actor: 'admin' });
        await got;
        assert.equal(events.length, 1);
        assert.deepEqual(events[0]!.sub_id, { format: 'iss_sub', iss: server.url, sub: userId });
        assert.ok(SECURITY_EVENT_TYPES.accountDisabled in events[0]!.events);
      } finally {
        await new Promise<void>((resolve) => endpoint.close(() => resolve()));
      }
    });

    it('sends RISC identifier-changed when a user’s address changes: the old address as subject, the new as new-value', async () => {
      const id = ((await (await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.identifierChanged] })).json()) as StreamConfig).stream_id;
      const userId = await newUser(`old-${backend}@example.com`);
      const taken = await newUser(`taken-${backend}@example.com`);
      await assert.rejects(server.running.identity.accounts.changeEmail(userId, `taken-${backend}@example.com`, { actor: 'admin' }), /already has an account/);
      await server.running.identity.accounts.changeEmail(userId, `New-${backend}@Example.com`, { actor: 'admin' });
      const polled = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { returnImmediately: false })).json()) as { sets: Record<string, string> };
      const payloads = await Promise.all(Object.values(polled.sets).map((set) => verifySet(set, alice.clientId)));
      assert.equal(payloads.length, 1, 'one SET: the refused change sent nothing');
      assert.deepEqual(payloads[0]!['sub_id'], { format: 'email', email: `old-${backend}@example.com` });
      assert.deepEqual(payloads[0]!['events'], { [SECURITY_EVENT_TYPES.identifierChanged]: { 'new-value': `new-${backend}@example.com`, event_timestamp: (payloads[0]!['events'] as Record<string, { event_timestamp: number }>)[SECURITY_EVENT_TYPES.identifierChanged]!.event_timestamp } });
      assert.equal((await server.running.identity.accounts.emailOf(taken)), `taken-${backend}@example.com`);
      // The ledger names the change, never the addresses.
      assert.ok(!server.logs.text.includes(`new-${backend}@example.com`));
    });

    it('security review: a user-delegated token of an approved client is refused (only a client acting for itself receives)', async () => {
      const delegator = await newUser(`delegating-${backend}@example.com`);
      const { token } = await server.running.authorizationServer.accessTokens.issue({ clientId: alice.clientId, subject: delegator, grant: { type: 'authorization_code', userId: delegator }, scope: 'ssf:stream', audience: `${server.url}/signals` });
      const response = await api(server, { clientId: alice.clientId, token }, 'GET', '/signals/stream');
      assert.equal(response.status, 403);
      assert.match(response.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    });

    it('security review: a deleted client’s push stream is deleted with it and receives nothing more', async () => {
      let hits = 0;
      const endpoint = createServer((request, response) => {
        hits++;
        request.resume();
        response.writeHead(202).end();
      });
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      try {
        const carol = await receiver(server);
        const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/`;
        const id = ((await (await api(server, carol, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] })).json()) as StreamConfig).stream_id;
        assert.equal(await server.running.authorizationServer.clients.delete(carol.clientId, { actor: 'test' }), true);
        await waitUntil(async () => (await server.running.signals.transmitter.streams.get(id)) === null);
        await server.running.identity.accounts.setDisabled(await newUser(`after-delete-${backend}@example.com`), true, { actor: 'admin' });
        await server.running.signals.push.runOnce();
        assert.equal(hits, 0);
      } finally {
        await new Promise<void>((resolve) => endpoint.close(() => resolve()));
      }
    });

    it('security review: a receiver that never answers does not hold another stream’s pushes', async () => {
      const hanging: ServerResponse[] = [];
      let stuckGaveUp = false;
      const stuck = createServer((_request, response) => {
        hanging.push(response);
        // The transmitter gave up on it (its deadline): from then on nothing is held.
        response.on('close', () => (stuckGaveUp = true));
      });
      const received: string[] = [];
      let arrived: (() => void) | undefined;
      const prompt = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          received.push(body);
          response.writeHead(202).end();
          arrived?.();
        });
      });
      await Promise.all([stuck, prompt].map((listener) => new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))));
      try {
        const slow = await receiver(server);
        const fast = await receiver(server);
        const streamFor = async (who: Receiver, listener: Server): Promise<void> => {
          const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/`;
          assert.equal((await api(server, who, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] })).status, 201);
        };
        // First the stuck receiver holds a push open...
        await streamFor(slow, stuck);
        await server.running.identity.accounts.setDisabled(await newUser(`hol1-${backend}@example.com`), true, { actor: 'admin' });
        await waitUntil(async () => hanging.length >= 1);
        // ...then another stream's event still goes out.
        await streamFor(fast, prompt);
        const got = new Promise<void>((resolve) => (arrived = resolve));
        await server.running.identity.accounts.setDisabled(await newUser(`hol2-${backend}@example.com`), true, { actor: 'admin' });
        await got;
        assert.equal(stuckGaveUp, false, 'the other stream was served while the stuck receiver still held its request');
        assert.equal(received.length, 1);
      } finally {
        for (const response of hanging) response.destroy();
        stuck.closeAllConnections();
        await Promise.all([stuck, prompt].map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))));
      }
    });

    it('security review: acknowledging SETs that do not exist yet skips nothing; maxEvents 0 only acknowledges', async () => {
      const id = ((await (await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] })).json()) as StreamConfig).stream_id;
      const head = await server.running.signals.transmitter.log.head();
      const forged = Array.from({ length: 5 }, (_, i) => setJti(id, head + 1 + i));
      const acked = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { ack: forged, maxEvents: 0 })).json()) as { sets: Record<string, string>; moreAvailable: boolean };
      assert.deepEqual(acked, { sets: {}, moreAvailable: false });
      await server.running.identity.accounts.setDisabled(await newUser(`future-${backend}@example.com`), true, { actor: 'admin' });
      const polled = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { returnImmediately: false })).json()) as { sets: Record<string, string> };
      assert.equal(Object.keys(polled.sets).length, 1, 'the event whose id was acknowledged in advance still arrives');
      const pending = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { maxEvents: 0 })).json()) as { sets: Record<string, string>; moreAvailable: boolean };
      assert.deepEqual(pending, { sets: {}, moreAvailable: true }, 'maxEvents 0 sends nothing and says more is there');
    });

    it('security review: more push streams than the worker pushes at once all get their events, and the server stays responsive', async () => {
      const arrivals = new Map<string, number>();
      let all: (() => void) | undefined;
      const endpoint = createServer((request, response) => {
        request.resume();
        request.on('end', () => {
          arrivals.set(request.url!, (arrivals.get(request.url!) ?? 0) + 1);
          response.writeHead(202).end();
          if (arrivals.size >= 12) all?.();
        });
      });
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      try {
        const many = await receiver(server);
        const base = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
        for (let i = 0; i < 12; i++) {
          assert.equal((await api(server, many, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: `${base}/s${i}` }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] })).status, 201);
        }
        // Idle streams with nothing owed cost nothing: the server answers at once.
        assert.equal((await fetch(`${server.url}/.well-known/ssf-configuration`)).status, 200);
        const done = new Promise<void>((resolve) => (all = resolve));
        await server.running.identity.accounts.setDisabled(await newUser(`many-${backend}@example.com`), true, { actor: 'admin' });
        await done;
        assert.deepEqual([...arrivals.values()], Array.from({ length: 12 }, () => 1), 'each of the 12 streams got its SET once');
        assert.equal((await fetch(`${server.url}/.well-known/ssf-configuration`)).status, 200);
      } finally {
        await new Promise<void>((resolve) => endpoint.close(() => resolve()));
      }
    });

    it('leaves out a subject the receiver removed, and includes it again once added', async () => {
      const id = ((await (await api(server, alice, 'POST', '/signals/stream', { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] })).json()) as Record<string, string>)['stream_id']!;
      const hidden = await newUser(`hidden-${backend}@example.com`);
      const shown = await newUser(`shown-${backend}@example.com`);
      assert.equal((await api(server, alice, 'POST', '/signals/subjects/remove', { stream_id: id, subject: { format: 'email', email: `hidden-${backend}@example.com` } })).status, 204);
      await server.running.identity.accounts.setDisabled(hidden, true, { actor: 'admin' });
      await server.running.identity.accounts.setDisabled(shown, true, { actor: 'admin' });
      const polled = (await (await api(server, alice, 'POST', `/signals/poll/${id}`, { returnImmediately: false })).json()) as { sets: Record<string, string> };
      const subjects = await Promise.all(Object.values(polled.sets).map(async (set) => ((await verifySet(set, alice.clientId))['sub_id'] as Record<string, string>)['sub']));
      assert.deepEqual(subjects, [shown]);
      assert.equal((await api(server, alice, 'POST', '/signals/subjects/add', { stream_id: id, subject: { format: 'email', email: `hidden-${backend}@example.com` } })).status, 200);
      assert.equal((await api(server, alice, 'POST', '/signals/subjects/add', { stream_id: id, subject: { format: 'phone', phone: '1' } })).status, 400);
    });
  });
}

/** Waits for a condition on real I/O (an event handled on the server), bounded. */
async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
