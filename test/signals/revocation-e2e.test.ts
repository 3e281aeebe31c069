/**
 * Revocation to refusal, end to end: a real Portcullis, and a resource
 * server that verifies its access tokens with `createVerifier` fed by the
 * server's own security-event stream (`portcullis/sdk/signals`). After
 * `POST /revoke` (RFC 7009) of a token, the domain event `tokens.revoked`
 * becomes a Portcullis `tokens-revoked` SET, the stream delivers it, the
 * verifier's RevocationList applies it, and the token is refused with 401
 * invalid_token, while the client's other tokens still verify.
 *
 * Both receivers: the WebSocket stream (`createSignalSocket`) and, as the
 * fallback, the RFC 8936 poll client (`createPollClient`, long polling).
 * Nothing sleeps: the test waits for the SET naming the revoked jti to reach
 * the receiver's listeners (which run after the verifier's own listener), then
 * asks the verifier, and measures from the /revoke response to that refusal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { createVerifier, SECURITY_EVENT_TYPES, type Verifier } from '../../src/sdk/index.ts';
import { createPollClient, createSignalSocket, type PollClient, type SecurityEventToken, type SignalSocket, type SignalSource } from '../../src/sdk/signals/index.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const API = 'https://api.example.com';
const RESOURCE_URL = `${API}/things`;
/** The refusal must follow the /revoke response within this (issue 13: "within a second"). */
const WITHIN_MS = 1000;
const EVENTS = [SECURITY_EVENT_TYPES.tokensRevoked, SECURITY_EVENT_TYPES.sessionRevoked, SECURITY_EVENT_TYPES.accountDisabled];

interface Client {
  readonly id: string;
  readonly basic: string;
}

async function register(server: TestServer, scope: string): Promise<Client> {
  const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope }, { allowedScopes: ['ssf:stream', 'api:read'], defaultSigningAlgorithm: 'EdDSA' });
  const { client, clientSecret } = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
  return { id: client.client_id, basic: `Basic ${Buffer.from(`${client.client_id}:${clientSecret!}`).toString('base64')}` };
}

async function accessToken(server: TestServer, client: Client, scope?: string): Promise<string> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: client.basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope !== undefined && { scope }) }).toString(),
  });
  const body = (await response.json()) as { access_token: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.access_token;
}

async function createStream(server: TestServer, token: string, method: string): Promise<{ stream_id: string; delivery: { endpoint_url?: string } }> {
  const response = await fetch(`${server.url}/signals/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ delivery: { method }, events_requested: EVENTS }),
  });
  const body = (await response.json()) as { stream_id: string; delivery: { endpoint_url?: string }; events_delivered: string[] };
  assert.equal(response.status, 201, JSON.stringify(body));
  assert.deepEqual(body.events_delivered, EVENTS);
  return body;
}

/**
 * Resolves `arrival(jti)` once a tokens-revoked SET naming that jti reached
 * the source's listeners. Added after the verifier subscribed, so when it
 * runs the verifier's RevocationList has applied the SET.
 */
function arrivals(source: SignalSource): { arrival(jti: string): Promise<void>; close(): void } {
  const seen = new Set<string>();
  const waiting = new Map<string, () => void>();
  const stop = source.onEvent((event: SecurityEventToken) => {
    const members = event.events[SECURITY_EVENT_TYPES.tokensRevoked] as { jti?: unknown } | undefined;
    for (const jti of Array.isArray(members?.jti) ? members.jti : []) {
      if (typeof jti !== 'string') continue;
      seen.add(jti);
      waiting.get(jti)?.();
      waiting.delete(jti);
    }
  });
  return {
    arrival: (jti) => (seen.has(jti) ? Promise.resolve() : new Promise((resolve) => waiting.set(jti, resolve))),
    close: stop,
  };
}

for (const backend of testBackends) {
  describe(`revocation to refusal at a resource server (${backend})`, () => {
    let server: TestServer;
    let service: Client;
    let receiverToken: string;
    let unsignalled: Verifier;

    before(async () => {
      server = await startTestServer({ backend, fixedPort: true });
      await server.running.authorizationServer.resources.create({ uri: API, scopes: ['api:read'] }, { actor: 'test' });
      service = await register(server, 'api:read');
      receiverToken = await accessToken(server, await register(server, 'ssf:stream'));
      unsignalled = createVerifier({ issuer: server.url, audience: API });
    });
    after(async () => {
      await server.close();
    });

    const check = (verifier: Verifier, token: string) => verifier.verify({ method: 'GET', url: RESOURCE_URL, headers: { authorization: `Bearer ${token}` } });

    /** Revokes one token and returns the milliseconds from the /revoke response to the verifier's refusal. */
    /** Three revocations in a row, each refused within WITHIN_MS of its /revoke response, and no client error. */
    async function refusesThreeWithin(verifier: Verifier, arrived: ReturnType<typeof arrivals>, errors: readonly Error[]): Promise<void> {
      for (let i = 0; i < 3; i++) {
        const elapsed = await revokeAndMeasure(verifier, arrived);
        assert.ok(elapsed < WITHIN_MS, `refused ${elapsed.toFixed(1)} ms after the /revoke response`);
      }
      assert.deepEqual(errors, []);
    }

    async function revokeAndMeasure(verifier: Verifier, arrived: ReturnType<typeof arrivals>): Promise<number> {
      const token = await accessToken(server, service, 'api:read');
      const other = await accessToken(server, service, 'api:read');
      const { jti } = decodeJwt(token) as { jti: string };
      const good = await check(verifier, token);
      assert.ok(good.ok, JSON.stringify(good));
      const arrival = arrived.arrival(jti);
      const response = await fetch(`${server.url}/revoke`, {
        method: 'POST',
        headers: { authorization: service.basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
      assert.equal(response.status, 200);
      const answered = performance.now();
      await arrival;
      const refused = await check(verifier, token);
      const elapsed = performance.now() - answered;
      assert.equal(refused.ok, false);
      assert.ok(!refused.ok);
      assert.equal(refused.status, 401);
      assert.equal(refused.error, 'invalid_token');
      assert.match(refused.headers['WWW-Authenticate'] ?? '', /error="invalid_token"/);
      // The refusal is the stream's doing: a verifier without signals still takes the token (a JWT is good until exp by itself).
      assert.ok((await check(unsignalled, token)).ok);
      // The same client's other token is untouched.
      const still = await check(verifier, other);
      assert.ok(still.ok, JSON.stringify(still));
      return elapsed;
    }

    it('a token revoked at /revoke is refused through the WebSocket stream within a second; another token of the client still verifies', async () => {
      const stream = await createStream(server, receiverToken, 'urn:portcullis:ssf:delivery:websocket');
      const errors: Error[] = [];
      let ready!: () => void;
      const isReady = new Promise<void>((resolve) => (ready = resolve));
      const socket: SignalSocket = createSignalSocket({
        url: `${server.url.replace(/^http/, 'ws')}/signals/ws?stream_id=${stream.stream_id}`,
        issuer: server.url,
        audience: decodeJwt(receiverToken)['client_id'] as string,
        token: receiverToken,
        onReady: () => ready(),
        onError: (error) => errors.push(error),
      });
      const verifier = createVerifier({ issuer: server.url, audience: API, signals: socket });
      const arrived = arrivals(socket);
      socket.start();
      try {
        await isReady;
        await refusesThreeWithin(verifier, arrived, errors);
      } finally {
        arrived.close();
        verifier.close();
        await socket.stop();
      }
    });

    it('the poll client (RFC 8936) as the fallback: the same refusal within a second', async () => {
      const stream = await createStream(server, receiverToken, 'urn:ietf:rfc:8936');
      const errors: Error[] = [];
      const poller: PollClient = createPollClient({
        endpoint: stream.delivery.endpoint_url!,
        issuer: server.url,
        audience: decodeJwt(receiverToken)['client_id'] as string,
        token: receiverToken,
        onError: (error) => errors.push(error),
      });
      const verifier = createVerifier({ issuer: server.url, audience: API, signals: poller });
      const arrived = arrivals(poller);
      // The loop long-polls: the transmitter answers as soon as an event is appended.
      poller.start();
      try {
        await refusesThreeWithin(verifier, arrived, errors);
      } finally {
        arrived.close();
        verifier.close();
        await poller.stop();
      }
    });
  });
}
