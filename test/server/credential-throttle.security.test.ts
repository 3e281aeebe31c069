/**
 * Every credential check goes through a throttle (issue 10): OAuth client
 * secrets and private_key_jwt assertions at /token, /introspect, /revoke and
 * /par, the RFC 7592 registration access token, the initial access token for
 * /register, and the metrics bearer. Each attack here guesses from one
 * network until the throttle answers 429 with Retry-After (RFC 6585 section
 * 4), then presents the RIGHT credential: it is refused too, because a right
 * credential must not be what lets the next guess through; after the window
 * (a test clock, moved by hand) it is accepted again. Failures reach the
 * ledger aggregated (security review 11), and an attacker's network does not
 * lock out a client on another network.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const INITIAL_TOKEN = 'initial-5d2c8e1a-7f4b-4c3e-9a0d-1b6e2f8c4a97';
const METRICS_TOKEN = 'metrics-3e9a1c7b-2d5f-4a8e-b0c6-9f1d4e7a2b53';
/** The per-network limit every one of these throttles uses (a minute's window); a client_id has 1,000 across networks. */
const LIMIT = 100;
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('credential throttles: client secrets, registration tokens, the metrics token', () => {
  const clock = new ManualClock();
  let server: TestServer;
  let client: { id: string; secret: string };

  const post = (path: string, form: Record<string, string>, headers: Record<string, string>) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });
  const tokenFrom = (ip: string, secret: string) => post('/token', { grant_type: 'client_credentials' }, { authorization: basic(client.id, secret), 'x-forwarded-for': ip });

  /** Checks a 429 is the throttle's: Retry-After in whole seconds within the window, an OAuth-style body with the request id. */
  async function assertThrottled(response: Response, format: 'oauth' | 'problem'): Promise<void> {
    assert.equal(response.status, 429);
    const retryAfter = Number(response.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${response.headers.get('retry-after')}`);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body['request_id'], response.headers.get('x-request-id'));
    if (format === 'oauth') assert.equal(body['error'], 'temporarily_unavailable');
  }

  async function ledgerTypes(from: number): Promise<string[]> {
    const rows = await server.running.stores.durable.auditLog.entries(from, await server.running.ledger.size());
    return rows.map((row) => decodeEntry(row.entry).type);
  }

  before(async () => {
    server = await startTestServer({
      clock: clock.now,
      env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1', PORTCULLIS_OAUTH_REGISTRATION: 'token', PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN: INITIAL_TOKEN },
      overrides: { metrics: { token: METRICS_TOKEN } },
    });
    const metadata = validateClientMetadata({ client_name: 'Reports', grant_types: ['client_credentials'], redirect_uris: [], scope: 'openid' }, { allowedScopes: ['openid'], defaultSigningAlgorithm: 'EdDSA' });
    const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' });
    client = { id: registered.client.client_id, secret: registered.clientSecret! };
  });
  after(async () => {
    await server.close();
  });

  it('refuses the right client secret with 429 after wrong ones from the same network, accepts it after the window, and spares other networks', async () => {
    const attacker = '198.51.100.7';
    for (let i = 0; i < LIMIT; i++) assert.equal((await tokenFrom(attacker, `guess-${i}`)).status, 401);
    // Another address of the same /24 is the same network.
    await assertThrottled(await tokenFrom('198.51.100.8', client.secret), 'oauth');
    // Every endpoint that authenticates clients reads the same count.
    await assertThrottled(await post('/introspect', { token: 'x' }, { authorization: basic(client.id, client.secret), 'x-forwarded-for': attacker }), 'oauth');
    await assertThrottled(await post('/revoke', { token: 'x' }, { authorization: basic(client.id, client.secret), 'x-forwarded-for': attacker }), 'oauth');
    await assertThrottled(await post('/par', { response_type: 'code', redirect_uri: 'https://a.example/cb' }, { authorization: basic(client.id, client.secret), 'x-forwarded-for': attacker }), 'oauth');
    // The legitimate client, elsewhere, is not affected by the attacker's count.
    assert.equal((await tokenFrom('203.0.113.20', client.secret)).status, 200);
    clock.advance(60_000);
    assert.equal((await tokenFrom(attacker, client.secret)).status, 200, 'accepted once the window is over');
  });

  it('a right secret does not reset the count: the guesses left stay as few as before', async () => {
    const attacker = '198.51.100.77';
    for (let i = 0; i < LIMIT - 1; i++) assert.equal((await tokenFrom(attacker, `guess-${i}`)).status, 401);
    assert.equal((await tokenFrom(attacker, client.secret)).status, 200);
    assert.equal((await tokenFrom(attacker, 'one-more-guess')).status, 401);
    await assertThrottled(await tokenFrom(attacker, 'and-another'), 'oauth');
    clock.advance(60_000);
  });

  it('security review 11: 1,000 wrong client secrets grow the ledger by a few aggregated entries', async () => {
    const before = await server.running.ledger.size();
    for (let i = 0; i < 1000; i++) assert.ok([401, 429].includes((await tokenFrom('192.0.2.44', `guess-${i}`)).status));
    const added = await ledgerTypes(before);
    assert.ok(added.length >= 1 && added.length <= 3, `${added.length} entries`);
    assert.ok(added.every((type) => type === 'client.auth.failed'), added.join(', '));
    clock.advance(60_000);
  });

  it('stops a guesser spread over many networks at 1,000 failures a minute for one client_id, and lets the real client in from a clean network', async () => {
    // 10 networks at 99 failures and one at 10: every network stays below its own limit of 100.
    for (let n = 0; n < 10; n++) for (let i = 0; i < LIMIT - 1; i++) assert.equal((await tokenFrom(`100.64.${n}.1`, `guess-${i}`)).status, 401);
    for (let i = 0; i < 10; i++) assert.equal((await tokenFrom('100.64.10.1', `guess-${i}`)).status, 401);
    await assertThrottled(await tokenFrom('100.64.10.1', client.secret), 'oauth');
    await assertThrottled(await tokenFrom('100.64.3.1', 'another-guess'), 'oauth');
    assert.equal((await tokenFrom('203.0.113.30', client.secret)).status, 200, 'a network with no failure this minute is not refused');
    clock.advance(60_000);
    assert.equal((await tokenFrom('100.64.10.1', client.secret)).status, 200);
  });

  it('throttles wrong private_key_jwt assertions like wrong secrets', async () => {
    const forged = `${Buffer.from('{"alg":"EdDSA"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: client.id })).toString('base64url')}.AAAA`;
    const form = { grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: forged };
    for (let i = 0; i < LIMIT; i++) assert.equal((await post('/token', form, { 'x-forwarded-for': '198.51.100.99' })).status, 401);
    await assertThrottled(await post('/token', form, { 'x-forwarded-for': '198.51.100.99' }), 'oauth');
    await assertThrottled(await tokenFrom('198.51.100.99', client.secret), 'oauth');
    clock.advance(60_000);
  });

  it('throttles the RFC 7592 registration access token: the right one is refused while throttled, accepted after', async () => {
    const created = await fetch(`${server.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${INITIAL_TOKEN}`, 'x-forwarded-for': '203.0.113.5' },
      body: JSON.stringify({ client_name: 'Mine', grant_types: ['client_credentials'], redirect_uris: [], scope: 'openid' }),
    });
    assert.equal(created.status, 201);
    const { client_id: id, registration_access_token: right } = (await created.json()) as Record<string, string>;
    const read = (token: string, ip: string) => fetch(`${server.url}/register/${id}`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip } });
    for (let i = 0; i < LIMIT; i++) assert.equal((await read(`guess-${i}`, '198.51.100.120')).status, 401);
    await assertThrottled(await read(right!, '198.51.100.120'), 'oauth');
    assert.equal((await read(right!, '203.0.113.5')).status, 200, 'the owner, elsewhere, is not affected');
    clock.advance(60_000);
    assert.equal((await read(right!, '198.51.100.120')).status, 200);
  });

  it('throttles the initial access token: the right one is refused while throttled, accepted after', async () => {
    const register = (token: string, ip: string) =>
      fetch(`${server.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-forwarded-for': ip },
        body: JSON.stringify({ client_name: 'Probe', grant_types: ['client_credentials'], redirect_uris: [], scope: 'openid' }),
      });
    const clientsBefore = (await server.running.authorizationServer.clients.list()).length;
    for (let i = 0; i < LIMIT; i++) assert.equal((await register(`guess-${i}`, '198.51.100.140')).status, 401);
    await assertThrottled(await register(INITIAL_TOKEN, '198.51.100.140'), 'oauth');
    assert.equal((await server.running.authorizationServer.clients.list()).length, clientsBefore, 'nothing was registered');
    clock.advance(60_000);
    assert.equal((await register(INITIAL_TOKEN, '198.51.100.140')).status, 201);
  });

  it('throttles the metrics bearer like the admin token', async () => {
    const metrics = (token: string, ip: string) => fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip } });
    const before = await server.running.ledger.size();
    for (let i = 0; i < LIMIT; i++) assert.equal((await metrics(`guess-${i}`, '198.51.100.160')).status, 401);
    await assertThrottled(await metrics(METRICS_TOKEN, '198.51.100.160'), 'problem');
    assert.equal((await metrics(METRICS_TOKEN, '203.0.113.9')).status, 200, 'a scraper elsewhere is not affected');
    const added = await ledgerTypes(before);
    assert.deepEqual(added, ['metrics.auth.failed', 'metrics.auth.failed', 'metrics.auth.failed'], 'entries at counts 1, 10 and 100');
    clock.advance(60_000);
    assert.equal((await metrics(METRICS_TOKEN, '198.51.100.160')).status, 200);
  });
});
