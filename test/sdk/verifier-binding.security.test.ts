/**
 * Sender-constrained tokens at the resource server. DPoP (RFC 9449 sections
 * 4.3, 7.1, 9, 11.1): every item of the checklist refuses the proof that
 * breaks it, a replayed proof is refused, the server nonce is asked for with
 * use_dpop_nonce and DPoP-Nonce, a bound token as Bearer and an unbound
 * token as DPoP are refused. Certificates (RFC 8705 section 3): the token
 * is good only with the certificate it names.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { certificateThumbprint, createVerifier, type VerifierOptions, type VerifyFailure, type VerifyResult } from '../../src/sdk/index.ts';
import { ReplayCache } from '../../src/sdk/verifier/replay.ts';
import { makeTestPki } from '../support/mtls.ts';
import { AUDIENCE, ISSUER, TokenIssuer } from '../support/token-issuer.ts';

const URL_CALLED = `${AUDIENCE}/things/7?expand=all#top`;
const HTU = `${AUDIENCE}/things/7`;
const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

let issuer: TokenIssuer;
let holder: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK; jkt: string };

function make(options: Partial<VerifierOptions> = {}) {
  return createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, clock: issuer.clock.now, ...options });
}

/** A proof by `holder` for GET URL_CALLED with `token`'s ath; header and claims overridable (undefined removes). */
async function proof(token: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: CryptoKey = holder.privateKey): Promise<string> {
  const payload: Record<string, unknown> = { htm: 'GET', htu: HTU, iat: issuer.nowSeconds(), jti: randomUUID(), ath: ath(token), ...claims };
  const protectedHeader: Record<string, unknown> = { alg: 'ES256', typ: 'dpop+jwt', jwk: holder.jwk, ...header };
  for (const record of [payload, protectedHeader]) for (const [name, value] of Object.entries(record)) if (value === undefined) delete record[name];
  return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key);
}

const dpopRequest = (token: string, dpop: string | string[] | undefined, extra: Record<string, unknown> = {}) => ({
  method: 'GET',
  url: URL_CALLED,
  headers: { authorization: `DPoP ${token}`, ...(dpop !== undefined && { dpop }) },
  ...extra,
});

function refused(result: VerifyResult, code: VerifyFailure['code'], description?: RegExp): VerifyFailure {
  assert.equal(result.ok, false, 'refused');
  const failure = result;
  assert.equal(failure.code, code, failure.description);
  if (description !== undefined) assert.match(failure.description, description);
  return failure;
}

before(async () => {
  issuer = await TokenIssuer.create(['EdDSA']);
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  holder = { ...pair, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
});

describe('DPoP-bound tokens (RFC 9449)', () => {
  it('verifies a token with a good proof; the query and fragment of the URL do not matter', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    const result = await verifier.verify(dpopRequest(token, await proof(token)));
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.scheme, 'DPoP');
    assert.equal(result.binding, 'dpop');
  });

  it('normalises htu: scheme and host case, the default port', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    assert.ok((await verifier.verify(dpopRequest(token, await proof(token, { htu: 'HTTPS://API.example.com:443/things/7' })))).ok);
  });

  it('security: a replayed proof is refused (section 11.1)', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    const once = await proof(token);
    assert.ok((await verifier.verify(dpopRequest(token, once))).ok);
    refused(await verifier.verify(dpopRequest(token, once)), 'invalid_dpop_proof', /already used/);
  });

  it('security: a DPoP-bound token presented as Bearer is refused, with or without a proof', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    for (const dpop of [undefined, await proof(token)]) {
      const failure = refused(await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${token}`, ...(dpop !== undefined && { dpop }) } }), 'invalid_token', /DPoP scheme/);
      assert.match(failure.headers['WWW-Authenticate']!, /^Bearer error="invalid_token"/);
    }
  });

  it('security: an unbound token under the DPoP scheme is refused', async () => {
    const verifier = make();
    const token = await issuer.token();
    refused(await verifier.verify(dpopRequest(token, await proof(token))), 'invalid_token', /not DPoP-bound/);
  });

  it('security: the checklist of section 4.3, one broken item at a time, each refused as invalid_dpop_proof on the DPoP challenge', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    const other = await generateKeyPair('ES256', { extractable: true });
    const otherJwk = await exportJWK(other.publicKey);
    const privateJwk = await exportJWK(holder.privateKey);
    const ed = await generateKeyPair('EdDSA', { extractable: true });
    const good = await proof(token);
    const cases: [string, string | string[] | undefined, RegExp][] = [
      ['no DPoP header', undefined, /needs a DPoP proof/],
      ['two DPoP headers', [good, await proof(token)], /exactly one/],
      ['two proofs joined by a comma', `${good}, ${await proof(token)}`, /exactly one/],
      ['not a JWS', 'garbage', /malformed/],
      ['typ JWT', await proof(token, {}, { typ: 'JWT' }), /typ/],
      ['no typ', await proof(token, {}, { typ: undefined }), /typ/],
      ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: holder.jwk })).toString('base64url')}.${good.split('.')[1]}.`, /alg/],
      ['HS256', await new SignJWT({ htm: 'GET', htu: HTU, iat: issuer.nowSeconds(), jti: randomUUID(), ath: ath(token) }).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'AAAA' } as JWK }).sign(randomBytes(32)), /alg/],
      ['no jwk', await proof(token, {}, { jwk: undefined }), /jwk/],
      ['a private jwk', await proof(token, {}, { jwk: privateJwk }), /private/],
      ['a signature by another key than the jwk', await proof(token, {}, {}, other.privateKey), /does not verify/],
      ['a tampered payload', `${good.split('.')[0]}.${Buffer.from(JSON.stringify({ htm: 'POST' })).toString('base64url')}.${good.split('.')[2]}`, /does not verify/],
      ['htm POST', await proof(token, { htm: 'POST' }), /htm/],
      ['htm get (methods are case-sensitive)', await proof(token, { htm: 'get' }), /htm/],
      ['htu of another path', await proof(token, { htu: `${AUDIENCE}/things/8` }), /htu/],
      ['htu of another host', await proof(token, { htu: 'https://evil.example/things/7' }), /htu/],
      ['htu not a URL', await proof(token, { htu: 'things/7' }), /htu/],
      ['no htu', await proof(token, { htu: undefined }), /does not verify/],
      ['no jti', await proof(token, { jti: undefined }), /does not verify/],
      ['iat too old', await proof(token, { iat: issuer.nowSeconds() - 120 }), /iat/],
      ['iat in the future', await proof(token, { iat: issuer.nowSeconds() + 60 }), /iat/],
      ['no ath', await proof(token, { ath: undefined }), /ath/],
      ['ath of another token', await proof(token, { ath: ath(`${token}x`) }), /ath/],
      ['a proof by a key other than cnf.jkt', await proof(token, {}, { jwk: otherJwk }, other.privateKey), /not the key/],
      ['an EdDSA proof by another key', await proof(token, {}, { alg: 'EdDSA', jwk: await exportJWK(ed.publicKey) }, ed.privateKey), /not the key/],
    ];
    for (const [name, dpop, description] of cases) {
      const failure = refused(await verifier.verify(dpopRequest(token, dpop)), 'invalid_dpop_proof', description);
      assert.equal(failure.status, 401, name);
      assert.match(failure.headers['WWW-Authenticate']!, /DPoP algs="[^"]+", error="invalid_dpop_proof"/, name);
    }
  });

  it('refuses proof algorithms it was not configured for', async () => {
    const verifier = make({ dpopAlgorithms: ['EdDSA'] });
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    refused(await verifier.verify(dpopRequest(token, await proof(token))), 'invalid_dpop_proof', /alg/);
    assert.throws(() => make({ dpopAlgorithms: ['HS256'] }), TypeError);
  });

  it('server nonces (section 9): 401 use_dpop_nonce with DPoP-Nonce, then accepted with the nonce', async () => {
    let current = 'nonce-1';
    const verifier = make({ dpopNonce: { current: () => current } });
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    const failure = refused(await verifier.verify(dpopRequest(token, await proof(token))), 'use_dpop_nonce');
    assert.equal(failure.status, 401);
    assert.equal(failure.headers['DPoP-Nonce'], 'nonce-1');
    assert.match(failure.headers['WWW-Authenticate']!, /DPoP algs="[^"]+", error="use_dpop_nonce"/);
    assert.ok((await verifier.verify(dpopRequest(token, await proof(token, { nonce: 'nonce-1' })))).ok);
    current = 'nonce-2';
    assert.equal(refused(await verifier.verify(dpopRequest(token, await proof(token, { nonce: 'nonce-1' }))), 'use_dpop_nonce').headers['DPoP-Nonce'], 'nonce-2', 'a stale nonce');
  });

  it('server nonces with a check function accept what it accepts', async () => {
    const verifier = make({ dpopNonce: { current: () => 'new', check: (nonce) => nonce === 'new' || nonce === 'previous' } });
    const token = await issuer.token({ cnf: { jkt: holder.jkt } });
    assert.ok((await verifier.verify(dpopRequest(token, await proof(token, { nonce: 'previous' })))).ok);
    refused(await verifier.verify(dpopRequest(token, await proof(token, { nonce: 'older' }))), 'use_dpop_nonce');
  });

  it('the replay cache forgets a proof once its window has passed (and the proof is refused for its age anyway)', async () => {
    const verifier = make({ dpopWindowSeconds: 60 });
    const token = await issuer.token({ cnf: { jkt: holder.jkt }, exp: issuer.nowSeconds() + 3600 });
    const once = await proof(token);
    assert.ok((await verifier.verify(dpopRequest(token, once))).ok);
    issuer.clock.advance(66_000);
    refused(await verifier.verify(dpopRequest(token, once)), 'invalid_dpop_proof', /iat/);
  });
});

describe('the replay cache (RFC 9449 section 11.1)', () => {
  it('is bounded: full of live entries it refuses new ones rather than evict (an eviction reopens replay); expired ones make room', () => {
    const cache = new ReplayCache(3);
    assert.equal(cache.use('a', 1000, 0), 'fresh');
    assert.equal(cache.use('b', 2000, 0), 'fresh');
    assert.equal(cache.use('c', 3000, 0), 'fresh');
    assert.equal(cache.use('a', 1000, 500), 'replayed');
    assert.equal(cache.use('d', 4000, 500), 'full');
    assert.equal(cache.use('d', 4000, 1000), 'fresh', 'a expired');
    assert.equal(cache.size, 3);
    assert.equal(cache.use('a', 5000, 1000), 'full');
  });
});

describe('certificate-bound tokens (RFC 8705 section 3)', () => {
  let pki: ReturnType<typeof makeTestPki>;
  before(() => {
    pki = makeTestPki();
  });

  it('verifies with the certificate the token names (DER bytes or X509Certificate)', async () => {
    const verifier = make();
    assert.equal(certificateThumbprint(pki.alpha.x509), pki.alpha.thumbprint);
    const token = await issuer.token({ cnf: { 'x5t#S256': pki.alpha.thumbprint } });
    for (const peerCertificate of [pki.alpha.x509, new Uint8Array(pki.alpha.x509.raw)]) {
      const result = await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${token}` }, peerCertificate });
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.binding, 'certificate');
    }
  });

  it('security: refused without a certificate, with another one, and with one of the same subject from another CA', async () => {
    const verifier = make();
    const token = await issuer.token({ cnf: { 'x5t#S256': pki.alpha.thumbprint } });
    for (const peerCertificate of [undefined, pki.beta.x509, pki.foreignAlpha.x509, new X509Certificate(pki.selfSigned.cert)]) {
      const result = await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${token}` }, ...(peerCertificate !== undefined && { peerCertificate }) });
      refused(result, 'invalid_token', /certificate/);
    }
    refused(await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${await issuer.token({ cnf: { 'x5t#S256': 42 } })}` }, peerCertificate: pki.alpha.x509 }), 'invalid_token', /cnf/);
  });
});
