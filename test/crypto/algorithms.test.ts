/**
 * The JWS algorithm table: its invariants, and the lists every module takes
 * from it, pinned to what the server published and accepted before the table
 * existed (282426e).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, importJWK, jwtVerify } from 'jose';
import {
  JWS_ALGORITHMS,
  SIGNING_ALGORITHMS,
  algorithmsFor,
  generateSigningKey,
  isAlgorithmFor,
  jwsAlgorithm,
  keyFitsAlgorithm,
  nodeSignParameters,
  tokenHashAlgorithm,
  type AlgorithmUse,
} from '../../src/crypto/index.ts';
import { ConfigSchema } from '../../src/config/index.ts';
import { authorizationServerMetadata, openIdProviderMetadata } from '../../src/oauth/discovery.ts';
import { DPOP_ALGORITHMS } from '../../src/oauth/dpop.ts';
import { ID_TOKEN_SIGNING_ALGORITHMS } from '../../src/oauth/client-metadata.ts';
import { RESOURCE_TOKEN_ALGORITHMS } from '../../src/oauth/resources.ts';
import { tokenHash } from '../../src/oauth/id-tokens.ts';

const USES: readonly AlgorithmUse[] = ['keyring', 'resourceToken', 'dpop', 'clientAssertion', 'advertisedForClientAssertion', 'clientKey'];
const subset = (small: readonly string[], big: readonly string[]) => small.every((alg) => big.includes(alg));

describe('the published lists stay what they were', () => {
  const metadata = openIdProviderMetadata({ issuer: 'https://id.example.com', scopes: [], registration: true });

  it('discovery publishes the same values in the same order', () => {
    assert.deepEqual(metadata['access_token_signing_alg_values_supported'], ['EdDSA', 'ES256', 'RS256', 'PS256']);
    assert.deepEqual(metadata['id_token_signing_alg_values_supported'], ['EdDSA', 'ES256', 'RS256', 'PS256']);
    assert.deepEqual(metadata['dpop_signing_alg_values_supported'], ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256']);
    for (const endpoint of ['token', 'introspection', 'revocation']) {
      assert.deepEqual(metadata[`${endpoint}_endpoint_auth_signing_alg_values_supported`], ['EdDSA', 'ES256', 'PS256', 'RS256'], endpoint);
    }
    const oauth = authorizationServerMetadata({ issuer: 'https://id.example.com', scopes: [], registration: true });
    for (const [name, value] of Object.entries(oauth)) assert.deepEqual(metadata[name], value, `${name}: RFC 8414 and OIDC metadata agree`);
  });

  it('the accepted sets are the same', () => {
    assert.deepEqual([...SIGNING_ALGORITHMS], ['EdDSA', 'ES256', 'RS256', 'PS256']);
    assert.deepEqual([...ID_TOKEN_SIGNING_ALGORITHMS], ['EdDSA', 'ES256', 'RS256', 'PS256']);
    assert.deepEqual([...RESOURCE_TOKEN_ALGORITHMS], ['EdDSA', 'ES256', 'RS256']);
    assert.deepEqual([...DPOP_ALGORITHMS], ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256']);
    assert.deepEqual([...algorithmsFor('clientAssertion')], ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256']);
    assert.deepEqual(new Set(algorithmsFor('clientKey')), new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']));
  });

  it('the tokens.signingAlgorithm setting offers the keyring’s algorithms', () => {
    const tokens = ConfigSchema.properties.tokens.properties.signingAlgorithm;
    assert.deepEqual(
      tokens.anyOf.map((literal: { const: string }) => literal.const),
      [...SIGNING_ALGORITHMS],
    );
  });
});

describe('table invariants', () => {
  it('holds asymmetric algorithms only: no none, no HMAC, nothing unknown', () => {
    for (const name of ['none', 'None', 'HS256', 'HS384', 'HS512', 'RSA-OAEP', 'dir', '', 'constructor', '__proto__', 'toString']) {
      assert.equal(jwsAlgorithm(name), undefined, name);
      for (const use of USES) assert.equal(isAlgorithmFor(use, name), false, `${use} ${name}`);
    }
    for (const use of USES) assert.equal(isAlgorithmFor(use, undefined), false);
    for (const row of JWS_ALGORITHMS) assert.ok(['OKP', 'EC', 'RSA'].includes(row.kty), row.alg);
    assert.ok(Object.isFrozen(JWS_ALGORITHMS) && JWS_ALGORITHMS.every((row) => Object.isFrozen(row)));
    assert.ok(Object.isFrozen(SIGNING_ALGORITHMS));
  });

  it('numbers the keyring’s algorithms 1..n without a gap', () => {
    const ranks = JWS_ALGORITHMS.flatMap((row) => (row.keyring === undefined ? [] : [row.keyring])).sort((a, b) => a - b);
    assert.deepEqual(ranks, ranks.map((_, i) => i + 1));
  });

  it('lets every use rely on the one below it', () => {
    // A resource's access tokens and every ID token are signed by the keyring.
    assert.ok(subset(algorithmsFor('resourceToken'), SIGNING_ALGORITHMS));
    assert.ok(subset(ID_TOKEN_SIGNING_ALGORITHMS, SIGNING_ALGORITHMS));
    // What discovery advertises for client assertions is accepted, and a client may register a key for it.
    assert.ok(subset(algorithmsFor('advertisedForClientAssertion'), algorithmsFor('clientAssertion')));
    assert.ok(subset(algorithmsFor('clientAssertion'), algorithmsFor('clientKey')));
    assert.ok(subset(algorithmsFor('dpop'), algorithmsFor('clientKey')));
    // RFC 8414 / OIDC Discovery section 3: RS256 MUST be listed for ID tokens.
    assert.ok(SIGNING_ALGORITHMS.includes('RS256'));
  });

  it('chooses the at_hash hash of each algorithm (OIDC Core section 3.1.3.6), SHA-512 for Ed25519', () => {
    assert.equal(tokenHashAlgorithm('EdDSA'), 'sha512');
    assert.equal(tokenHashAlgorithm('ES256'), 'sha256');
    assert.equal(tokenHashAlgorithm('RS256'), 'sha256');
    assert.equal(tokenHashAlgorithm('PS256'), 'sha256');
    const token = 'an-access-token';
    const left = (hash: string) => createHash(hash).update(token).digest().subarray(0, hash === 'sha512' ? 32 : 16).toString('base64url');
    assert.equal(tokenHash(token, 'EdDSA'), left('sha512'));
    assert.equal(tokenHash(token, 'RS256'), left('sha256'));
  });
});

describe('what the table tells node:crypto', () => {
  for (const row of JWS_ALGORITHMS) {
    it(`${row.alg}: a generated key fits, node:crypto signs as JOSE specifies (jose verifies), a tampered signature fails`, async () => {
      const privateKey = await generateSigningKey(row.alg);
      assert.ok(keyFitsAlgorithm(row.alg, privateKey));
      const jwk = await exportJWK(privateKey);
      assert.equal(jwk.kty, row.kty);
      if (row.crv !== undefined) assert.equal(jwk.crv, row.crv);
      const kid = await calculateJwkThumbprint(jwk);
      const header = Buffer.from(JSON.stringify({ alg: row.alg, kid })).toString('base64url');
      const payload = Buffer.from(JSON.stringify({ sub: 'x' })).toString('base64url');
      const input = Buffer.from(`${header}.${payload}`, 'ascii');
      const { digest, key } = nodeSignParameters(row.alg, privateKey);
      const signature = sign(digest, input, key);
      const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e };
      const verified = await jwtVerify(`${header}.${payload}.${signature.toString('base64url')}`, await importJWK(publicJwk, row.alg), { algorithms: [row.alg] });
      assert.equal(verified.payload['sub'], 'x');
      // And the other way round: what jose signs, node:crypto verifies with the same parameters.
      const fromJose = await new SignJWT({ sub: 'y' }).setProtectedHeader({ alg: row.alg }).sign(privateKey);
      const [h, p, s] = fromJose.split('.') as [string, string, string];
      const publicParameters = nodeSignParameters(row.alg, createPublicKey({ key: publicJwk, format: 'jwk' }));
      assert.ok(verify(publicParameters.digest, Buffer.from(`${h}.${p}`), publicParameters.key, Buffer.from(s, 'base64url')));
      signature[signature.length - 1]! ^= 1;
      assert.ok(!verify(digest, input, nodeSignParameters(row.alg, privateKey).key, signature));
    });
  }

  it('refuses a key of another type, another curve, or a short RSA modulus (RFC 8725 section 3.1)', () => {
    const ed25519 = generateKeyPairSync('ed25519').privateKey;
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    assert.equal(keyFitsAlgorithm('EdDSA', p256), false);
    assert.equal(keyFitsAlgorithm('ES256', ed25519), false);
    assert.equal(keyFitsAlgorithm('ES256', p384), false);
    assert.equal(keyFitsAlgorithm('ES384', p384), true);
    assert.equal(keyFitsAlgorithm('RS256', rsa1024), false);
    assert.equal(keyFitsAlgorithm('PS256', p256), false);
  });
});
