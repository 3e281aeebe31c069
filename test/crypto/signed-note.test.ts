/**
 * The signed-note primitive as the crypto core offers it (the format's own
 * conformance tests, against golang.org/x/mod/sumdb/note vectors, are in
 * test/audit/checkpoint.test.ts), and the audit log key built on the vault.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  KeyVault,
  NoteError,
  SealedSecretError,
  createSealedLogKey,
  generateSignerKey,
  openNote,
  openSealedLogKey,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from '../../src/crypto/index.ts';

/** An audit log key record as 282426e (audit/log-key.ts) stored it, under the master key 0x01..0x20. */
const LOG_KEY_BY_282426E = {
  verifierKey: 'id.example.com/audit+df59a246+AVPWTUGE4Gz61afnWGCDDXSuQx/Dy14yhqfcfWIIilMI',
  sealedSignerKey:
    'v1.AQQQtia5xTGLURnI.K3CP_tWZsFyQko4ke7fHj4sdBeEiB_5_9eIifq7CS0ouDcxV9NCM2H6Tsv_6BqO5Scv-OcjTNyf5BlQXXT9yyy1juatByguoTyPEYZhJYZ9tfMttLY8.uMa_aWiDHYjOfLwlo86iVA',
};

it('signs a note body with a named key and verifies it with the key id', () => {
  const key = generateSignerKey('log.example/one');
  const signer = parseSignerKey(key.signerKey);
  const verifier = parseVerifierKey(key.verifierKey);
  assert.equal(signer.keyId, verifier.keyId);
  const note = signNote('body\n', [signer]);
  assert.equal(openNote(note, [verifier]).text, 'body\n');
  const other = parseVerifierKey(generateSignerKey('log.example/one').verifierKey);
  assert.throws(() => openNote(note, [other]), (error: unknown) => error instanceof NoteError && error.code === 'unverified_note');
  const tampered = note.replace('body', 'bodY');
  assert.throws(() => openNote(tampered, [verifier]), (error: unknown) => error instanceof NoteError && error.code === 'invalid_signature');
});

it('makes a log key whose secret half is only sealed, and opens it into a signer', () => {
  const vault = KeyVault.generate();
  const sealed = createSealedLogKey(vault, 'id.example.com/audit');
  assert.ok(!sealed.sealedSignerKey.includes('PRIVATE'));
  const signer = openSealedLogKey(vault, sealed.sealedSignerKey);
  assert.equal(signer.verifierKey, sealed.verifierKey);
  assert.ok(!inspect(signer, { showHidden: true }).includes('PRIVATE'), 'the signer shows no key');
  assert.equal(openNote(signNote('tree\n', [signer]), [parseVerifierKey(sealed.verifierKey)]).text, 'tree\n');
  assert.throws(() => openSealedLogKey(KeyVault.generate(), sealed.sealedSignerKey), SealedSecretError);
});

it('opens a log key sealed before the crypto core existed', () => {
  const signer = openSealedLogKey(KeyVault.fromBytes(new Uint8Array(32).map((_, i) => i + 1)), LOG_KEY_BY_282426E.sealedSignerKey);
  assert.equal(signer.verifierKey, LOG_KEY_BY_282426E.verifierKey);
  assert.equal(signer.name, 'id.example.com/audit');
  assert.equal(openNote(signNote('checkpoint\n', [signer]), [parseVerifierKey(LOG_KEY_BY_282426E.verifierKey)]).verified.length, 1);
});
