/**
 * Key rotation under continuous issuance, end to end: a server issues
 * client_credentials tokens while its clock runs across several scheduled
 * rotations, an operator rotation and a revocation; a resource server that
 * caches /jwks for exactly its max-age (and never refetches early) verifies
 * every token. A key must be published a full max-age before it signs, and
 * stay published while its tokens live: zero failures.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const MAX_AGE_SECONDS = 30;
const ROTATION_MS = 120_000;
const ACCESS_TTL_SECONDS = 60;

describe('signing key rotation under continuous token issuance', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.now());
  let authorization: string;

  before(async () => {
    server = await startTestServer({
      fixedPort: true,
      clock: clock.now,
      env: {
        PORTCULLIS_TOKENS_JWKS_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS),
        PORTCULLIS_TOKENS_KEY_ROTATION_INTERVAL_MS: String(ROTATION_MS),
        PORTCULLIS_TOKENS_ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TTL_SECONDS),
      },
    });
    await server.running.authorizationServer.resources.create({ uri: 'https://jobs.example.com', scopes: ['jobs:run'] }, { actor: 'test' });
    const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'jobs:run' }, { allowedScopes: ['openid', 'jobs:run'], defaultSigningAlgorithm: 'EdDSA' });
    const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' });
    authorization = `Basic ${Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64')}`;
  });
  after(async () => {
    await server.close();
  });

  it('verifies every token with a JWKS cached for max-age, across rotations, an operator rotation and a revocation', async () => {
    const keyring = server.running.authorizationServer.keyring;
    let cached: { keys: ReturnType<typeof createLocalJWKSet>; fetchedAt: number } | undefined;
    const verifierKeys = async () => {
      if (cached === undefined || clock.now() - cached.fetchedAt >= MAX_AGE_SECONDS * 1000) {
        const response = await fetch(`${server.url}/jwks`);
        assert.match(response.headers.get('cache-control') ?? '', new RegExp(`max-age=${MAX_AGE_SECONDS}$`));
        cached = { keys: createLocalJWKSet((await response.json()) as { keys: JWK[] }), fetchedAt: clock.now() };
      }
      return cached.keys;
    };
    /** Tokens still alive, each verified again at every step until it expires. */
    const live: { token: string; exp: number }[] = [];
    const kids = new Set<string>();
    const failures: string[] = [];
    let verified = 0;
    const steps = 400;
    for (let step = 0; step < steps; step++) {
      clock.advance(1500);
      // What start()'s timer does every keyringRefreshMs; called here on the test's clock.
      await keyring.maintain();
      if (step === 150) await keyring.rotate('EdDSA');
      const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
      assert.equal(response.status, 200);
      const token = ((await response.json()) as { access_token: string }).access_token;
      kids.add(decodeProtectedHeader(token).kid!);
      live.push({ token, exp: clock.now() + ACCESS_TTL_SECONDS * 1000 });
      const keys = await verifierKeys();
      for (const entry of live.filter((item) => item.exp > clock.now() + 1000)) {
        try {
          await jwtVerify(entry.token, keys, { currentDate: new Date(clock.now()), typ: 'at+jwt' });
          verified += 1;
        } catch (error) {
          failures.push(`step ${step}: ${(error as Error).message}`);
        }
      }
      while (live.length > 0 && live[0]!.exp <= clock.now() + 1000) live.shift();
    }
    assert.deepEqual(failures, [], 'no verification failed');
    assert.ok(kids.size >= 4, `tokens were signed by ${kids.size} keys over ${(steps * 1.5) / 60} minutes`);
    assert.ok(verified > steps * 10, `${verified} verifications`);
  });

  it('a revoked key leaves the JWKS at once and a new key signs from then on', async () => {
    const keyring = server.running.authorizationServer.keyring;
    const current = keyring.list().find((key) => key.alg === 'EdDSA' && key.state === 'current')!;
    await keyring.revoke(current.kid);
    const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] };
    assert.ok(!jwks.keys.some((key) => key.kid === current.kid), 'gone from the JWKS');
    const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    const token = ((await response.json()) as { access_token: string }).access_token;
    assert.notEqual(decodeProtectedHeader(token).kid, current.kid);
    await jwtVerify(token, createLocalJWKSet(jwks), { currentDate: new Date(clock.now()) });
  });
});
