/**
 * DPoP proof verification (RFC 9449 section 4.3): proofs made by an
 * independent client (oauth4webapi) verify; each rule of the checklist
 * refuses the proof that breaks it with the right error code; a proof is
 * accepted once, also when 50 verifiers sharing one hot store race it;
 * server nonces (section 8) work with a real client and refuse forged or
 * stale values.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWTPayload, type JWSHeaderParameters } from 'jose';
import { DPOP_ALGORITHMS, DpopVerifier, type DpopProofContext } from '../../src/oauth/dpop.ts';
import { OAuthError, type OAuthErrorCode } from '../../src/oauth/errors.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import type { HotStore } from '../../src/store/ports.ts';
import { ManualClock } from '../support/clock.ts';
import { hotDrivers, type HotFixture } from '../store/drivers.ts';

const RESOURCE = 'https://rs.example.com/api/things';
const TOKEN_ENDPOINT = 'https://as.example.com/token';
const MAX_AGE = 300;
const NONCE_LIFETIME = 300;

const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
const nowSeconds = () => Math.floor(clock.now() / 1000);

/** What oauth4webapi signs proofs with (WebCrypto keys; the DOM types are not in this project's lib). */
type KeyPair = Awaited<ReturnType<typeof oauth.generateKeyPair>>;
type SigningKey = Parameters<SignJWT['sign']>[0];

type Modify = (header: Record<string, oauth.JsonValue | undefined>, payload: Record<string, oauth.JsonValue | undefined>) => void;

interface ProofOptions {
  readonly method?: string;
  readonly url?: string;
  /** Adds `ath` for this token; without it the proof carries none. */
  readonly accessToken?: string;
  readonly nonce?: string;
  readonly modify?: Modify;
}

/** A proof made by oauth4webapi (an independent RFC 9449 client), captured from the request it sends. */
async function clientProof(keyPair: KeyPair, options: ProofOptions = {}): Promise<string> {
  let captured: string | null = null;
  const dpop = oauth.DPoP({ [oauth.clockSkew]: nowSeconds() - Math.floor(Date.now() / 1000) }, keyPair, {
    [oauth.modifyAssertion]: (header, payload) => {
      if (options.accessToken === undefined) delete payload['ath'];
      if (options.nonce !== undefined) payload['nonce'] = options.nonce;
      options.modify?.(header, payload);
    },
  });
  await oauth.protectedResourceRequest(options.accessToken ?? 'no-token', options.method ?? 'GET', new URL(options.url ?? RESOURCE), new Headers(), null, {
    DPoP: dpop,
    [oauth.allowInsecureRequests]: true,
    [oauth.customFetch]: async (_url: string, init: RequestInit) => {
      captured = new Headers(init.headers).get('dpop');
      return new Response(null, { status: 204 });
    },
  });
  assert.ok(captured !== null, 'oauth4webapi sent a DPoP header');
  return captured;
}

/** A proof signed by jose with any header and claims, for the shapes no honest client makes. */
async function craftedProof(key: SigningKey, header: JWSHeaderParameters & { alg: string }, claims: JWTPayload = {}): Promise<string> {
  return new SignJWT({ jti: randomUUID(), htm: 'GET', htu: RESOURCE, iat: nowSeconds(), ...claims }).setProtectedHeader(header).sign(key);
}

const base64urlJson = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

const resourceGet: DpopProofContext = { method: 'GET', url: RESOURCE };

function verifier(options: { hot?: HotStore; requireNonce?: boolean; nonceKey?: Uint8Array } = {}): DpopVerifier {
  return new DpopVerifier({
    hot: options.hot ?? openMemoryHotStore({ clock: clock.now }),
    clock: clock.now,
    nonceKey: options.nonceKey ?? randomBytes(32),
    requireNonce: options.requireNonce ?? false,
    maxAgeSeconds: MAX_AGE,
    nonceLifetimeSeconds: NONCE_LIFETIME,
  });
}

async function refused(promise: Promise<unknown>, code: OAuthErrorCode, description?: RegExp): Promise<OAuthError> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof OAuthError, `an OAuthError, not ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (description !== undefined) assert.match(caught.message, description);
  return caught;
}

const refusedProof = (promise: Promise<unknown>, description?: RegExp) => refused(promise, 'invalid_dpop_proof', description);

describe('DPoP proofs from an independent client', () => {
  it('offers only asymmetric algorithms', () => {
    assert.deepEqual(new Set(DPOP_ALGORITHMS), new Set(['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256']));
  });

  for (const alg of ['ES256', 'ES384', 'Ed25519', 'PS256', 'RS256'] as const) {
    it(`verifies an oauth4webapi ${alg} proof; jkt is the RFC 7638 thumbprint of its key`, async () => {
      const keyPair = await oauth.generateKeyPair(alg);
      const proof = await clientProof(keyPair);
      const verified = await verifier().verify(proof, resourceGet);
      assert.equal(verified.jkt, await calculateJwkThumbprint(await exportJWK(keyPair.publicKey), 'sha256'));
      assert.equal(verified.jkt, await oauth.DPoP({}, keyPair).calculateThumbprint());
      assert.equal(typeof verified.jti, 'string');
      assert.ok(verified.jti.length > 0);
    });
  }

  it('verifies an EdDSA proof (the polymorphic name of Ed25519)', async () => {
    const keyPair = await oauth.generateKeyPair('Ed25519');
    const proof = await clientProof(keyPair, { modify: (header) => (header['alg'] = 'EdDSA') });
    const verified = await verifier().verify(proof, resourceGet);
    assert.equal(verified.jkt, await calculateJwkThumbprint(await exportJWK(keyPair.publicKey), 'sha256'));
  });

  it('accepts a single header given as a one-element array', async () => {
    const keyPair = await oauth.generateKeyPair('ES256');
    await verifier().verify([await clientProof(keyPair)], resourceGet);
  });

  it('accepts a token endpoint proof (POST, no ath)', async () => {
    const keyPair = await oauth.generateKeyPair('ES256');
    const proof = await clientProof(keyPair, { method: 'POST', url: TOKEN_ENDPOINT });
    await verifier().verify(proof, { method: 'POST', url: TOKEN_ENDPOINT });
  });

  it('refuses to construct with a short nonce key or a bad window', () => {
    const hot = openMemoryHotStore();
    assert.throws(() => new DpopVerifier({ hot, clock: clock.now, nonceKey: randomBytes(8), requireNonce: false }), TypeError);
    assert.throws(() => new DpopVerifier({ hot, clock: clock.now, nonceKey: randomBytes(32), requireNonce: false, maxAgeSeconds: 0 }), TypeError);
    assert.throws(() => new DpopVerifier({ hot, clock: clock.now, nonceKey: randomBytes(32), requireNonce: false, nonceLifetimeSeconds: 1.5 }), TypeError);
  });
});

describe('DPoP proof checklist (RFC 9449 section 4.3)', () => {
  let es256: KeyPair;
  before(async () => {
    es256 = await oauth.generateKeyPair('ES256');
  });

  describe('the header field (items 1 and 2)', () => {
    it('refuses a request without a DPoP header, or with an empty one', async () => {
      await refusedProof(verifier().verify(undefined, resourceGet), /missing/);
      await refusedProof(verifier().verify([], resourceGet), /exactly one/);
      await refusedProof(verifier().verify('', resourceGet), /empty/);
    });

    it('refuses two DPoP headers, as an array or joined with a comma', async () => {
      const first = await clientProof(es256);
      const second = await clientProof(es256);
      await refusedProof(verifier().verify([first, second], resourceGet), /exactly one/);
      await refusedProof(verifier().verify([first, first], resourceGet), /exactly one/);
      await refusedProof(verifier().verify(`${first}, ${second}`, resourceGet), /exactly one/);
    });

    it('refuses what is not a compact JWS', async () => {
      const proof = await clientProof(es256);
      for (const value of ['not-a-jwt', proof.split('.').slice(0, 2).join('.'), `${proof}.extra`, `${proof}!`, 'e30.e30.e30', 'W10.e30.AAAA', `${'A'.repeat(9000)}.e30.AAAA`]) {
        await refusedProof(verifier().verify(value, resourceGet));
      }
    });
  });

  describe('the JOSE header (items 4, 5 and 7)', () => {
    it('refuses a wrong or missing typ', async () => {
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (header) => (header['typ'] = 'JWT') }), resourceGet), /typ/);
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (header) => delete header['typ'] }), resourceGet), /typ/);
    });

    it('refuses alg none, with or without a signature segment', async () => {
      const jwk = await exportJWK(es256.publicKey);
      const header = base64urlJson({ typ: 'dpop+jwt', alg: 'none', jwk });
      const claims = base64urlJson({ jti: randomUUID(), htm: 'GET', htu: RESOURCE, iat: nowSeconds() });
      await refusedProof(verifier().verify(`${header}.${claims}.`, resourceGet), /alg/);
      await refusedProof(verifier().verify(`${header}.${claims}.AAAA`, resourceGet), /alg/);
    });

    it('refuses HS256 with a symmetric jwk, and an oct jwk under an asymmetric alg', async () => {
      const secret = randomBytes(32);
      const octJwk = { kty: 'oct', k: secret.toString('base64url') };
      await refusedProof(verifier().verify(await craftedProof(secret, { alg: 'HS256', typ: 'dpop+jwt', jwk: octJwk }), resourceGet), /alg/);
      const forged = `${base64urlJson({ alg: 'ES256', typ: 'dpop+jwt', jwk: octJwk })}.${base64urlJson({ jti: randomUUID(), htm: 'GET', htu: RESOURCE, iat: nowSeconds() })}.AAAA`;
      await refusedProof(verifier().verify(forged, resourceGet), /asymmetric/);
    });

    it('refuses a jwk that carries the private key, and says nothing of it', async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const privateJwk = await exportJWK(privateKey);
      const error = await refusedProof(verifier().verify(await craftedProof(privateKey, { alg: 'ES256', typ: 'dpop+jwt', jwk: privateJwk }), resourceGet), /private/);
      assert.ok(!error.message.includes(privateJwk.d!) && !error.message.includes(privateJwk.x!));
    });

    it('refuses a missing or non-object jwk, and a key that does not fit the alg', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      await refusedProof(verifier().verify(await craftedProof(privateKey, { alg: 'ES256', typ: 'dpop+jwt' }), resourceGet), /jwk/);
      await refusedProof(verifier().verify(await craftedProof(privateKey, { alg: 'ES256', typ: 'dpop+jwt', jwk: 'key' as never }), resourceGet), /jwk/);
      const ed = await generateKeyPair('Ed25519', { extractable: true });
      await refusedProof(verifier().verify(await craftedProof(privateKey, { alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(ed.publicKey) }), resourceGet), /jwk/);
    });
  });

  describe('the signature (item 6)', () => {
    it('refuses a proof signed by another key than its jwk', async () => {
      const signer = await generateKeyPair('ES256');
      const other = await generateKeyPair('ES256', { extractable: true });
      const proof = await craftedProof(signer.privateKey, { alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(other.publicKey) });
      await refusedProof(verifier().verify(proof, resourceGet), /signature/);
    });

    it('refuses a proof whose claims were changed after signing', async () => {
      const [header, , signature] = (await clientProof(es256)).split('.');
      const claims = base64urlJson({ jti: randomUUID(), htm: 'GET', htu: RESOURCE, iat: nowSeconds() });
      await refusedProof(verifier().verify(`${header}.${claims}.${signature}`, resourceGet), /signature/);
    });

    it('touches the replay cache only once the signature holds', async () => {
      let writes = 0;
      const store = openMemoryHotStore({ clock: clock.now });
      const counting: HotStore = Object.assign(Object.create(store) as HotStore, {
        setIfAbsent: (key: string, value: string, ttlMs: number) => {
          writes++;
          return store.setIfAbsent(key, value, ttlMs);
        },
      });
      const checker = verifier({ hot: counting });
      const signer = await generateKeyPair('ES256');
      const other = await generateKeyPair('ES256', { extractable: true });
      await refusedProof(checker.verify(await craftedProof(signer.privateKey, { alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(other.publicKey) }), resourceGet));
      await refusedProof(checker.verify(await clientProof(es256, { method: 'POST' }), resourceGet));
      await refusedProof(checker.verify('junk', resourceGet));
      assert.equal(writes, 0);
      await checker.verify(await clientProof(es256), resourceGet);
      assert.equal(writes, 1);
    });
  });

  describe('the claims (items 3, 8, 9, 11, 12)', () => {
    it('refuses a missing, empty, non-string or over-long jti', async () => {
      for (const jti of [undefined, '', 42, 'x'.repeat(257)]) {
        const proof = await clientProof(es256, { modify: (_header, payload) => (jti === undefined ? delete payload['jti'] : (payload['jti'] = jti)) });
        await refusedProof(verifier().verify(proof, resourceGet), /jti/);
      }
      await verifier().verify(await clientProof(es256, { modify: (_header, payload) => (payload['jti'] = 'x'.repeat(256)) }), resourceGet);
    });

    it('refuses a proof made for another method (htm)', async () => {
      await refusedProof(verifier().verify(await clientProof(es256, { method: 'POST' }), resourceGet), /htm/);
      await refusedProof(verifier().verify(await clientProof(es256), { method: 'POST', url: RESOURCE }), /htm/);
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (_header, payload) => delete payload['htm'] }), resourceGet), /htm/);
    });

    it('refuses a proof made for another URI (htu): path, host, port, scheme', async () => {
      for (const url of [
        'https://rs.example.com/api/other',
        'https://rs.example.com/api/things/',
        'https://rs.example.com/api',
        'https://other.example.com/api/things',
        'https://rs.example.com:8443/api/things',
        'http://rs.example.com/api/things',
      ]) {
        await refusedProof(verifier().verify(await clientProof(es256, { url }), resourceGet), /htu/);
      }
      for (const htu of [undefined, 42, '/api/things', 'not a uri', 'https://user@rs.example.com/api/things']) {
        const proof = await clientProof(es256, { modify: (_header, payload) => (htu === undefined ? delete payload['htu'] : (payload['htu'] = htu)) });
        await refusedProof(verifier().verify(proof, resourceGet), /htu/);
      }
    });

    it('ignores query and fragment and compares htu normalised (RFC 3986 section 6.2.2, 6.2.3)', async () => {
      // The request carries a query; oauth4webapi leaves it out of htu, as section 4.2 says.
      await verifier().verify(await clientProof(es256, { url: `${RESOURCE}?page=2` }), { method: 'GET', url: `${RESOURCE}?page=2#top` });
      const equivalents: [htu: string, requestUrl: string][] = [
        [`${RESOURCE}?a=1#frag`, RESOURCE],
        ['HTTPS://RS.Example.COM:443/api/things', RESOURCE],
        ['https://rs.example.com/api/%74hings', RESOURCE],
        ['https://rs.example.com/api/./x/../things', RESOURCE],
        ['https://rs.example.com/a%2fb', 'https://rs.example.com/a%2Fb'],
        ['http://rs.example.com:80', 'http://rs.example.com/'],
      ];
      for (const [htu, url] of equivalents) {
        const proof = await clientProof(es256, { modify: (_header, payload) => (payload['htu'] = htu) });
        await verifier().verify(proof, { method: 'GET', url });
      }
    });

    it('refuses every proof when the request URL itself is not an absolute http(s) URL', async () => {
      await refusedProof(verifier().verify(await clientProof(es256), { method: 'GET', url: '/api/things' }), /htu/);
    });

    it('refuses a proof that is too old or from the future (iat), with a frozen clock', async () => {
      const checker = verifier();
      const proof = await clientProof(es256);
      clock.advance((MAX_AGE + 6) * 1000);
      try {
        await refusedProof(checker.verify(proof, resourceGet), /too old/);
      } finally {
        clock.advance(-(MAX_AGE + 6) * 1000);
      }
      const at = (iat: number) => clientProof(es256, { modify: (_header, payload) => (payload['iat'] = iat) });
      // The window is [now - maxAge - skew, now + skew], the default skew 5 s.
      await refusedProof(verifier().verify(await at(nowSeconds() - MAX_AGE - 6), resourceGet), /too old/);
      await refusedProof(verifier().verify(await at(nowSeconds() + 60), resourceGet), /future/);
      await refusedProof(verifier().verify(await at(nowSeconds() + 6), resourceGet), /future/);
      await verifier().verify(await at(nowSeconds() - MAX_AGE - 5), resourceGet);
      await verifier().verify(await at(nowSeconds() + 5), resourceGet);
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (_header, payload) => delete payload['iat'] }), resourceGet), /iat/);
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (_header, payload) => (payload['iat'] = String(nowSeconds())) }), resourceGet), /iat/);
    });

    it('refuses an expired proof when the client added exp', async () => {
      const proof = await clientProof(es256, { modify: (_header, payload) => (payload['exp'] = nowSeconds() - 60) });
      await refusedProof(verifier().verify(proof, resourceGet), /expired/);
    });

    it('binds the proof to the access token it accompanies (ath)', async () => {
      const token = randomBytes(32).toString('base64url');
      const withToken = { ...resourceGet, accessToken: token };
      await verifier().verify(await clientProof(es256, { accessToken: token }), withToken);
      await refusedProof(verifier().verify(await clientProof(es256), withToken), /ath/);
      await refusedProof(verifier().verify(await clientProof(es256, { accessToken: 'another-token' }), withToken), /ath/);
      await refusedProof(verifier().verify(await clientProof(es256, { modify: (_header, payload) => (payload['ath'] = ath(token).toUpperCase()) }), withToken), /ath/);
      // Without a token (the token endpoint), an ath claim is not checked.
      await verifier().verify(await clientProof(es256, { accessToken: token }), resourceGet);
    });
  });
});

describe('DPoP server nonces (RFC 9449 section 8)', () => {
  let es256: KeyPair;
  before(async () => {
    es256 = await oauth.generateKeyPair('ES256');
  });

  it('asks for a nonce when none is sent, and accepts the one it gave', async () => {
    const checker = verifier({ requireNonce: true });
    const error = await refused(checker.verify(await clientProof(es256), resourceGet), 'use_dpop_nonce', /nonce/);
    const nonce = error.headers['dpop-nonce'];
    assert.ok(nonce !== undefined && nonce.length > 0, 'a DPoP-Nonce header');
    assert.match(nonce, /^[A-Za-z0-9_-]+$/, 'RFC 9449 section 8.1: NQCHAR only');
    const verified = await checker.verify(await clientProof(es256, { nonce }), resourceGet);
    assert.equal(verified.jkt, await calculateJwkThumbprint(await exportJWK(es256.publicKey), 'sha256'));
  });

  it('lets oauth4webapi recover from use_dpop_nonce by itself', async () => {
    const checker = verifier({ requireNonce: true });
    const dpop = oauth.DPoP({ [oauth.clockSkew]: nowSeconds() - Math.floor(Date.now() / 1000) }, es256);
    const outcomes: string[] = [];
    // A one-route resource server (RFC 9449 section 9) around the verifier.
    const server = async (url: string, init: RequestInit): Promise<Response> => {
      const headers = new Headers(init.headers);
      const token = headers.get('authorization')?.replace(/^DPoP /, '');
      try {
        await checker.verify(headers.get('dpop') ?? undefined, { method: init.method ?? 'GET', url, ...(token !== undefined && { accessToken: token }) });
        outcomes.push('ok');
        return new Response('{}', { status: 200 });
      } catch (error) {
        if (!(error instanceof OAuthError)) throw error;
        outcomes.push(error.code);
        return new Response(null, { status: 401, headers: { 'www-authenticate': `DPoP error="${error.code}"`, ...error.headers } });
      }
    };
    const request = () =>
      oauth.protectedResourceRequest('an-access-token', 'GET', new URL(RESOURCE), new Headers(), null, { DPoP: dpop, [oauth.customFetch]: server });
    await assert.rejects(request(), (error) => oauth.isDPoPNonceError(error));
    const response = await request();
    assert.equal(response.status, 200);
    assert.deepEqual(outcomes, ['use_dpop_nonce', 'ok']);
  });

  it('refuses forged, foreign and malformed nonces', async () => {
    const checker = verifier({ requireNonce: true });
    const good = checker.nonce();
    const bytes = Buffer.from(good, 'base64url');
    bytes[bytes.length - 1]! ^= 0x01;
    const flipped = bytes.toString('base64url');
    const foreign = verifier({ requireNonce: true }).nonce();
    for (const nonce of [flipped, foreign, 'abc', `${good}A`, good.slice(0, -1), '', 42]) {
      const proof = await clientProof(es256, { modify: (_header, payload) => (payload['nonce'] = nonce) });
      const error = await refused(checker.verify(proof, resourceGet), 'use_dpop_nonce');
      assert.ok(error.headers['dpop-nonce'] !== undefined);
    }
    await checker.verify(await clientProof(es256, { nonce: good }), resourceGet);
  });

  it('accepts a nonce in its window and the next (give or take the 5 s skew), not later', async () => {
    const nonceKey = randomBytes(32);
    const issuer = verifier({ requireNonce: true, nonceKey });
    const nonce = issuer.nonce();
    const start = clock.now();
    try {
      clock.advance(NONCE_LIFETIME * 1000);
      // Another instance with the same key accepts it: nothing was stored.
      await verifier({ requireNonce: true, nonceKey }).verify(await clientProof(es256, { nonce }), resourceGet);
      clock.advance(NONCE_LIFETIME * 1000 + 5001);
      const error = await refused(issuer.verify(await clientProof(es256, { nonce }), resourceGet), 'use_dpop_nonce', /stale/);
      const fresh = error.headers['dpop-nonce']!;
      assert.notEqual(fresh, nonce);
      await issuer.verify(await clientProof(es256, { nonce: fresh }), resourceGet);
    } finally {
      clock.advance(start - clock.now());
    }
  });

  it('checks a nonce the client sends even when nonces are not required', async () => {
    const checker = verifier({ requireNonce: false });
    await checker.verify(await clientProof(es256), resourceGet);
    await checker.verify(await clientProof(es256, { nonce: checker.nonce() }), resourceGet);
    await refused(checker.verify(await clientProof(es256, { nonce: 'stale-nonce' }), resourceGet), 'use_dpop_nonce');
  });

  it('does not confuse a bad proof with a missing nonce', async () => {
    const checker = verifier({ requireNonce: true });
    await refusedProof(checker.verify(await clientProof(es256, { method: 'POST' }), resourceGet), /htm/);
  });
});

describe('DPoP replay window (RFC 9449 section 11.1)', () => {
  it('remembers a proof for as long as its iat could still pass', async () => {
    const keyPair = await oauth.generateKeyPair('ES256');
    const checker = verifier();
    // Issued 5 s ahead of the server clock: accepted from now until now + 5 + maxAge + 5 (the skew on both sides).
    const proof = await clientProof(keyPair, { modify: (_header, payload) => (payload['iat'] = nowSeconds() + 5) });
    await checker.verify(proof, resourceGet);
    const start = clock.now();
    try {
      clock.advance((MAX_AGE + 10) * 1000);
      await refusedProof(checker.verify(proof, resourceGet), /already been used/);
      clock.advance(1000);
      await refusedProof(checker.verify(proof, resourceGet), /too old/);
    } finally {
      clock.advance(start - clock.now());
    }
  });

  it('keys the cache by key and jti: another key may use the same jti', async () => {
    const checker = verifier();
    const jti = randomUUID();
    const setJti: Modify = (_header, payload) => (payload['jti'] = jti);
    await checker.verify(await clientProof(await oauth.generateKeyPair('ES256'), { modify: setJti }), resourceGet);
    await checker.verify(await clientProof(await oauth.generateKeyPair('ES256'), { modify: setJti }), resourceGet);
    const keyPair = await oauth.generateKeyPair('ES256');
    await checker.verify(await clientProof(keyPair, { modify: setJti }), resourceGet);
    // The same key and jti in a different proof (another request) is still a replay.
    await refusedProof(checker.verify(await clientProof(keyPair, { modify: setJti, method: 'POST' }), { method: 'POST', url: RESOURCE }), /already been used/);
  });

  for (const driver of hotDrivers) {
    describe(`against the ${driver.name} hot store`, () => {
      const PEERS = 4;
      let fx: HotFixture;
      let verifiers: DpopVerifier[];
      let keyPair: KeyPair;
      before(async () => {
        fx = await driver.open(PEERS);
        const nonceKey = randomBytes(32);
        // One verifier per store handle, as separate instances would hold.
        verifiers = fx.stores.map((hot) => verifier({ hot, nonceKey }));
        keyPair = await oauth.generateKeyPair('ES256');
      });
      after(async () => {
        await fx.close();
      });

      it('accepts a proof once', async () => {
        const proof = await clientProof(keyPair);
        const first = await verifiers[0]!.verify(proof, resourceGet);
        await refusedProof(verifiers[0]!.verify(proof, resourceGet), /already been used/);
        await refusedProof(verifiers[verifiers.length - 1]!.verify(proof, resourceGet), /already been used/);
        const next = await verifiers[0]!.verify(await clientProof(keyPair), resourceGet);
        assert.equal(next.jkt, first.jkt);
        assert.notEqual(next.jti, first.jti);
      });

      it('of 50 concurrent verifies of one proof across instances, exactly one succeeds', async () => {
        const token = randomBytes(32).toString('base64url');
        const proof = await clientProof(keyPair, { accessToken: token });
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_unused, i) => verifiers[i % verifiers.length]!.verify(proof, { ...resourceGet, accessToken: token })),
        );
        const accepted = results.filter((result) => result.status === 'fulfilled');
        const rejected = results.filter((result) => result.status === 'rejected');
        assert.equal(accepted.length, 1);
        assert.equal(rejected.length, 49);
        for (const result of rejected) {
          assert.ok(result.reason instanceof OAuthError);
          assert.equal(result.reason.code, 'invalid_dpop_proof');
        }
      });
    });
  }
});
