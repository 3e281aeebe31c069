import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SealedSecretError, openSecret, sealSecret } from '../../src/tokens/index.ts';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const masterKey = new Uint8Array(randomBytes(32));
const secret = new TextEncoder().encode('PRIVATE+KEY+example');

it('seals and opens a secret; the sealed text does not contain it', () => {
  const sealed = sealSecret(masterKey, 'audit-log-key', secret);
  assert.ok(!sealed.includes(Buffer.from(secret).toString('base64url')));
  assert.deepEqual(openSecret(masterKey, 'audit-log-key', sealed), secret);
  assert.notEqual(sealSecret(masterKey, 'audit-log-key', secret), sealed, 'a fresh IV every time');
});

it('refuses another master key, another purpose, and any altered character', () => {
  const sealed = sealSecret(masterKey, 'audit-log-key', secret);
  assert.throws(() => openSecret(new Uint8Array(randomBytes(32)), 'audit-log-key', sealed), SealedSecretError);
  assert.throws(() => openSecret(masterKey, 'token-signing-key', sealed), SealedSecretError);
  for (let i = 3; i < sealed.length; i++) {
    if (sealed[i] === '.') continue;
    // Flip the top bit of the character's 6-bit value: the low bits of a
    // part's last character may be padding that decodes to the same bytes.
    const altered = sealed.slice(0, i) + BASE64URL[BASE64URL.indexOf(sealed[i]!) ^ 0b100000] + sealed.slice(i + 1);
    assert.throws(() => openSecret(masterKey, 'audit-log-key', altered), SealedSecretError, `position ${i}`);
  }
  assert.throws(() => openSecret(masterKey, 'audit-log-key', 'v1.abc'), SealedSecretError);
});
