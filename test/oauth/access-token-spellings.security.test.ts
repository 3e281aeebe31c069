/**
 * One access token, one accepted text (review of issue 11). The verified-token
 * cache is keyed by the token's text, and a revocation drops the cached
 * answers of its jti; so no second text of the same token may stay "live":
 * - a last base64url character with other unused bits decodes to the same
 *   signature: refused outright (RFC 4648 section 3.5, canonical encoding);
 * - an ECDSA signature (r, s) also verifies as (r, n - s): both texts are
 *   canonical, so a revocation must drop both cached answers.
 * The cache here keeps "not revoked" answers for 30 s, as while a
 * deployment-wide event bus is connected.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { AccessTokens } from '../../src/oauth/access-tokens.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The order of the P-256 group (SEC 2, section 2.4.2). */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function accessTokens(): AccessTokens {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyring = {
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey }),
    verificationKey: (kid: string) => (kid === 'k1' ? { kid, alg: 'ES256', publicKey } : undefined),
  };
  const clock = () => Date.now();
  return new AccessTokens({
    keyring: keyring as never,
    hot: openMemoryHotStore({ clock }),
    clock,
    issuer: 'https://idp.example',
    ttlSeconds: 600,
    defaultAlgorithm: 'ES256',
    revocationRecheckMs: () => 30_000,
  });
}

async function issue(tokens: AccessTokens): Promise<string> {
  return (await tokens.issue({ clientId: 'c1', subject: 'u1', grant: { type: 'authorization_code', userId: 'u1' }, scope: 'openid', audience: 'https://idp.example/userinfo' })).token;
}

it('a token whose last character carries other unused bits is not the token: refused, and the real one still works', async () => {
  const tokens = accessTokens();
  const token = await issue(tokens);
  // ES256 signatures are 64 bytes: 86 characters, the last holding 2 unused bits.
  const twin = token.slice(0, -1) + BASE64URL[BASE64URL.indexOf(token.at(-1)!) ^ 1]!;
  assert.notEqual(twin, token);
  assert.notEqual(await tokens.check(token), null);
  assert.equal(await tokens.check(twin), null);
  assert.equal(await tokens.decode(twin), null);
});

it('an ECDSA signature in its other form (n - s) is the same token: revoking it ends both cached texts at once', async () => {
  const tokens = accessTokens();
  const token = await issue(tokens);
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const bytes = Buffer.from(signature, 'base64url');
  const s = BigInt(`0x${bytes.subarray(32).toString('hex')}`);
  const flipped = Buffer.concat([bytes.subarray(0, 32), Buffer.from((P256_ORDER - s).toString(16).padStart(64, '0'), 'hex')]);
  const twin = `${header}.${payload}.${flipped.toString('base64url')}`;
  assert.notEqual(twin, token);
  // Both verify (node accepts either form), so both are cached as live.
  assert.notEqual(await tokens.check(token), null);
  assert.notEqual(await tokens.check(twin), null);

  await tokens.revoke((await tokens.decode(token))!);
  assert.equal(await tokens.check(token), null, 'the text that was revoked');
  assert.equal(await tokens.check(twin), null, 'and its other form, without waiting for the cache');
});
