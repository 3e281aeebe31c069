/**
 * The verifier's JWKS cache, on a frozen clock: discovery once, keys kept
 * for the response's max-age (minus Age) within the configured bounds, a
 * rotated key picked up by the refetch an unknown kid triggers, that refetch
 * rate-limited (a flood of random kids costs the issuer one request per
 * interval), the old keys kept when a refetch fails, and metadata naming
 * another issuer refused (RFC 8414 section 3.3), and a key the issuer's
 * signals revoke (key-rotated, state revoked) dropped at once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createVerifier, SECURITY_EVENT_TYPES, type SecurityEventToken, type VerifierOptions, type VerifyResult } from '../../src/sdk/index.ts';
import { freshSeconds } from '../../src/sdk/verifier/cache-control.ts';
import { AUDIENCE, ISSUER, TokenIssuer } from '../support/token-issuer.ts';

const request = (token: string) => ({ method: 'GET', url: `${AUDIENCE}/x`, headers: { authorization: `Bearer ${token}` } });

async function setup(options: Partial<VerifierOptions> = {}) {
  const issuer = await TokenIssuer.create(['EdDSA']);
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, clock: issuer.clock.now, ...options });
  return { issuer, verifier };
}

const description = (result: VerifyResult) => (result.ok ? 'ok' : result.description);

/** A SecurityEventSource the test feeds by hand. */
function signalSource() {
  const listeners = new Set<(set: SecurityEventToken) => void>();
  return {
    onEvent(listener: (set: SecurityEventToken) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit: (set: SecurityEventToken) => listeners.forEach((listener) => listener(set)),
  };
}

const keyRotated = (members: Record<string, unknown>, subjectKid: string, iss = ISSUER): SecurityEventToken => ({
  iss,
  jti: randomUUID(),
  iat: 1_780_000_000,
  aud: AUDIENCE,
  sub_id: { format: 'opaque', id: subjectKid },
  events: { [SECURITY_EVENT_TYPES.keyRotated]: members },
});

describe('Cache-Control arithmetic (RFC 9111 sections 5.2.2.1 and 4.2.3)', () => {
  const bounds = { min: 60, max: 3600 };
  it('reads max-age, subtracts Age, clamps to the bounds; no-store, no-cache and nothing count as zero', () => {
    assert.equal(freshSeconds('public, max-age=600', null, bounds), 600);
    assert.equal(freshSeconds('max-age=600', '100', bounds), 500);
    assert.equal(freshSeconds('Max-Age="900"', null, bounds), 900);
    assert.equal(freshSeconds('max-age=86400', null, bounds), 3600);
    assert.equal(freshSeconds('max-age=10', null, bounds), 60);
    assert.equal(freshSeconds('no-store, max-age=600', null, bounds), 60);
    assert.equal(freshSeconds('no-cache', null, bounds), 60);
    assert.equal(freshSeconds(null, null, bounds), 60);
    assert.equal(freshSeconds('max-age=-5', null, bounds), 60);
    assert.equal(freshSeconds('max-age=600', 'garbage', bounds), 600);
  });
});

describe('JWKS cache', () => {
  it('discovers the jwks_uri once and serves many tokens from one fetch', async () => {
    const { issuer, verifier } = await setup();
    for (let i = 0; i < 20; i++) assert.ok((await verifier.verify(request(await issuer.token()))).ok);
    assert.deepEqual(issuer.requests, [`${ISSUER}/.well-known/oauth-authorization-server`, `${ISSUER}/jwks`]);
  });

  it('concurrent first requests share one fetch', async () => {
    const { issuer, verifier } = await setup();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => issuer.token()));
    const results = await Promise.all(tokens.map((token) => verifier.verify(request(token))));
    assert.ok(results.every((result) => result.ok));
    assert.equal(issuer.jwksRequests, 1);
  });

  it('keeps the keys exactly max-age seconds, then refetches', async () => {
    const { issuer, verifier } = await setup();
    issuer.cacheControl = 'max-age=300';
    await verifier.verify(request(await issuer.token()));
    issuer.clock.advance(299_000);
    await verifier.verify(request(await issuer.token()));
    assert.equal(issuer.jwksRequests, 1, 'still fresh at 299 s');
    issuer.clock.advance(1000);
    await verifier.verify(request(await issuer.token()));
    assert.equal(issuer.jwksRequests, 2, 'stale at 300 s');
  });

  it('bounds max-age: a huge one by the maximum, no-store by the minimum', async () => {
    const huge = await setup({ jwksMaxAge: { min: 60, max: 600 } });
    huge.issuer.cacheControl = 'max-age=31536000';
    await huge.verifier.verify(request(await huge.issuer.token()));
    huge.issuer.clock.advance(600_000);
    await huge.verifier.verify(request(await huge.issuer.token()));
    assert.equal(huge.issuer.jwksRequests, 2);

    const none = await setup({ jwksMaxAge: { min: 60, max: 600 }, jwksRefetchIntervalSeconds: 0 });
    none.issuer.cacheControl = 'no-store';
    await none.verifier.verify(request(await none.issuer.token()));
    none.issuer.clock.advance(59_000);
    await none.verifier.verify(request(await none.issuer.token()));
    assert.equal(none.issuer.jwksRequests, 1, 'no-store is not a fetch per request');
    none.issuer.clock.advance(1000);
    await none.verifier.verify(request(await none.issuer.token()));
    assert.equal(none.issuer.jwksRequests, 2);
  });

  it('a rotated key: the unknown kid triggers one refetch and the token verifies', async () => {
    const { issuer, verifier } = await setup();
    await verifier.verify(request(await issuer.token()));
    issuer.clock.advance(31_000);
    await issuer.addKey('ES256');
    const result = await verifier.verify(request(await issuer.token()));
    assert.ok(result.ok, description(result));
    assert.equal(issuer.jwksRequests, 2);
  });

  it('security: a flood of random kids costs the issuer one JWKS request per interval', async () => {
    const { issuer, verifier } = await setup({ jwksRefetchIntervalSeconds: 30 });
    assert.ok((await verifier.verify(request(await issuer.token()))).ok);
    issuer.clock.advance(30_000);
    const flood = await Promise.all(Array.from({ length: 200 }, () => issuer.token({}, { kid: randomUUID() })));
    for (const token of flood) {
      const result = await verifier.verify(request(token));
      assert.equal(result.ok, false);
      assert.equal(result.ok ? '' : result.code, 'invalid_token');
    }
    assert.equal(issuer.jwksRequests, 2, 'one refetch for 200 unknown kids');
    issuer.clock.advance(29_000);
    await verifier.verify(request(flood[0]!));
    assert.equal(issuer.jwksRequests, 2, 'none before the interval has passed');
    issuer.clock.advance(1000);
    await verifier.verify(request(flood[0]!));
    assert.equal(issuer.jwksRequests, 3, 'one again after it');
    assert.ok((await verifier.verify(request(await issuer.token()))).ok, 'known keys keep working throughout');
  });

  it('a key rotated in just after a refetch waits for the interval, then verifies', async () => {
    const { issuer, verifier } = await setup({ jwksRefetchIntervalSeconds: 30 });
    await verifier.verify(request(await issuer.token()));
    await issuer.addKey('EdDSA');
    const token = await issuer.token();
    assert.equal((await verifier.verify(request(token))).ok, false, 'refused within the interval');
    issuer.clock.advance(30_000);
    assert.ok((await verifier.verify(request(token))).ok);
  });

  it('a failing refetch keeps the keys it had, and is itself retried at most once per interval', async () => {
    const { issuer, verifier } = await setup({ jwksRefetchIntervalSeconds: 30 });
    await verifier.verify(request(await issuer.token()));
    issuer.failWith = 500;
    issuer.clock.advance(300_000);
    for (let i = 0; i < 5; i++) assert.ok((await verifier.verify(request(await issuer.token()))).ok, 'stale keys still verify');
    assert.equal(issuer.jwksRequests, 2);
  });

  it('no keys at all: 503 with Retry-After, not a 401 that would make the client drop a good token', async () => {
    const { issuer, verifier } = await setup();
    issuer.failWith = 502;
    const result = await verifier.verify(request(await issuer.token()));
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.status, 503);
      assert.equal(result.code, 'temporarily_unavailable');
      assert.equal(result.headers['Retry-After'], '5');
    }
  });

  it('security: metadata naming another issuer is not used (RFC 8414 section 3.3)', async () => {
    const { issuer, verifier } = await setup();
    issuer.metadataIssuer = 'https://evil.example';
    const result = await verifier.verify(request(await issuer.token()));
    assert.equal(result.ok ? 200 : result.status, 503);
    assert.equal(issuer.jwksRequests, 0);
  });

  it('security: key-rotated with state revoked drops that kid at once (not after max-age), even while the JWKS still lists it, without a refetch', async () => {
    const events = signalSource();
    const { issuer, verifier } = await setup({ signals: events });
    issuer.cacheControl = 'max-age=86400';
    const compromised = issuer.keys[0]!;
    const next = await issuer.addKey('EdDSA');
    const before = await issuer.token({}, {}, compromised);
    assert.ok((await verifier.verify(request(before))).ok);
    const fetches = issuer.jwksRequests;
    events.emit(keyRotated({ kid: compromised.kid, alg: 'EdDSA', state: 'revoked' }, compromised.kid));
    for (const token of [before, await issuer.token({}, {}, compromised), await issuer.token({}, { kid: undefined }, compromised)]) {
      const result = await verifier.verify(request(token));
      assert.deepEqual(result.ok ? 'ok' : [result.status, result.code], [401, 'invalid_token']);
    }
    assert.equal(issuer.jwksRequests, fetches, 'a revoked kid does not make the cache fetch');
    // The JWKS still lists it (a cached copy); a later fetch does not bring it back.
    issuer.clock.advance(86_400_000);
    assert.ok((await verifier.verify(request(await issuer.token({}, {}, next)))).ok, 'the other key keeps working');
    assert.ok(issuer.jwksRequests > fetches);
    assert.equal((await verifier.verify(request(await issuer.token({}, {}, compromised)))).ok, false);
    verifier.close();
  });

  it('key-rotated with state created changes nothing; a revocation of another issuer, or a subject naming another kid, is ignored', async () => {
    const events = signalSource();
    const { issuer, verifier } = await setup({ signals: events });
    const key = issuer.keys[0]!;
    assert.ok((await verifier.verify(request(await issuer.token()))).ok);
    const fetches = issuer.jwksRequests;
    events.emit(keyRotated({ kid: key.kid, alg: 'EdDSA', state: 'created' }, key.kid));
    events.emit(keyRotated({ kid: key.kid, alg: 'EdDSA', state: 'revoked' }, key.kid, 'https://evil.example'));
    events.emit(keyRotated({ kid: key.kid, alg: 'EdDSA', state: 'revoked' }, 'another-kid'));
    assert.ok((await verifier.verify(request(await issuer.token()))).ok);
    assert.equal(issuer.jwksRequests, fetches);
    // Fed by hand through verifier.revocations.apply, a revocation applies too.
    assert.ok(verifier.revocations.apply(keyRotated({ kid: key.kid, alg: 'EdDSA', state: 'revoked' }, key.kid)));
    assert.equal((await verifier.verify(request(await issuer.token()))).ok, false);
  });

  it('a given jwksUri skips discovery', async () => {
    const { issuer, verifier } = await setup({ jwksUri: `${ISSUER}/jwks` });
    assert.ok((await verifier.verify(request(await issuer.token()))).ok);
    assert.deepEqual(issuer.requests, [`${ISSUER}/jwks`]);
  });

  it('security: a token whose kid names a key of another type, or a key pinned to another alg, is refused', async () => {
    const { issuer, verifier } = await setup();
    const ec = await issuer.addKey('ES256');
    const ed = issuer.keys[0]!;
    // An ES256 header pointing at the Ed25519 key's kid, signed with the EC key.
    assert.equal((await verifier.verify(request(await issuer.token({}, { kid: ed.kid }, ec)))).ok, false);
    assert.equal((await verifier.verify(request(await issuer.token({}, { kid: ec.kid }, ec)))).ok, true);
  });
});
