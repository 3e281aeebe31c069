/**
 * Compact JWTs signed with node:crypto on the hot path: `jose` (an
 * independent implementation) verifies them against the published JWKS, our
 * verifier accepts what `jose` signs, and the verifier refuses every RFC 8725
 * attack and every claim it should: alg none, HMAC keyed with the public
 * key, an algorithm the key is not for, unknown kid, tampering, expiry,
 * issuer, audience, typ and crit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHmac, sign, type KeyObject } from 'node:crypto';
import { SignJWT, createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { KeyVault } from '../../src/crypto/index.ts';
import { JwtError, Keyring, SIGNING_ALGORITHMS, signJwt, verifyJwt, type SigningAlgorithm } from '../../src/tokens/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';
import { ManualClock } from '../support/clock.ts';

const ISSUER = 'https://id.example.com';
const clock = new ManualClock();

function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** Signs any header and payload with a private key, as an attacker holding (or guessing) a key would. */
function forge(header: Record<string, unknown>, payload: Record<string, unknown> | string, privateKey: KeyObject, alg: SigningAlgorithm): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const data = Buffer.from(input);
  const signature =
    alg === 'EdDSA'
      ? sign(null, data, privateKey)
      : alg === 'ES256'
        ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : alg === 'RS256'
          ? sign('sha256', data, privateKey)
          : sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return `${input}.${signature.toString('base64url')}`;
}

describe('signJwt / verifyJwt', () => {
  let fixture: DurableFixture;
  let keyring: Keyring;
  let now: number;
  let claims: Record<string, unknown>;
  const options = () => ({ now, issuer: ISSUER, audience: 'api', typ: 'at+jwt' });

  before(async () => {
    fixture = await durableDrivers[0]!.open();
    keyring = await Keyring.open({
      records: fixture.store.records,
      vault: KeyVault.generate(),
      clock: clock.now,
      policy: { rotationIntervalMs: 86_400_000, jwksMaxAgeSeconds: 600, maxTokenLifetimeSeconds: 3600, refreshMs: 60_000 },
    });
    now = clock.now();
    const iat = Math.floor(now / 1000);
    claims = { iss: ISSUER, sub: 'u_alice', aud: ['api', 'other'], iat, nbf: iat, exp: iat + 600, scope: 'openid', jti: 'id-1' };
  });
  after(() => fixture.close());

  for (const alg of SIGNING_ALGORITHMS) {
    it(`${alg}: jose verifies what signJwt signs, against the published JWKS`, async () => {
      const key = keyring.signingKey(alg);
      const token = signJwt(key, claims, { typ: 'at+jwt' });
      const verified = await jwtVerify(token, createLocalJWKSet(JSON.parse(keyring.jwks()) as JSONWebKeySet), {
        issuer: ISSUER,
        audience: 'api',
        typ: 'at+jwt',
        algorithms: [alg],
        currentDate: new Date(now),
      });
      assert.deepEqual(verified.protectedHeader, { alg, typ: 'at+jwt', kid: key.kid });
      assert.deepEqual(verified.payload, claims);
      assert.deepEqual(verifyJwt(token, keyring, options()), { header: { alg, typ: 'at+jwt', kid: key.kid }, payload: claims });
    });

    it(`${alg}: verifyJwt accepts what jose signs with the keyring's key`, async () => {
      const key = keyring.signingKey(alg);
      const token = await new SignJWT(claims).setProtectedHeader({ alg, kid: key.kid, typ: 'application/at+jwt' }).sign(key.privateKey);
      assert.deepEqual(verifyJwt(token, keyring, options()).payload, claims);
    });
  }

  it('leaves typ out unless asked for, and checks it only when asked', () => {
    const token = signJwt(keyring.signingKey('EdDSA'), claims);
    const [header] = token.split('.');
    assert.deepEqual(JSON.parse(Buffer.from(header!, 'base64url').toString()), { alg: 'EdDSA', kid: keyring.signingKey('EdDSA').kid });
    assert.equal(verifyJwt(token, keyring, { now, issuer: ISSUER }).payload['sub'], 'u_alice');
    assert.throws(() => verifyJwt(token, keyring, options()), { name: 'JwtError', message: 'unexpected typ' });
  });

  it('compares typ case-insensitively, with or without application/ (RFC 7515 section 4.1.9, RFC 8725 section 3.11)', () => {
    const key = keyring.signingKey('ES256');
    for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/At+JWT']) verifyJwt(signJwt(key, claims, { typ }), keyring, options());
    for (const typ of ['JWT', 'application/jwt', 'at+jwt2', 'dpop+jwt']) {
      assert.throws(() => verifyJwt(signJwt(key, claims, { typ }), keyring, options()), { message: 'unexpected typ' }, typ);
    }
  });

  it('refuses alg none, and HS256 keyed with the public key (RFC 8725 section 2.1)', async () => {
    for (const alg of SIGNING_ALGORITHMS) {
      const kid = keyring.signingKey(alg).kid;
      const publicKey = keyring.verificationKey(kid)!.publicKey;
      const none = `${b64({ alg: 'none', kid, typ: 'at+jwt' })}.${b64(claims)}.`;
      assert.throws(() => verifyJwt(none, keyring, options()), { message: 'unsupported alg' });
      for (const secret of [publicKey.export({ type: 'spki', format: 'pem' }), publicKey.export({ type: 'spki', format: 'der' }), Buffer.from(JSON.stringify(publicKey.export({ format: 'jwk' })))]) {
        const input = `${b64({ alg: 'HS256', kid, typ: 'at+jwt' })}.${b64(claims)}`;
        const hs256 = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
        assert.throws(() => verifyJwt(hs256, keyring, options()), { message: 'unsupported alg' });
      }
      const joseHs256 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' }).sign(publicKey.export({ type: 'spki', format: 'der' }));
      assert.throws(() => verifyJwt(joseHs256, keyring, options()), JwtError);
    }
  });

  it('refuses an algorithm the key is not for (RFC 8725 section 3.1), even with a valid signature', () => {
    const ps256 = keyring.signingKey('PS256');
    const asRs256 = forge({ alg: 'RS256', kid: ps256.kid, typ: 'at+jwt' }, claims, ps256.privateKey, 'RS256');
    assert.throws(() => verifyJwt(asRs256, keyring, options()), { message: 'alg does not match the key' });
    const es256 = keyring.signingKey('ES256');
    assert.throws(() => verifyJwt(forge({ alg: 'EdDSA', kid: es256.kid, typ: 'at+jwt' }, claims, keyring.signingKey('EdDSA').privateKey, 'EdDSA'), keyring, options()), {
      message: 'alg does not match the key',
    });
  });

  it('refuses an unknown or missing kid', () => {
    const key = keyring.signingKey('EdDSA');
    assert.throws(() => verifyJwt(forge({ alg: 'EdDSA', kid: 'not-a-key', typ: 'at+jwt' }, claims, key.privateKey, 'EdDSA'), keyring, options()), { message: 'unknown kid' });
    assert.throws(() => verifyJwt(forge({ alg: 'EdDSA', typ: 'at+jwt' }, claims, key.privateKey, 'EdDSA'), keyring, options()), { message: 'missing kid' });
    const stranger = forge({ alg: 'EdDSA', kid: keyring.signingKey('ES256').kid, typ: 'at+jwt' }, claims, key.privateKey, 'EdDSA');
    assert.throws(() => verifyJwt(stranger, keyring, options()), JwtError);
  });

  it('refuses a tampered payload, header or signature, and an ES256 signature in DER', () => {
    for (const alg of SIGNING_ALGORITHMS) {
      const token = signJwt(keyring.signingKey(alg), claims, { typ: 'at+jwt' });
      const [header, payload, signature] = token.split('.') as [string, string, string];
      assert.throws(() => verifyJwt(`${header}.${b64({ ...claims, sub: 'u_mallory' })}.${signature}`, keyring, options()), { message: 'invalid signature' });
      assert.throws(() => verifyJwt(`${b64({ ...JSON.parse(Buffer.from(header, 'base64url').toString()), extra: 1 })}.${payload}.${signature}`, keyring, options()), {
        message: 'invalid signature',
      });
      const flipped = Buffer.from(signature, 'base64url');
      flipped[5]! ^= 1;
      assert.throws(() => verifyJwt(`${header}.${payload}.${flipped.toString('base64url')}`, keyring, options()), { message: 'invalid signature' });
      assert.throws(() => verifyJwt(`${header}.${payload}.`, keyring, options()), { message: 'invalid signature' });
    }
    const es256 = keyring.signingKey('ES256');
    const input = `${b64({ alg: 'ES256', kid: es256.kid, typ: 'at+jwt' })}.${b64(claims)}`;
    const der = `${input}.${sign('sha256', Buffer.from(input), es256.privateKey).toString('base64url')}`;
    assert.throws(() => verifyJwt(der, keyring, options()), { message: 'invalid signature' });
  });

  it('refuses a crit header (RFC 7515 section 4.1.11): no extension is understood', () => {
    const key = keyring.signingKey('EdDSA');
    for (const crit of [['exp'], ['b64'], []]) {
      const token = forge({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt', crit, exp: 1, b64: true }, claims, key.privateKey, 'EdDSA');
      assert.throws(() => verifyJwt(token, keyring, options()), { message: 'unsupported crit header' });
    }
  });

  it('checks exp (required), nbf and iat with the clock tolerance', () => {
    const key = keyring.signingKey('RS256');
    const exp = claims['exp'] as number;
    const token = signJwt(key, claims, { typ: 'at+jwt' });
    assert.throws(() => verifyJwt(token, keyring, { ...options(), now: exp * 1000 }), { message: 'expired' });
    verifyJwt(token, keyring, { ...options(), now: exp * 1000 - 1 });
    verifyJwt(token, keyring, { ...options(), now: (exp + 29) * 1000, clockToleranceSeconds: 30 });
    assert.throws(() => verifyJwt(token, keyring, { ...options(), now: (exp + 30) * 1000, clockToleranceSeconds: 30 }), { message: 'expired' });

    const withoutExp = { ...claims, exp: undefined };
    assert.throws(() => verifyJwt(signJwt(key, withoutExp, { typ: 'at+jwt' }), keyring, options()), { message: 'missing exp' });
    assert.throws(() => verifyJwt(signJwt(key, { ...claims, exp: String(exp) }, { typ: 'at+jwt' }), keyring, options()), { message: 'invalid exp' });

    const future = Math.floor(now / 1000) + 60;
    assert.throws(() => verifyJwt(signJwt(key, { ...claims, nbf: future }, { typ: 'at+jwt' }), keyring, options()), { message: 'not yet valid' });
    assert.throws(() => verifyJwt(signJwt(key, { ...claims, iat: future }, { typ: 'at+jwt' }), keyring, options()), { message: 'issued in the future' });
    verifyJwt(signJwt(key, { ...claims, nbf: future, iat: future }, { typ: 'at+jwt' }), keyring, { ...options(), clockToleranceSeconds: 60 });
  });

  it('checks the issuer, and the audience when asked (a string or an array)', () => {
    const key = keyring.signingKey('PS256');
    assert.throws(() => verifyJwt(signJwt(key, { ...claims, iss: 'https://evil.example' }, { typ: 'at+jwt' }), keyring, options()), { message: 'wrong issuer' });
    const withoutIss = { ...claims, iss: undefined };
    assert.throws(() => verifyJwt(signJwt(key, withoutIss, { typ: 'at+jwt' }), keyring, options()), { message: 'wrong issuer' });
    for (const aud of ['other', ['other', 'more'], [], 42, undefined]) {
      assert.throws(() => verifyJwt(signJwt(key, { ...claims, aud }, { typ: 'at+jwt' }), keyring, options()), { message: 'wrong audience' }, JSON.stringify(aud));
    }
    verifyJwt(signJwt(key, { ...claims, aud: 'api' }, { typ: 'at+jwt' }), keyring, options());
    verifyJwt(signJwt(key, { ...claims, aud: 'other' }, { typ: 'at+jwt' }), keyring, { now, issuer: ISSUER });
  });

  it('refuses what is not a compact JWS of two JSON objects', () => {
    const key = keyring.signingKey('EdDSA');
    const token = signJwt(key, claims, { typ: 'at+jwt' });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const malformed = [
      '',
      `${header}.${payload}`,
      `${header}.${payload}.${signature}.`,
      `${header}..${signature}`,
      `.${payload}.${signature}`,
      `${header}=.${payload}.${signature}`,
      `${header}.${payload}.${signature}+`,
      `${b64('not json')}.${payload}.${signature}`,
      `${b64('[1,2]')}.${payload}.${signature}`,
      `${b64('null')}.${payload}.${signature}`,
    ];
    for (const candidate of malformed) assert.throws(() => verifyJwt(candidate, keyring, options()), JwtError, candidate);
    for (const body of ['[1]', '"text"', '{"iss":']) {
      const forged = forge({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt' }, body, key.privateKey, 'EdDSA');
      assert.throws(() => verifyJwt(forged, keyring, options()), { message: /malformed token: the payload/ }, body);
    }
    assert.throws(() => verifyJwt(42 as unknown as string, keyring, options()), JwtError);
  });
});
