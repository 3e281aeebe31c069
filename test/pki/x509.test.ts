/**
 * X.509 building and parsing against Debian's openssl: CSRs openssl makes
 * parse (names, key kind, the exact SubjectPublicKeyInfo); certificates we
 * build read back in openssl with the key usage their key kind needs; every
 * CSR the policy must not take is refused with its own code (weak keys, a
 * broken self-signature, malformed or ambiguous input, a request to be a
 * CA); PEM round-trips both ways.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CertificateRequestError, type RequestRefusal } from '../../src/pki/index.ts';
import { grantNames } from '../../src/pki/policy.ts';
import { buildCertificate, certificateFacts, distinguishedName, newSerial } from '../../src/pki/x509/certificate.ts';
import { parseCertificateRequest } from '../../src/pki/x509/csr.ts';
import { fromPem, toPem } from '../../src/pki/x509/pem.ts';
import { Openssl } from './openssl.ts';

const TD = 'id.example.com';
const ID = `spiffe://${TD}/ns/prod/sa/orders`;

function refusedWith(code: RequestRefusal): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof CertificateRequestError, `expected a CertificateRequestError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

/** The DER of the first CSR block in `pem`. */
function der(pem: string): Buffer {
  const blocks = fromPem(pem, 'CERTIFICATE REQUEST');
  assert.equal(blocks.length, 1);
  return blocks[0]!;
}

describe('x509 against openssl', () => {
  let ssl: Openssl;
  before(() => {
    ssl = new Openssl();
  });
  after(() => ssl.close());

  async function spkiOf(keyPath: string): Promise<Buffer> {
    const out = ssl.path('pub.der');
    await ssl.ok(['pkey', '-in', keyPath, '-pubout', '-outform', 'DER', '-out', out]);
    return readFileSync(out);
  }

  it('parses an openssl CSR with SANs: its names, its key kind and the exact SubjectPublicKeyInfo', async () => {
    const { keyPath, csr } = await ssl.request('ec-p256', [`URI:${ID}`, 'DNS:orders.internal', 'DNS:orders.prod.internal', 'IP:10.0.0.7', 'IP:2001:db8::1']);
    const parsed = parseCertificateRequest(csr);
    assert.equal(parsed.publicKey.kind, 'ec-p256');
    assert.deepEqual(parsed.names.uris, [ID]);
    assert.deepEqual(parsed.names.dns, ['orders.internal', 'orders.prod.internal']);
    assert.deepEqual(parsed.names.ips, ['10.0.0.7', '2001:db8::1']);
    assert.deepEqual(parsed.names.emails, []);
    assert.equal(parsed.names.other, 0);
    assert.equal(parsed.asksForCa, false);
    assert.deepEqual(parsed.spki, await spkiOf(keyPath), 'the certificate will carry the key openssl made, byte for byte');
    // DER in, the same answer.
    assert.deepEqual(parseCertificateRequest(der(csr)).names, parsed.names);
  });

  it('reads the key kind of P-384, RSA 2048 and Ed25519 CSRs', async () => {
    for (const [kind, expected] of [
      ['ec-p384', 'ec-p384'],
      ['rsa-2048', 'rsa'],
      ['ed25519', 'ed25519'],
    ] as const) {
      const { keyPath, csr } = await ssl.request(kind, [`URI:${ID}`]);
      const parsed = parseCertificateRequest(csr);
      assert.equal(parsed.publicKey.kind, expected, kind);
      assert.deepEqual(parsed.spki, await spkiOf(keyPath), kind);
      assert.deepEqual(grantNames(parsed, [ID], TD), { spiffeId: ID, dns: [], ips: [] }, kind);
    }
  });

  it('a certificate for an RSA key has keyEncipherment, one for an EC or Ed25519 key only digitalSignature (openssl reads them)', async () => {
    const issuerPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const issuerSpki = issuerPair.publicKey.export({ type: 'spki', format: 'der' });
    const issuerFacts = certificateFacts(
      buildCertificate({ serial: newSerial(), subject: distinguishedName([['CN', 'test issuer']]), spki: issuerSpki, notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000), profile: { kind: 'root' }, selfKey: issuerPair.privateKey }),
    );
    const issuer = { subject: distinguishedName([['CN', 'test issuer']]), keyId: issuerFacts.keyId!, privateKey: issuerPair.privateKey };
    const usages: Record<string, string> = {};
    for (const kind of ['rsa-2048', 'ec-p256', 'ed25519'] as const) {
      const { csr } = await ssl.request(kind, [`URI:${ID}`]);
      const parsed = parseCertificateRequest(csr);
      const certificate = buildCertificate({
        serial: newSerial(),
        subject: distinguishedName([]),
        spki: parsed.spki,
        notBefore: new Date(),
        notAfter: new Date(Date.now() + 3_600_000),
        issuer,
        profile: { kind: 'workload', names: { uris: [ID], dns: [], ips: [] }, keyKind: parsed.publicKey.kind },
      });
      const text = await ssl.text(toPem('CERTIFICATE', certificate));
      const match = /X509v3 Key Usage: critical\n\s+(.+)\n/.exec(text);
      assert.ok(match, text);
      usages[kind] = match[1]!.trim();
    }
    assert.deepEqual(usages, { 'rsa-2048': 'Digital Signature, Key Encipherment', 'ec-p256': 'Digital Signature', ed25519: 'Digital Signature' });
  });

  it('refuses an RSA 1024 key and a secp256k1 key as weak_key', async () => {
    for (const kind of ['rsa-1024', 'secp256k1'] as const) {
      const { csr } = await ssl.request(kind, [`URI:${ID}`]);
      assert.throws(() => parseCertificateRequest(csr), refusedWith('weak_key'), kind);
    }
  });

  it('refuses a CSR whose signature or signed content was changed: bad_csr_signature', async () => {
    for (const kind of ['ec-p256', 'rsa-2048', 'ed25519'] as const) {
      const { csr } = await ssl.request(kind, [`URI:${ID}`]);
      const bytes = der(csr);
      assert.doesNotThrow(() => parseCertificateRequest(bytes), kind);
      // The last byte is inside the signature value.
      const flipped = Buffer.from(bytes);
      flipped[flipped.length - 1]! ^= 0x01;
      assert.throws(() => parseCertificateRequest(flipped), refusedWith('bad_csr_signature'), `${kind}: signature byte flipped`);
      assert.throws(() => parseCertificateRequest(toPem('CERTIFICATE REQUEST', flipped)), refusedWith('bad_csr_signature'), `${kind}: as PEM`);
      if (kind === 'ec-p256') {
        // The ECDSA signature is itself DER (a SEQUENCE of r and s): a broken one is a bad signature, not a crash.
        const broken = Buffer.from(bytes);
        broken[bytes.lastIndexOf(Buffer.from([0x00, 0x30])) + 1] = 0x31;
        assert.throws(() => parseCertificateRequest(broken), refusedWith('bad_csr_signature'), 'ECDSA signature not a SEQUENCE');
      }
      // The same length of name, another workload: the signature no longer covers what is asked.
      const at = bytes.indexOf(Buffer.from('/sa/orders'));
      assert.ok(at > 0);
      const renamed = Buffer.from(bytes);
      renamed.write('/sa/evilco', at, 'latin1');
      assert.ok(renamed.includes(`spiffe://${TD}/ns/prod/sa/evilco`) && !renamed.includes('/sa/orders'), 'the edit is where the name is');
      assert.throws(() => parseCertificateRequest(renamed), refusedWith('bad_csr_signature'), `${kind}: name changed`);
    }
  });

  it('refuses garbage, a certificate, a key and PEM with two CSR blocks as malformed_csr', async () => {
    const { keyPath, csr } = await ssl.request('ec-p256', [`URI:${ID}`]);
    const other = await ssl.csr(keyPath, { sans: [`URI:${ID}-2`] });
    const selfSigned = await ssl.ok(['req', '-x509', '-key', keyPath, '-subj', '/CN=x', '-days', '1']);
    const inputs: Array<[string, string | Uint8Array]> = [
      ['empty string', ''],
      ['garbage text', 'hello, CA'],
      ['garbage bytes', Buffer.from('3082ffff0000', 'hex')],
      ['empty bytes', new Uint8Array()],
      ['two CSR blocks', csr + other],
      ['two copies of one block', csr + csr],
      ['a certificate', selfSigned],
      ['a private key', readFileSync(keyPath, 'utf8')],
      ['truncated DER', der(csr).subarray(0, 40)],
      ['bad base64 inside the block', csr.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1*')],
      ['oversized', 'A'.repeat(200_000)],
    ];
    for (const [what, input] of inputs) assert.throws(() => parseCertificateRequest(input), refusedWith('malformed_csr'), what);
  });

  it('refuses a CSR asking to be a CA: basicConstraints CA:TRUE, keyUsage keyCertSign, keyUsage cRLSign (ca_requested)', async () => {
    const key = await ssl.key('ec-p256');
    for (const ask of ['basicConstraints=critical,CA:TRUE', 'basicConstraints=CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign', 'keyUsage=digitalSignature,cRLSign']) {
      const csr = await ssl.csr(key, { sans: [`URI:${ID}`], addext: [ask] });
      const parsed = parseCertificateRequest(csr);
      assert.equal(parsed.asksForCa, true, ask);
      assert.throws(() => grantNames(parsed, [ID], TD), refusedWith('ca_requested'), ask);
    }
    // The end-entity forms of the same extensions are fine: the check reads the bits, not the presence.
    for (const plain of ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment']) {
      const parsed = parseCertificateRequest(await ssl.csr(key, { sans: [`URI:${ID}`], addext: [plain] }));
      assert.equal(parsed.asksForCa, false, plain);
      assert.deepEqual(grantNames(parsed, [ID], TD).spiffeId, ID, plain);
    }
  });

  it('refuses a CSR signed with SHA-1 (unsupported_algorithm)', async () => {
    const key = await ssl.key('rsa-2048');
    const out = ssl.path('sha1.csr');
    await ssl.ok(['req', '-new', '-sha1', '-key', key, '-subj', '/CN=x', '-addext', `subjectAltName=URI:${ID}`, '-out', out]);
    assert.throws(() => parseCertificateRequest(readFileSync(out, 'utf8')), refusedWith('unsupported_algorithm'));
  });

  it('PEM round trip: openssl reads what toPem writes, fromPem reads what openssl writes, CRLF included', async () => {
    const { csr } = await ssl.request('ec-p256', [`URI:${ID}`]);
    const bytes = der(csr);
    const written = toPem('CERTIFICATE REQUEST', bytes);
    assert.ok(written.split('\n').every((line) => line.length <= 64), 'lines of at most 64 characters (RFC 7468)');
    assert.deepEqual(fromPem(written, 'CERTIFICATE REQUEST'), [bytes]);
    // openssl re-encodes what it read from our PEM to the same DER.
    const out = ssl.path('again.der');
    await ssl.ok(['req', '-in', ssl.file('ours.csr', written), '-outform', 'DER', '-out', out]);
    assert.deepEqual(readFileSync(out), bytes);
    assert.deepEqual(fromPem(csr.replace(/\n/g, '\r\n'), 'CERTIFICATE REQUEST'), [bytes], 'CRLF line ends');
    assert.deepEqual(fromPem(`text before\n${csr}text after\n`, 'CERTIFICATE REQUEST'), [bytes], 'explanatory text around the block');
    assert.deepEqual(fromPem(csr, 'CERTIFICATE'), [], 'another label is not this one');
    // A block with a character outside base64 is not a block; one whose base64 does not decode to what it says is an error.
    assert.deepEqual(fromPem(csr.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1*'), 'CERTIFICATE REQUEST'), []);
    assert.throws(() => fromPem(csr.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1='), 'CERTIFICATE REQUEST'), TypeError);
  });
});
