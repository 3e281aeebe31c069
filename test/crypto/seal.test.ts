import { it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyVault, SEAL_PURPOSES, SealedSecretError, type SealPurpose } from '../../src/crypto/index.ts';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const vault = KeyVault.generate();
const secret = new TextEncoder().encode('PRIVATE+KEY+example');

/**
 * Values sealed under the master key 0x01..0x20 by the code before the
 * crypto core existed (282426e, tokens/sealed.ts), and for slots added
 * since, by the build that added them: deployments made then must still
 * open their sealed keys (same format, same HKDF info strings).
 */
const OLD_MASTER_KEY = new Uint8Array(32).map((_, i) => i + 1);
const SEALED_BY_282426E: Readonly<Record<SealPurpose, string>> = {
  'signing-keys': 'v1.pykFM0DXcvap7gR8.1dWYvRcnOIV58Ncgfuhj3LrAbRLyYPFDKK4J8oraFOm9eg.Qnvkbh1njbvKfBHmFKS3Jg',
  'audit-log-key': 'v1.5sqAfDkgz5ByyPyI.WUfxRYPA7j2gXdCl1xmZlsg-Or-XzgnOdzB1cgYzRq-z1rQ.ldk1zwLNfPK4v3Ra4Bi0vw',
  'totp-secret': 'v1.b2phr9REvRnt3aR_.UPMPvajEisrWT0HfEspYN1P8NLd_qOBn_F4PgV4HQVS8.Si6S8tBcnKE0lrSO881lQw',
  'refresh-successor': 'v1._DtJTitur63UeQGn.oOq_BPtDTvvcHdF42i4pZDbOo4KrAWvVMgcKkrrNqtx40nqWWLLr.yVcW4_qtapxC02h34MKrTw',
  /** The built-in CA's keys (service identity, after 2fca0d6). */
  'ca-keys': 'v1.L6GYmxRHQD9XsL7Q.B3k1lqhYgHj4Lt6Z1uFyHQf018BML6P7A-cRwcgm.7GnMsOOKQlg4u4EkUhy11w',
  /** A push receiver's Authorization header (security signals, after 0287b00). */
  'signals-push-authorization': 'v1.CRxIYGsi8il0l8I5.BNYodfgK7hXiqyKKZ-BvMak51qky8q_mOZPNUOLM16fK9_LtvhImgW_YIES8R4DQ8Q.qVO41xbvZ9d8J_DeM0CJ0w',
};
const SEALED_BY: Readonly<Record<SealPurpose, string>> = { 'signing-keys': '282426e', 'audit-log-key': '282426e', 'totp-secret': '282426e', 'refresh-successor': '282426e', 'ca-keys': '2fca0d6+', 'signals-push-authorization': '0287b00+' };

it('seals and opens a secret; the sealed text does not contain it', () => {
  const sealed = vault.seal('audit-log-key', secret);
  assert.ok(!sealed.includes(Buffer.from(secret).toString('base64url')));
  assert.deepEqual(vault.open('audit-log-key', sealed), secret);
  assert.notEqual(vault.seal('audit-log-key', secret), sealed, 'a fresh IV every time');
});

it('refuses another master key, another purpose, and any altered character', () => {
  const sealed = vault.seal('audit-log-key', secret);
  assert.throws(() => KeyVault.generate().open('audit-log-key', sealed), SealedSecretError);
  assert.throws(() => vault.open('signing-keys', sealed), SealedSecretError);
  for (let i = 3; i < sealed.length; i++) {
    if (sealed[i] === '.') continue;
    // Flip the top bit of the character's 6-bit value: the low bits of a
    // part's last character may be padding that decodes to the same bytes.
    const altered = sealed.slice(0, i) + BASE64URL[BASE64URL.indexOf(sealed[i]!) ^ 0b100000] + sealed.slice(i + 1);
    assert.throws(() => vault.open('audit-log-key', altered), SealedSecretError, `position ${i}`);
  }
  assert.throws(() => vault.open('audit-log-key', 'v1.abc'), SealedSecretError);
  assert.throws(() => vault.open('audit-log-key', `${sealed}.extra`), SealedSecretError);
  assert.throws(() => vault.open('audit-log-key', sealed.replace(/^v1/, 'v2')), SealedSecretError);
});

it('keeps the error messages operators see', () => {
  assert.throws(() => vault.open('signing-keys', 'v1.abc'), { name: 'SealedSecretError', message: 'not a sealed signing-keys value' });
  assert.throws(() => KeyVault.generate().open('signing-keys', vault.seal('signing-keys', secret)), {
    name: 'SealedSecretError',
    message: 'cannot open the sealed signing-keys value: wrong master key, or the value was altered',
  });
});

it('opens values sealed before the crypto core existed, in every slot, and only in their own slot', () => {
  const old = KeyVault.fromBytes(OLD_MASTER_KEY);
  assert.deepEqual(Object.keys(SEALED_BY_282426E).sort(), [...SEAL_PURPOSES].sort(), 'a test vector for every seal purpose');
  for (const purpose of SEAL_PURPOSES) {
    assert.equal(new TextDecoder().decode(old.open(purpose, SEALED_BY_282426E[purpose])), `sealed by ${SEALED_BY[purpose]} for ${purpose}`);
    const other = SEAL_PURPOSES.find((candidate) => candidate !== purpose)!;
    assert.throws(() => old.open(other, SEALED_BY_282426E[purpose]), SealedSecretError, `${purpose} does not open as ${other}`);
  }
});

it('refuses a seal purpose that is not in the list, even through a cast', () => {
  assert.throws(() => vault.seal('token-signing-key' as SealPurpose, secret), TypeError);
  assert.throws(() => vault.open('token-signing-key' as SealPurpose, vault.seal('signing-keys', secret)), TypeError);
});
