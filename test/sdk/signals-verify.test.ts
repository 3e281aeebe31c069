/**
 * verifySecurityEventToken and the key set behind it: a transmitter stand-in
 * (test/support/signals.ts) serves the SSF configuration and the JWKS over
 * node:http; every attack a receiver must refuse is tried, each refused with
 * its RFC 8935 section 2.4 code. Time is a manual clock: the unknown-kid
 * refetch limit is checked without waiting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { ManualClock } from '../support/clock.ts';
import { AUDIENCE, setClaims, signingKey, signSet, startTransmitter, unsecuredSet, type SigningKey, type Transmitter } from '../support/signals.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/security-events.ts';
import {
  createSsfKeySet,
  fetchSsfConfiguration,
  SetVerificationError,
  SignalsUnavailableError,
  staticKeySet,
  verifySecurityEventToken,
  type SetErrorCode,
  type VerifySetOptions,
} from '../../src/sdk/signals/index.ts';

let transmitter: Transmitter;
let es256: SigningKey;

before(async () => {
  es256 = await signingKey('ES256');
  transmitter = await startTransmitter([es256, await signingKey('EdDSA'), await signingKey('RS256')]);
});
after(() => transmitter.close());

const options = () => ({ issuer: transmitter.issuer, audience: AUDIENCE, keys: createSsfKeySet({ issuer: transmitter.issuer }) });

async function refused(jws: string | Promise<string>, code: SetErrorCode, verifyOptions: VerifySetOptions = options()): Promise<SetVerificationError> {
  let caught: unknown;
  try {
    await verifySecurityEventToken(await jws, verifyOptions);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof SetVerificationError, `refused with a SetVerificationError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** Not refused: SignalsUnavailableError, with the rest of the cool-down as retryAfterMs when given. */
async function unavailable(jws: string | Promise<string>, verifyOptions: VerifySetOptions, retryAfterMs?: number): Promise<void> {
  const jwsText = await jws;
  await assert.rejects(verifySecurityEventToken(jwsText, verifyOptions), (error: unknown) => {
    assert.ok(error instanceof SignalsUnavailableError, `unavailable, got ${String(error)}`);
    if (retryAfterMs !== undefined) assert.equal(error.retryAfterMs, retryAfterMs);
    return true;
  });
}

describe('signals: verifySecurityEventToken accepts', () => {
  it('a SET signed with each accepted algorithm (ES256, EdDSA, RS256), keys discovered through the SSF configuration', async () => {
    const verifyOptions = options();
    for (const key of transmitter.keys) {
      const claims = setClaims(transmitter.issuer);
      const event = await verifySecurityEventToken(await signSet(claims, key), verifyOptions);
      assert.equal(event.jti, claims.jti);
      assert.deepEqual(event.events, claims.events);
      assert.deepEqual(event.sub_id, claims.sub_id);
    }
  });

  it('an aud list that contains the receiver, and the typ with its application/ prefix (RFC 7515 section 4.1.9)', async () => {
    const event = await verifySecurityEventToken(await signSet(setClaims(transmitter.issuer, { aud: ['https://other.example/', AUDIENCE] }), es256, { typ: 'application/secevent+jwt' }), options());
    assert.deepEqual(event.aud, ['https://other.example/', AUDIENCE]);
  });

  it('a fixed JWKS instead of discovery', async () => {
    const event = await verifySecurityEventToken(await transmitter.sign(), { issuer: transmitter.issuer, audience: AUDIENCE, keys: { keys: [es256.jwk] } });
    assert.equal(event.iss, transmitter.issuer);
  });
});

describe('signals: verifySecurityEventToken refuses', () => {
  it('a forged signature (payload changed after signing) and a SET signed by a key the transmitter does not publish', async () => {
    const jws = await transmitter.sign();
    const [header, , signature] = jws.split('.');
    const forgedPayload = Buffer.from(JSON.stringify(setClaims(transmitter.issuer, { sub_id: { format: 'opaque', id: 'admin' } }))).toString('base64url');
    await refused(`${header}.${forgedPayload}.${signature}`, 'invalid_key');
    const impostor = await signingKey('ES256', es256.kid);
    await refused(signSet(setClaims(transmitter.issuer), impostor), 'invalid_key');
  });

  it('alg none and HMAC algorithms, whatever the rest says', async () => {
    await refused(unsecuredSet(setClaims(transmitter.issuer)), 'invalid_key');
    const hs256 = await new SignJWT(setClaims(transmitter.issuer)).setProtectedHeader({ alg: 'HS256', typ: 'secevent+jwt', kid: es256.kid }).sign(new Uint8Array(32));
    await refused(hs256, 'invalid_key');
  });

  it('a typ other than secevent+jwt (an ID token or access token presented as a SET), or none', async () => {
    await refused(signSet(setClaims(transmitter.issuer), es256, { typ: 'JWT' }), 'invalid_request');
    await refused(signSet(setClaims(transmitter.issuer), es256, { typ: 'at+jwt' }), 'invalid_request');
    const noTyp = await new SignJWT(setClaims(transmitter.issuer)).setProtectedHeader({ alg: 'ES256', kid: es256.kid }).sign(es256.privateKey);
    await refused(noTyp, 'invalid_request');
  });

  it('the wrong issuer and the wrong audience', async () => {
    await refused(transmitter.sign({ iss: 'https://attacker.example' }), 'invalid_issuer');
    await refused(transmitter.sign({ iss: undefined }), 'invalid_issuer');
    await refused(transmitter.sign({ aud: 'https://another-receiver.example/' }), 'invalid_audience');
    await refused(transmitter.sign({ aud: undefined }), 'invalid_audience');
  });

  it('a SET without iat or jti, without events, with two events, or with an event that is not an object', async () => {
    await refused(transmitter.sign({ iat: undefined }), 'invalid_request');
    await refused(transmitter.sign({ jti: undefined }), 'invalid_request');
    await refused(transmitter.sign({ events: undefined }), 'invalid_request');
    await refused(transmitter.sign({ events: {} }), 'invalid_request');
    await refused(transmitter.sign({ events: { [SECURITY_EVENT_TYPES.sessionRevoked]: {}, [SECURITY_EVENT_TYPES.credentialChange]: {} } }), 'invalid_request');
    await refused(transmitter.sign({ events: { [SECURITY_EVENT_TYPES.sessionRevoked]: 'revoked' } }), 'invalid_request');
    await refused(transmitter.sign({ sub_id: 'user-1' }), 'invalid_request');
  });

  it('what is not a compact JWS at all', async () => {
    await refused('not a jws', 'invalid_request');
    await refused('a.b.c', 'invalid_request');
  });
});

describe('signals: the transmitter key set', () => {
  it('refetches on an unknown kid at most once per 30 s (a rotation is picked up, a flood of made-up kids is not forwarded)', async () => {
    const clock = new ManualClock();
    const keys = createSsfKeySet({ issuer: transmitter.issuer, now: clock.now });
    const verifyOptions = { issuer: transmitter.issuer, audience: AUDIENCE, keys };
    const jwksHits = () => transmitter.hits.get('/jwks.json') ?? 0;
    await verifySecurityEventToken(await transmitter.sign(), verifyOptions);
    const start = jwksHits();

    // A rotation: the new key is published; the first SET signed with it fetches again, 30 s after the first fetch.
    clock.advance(30_000);
    const rotated = await signingKey('ES256');
    transmitter.keys = [rotated, ...transmitter.keys];
    await verifySecurityEventToken(await transmitter.sign({}, rotated), verifyOptions);
    assert.equal(jwksHits(), start + 1);

    // Made-up kids inside the cool-down: no fetch, however many; unavailable (come again), not refused.
    for (let i = 0; i < 20; i++) await unavailable(signSet(setClaims(transmitter.issuer), es256, { kid: `made-up-${i}` }), verifyOptions);
    assert.equal(jwksHits(), start + 1);

    // Even a real new key must wait for the cool-down to end...
    clock.advance(29_999);
    const second = await signingKey('EdDSA');
    transmitter.keys = [second, ...transmitter.keys];
    await unavailable(transmitter.sign({}, second), verifyOptions, 1);
    assert.equal(jwksHits(), start + 1);
    // ...and is found one millisecond later, with one fetch.
    clock.advance(1);
    await verifySecurityEventToken(await transmitter.sign({}, second), verifyOptions);
    assert.equal(jwksHits(), start + 2);
  });

  it('security: an unknown kid inside the cool-down is SignalsUnavailableError (the SET comes again), never invalid_key (dropped for good); after the cool-down a kid still missing is refused', async () => {
    const clock = new ManualClock();
    const keys = createSsfKeySet({ issuer: transmitter.issuer, now: clock.now });
    const verifyOptions = { issuer: transmitter.issuer, audience: AUDIENCE, keys };
    await verifySecurityEventToken(await transmitter.sign(), verifyOptions);
    const rotated = await signingKey('ES256');
    const jws = await signSet(setClaims(transmitter.issuer), rotated);
    transmitter.keys = [...transmitter.keys, rotated];
    try {
      await unavailable(jws, verifyOptions, 30_000);
      // The same SET, delivered again once a fetch is allowed, verifies: nothing was lost.
      clock.advance(30_000);
      assert.equal((await verifySecurityEventToken(jws, verifyOptions)).iss, transmitter.issuer);
    } finally {
      transmitter.keys = transmitter.keys.filter((key) => key !== rotated);
    }
    // A kid the key set fetched for it lacks is the SET's fault: refused.
    clock.advance(30_000);
    await refused(signSet(setClaims(transmitter.issuer), es256, { kid: 'never-published' }), 'invalid_key', verifyOptions);
  });

  it('security: a forged signature under a KNOWN kid stays invalid_key, inside the cool-down too', async () => {
    const clock = new ManualClock();
    const keys = createSsfKeySet({ issuer: transmitter.issuer, now: clock.now });
    const verifyOptions = { issuer: transmitter.issuer, audience: AUDIENCE, keys };
    await verifySecurityEventToken(await transmitter.sign(), verifyOptions);
    const impostor = await signingKey('ES256', es256.kid);
    await refused(signSet(setClaims(transmitter.issuer), impostor), 'invalid_key', verifyOptions);
  });

  it('concurrent lookups share one fetch', async () => {
    const keys = createSsfKeySet({ issuer: transmitter.issuer });
    const before = transmitter.hits.get('/jwks.json') ?? 0;
    const sets = await Promise.all(Array.from({ length: 5 }, () => transmitter.sign()));
    await Promise.all(sets.map((jws) => verifySecurityEventToken(jws, { issuer: transmitter.issuer, audience: AUDIENCE, keys })));
    assert.equal((transmitter.hits.get('/jwks.json') ?? 0) - before, 1);
  });

  it('a configuration naming another issuer is not used (SSF 1.0 section 7.2.3), nor one that cannot be fetched: SignalsUnavailableError, not a refused SET', async () => {
    const liar = await startTransmitter([es256]);
    liar.route('/.well-known/ssf-configuration', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: 'https://victim.example', jwks_uri: `${liar.issuer}/jwks.json` }));
    });
    try {
      await assert.rejects(fetchSsfConfiguration(liar.issuer), SignalsUnavailableError);
      const jws = await signSet(setClaims(liar.issuer), es256);
      await assert.rejects(verifySecurityEventToken(jws, { issuer: liar.issuer, audience: AUDIENCE, keys: createSsfKeySet({ issuer: liar.issuer }) }), SignalsUnavailableError);
    } finally {
      await liar.close();
    }
    await assert.rejects(fetchSsfConfiguration('http://127.0.0.1:1'), SignalsUnavailableError);
  });

  it('discovery inserts the well-known path before the issuer path (SSF 1.0 section 7.2), and refuses plain http except to loopback', async () => {
    const requested: string[] = [];
    const fetch = async (input: string | URL) => {
      requested.push(String(input));
      return new Response(JSON.stringify({ issuer: 'https://tr.example.com/issuer1', jwks_uri: 'https://tr.example.com/jwks' }), { headers: { 'content-type': 'application/json' } });
    };
    const configuration = await fetchSsfConfiguration('https://tr.example.com/issuer1', { fetch });
    assert.equal(configuration.jwks_uri, 'https://tr.example.com/jwks');
    assert.deepEqual(requested, ['https://tr.example.com/.well-known/ssf-configuration/issuer1']);
    assert.throws(() => createSsfKeySet({ issuer: 'x', jwksUri: 'http://tr.example.com/jwks' }), TypeError);
    await assert.rejects(fetchSsfConfiguration('http://tr.example.com'), TypeError);
  });

  it('a transmitter whose keys cannot be fetched is asked again only after the cool-down, not once per SET', async () => {
    const down = await startTransmitter([es256]);
    down.route('/.well-known/ssf-configuration', (_req, res) => void res.writeHead(503).end());
    const clock = new ManualClock();
    const keys = createSsfKeySet({ issuer: down.issuer, now: clock.now });
    try {
      const jws = await signSet(setClaims(down.issuer), es256);
      for (let i = 0; i < 5; i++) await assert.rejects(verifySecurityEventToken(jws, { issuer: down.issuer, audience: AUDIENCE, keys }), SignalsUnavailableError);
      assert.equal(down.hits.get('/.well-known/ssf-configuration'), 1);
      clock.advance(30_000);
      await assert.rejects(verifySecurityEventToken(jws, { issuer: down.issuer, audience: AUDIENCE, keys }), SignalsUnavailableError);
      assert.equal(down.hits.get('/.well-known/ssf-configuration'), 2);
    } finally {
      await down.close();
    }
  });

  it('staticKeySet refuses a kid it does not hold', async () => {
    await refused(transmitter.sign(), 'invalid_key', { issuer: transmitter.issuer, audience: AUDIENCE, keys: staticKeySet({ keys: [transmitter.keys[1]!.jwk] }) });
  });
});
