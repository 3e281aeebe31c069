import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, verify } from 'node:crypto';
import { SignatureError, formatPublicKey, generateSigningKey, parsePublicKey, parseSecretKey, publicKeyLine, signMessage, verifyMessage } from '../../src/plugins/index.ts';

/**
 * A signature made by minisign itself (the example of jedisct1's
 * rust-minisign-verify crate, over the four bytes "test"), with the key
 * minisign's own releases are signed with (key id E7620F1842B4E81F).
 */
const MINISIGN_PUBLIC_KEY = 'RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3';
const MINISIGN_SIGNATURE = [
  'untrusted comment: signature from minisign secret key',
  'RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=',
  'trusted comment: timestamp:1555779966\tfile:test',
  'QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==',
  '',
].join('\n');

/** A fixed key (PKCS#8 of the seed 00 01 .. 1f), so the vectors below are reproducible. */
/** A deterministic Ed25519 key (seed 0x00..0x1f), kept in test/fixtures: same signatures every run. */
const SEED_PEM = readFileSync(new URL('../fixtures/plugins/seed-ed25519.pem', import.meta.url), 'utf8');
const DIGEST = Buffer.from('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', 'latin1');

function refused(message: Uint8Array, signature: string, publicKeyText: string, pattern: RegExp): void {
  assert.throws(() => verifyMessage(message, signature, parsePublicKey(publicKeyText)), (error: unknown) => error instanceof SignatureError && pattern.test(error.message));
}

/** The signature file with byte `index` of its base64 line `line` flipped. */
function flipLineByte(signature: string, line: number, index: number): string {
  const lines = signature.split('\n');
  const bytes = Buffer.from(lines[line]!, 'base64');
  bytes[index]! ^= 0x01;
  lines[line] = bytes.toString('base64');
  return lines.join('\n');
}

describe('minisign signatures', () => {
  it('verifies a signature made by minisign', () => {
    const verified = verifyMessage(Buffer.from('test'), MINISIGN_SIGNATURE, parsePublicKey(MINISIGN_PUBLIC_KEY));
    assert.deepEqual(verified, { keyId: 'E7620F1842B4E81F', algorithm: 'Ed', trustedComment: 'timestamp:1555779966\tfile:test' });
    refused(Buffer.from('test\n'), MINISIGN_SIGNATURE, MINISIGN_PUBLIC_KEY, /signature does not match/);
    refused(Buffer.from('test'), MINISIGN_SIGNATURE.replace('file:test', 'file:tesT'), MINISIGN_PUBLIC_KEY, /global signature does not match/);
  });

  it('writes keys minisign reads: "Ed", the key id, the raw public key; the id printed as minisign prints it', () => {
    const secret = parseSecretKey(SEED_PEM);
    const file = formatPublicKey(secret.publicKey);
    const line = publicKeyLine(secret.publicKey);
    assert.match(line, /^RW[A-Za-z0-9+/]{54}$/);
    const bytes = Buffer.from(line, 'base64');
    assert.equal(bytes.subarray(0, 2).toString('latin1'), 'Ed');
    assert.deepEqual(bytes.subarray(2, 10), Buffer.from(secret.keyId));
    // The key id is the first 8 bytes of SHA-256(public key), printed as a little-endian number.
    assert.deepEqual(Buffer.from(secret.keyId), createHash('sha256').update(bytes.subarray(10)).digest().subarray(0, 8));
    assert.equal(file, `untrusted comment: minisign public key ${Buffer.from(secret.keyId).reverse().toString('hex').toUpperCase()}\n${line}\n`);
    assert.deepEqual(Buffer.from(parsePublicKey(file).keyId), Buffer.from(secret.keyId));
    assert.deepEqual(Buffer.from(parsePublicKey(line).keyId), Buffer.from(secret.keyId));
  });

  it('signs "Ed" over the message and "ED" over its BLAKE2b-512, the global signature over signature || trusted comment', () => {
    const secret = parseSecretKey(SEED_PEM);
    for (const prehash of [false, true]) {
      const file = signMessage(DIGEST, secret, { trustedComment: 'timestamp:1700000000\tfile:acme-claims.tgz', prehash });
      const [untrusted, signatureLine, trusted, globalLine] = file.split('\n');
      assert.match(untrusted!, /^untrusted comment: /);
      assert.equal(trusted, 'trusted comment: timestamp:1700000000\tfile:acme-claims.tgz');
      const bytes = Buffer.from(signatureLine!, 'base64');
      assert.equal(bytes.subarray(0, 2).toString('latin1'), prehash ? 'ED' : 'Ed');
      const signature = bytes.subarray(10);
      const signed = prehash ? createHash('blake2b512').update(DIGEST).digest() : DIGEST;
      assert.equal(verify(null, signed, secret.publicKey.key, signature), true);
      assert.equal(verify(null, Buffer.concat([signature, Buffer.from('timestamp:1700000000\tfile:acme-claims.tgz')]), secret.publicKey.key, Buffer.from(globalLine!, 'base64')), true);
      assert.equal(verifyMessage(DIGEST, file, secret.publicKey).algorithm, prehash ? 'ED' : 'Ed');
    }
  });

  it('refuses a flipped byte of the message, the signature, the global signature or the trusted comment', () => {
    const secret = parseSecretKey(SEED_PEM);
    const publicKey = formatPublicKey(secret.publicKey);
    for (const prehash of [false, true]) {
      const file = signMessage(DIGEST, secret, { trustedComment: 'timestamp:1700000000', prehash });
      const message = Buffer.from(DIGEST);
      message[5]! ^= 0x01;
      refused(message, file, publicKey, /signature does not match/);
      refused(DIGEST, flipLineByte(file, 1, 40), publicKey, /signature does not match/);
      refused(DIGEST, flipLineByte(file, 3, 0), publicKey, /global signature does not match/);
      refused(DIGEST, file.replace('timestamp:1700000000', 'timestamp:1700000001'), publicKey, /global signature does not match/);
      // The untrusted comment is not covered, as in minisign.
      assert.doesNotThrow(() => verifyMessage(DIGEST, file.replace(/^untrusted comment: .*$/m, 'untrusted comment: anything'), secret.publicKey));
    }
  });

  it('refuses another key, and a signature whose key id is not the key\'s', () => {
    const secret = parseSecretKey(SEED_PEM);
    const file = signMessage(DIGEST, secret, { trustedComment: 't' });
    const other = generateSigningKey();
    refused(DIGEST, file, other.publicKeyFile, /signed by key [0-9A-F]{16}, not by [0-9A-F]{16}/);
    // The other key with this key's id: the key ids match, the signature does not.
    const impostor = Buffer.from(publicKeyLine(parsePublicKey(other.publicKeyFile)), 'base64');
    Buffer.from(secret.keyId).copy(impostor, 2);
    refused(DIGEST, file, impostor.toString('base64'), /signature does not match/);
    // A wrong key id in the signature: refused before any curve arithmetic.
    refused(DIGEST, flipLineByte(file, 1, 3), formatPublicKey(secret.publicKey), /signed by key/);
  });

  it('refuses malformed signature files and keys', () => {
    const secret = parseSecretKey(SEED_PEM);
    const publicKey = formatPublicKey(secret.publicKey);
    const file = signMessage(DIGEST, secret, { trustedComment: 't' });
    const lines = file.split('\n');
    refused(DIGEST, lines.slice(0, 3).join('\n'), publicKey, /four lines/);
    refused(DIGEST, file.replace('untrusted comment:', 'comment:'), publicKey, /untrusted comment/);
    refused(DIGEST, file.replace('trusted comment: t', 'comment: t'), publicKey, /trusted comment/);
    refused(DIGEST, [lines[0], `${lines[1]}!`, lines[2], lines[3]].join('\n'), publicKey, /not base64/);
    refused(DIGEST, [lines[0], lines[1]!.slice(0, -4), lines[2], lines[3]].join('\n'), publicKey, /bytes, not 74/);
    const otherAlgorithm = Buffer.from(lines[1]!, 'base64');
    otherAlgorithm.write('Xd', 0, 'latin1');
    refused(DIGEST, [lines[0], otherAlgorithm.toString('base64'), lines[2], lines[3]].join('\n'), publicKey, /not Ed25519/);
    assert.throws(() => parsePublicKey('RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7'), /bytes, not 42/);
    assert.throws(() => parsePublicKey(`comment\n${MINISIGN_PUBLIC_KEY}`), /untrusted comment/);
    const notEd = Buffer.from(MINISIGN_PUBLIC_KEY, 'base64');
    notEd.write('ED', 0, 'latin1');
    assert.throws(() => parsePublicKey(notEd.toString('base64')), /no "Ed" prefix/);
    assert.throws(() => parseSecretKey('not a key'), /PKCS#8/);
    assert.throws(() => signMessage(DIGEST, secret, { trustedComment: 'two\nlines' }), /one line/);
  });

  it('refuses a secret key that is not Ed25519', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.throws(() => parseSecretKey(pem), /ec, not Ed25519/);
  });
});
