/**
 * The built-in CA's HTTP routes with a client we did not write: Debian's
 * openssl makes the CSRs (EC P-256, RSA 2048) and verifies what comes back
 * (the issued chain against /ca/bundle, the DER CRL at /ca/crl before and
 * after `ca revoke --reason keyCompromise`). Every refusal is problem+json
 * of its own type with nothing internal in it; a CSR mistake does not use
 * up the enrolment token, but the token is used exactly once however many
 * requests race for it. `ca prove` gives an inclusion proof that verifies
 * for the entry of the certificate's very DER; `ca list` finds it by
 * expiry, and by revocation once revoked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import canonicalize from 'canonicalize';
import { leafHash, verifyInclusion } from '../../src/audit/merkle/index.ts';
import { fromPem, toPem } from '../../src/pki/index.ts';
import { problemType, type ErrorCode } from '../../src/server/errors.ts';
import { TRUST_DOMAIN, caDeployment, type CaDeployment } from '../support/ca.ts';

const run = promisify(execFile);
const SVC = `spiffe://${TRUST_DOMAIN}/svc/openssl`;

/** openssl's stdout and stderr (it prints "verify OK" on stderr); fails the test with its message. */
async function openssl(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('openssl', args, { cwd, encoding: 'utf8' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl is missing: apt-get install -y openssl');
    throw new Error(`openssl ${args.join(' ')}: ${(error as { stderr?: string }).stderr ?? String(error)}`);
  }
}

describe('the CA routes with openssl', () => {
  let ca: CaDeployment;
  let dir: string;

  before(async () => {
    ca = await caDeployment('portcullis-ca-openssl-');
    await ca.start();
    dir = mkdtempSync(join(tmpdir(), 'portcullis-ca-openssl-'));
  });
  after(async () => {
    await ca?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** `openssl req` for a new key: `key` is ec (P-256) or rsa:BITS; `extensions` go in with -addext. */
  async function csr(name: string, key: string, extensions: string[]): Promise<string> {
    const keyArgs = key === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', key];
    await openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/', ...extensions.flatMap((extension) => ['-addext', extension])], dir);
    return readFileSync(join(dir, `${name}.csr`), 'utf8');
  }

  function sign(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${ca.url}/ca/sign`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  }

  async function bundle(): Promise<string> {
    const response = await fetch(`${ca.url}/ca/bundle`);
    assert.equal(response.status, 200);
    const text = await response.text();
    writeFileSync(join(dir, 'bundle.pem'), text);
    return text;
  }

  /** A refusal: the status, problem+json of exactly this type, and nothing internal in the body. */
  async function assertProblem(response: Response, code: ErrorCode, status: number): Promise<Record<string, unknown>> {
    const text = await response.text();
    assert.equal(response.status, status, text);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.equal(body['type'], problemType(code), text);
    assert.deepEqual(Object.keys(body).sort(), ['detail', 'request_id', 'status', 'title', 'type'], text);
    assert.doesNotMatch(text, /\bat [\w.<>]+ \(|node:|\/work\/|\/tmp\/|\.ts\b|SELECT|INSERT|sqlite|Error:/i, `nothing internal: ${text}`);
    return body;
  }

  let issuedSerial: string;
  let issuedDer: Buffer;

  it('issues for openssl CSRs (EC P-256 and RSA 2048) a chain that openssl verifies against /ca/bundle, for client and server use', async () => {
    await bundle();
    for (const [name, key] of [
      ['ec', 'ec'],
      ['rsa', 'rsa:2048'],
    ] as const) {
      const svc = `${SVC}-${name}`;
      const request = await csr(name, key, [`subjectAltName=URI:${svc},DNS:${name}.agent.test`]);
      const response = await sign({ csr: request, enrolment_token: await ca.token([svc, `dns:${name}.agent.test`]) });
      const chain = await response.text();
      assert.equal(response.status, 201, chain);
      assert.equal(response.headers.get('content-type'), 'application/pem-certificate-chain');
      const blocks = fromPem(chain, 'CERTIFICATE');
      assert.equal(blocks.length, 2, 'leaf and intermediate');
      writeFileSync(join(dir, `${name}.pem`), chain);
      for (const purpose of ['sslclient', 'sslserver']) {
        const verified = await openssl(['verify', '-purpose', purpose, '-CAfile', 'bundle.pem', `${name}.pem`], dir);
        assert.match(verified.stdout, new RegExp(`${name}\\.pem: OK`));
      }
      const leaf = new X509Certificate(blocks[0]!);
      assert.equal(leaf.serialNumber.toLowerCase().replace(/^(00)+/, ''), response.headers.get('x-certificate-serial'));
      assert.equal(leaf.validToDate.toISOString().slice(0, 19), response.headers.get('x-certificate-not-after')!.slice(0, 19));
      assert.equal(leaf.subjectAltName, `URI:${svc}, DNS:${name}.agent.test`);
      // The key of the CSR is the certificate's key.
      const { stdout: modulus } = await openssl(['x509', '-in', `${name}.pem`, '-noout', '-pubkey'], dir);
      const { stdout: requested } = await openssl(['req', '-in', `${name}.csr`, '-noout', '-pubkey'], dir);
      assert.equal(modulus, requested);
      if (name === 'ec') {
        issuedSerial = response.headers.get('x-certificate-serial')!;
        issuedDer = blocks[0]!;
      }
    }
  });

  it('refuses what policy forbids, each as problem+json of its own type; the CSR mistakes leave the token usable', async () => {
    const token = await ca.token([`${SVC}-refusals`, 'dns:ok.agent.test']);
    const good = `subjectAltName=URI:${SVC}-refusals,DNS:ok.agent.test`;
    const flipped = async () => {
      const der = fromPem(await csr('flip', 'ec', [good]), 'CERTIFICATE REQUEST')[0]!;
      // The last byte lies inside the signature's last INTEGER: the CSR still parses, its signature no longer verifies.
      der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1);
      return toPem('CERTIFICATE REQUEST', der);
    };
    const cases: { what: string; csr: () => Promise<string>; code: ErrorCode; status: number }[] = [
      { what: 'a CA', csr: () => csr('ca', 'ec', [good, 'basicConstraints=critical,CA:TRUE']), code: 'ca_requested', status: 403 },
      { what: 'two URI SANs', csr: () => csr('two', 'ec', [`subjectAltName=URI:${SVC}-refusals,URI:${SVC}-other`]), code: 'multiple_uri_sans', status: 400 },
      { what: 'RSA 1024', csr: () => csr('rsa1024', 'rsa:1024', [good]), code: 'weak_key', status: 400 },
      { what: 'a name outside the token', csr: () => csr('outside', 'ec', [`subjectAltName=URI:${SVC}-refusals,DNS:other.agent.test`]), code: 'name_not_permitted', status: 403 },
      { what: 'a bad signature', csr: flipped, code: 'bad_csr_signature', status: 400 },
    ];
    for (const item of cases) {
      const body = await assertProblem(await sign({ csr: await item.csr(), enrolment_token: token }), item.code, item.status);
      assert.equal(typeof body['detail'], 'string', item.what);
    }
    const issued = await sign({ csr: await csr('after-refusals', 'ec', [good]), enrolment_token: token });
    assert.equal(issued.status, 201, 'the token was not used up by the refused CSRs');
  });

  it('refuses a request without credentials (401) and an access token without ca:issue (403 insufficient-scope)', async () => {
    const request = await csr('noauth', 'ec', [`subjectAltName=URI:${SVC}-noauth`]);
    const missing = await sign({ csr: request });
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer realm="portcullis-ca"/);
    await assertProblem(missing, 'unauthorized', 401);

    const api = `${ca.url}/api`;
    assert.equal((await ca.cli(['resource', 'create', '--uri', api, '--scope', 'api:read'])).code, 0);
    const { clientId, secret } = await ca.client([`${SVC}-noauth`], 'api:read');
    const tokenResponse = await fetch(`${ca.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read' }).toString(),
    });
    assert.equal(tokenResponse.status, 200);
    const { access_token: accessToken } = (await tokenResponse.json()) as { access_token: string };
    const insufficient = await sign({ csr: request }, { authorization: `Bearer ${accessToken}` });
    assert.match(insufficient.headers.get('www-authenticate') ?? '', /error="insufficient_scope", scope="ca:issue"/);
    await assertProblem(insufficient, 'insufficient_scope', 403);
  });

  it('issues exactly once for one enrolment token when ten requests race', async () => {
    const token = await ca.token([`${SVC}-race`]);
    const request = await csr('race', 'ec', [`subjectAltName=URI:${SVC}-race`]);
    const responses = await Promise.all(Array.from({ length: 10 }, () => sign({ csr: request, enrolment_token: token })));
    const statuses = responses.map((response) => response.status).sort();
    assert.deepEqual(statuses, [201, 401, 401, 401, 401, 401, 401, 401, 401, 401]);
    for (const response of responses.filter((item) => item.status === 401)) {
      const body = await assertProblem(response, 'unauthorized', 401);
      assert.equal(body['detail'], 'This enrolment token was already used.');
    }
    assert.equal((await ca.cli(['ca', 'list', '--json'])).out.join('\n').match(new RegExp(`${SVC}-race"`, 'g'))!.length, 1);
  });

  it('ca prove gives an inclusion proof that verifies, for the entry of exactly the issued DER; ca list --expiring finds it', async () => {
    const proved = await ca.cli(['ca', 'prove', issuedSerial]);
    assert.equal(proved.code, 0, proved.err.join('\n'));
    const proof = JSON.parse(proved.out.join('\n')) as { serial: string; treeSize: number; checkpoint: string; entries: { index: number; entry: { type: string; detail: Record<string, string> }; leafHash: string; proof: string[] }[] };
    assert.equal(proof.serial, issuedSerial);
    // C2SP tlog-checkpoint: origin, tree size, base64 root hash.
    const [, size, root] = proof.checkpoint.split('\n');
    assert.equal(Number(size), proof.treeSize);
    const issuedEntry = proof.entries.find((item) => item.entry.type === 'certificate.issued');
    assert.ok(issuedEntry !== undefined);
    assert.equal(issuedEntry.entry.detail['sha256'], createHash('sha256').update(issuedDer).digest('hex'));
    assert.equal(issuedEntry.entry.detail['spiffeId'], `${SVC}-ec`);
    const hash = Buffer.from(issuedEntry.leafHash, 'base64');
    assert.deepEqual(Buffer.from(leafHash(Buffer.from(canonicalize(issuedEntry.entry)!))), hash, 'the leaf hash is the hash of that entry');
    assert.ok(verifyInclusion(hash, issuedEntry.index, proof.treeSize, issuedEntry.proof.map((node) => Buffer.from(node, 'base64')), Buffer.from(root!, 'base64')));
    assert.ok(!verifyInclusion(hash, issuedEntry.index, proof.treeSize, issuedEntry.proof.map((node) => Buffer.from(node, 'base64')), createHash('sha256').update('another root').digest()));

    const expiring = await ca.cli(['ca', 'list', '--expiring', '48h']);
    assert.match(expiring.out.join('\n'), new RegExp(`^${issuedSerial}  \\S+  valid +${SVC}-ec  dns:ec\\.agent\\.test$`, 'm'));
    assert.doesNotMatch((await ca.cli(['ca', 'list', '--expiring', '1h'])).out.join('\n'), new RegExp(issuedSerial));
    assert.doesNotMatch((await ca.cli(['ca', 'list', '--revoked'])).out.join('\n'), new RegExp(issuedSerial));
  });

  it('/ca/crl is a DER CRL that openssl verifies against the bundle, before and after ca revoke --reason keyCompromise', async () => {
    const fetchCrl = async (file: string) => {
      const response = await fetch(`${ca.url}/ca/crl`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/pkix-crl');
      writeFileSync(join(dir, file), Buffer.from(await response.arrayBuffer()));
      const verified = await openssl(['crl', '-inform', 'DER', '-in', file, '-CAfile', 'bundle.pem', '-noout', '-verify'], dir);
      assert.match(verified.stderr, /verify OK/);
      return (await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text'], dir)).stdout;
    };
    const before = await fetchCrl('before.crl');
    assert.match(before, /No Revoked Certificates/);
    const beforeNumber = Number.parseInt(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(before)![1]!, 10);

    const revoked = await ca.cli(['ca', 'revoke', issuedSerial, '--reason', 'keyCompromise']);
    assert.deepEqual(revoked.out, [`revoked ${issuedSerial} (keyCompromise)`]);
    // The server re-reads CA records every second; this test does not wait for that.
    await ca.running.runtime.get('pki').authority.refresh();

    const text = await fetchCrl('after.crl');
    const entry = new RegExp(`Serial Number: ${issuedSerial.toUpperCase()}\\s*\\n\\s*Revocation Date: [^\\n]+\\n\\s*CRL entry extensions:\\s*\\n\\s*X509v3 CRL Reason Code:\\s*\\n\\s*Key Compromise`);
    assert.match(text, entry);
    assert.ok(Number.parseInt(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)![1]!, 10) > beforeNumber);

    const listed = await ca.cli(['ca', 'list', '--revoked']);
    assert.match(listed.out.join('\n'), new RegExp(`^${issuedSerial}  \\S+  revoked \\S+ \\(keyCompromise\\)  ${SVC}-ec`, 'm'));
    assert.doesNotMatch((await ca.cli(['ca', 'list', '--expiring', '48h'])).out.join('\n'), new RegExp(issuedSerial));
    const provedAgain = JSON.parse((await ca.cli(['ca', 'prove', issuedSerial])).out.join('\n')) as { entries: { entry: { type: string } }[] };
    assert.deepEqual(provedAgain.entries.map((item) => item.entry.type), ['certificate.issued', 'certificate.revoked']);
  });
});
