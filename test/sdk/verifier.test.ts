/**
 * createVerifier on RFC 9068 access tokens: what verifies, each rule of
 * section 4 refusing the token that breaks it (typ, alg including none, HS256
 * with the public key as secret, iss, aud, exp, nbf, iat, required claims),
 * the challenges of RFC 6750 section 3 and RFC 9449 section 7.1, scopes
 * (insufficient_scope, 403), and descriptions that never echo the token.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createVerifier, type Verifier, type VerifyFailure, type VerifyResult } from '../../src/sdk/index.ts';
import { AUDIENCE, ISSUER, TokenIssuer } from '../support/token-issuer.ts';

const URL_CALLED = 'https://api.example.com/things?page=2';
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

let issuer: TokenIssuer;
let verifier: Verifier;

function make(options: Partial<Parameters<typeof createVerifier>[0]> = {}): Verifier {
  return createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, clock: issuer.clock.now, realm: 'things', ...options });
}

const bearer = (token: string) => ({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${token}` } });

function refused(result: VerifyResult, code: VerifyFailure['code'], status: number): VerifyFailure {
  assert.equal(result.ok, false, 'refused');
  const failure = result;
  assert.equal(failure.code, code, failure.description);
  assert.equal(failure.status, status);
  return failure;
}

before(async () => {
  issuer = await TokenIssuer.create(['EdDSA', 'ES256', 'RS256', 'PS256']);
  verifier = make();
});

describe('access tokens (RFC 9068 section 4)', () => {
  for (const alg of ['EdDSA', 'ES256', 'RS256', 'PS256']) {
    it(`verifies a ${alg} token and reports its claims and scopes`, async () => {
      const token = await issuer.token({}, {}, issuer.keys.find((key) => key.alg === alg));
      const result = await verifier.verify(bearer(token));
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.token.sub, 'user-1');
      assert.equal(result.token.client_id, 'app-1');
      assert.deepEqual(result.scopes, ['things:read', 'things:write']);
      assert.equal(result.scheme, 'Bearer');
      assert.equal(result.binding, 'none');
    });
  }

  it('accepts typ application/at+jwt and an aud array containing the audience', async () => {
    assert.ok((await verifier.verify(bearer(await issuer.token({ aud: ['https://other.example', AUDIENCE] }, { typ: 'application/at+jwt' })))).ok);
  });

  it('refuses a wrong or missing typ (an ID token or a plain JWT is not an access token)', async () => {
    for (const typ of ['JWT', 'dpop+jwt', undefined]) refused(await verifier.verify(bearer(await issuer.token({}, { typ }))), 'invalid_token', 401);
  });

  it('refuses alg none, with or without a signature', async () => {
    const header = b64({ alg: 'none', typ: 'at+jwt' });
    const claims = b64({ iss: ISSUER, aud: AUDIENCE, sub: 'u', client_id: 'c', jti: 'j', iat: issuer.nowSeconds(), exp: issuer.nowSeconds() + 60 });
    refused(await verifier.verify(bearer(`${header}.${claims}.AAAA`)), 'invalid_token', 401);
    refused(await verifier.verify(bearer(`${header}.${claims}.`)), 'invalid_token', 401);
  });

  it('refuses HS256 signed with the public key as the HMAC secret (key confusion)', async () => {
    const key = issuer.keys.find((candidate) => candidate.alg === 'RS256')!;
    const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: key.kid })}.${b64({ iss: ISSUER, aud: AUDIENCE, sub: 'u', client_id: 'c', jti: 'j', iat: issuer.nowSeconds(), exp: issuer.nowSeconds() + 60 })}`;
    const signature = createHmac('sha256', JSON.stringify(key.jwk)).update(input).digest('base64url');
    const failure = refused(await verifier.verify(bearer(`${input}.${signature}`)), 'invalid_token', 401);
    assert.match(failure.description, /algorithm/);
  });

  it('refuses an algorithm the verifier was not configured for, and construction with one outside the four', async () => {
    const edOnly = make({ algorithms: ['EdDSA'] });
    refused(await edOnly.verify(bearer(await issuer.token({}, {}, issuer.keys.find((key) => key.alg === 'ES256')))), 'invalid_token', 401);
    assert.throws(() => make({ algorithms: ['HS256' as 'EdDSA'] }), TypeError);
    assert.throws(() => make({ audience: [] }), TypeError);
  });

  it('refuses a forged signature, a token of another issuer and one for another audience', async () => {
    const token = await issuer.token();
    const [h, p, s] = token.split('.');
    const forgedPayload = b64({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'admin' });
    assert.match(refused(await verifier.verify(bearer(`${h}.${forgedPayload}.${s}`)), 'invalid_token', 401).description, /signature/);
    assert.match(refused(await verifier.verify(bearer(await issuer.token({ iss: 'https://evil.example' }))), 'invalid_token', 401).description, /issuer/);
    assert.match(refused(await verifier.verify(bearer(await issuer.token({ aud: 'https://other.example' }))), 'invalid_token', 401).description, /audience/);
  });

  it('applies exp, nbf and iat with the clock tolerance', async () => {
    const now = issuer.nowSeconds();
    assert.ok((await verifier.verify(bearer(await issuer.token({ exp: now - 4 })))).ok, 'within the default 5 s');
    assert.match(refused(await verifier.verify(bearer(await issuer.token({ exp: now - 6 }))), 'invalid_token', 401).description, /expired/);
    assert.ok((await verifier.verify(bearer(await issuer.token({ nbf: now + 4 })))).ok);
    assert.match(refused(await verifier.verify(bearer(await issuer.token({ nbf: now + 60 }))), 'invalid_token', 401).description, /not valid yet/);
    assert.match(refused(await verifier.verify(bearer(await issuer.token({ iat: now + 60 }))), 'invalid_token', 401).description, /not valid yet/);
    const strict = make({ clockToleranceSeconds: 0 });
    refused(await strict.verify(bearer(await issuer.token({ exp: now - 1 }))), 'invalid_token', 401);
  });

  it('refuses a token without any claim RFC 9068 section 2.2 requires', async () => {
    for (const claim of ['sub', 'client_id', 'jti', 'iat', 'exp', 'aud', 'iss']) {
      const failure = refused(await verifier.verify(bearer(await issuer.token({ [claim]: undefined }))), 'invalid_token', 401);
      assert.ok(!failure.description.includes('user-1'), claim);
    }
    refused(await verifier.verify(bearer(await issuer.token({ client_id: 42 }))), 'invalid_token', 401);
  });
});

describe('challenges (RFC 6750 section 3, RFC 9449 section 7.1)', () => {
  it('no token: 401 with bare Bearer and DPoP challenges, no error code', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }]) {
      const failure = refused(await verifier.verify({ method: 'GET', url: URL_CALLED, headers }), 'missing_token', 401);
      assert.equal(failure.error, undefined);
      assert.equal(failure.headers['WWW-Authenticate'], 'Bearer realm="things", DPoP realm="things", algs="EdDSA Ed25519 ES256 ES384 PS256 RS256"');
    }
  });

  it('an invalid token: invalid_token on the Bearer challenge, DPoP offered bare', async () => {
    const failure = refused(await verifier.verify(bearer(await issuer.token({ exp: issuer.nowSeconds() - 600 }))), 'invalid_token', 401);
    assert.equal(failure.headers['WWW-Authenticate'], 'Bearer realm="things", error="invalid_token", error_description="the token has expired", DPoP realm="things", algs="EdDSA Ed25519 ES256 ES384 PS256 RS256"');
  });

  it('a malformed or repeated Authorization header: 400 invalid_request', async () => {
    for (const authorization of ['Bearer', 'Bearer a b', 'Bearer tok"en', ['Bearer a', 'Bearer b']]) {
      const failure = refused(await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization } }), 'invalid_request', 400);
      assert.match(failure.headers['WWW-Authenticate']!, /^Bearer realm="things", error="invalid_request"/);
    }
  });

  it('reads Headers objects and any header-name case; the scheme name is case-insensitive', async () => {
    const token = await issuer.token();
    assert.ok((await verifier.verify({ method: 'GET', url: URL_CALLED, headers: new Headers({ Authorization: `bearer ${token}` }) })).ok);
    assert.ok((await verifier.verify({ method: 'GET', url: URL_CALLED, headers: { Authorization: `BEARER ${token}` } })).ok);
  });

  it('never echoes the token or its claims in a description', async () => {
    const secretish = 'S3cr3tSubjectValue';
    const tokens = [await issuer.token({ sub: secretish, aud: secretish }), await issuer.token({ sub: secretish, exp: 1 }), await issuer.token({ iss: secretish }), `${secretish}.${secretish}.${secretish}`];
    for (const token of tokens) {
      const result = await verifier.verify(bearer(token));
      assert.equal(result.ok, false);
      const text = JSON.stringify(result);
      assert.ok(!text.includes(secretish) && !text.includes(token.slice(0, 20)), text);
    }
  });
});

describe('scopes (RFC 6750 section 3.1)', () => {
  it('passes when the token has every scope; 403 insufficient_scope naming the needed scopes otherwise', async () => {
    const token = await issuer.token({ scope: 'things:read' });
    assert.ok((await verifier.verify(bearer(token), { scopes: ['things:read'] })).ok);
    const failure = refused(await verifier.verify(bearer(token), { scopes: ['things:read', 'things:delete'] }), 'insufficient_scope', 403);
    assert.equal(failure.headers['WWW-Authenticate'], 'Bearer realm="things", error="insufficient_scope", error_description="the token lacks a scope this request needs", scope="things:read things:delete", DPoP realm="things", algs="EdDSA Ed25519 ES256 ES384 PS256 RS256"');
  });

  it('scopes given at creation apply to every request and add up with per-call ones', async () => {
    const scoped = make({ scopes: ['things:write'] });
    refused(await scoped.verify(bearer(await issuer.token({ scope: 'things:read' }))), 'insufficient_scope', 403);
    refused(await scoped.verify(bearer(await issuer.token({ scope: undefined }))), 'insufficient_scope', 403);
    assert.ok((await scoped.verify(bearer(await issuer.token({ scope: 'things:write things:read' })), { scopes: ['things:read'] })).ok);
    assert.throws(() => make({ scopes: ['bad scope'] }), TypeError);
  });

  it('a scope that merely contains the needed one as a substring does not count', async () => {
    refused(await verifier.verify(bearer(await issuer.token({ scope: 'things:readonly xthings:read' })), { scopes: ['things:read'] }), 'insufficient_scope', 403);
  });
});
