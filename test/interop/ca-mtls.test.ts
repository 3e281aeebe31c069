/**
 * The built-in CA and the mTLS listener together, driven by tools nobody
 * here wrote: Debian's openssl (req, s_client, verify, crl) and curl. A real
 * deployment (`portcullis init`, `portcullis ca init`) serves with
 * `tls.mtlsPort`; its listener certificate comes from its own CA.
 *
 * - a certificate issued for an openssl CSR opens the mTLS listener with
 *   `openssl s_client`; no certificate, and a foreign CA's, do not;
 * - curl does an RFC 8705 tls_client_auth client_credentials grant on the
 *   mTLS listener, gets a token bound to its certificate, and with that
 *   token has a certificate issued (POST /ca/sign); the same token over
 *   another certificate is refused;
 * - curl renews over mTLS (POST /ca/renew): same SPIFFE ID, new serial;
 * - `portcullis ca revoke` (another process) closes an open connection of
 *   the revoked certificate and refuses its next handshake, also after
 *   `portcullis ca rotate`; `openssl crl -verify` lists it; certificates of
 *   the old and the new intermediate both keep working.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect as tlsConnect } from 'node:tls';
import { loadConfig } from '../../src/config/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { initDeployment, runCli } from '../support/cli.ts';
import { freePort, runBinary } from '../support/process.ts';
import { CapturedLogs } from '../support/server.ts';
import { OpensslCa } from '../support/openssl-ca.ts';
import { KeepAliveConnection } from '../support/tls-client.ts';

const run = promisify(execFile);
const TD = '127.0.0.1';
const BILLING = `spiffe://${TD}/ns/prod/sa/billing`;
const ORDERS = `spiffe://${TD}/ns/prod/sa/orders`;

interface Identity {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
  readonly serial: string;
  readonly der: Buffer;
}

/** An openssl-made key and CSR asking for `names` (subjectAltName syntax). */
async function csrFor(dir: string, name: string, names: string): Promise<{ csr: string; keyFile: string }> {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${names}`]);
  return { csr: readFileSync(csrFile, 'utf8'), keyFile };
}

/** openssl s_client with one HTTP request on stdin: whether a 200 came back, and everything it printed. */
async function sClient(port: number, caFile: string, identity?: { certFile: string; keyFile: string }): Promise<{ ok: boolean; output: string }> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', caFile, '-verify_return_error', '-ign_eof', '-quiet', ...(identity !== undefined ? ['-cert', identity.certFile, '-key', identity.keyFile] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin.end('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  const timer = setTimeout(() => child.kill(), 15_000);
  await once(child, 'close');
  clearTimeout(timer);
  return { ok: /HTTP\/1\.1 200/.test(output), output };
}

/** curl: the HTTP status and body text. */
async function curl(args: readonly string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['--silent', '--max-time', '20', '--write-out', '\n%{http_code}', ...args]).catch((error: { stdout?: string; code?: unknown }) => {
    if (typeof error.stdout === 'string') return { stdout: error.stdout };
    throw error;
  });
  const newline = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(newline + 1)), body: stdout.slice(0, newline) };
}

describe('the built-in CA with its mTLS listener, through openssl and curl', () => {
  let dir: string;
  let configFile: string;
  let running: RunningPortcullis;
  let mtlsPort: number;
  let mtlsUrl: string;
  let bundleFile: string;
  let foreign: OpensslCa;
  const files = mkdtempSync(join(tmpdir(), 'portcullis-ca-mtls-files-'));

  /** A certificate from the running CA for an openssl CSR, through a one-time enrolment token and POST /ca/sign. */
  async function enrol(name: string, spiffeId: string): Promise<Identity> {
    const { csr, keyFile } = await csrFor(files, name, `URI:${spiffeId}`);
    const { token } = await running.runtime.get('pki').enrolment.create({ names: [spiffeId], ttlMs: 600_000 });
    const response = await fetch(`${running.url}/ca/sign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr, enrolment_token: token }) });
    assert.equal(response.status, 201, await response.clone().text());
    return saved(name, await response.text(), keyFile);
  }

  function saved(name: string, chain: string, keyFile: string): Identity {
    const certFile = join(files, `${name}.pem`);
    writeFileSync(certFile, chain);
    const leaf = new X509Certificate(chain);
    return { certFile, keyFile, cert: chain, key: readFileSync(keyFile, 'utf8'), serial: leaf.serialNumber.toLowerCase().replace(/^(00)+/, ''), der: leaf.raw };
  }

  async function refreshBundle(): Promise<void> {
    writeFileSync(bundleFile, await (await fetch(`${running.url}/ca/bundle`)).text());
  }

  before(async () => {
    const port = await freePort();
    mtlsPort = await freePort();
    ({ dir, configFile } = await initDeployment('portcullis-ca-mtls-', { port, tls: { mtlsPort } }));
    const init = await runCli(['ca', 'init', '--config', configFile]);
    assert.equal(init.code, 0, init.err.join('\n'));
    running = await startPortcullis(loadConfig({ env: {}, file: configFile }), { logDestination: new CapturedLogs().stream });
    mtlsUrl = `https://127.0.0.1:${mtlsPort}`;
    bundleFile = join(files, 'bundle.pem');
    await refreshBundle();
    foreign = OpensslCa.create(join(files, 'foreign'), 'a foreign CA');
  });

  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  });

  it('issues chains openssl verifies, and opens the mTLS listener only with one of its certificates', async () => {
    const billing = await enrol('billing', BILLING);
    await run('openssl', ['verify', '-CAfile', bundleFile, '-purpose', 'sslclient', billing.certFile]);
    const discovery = (await (await fetch(`${running.url}/.well-known/oauth-authorization-server`)).json()) as { mtls_endpoint_aliases?: Record<string, string> };
    assert.equal(discovery.mtls_endpoint_aliases?.['token_endpoint'], `${mtlsUrl}/token`, 'RFC 8705 section 5: the mTLS listener is advertised');

    const accepted = await sClient(mtlsPort, bundleFile, billing);
    assert.ok(accepted.ok, accepted.output);
    const bare = await sClient(mtlsPort, bundleFile);
    assert.ok(!bare.ok, 'no client certificate: no answer');
    const stranger = foreign.issue('stranger', { kind: 'client' });
    const refused = await sClient(mtlsPort, bundleFile, stranger);
    assert.ok(!refused.ok, 'a foreign CA\'s certificate: no answer');
  });

  it('curl: tls_client_auth on the mTLS listener gives a certificate-bound token, which then has a certificate issued over that certificate only', async () => {
    const orders = await enrol('orders', ORDERS);
    const metadata = validateClientMetadata(
      { client_name: 'orders', grant_types: ['client_credentials'], scope: 'ca:issue', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: ORDERS, cert_sans: [ORDERS, 'dns:orders.internal'] },
      { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA', operator: true },
    );
    const clientId = (await running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true })).client.client_id;
    const withOrders = ['--cacert', bundleFile, '--cert', orders.certFile, '--key', orders.keyFile];
    const granted = await curl([...withOrders, '--data-urlencode', 'grant_type=client_credentials', '--data-urlencode', `client_id=${clientId}`, '--data-urlencode', 'scope=ca:issue', `${mtlsUrl}/token`]);
    assert.equal(granted.status, 200, granted.body);
    const token = (JSON.parse(granted.body) as { access_token: string }).access_token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { cnf?: Record<string, string> };
    assert.deepEqual(claims.cnf, { 'x5t#S256': createHash('sha256').update(orders.der).digest('base64url') });

    const { csr } = await csrFor(files, 'orders-2', `URI:${ORDERS},DNS:orders.internal`);
    writeFileSync(join(files, 'sign.json'), JSON.stringify({ csr }));
    const sign = ['-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '--data-binary', `@${join(files, 'sign.json')}`];
    const issued = await curl([...withOrders, ...sign, `${mtlsUrl}/ca/sign`]);
    assert.equal(issued.status, 201, issued.body);
    const leaf = new X509Certificate(issued.body);
    assert.equal(leaf.subjectAltName, `URI:${ORDERS}, DNS:orders.internal`);

    const billing = await enrol('billing-2', BILLING);
    const otherCertificate = await curl(['--cacert', bundleFile, '--cert', billing.certFile, '--key', billing.keyFile, ...sign, `${mtlsUrl}/ca/sign`]);
    assert.equal(otherCertificate.status, 401, 'a bound token over another certificate');
    assert.match(otherCertificate.body, /invalid-token/);
    const noCertificate = await curl([...sign, `${running.url}/ca/sign`]);
    assert.equal(noCertificate.status, 401, 'a bound token without its certificate');
  });

  it('security review: a registered self-signed certificate is trusted as itself only, never as a CA-vouched name; one that could issue is refused', async () => {
    const victim = `spiffe://${TD}/ns/prod/sa/ledger`;
    const victimId = (
      await running.authorizationServer.clients.register(
        validateClientMetadata({ client_name: 'ledger', grant_types: ['client_credentials'], scope: 'ca:issue', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: victim }, { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA' }),
        { actor: 'test' },
        { approved: true },
      )
    ).client.client_id;
    // The attacker's own self-signed certificate names the victim's SPIFFE ID; even approved, it is trusted only as itself.
    const selfSigned = async (name: string, extensions: string[]) => {
      const keyFile = join(files, `${name}.key`);
      const certFile = join(files, `${name}.pem`);
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${name}`, ...extensions.flatMap((extension) => ['-addext', extension])]);
      return { certFile, keyFile, x509: new X509Certificate(readFileSync(certFile)) };
    };
    const forged = await selfSigned('forged', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', `subjectAltName=URI:${victim}`]);
    const jwk = { ...forged.x509.publicKey.export({ format: 'jwk' }), x5c: [forged.x509.raw.toString('base64')] };
    const attackerId = (
      await running.authorizationServer.clients.register(
        validateClientMetadata({ client_name: 'attacker', grant_types: ['client_credentials'], scope: 'ca:issue', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [jwk] } }, { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA' }),
        { actor: 'test' },
        { approved: true },
      )
    ).client.client_id;
    const withForged = ['--cacert', bundleFile, '--cert', forged.certFile, '--key', forged.keyFile];
    const grant = (clientId: string) => ['--data-urlencode', 'grant_type=client_credentials', '--data-urlencode', `client_id=${clientId}`, `${mtlsUrl}/token`];
    // The listener reads registered self-signed certificates on client events and on a poll: wait until it trusts this one.
    const deadline = Date.now() + 10_000;
    let own = await curl([...withForged, ...grant(attackerId)]);
    while (own.status !== 200 && Date.now() < deadline) own = await curl([...withForged, ...grant(attackerId)]);
    assert.equal(own.status, 200, `as itself it authenticates: ${own.body}`);
    const impersonation = await curl([...withForged, ...grant(victimId)]);
    assert.equal(impersonation.status, 401, 'the victim\'s name in a self-signed certificate does not make it the victim');
    assert.equal((JSON.parse(impersonation.body) as { error: string }).error, 'invalid_client');

    for (const [name, extensions] of [
      ['issuer-ca', ['basicConstraints=critical,CA:TRUE', `subjectAltName=URI:${victim}`]],
      ['issuer-no-constraints', [`subjectAltName=URI:${victim}`]],
      ['issuer-keycertsign', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyCertSign']],
    ] as const) {
      const certificate = await selfSigned(name, [...extensions]);
      const key = { ...certificate.x509.publicKey.export({ format: 'jwk' }), x5c: [certificate.x509.raw.toString('base64')] };
      assert.throws(
        () => validateClientMetadata({ client_name: name, grant_types: ['client_credentials'], token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [key] } }, { allowedScopes: [], defaultSigningAlgorithm: 'EdDSA' }),
        /basicConstraints with cA false|keyCertSign/,
        name,
      );
    }
    // A malformed basicConstraints value (OpenSSL does not read extension contents when it parses a certificate) is a metadata error, not a server fault.
    const malformed = await selfSigned('malformed-constraints', ['2.5.29.19=DER:0102']);
    const registered = await fetch(`${running.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'malformed', grant_types: ['client_credentials'], token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ ...malformed.x509.publicKey.export({ format: 'jwk' }), x5c: [malformed.x509.raw.toString('base64')] }] } }),
    });
    assert.equal(registered.status, 400, await registered.clone().text());
    assert.equal(((await registered.json()) as { error: string }).error, 'invalid_client_metadata');
  });

  it('security review: no TLS 1.2 renegotiation on the mTLS listener (a certificate cannot change inside a checked connection)', async () => {
    const identity = await enrol('renegotiator', `spiffe://${TD}/ns/prod/sa/renegotiator`);
    const socket = tlsConnect({ host: '127.0.0.1', port: mtlsPort, ca: readFileSync(bundleFile, 'utf8'), cert: identity.cert, key: identity.key, maxVersion: 'TLSv1.2' });
    await once(socket, 'secureConnect');
    const outcome = await new Promise<Error | null>((resolve) => {
      socket.once('error', resolve);
      socket.renegotiate({ rejectUnauthorized: true }, (error) => resolve(error ?? null));
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    });
    socket.destroy();
    assert.ok(outcome instanceof Error, 'the server refused to renegotiate');
  });

  it('portcullis agent enrols with a one-time token, then renews over this mTLS listener, found through discovery', async () => {
    const id = `spiffe://${TD}/ns/prod/sa/agent`;
    const out = join(files, 'agent-out');
    const { token } = await running.runtime.get('pki').enrolment.create({ names: [id], ttlMs: 600_000 });
    const enrolled = await runBinary(['agent', '--ca-url', running.url, '--token', token, '--san', id, '--out', out, '--once'], { cwd: files });
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const first = new X509Certificate(readFileSync(join(out, 'cert.pem')));
    assert.equal(first.subjectAltName, `URI:${id}`);
    const renewed = await runBinary(['agent', '--ca-url', running.url, '--token', token, '--san', id, '--out', out, '--once'], { cwd: files });
    assert.equal(renewed.code, 0, renewed.stderr);
    const second = new X509Certificate(readFileSync(join(out, 'cert.pem')));
    assert.notEqual(second.serialNumber, first.serialNumber, 'a new certificate');
    assert.equal(second.subjectAltName, `URI:${id}`, 'of the same identity');
    assert.ok(!second.publicKey.equals(first.publicKey), 'with a new key');
    await run('openssl', ['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'cert.pem')]);
  });

  it('security review: a certificate a client had issued stops renewing once the client is deleted', async () => {
    const meter = await enrol('meter', `spiffe://${TD}/ns/prod/sa/meter`);
    const workload = `spiffe://${TD}/ns/prod/sa/meter-worker`;
    const clientId = (
      await running.authorizationServer.clients.register(
        validateClientMetadata(
          { client_name: 'meter', grant_types: ['client_credentials'], scope: 'ca:issue', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: `spiffe://${TD}/ns/prod/sa/meter`, cert_sans: [workload] },
          { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA', operator: true },
        ),
        { actor: 'test' },
        { approved: true },
      )
    ).client.client_id;
    const withMeter = ['--cacert', bundleFile, '--cert', meter.certFile, '--key', meter.keyFile];
    const granted = await curl([...withMeter, '--data-urlencode', 'grant_type=client_credentials', '--data-urlencode', `client_id=${clientId}`, '--data-urlencode', 'scope=ca:issue', `${mtlsUrl}/token`]);
    assert.equal(granted.status, 200, granted.body);
    const { csr, keyFile } = await csrFor(files, 'meter-worker', `URI:${workload}`);
    writeFileSync(join(files, 'meter-sign.json'), JSON.stringify({ csr }));
    const issued = await curl([...withMeter, '-H', `authorization: Bearer ${(JSON.parse(granted.body) as { access_token: string }).access_token}`, '-H', 'content-type: application/json', '--data-binary', `@${join(files, 'meter-sign.json')}`, `${mtlsUrl}/ca/sign`]);
    assert.equal(issued.status, 201, issued.body);
    const worker = saved('meter-worker', issued.body, keyFile);
    const renew = () => curl(['--cacert', bundleFile, '--cert', worker.certFile, '--key', worker.keyFile, '-X', 'POST', `${mtlsUrl}/ca/renew`]);
    assert.equal((await renew()).status, 201, 'renews while its client exists');
    assert.ok(await running.authorizationServer.clients.delete(clientId, { actor: 'test' }));
    const refused = await renew();
    assert.equal(refused.status, 403, refused.body);
    assert.match(refused.body, /urn:portcullis:problem:name-not-permitted/);
  });

  it('curl renews over mTLS: the same identity, a new serial and key', async () => {
    const payments = await enrol('payments', `spiffe://${TD}/ns/prod/sa/payments`);
    const { csr, keyFile } = await csrFor(files, 'payments-next', 'URI:spiffe://127.0.0.1/ns/prod/sa/payments');
    writeFileSync(join(files, 'renew.json'), JSON.stringify({ csr }));
    const renewed = await curl(['--cacert', bundleFile, '--cert', payments.certFile, '--key', payments.keyFile, '-H', 'content-type: application/json', '--data-binary', `@${join(files, 'renew.json')}`, `${mtlsUrl}/ca/renew`]);
    assert.equal(renewed.status, 201, renewed.body);
    const next = saved('payments-next', renewed.body, keyFile);
    assert.notEqual(next.serial, payments.serial);
    assert.equal(new X509Certificate(next.cert).subjectAltName, 'URI:spiffe://127.0.0.1/ns/prod/sa/payments');
    assert.ok((await sClient(mtlsPort, bundleFile, next)).ok, 'the renewed certificate opens the listener');
    const overPlainHttp = await curl(['-H', 'content-type: application/json', '--data-binary', `@${join(files, 'renew.json')}`, `${running.url}/ca/renew`]);
    assert.equal(overPlainHttp.status, 401, 'renewal needs the current certificate over mTLS');
  });

  it('a revocation from the CLI closes the open connection within a second and refuses new ones, through a CA rotation; the CRL lists it', async () => {
    const doomed = await enrol('doomed', `spiffe://${TD}/ns/prod/sa/doomed`);
    const survivor = await enrol('survivor', `spiffe://${TD}/ns/prod/sa/survivor`);
    const connection = await KeepAliveConnection.open({ port: mtlsPort, ca: readFileSync(bundleFile, 'utf8'), client: { cert: doomed.cert, key: doomed.key } });
    assert.equal(await connection.get(), 200);
    const closed = once(connection.socket, 'close');
    const revokedAt = performance.now();
    const revoke = await runCli(['ca', 'revoke', doomed.serial, '--reason', 'keyCompromise', '--config', configFile]);
    assert.equal(revoke.code, 0, revoke.err.join('\n'));
    // The CLI is another CA instance: the server learns of it from its poll of the CA records (1 s).
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the revoked connection stayed open')), 5_000))]);
    assert.ok(performance.now() - revokedAt < 2_500, `closed ${Math.round(performance.now() - revokedAt)} ms after the revocation`);
    assert.ok(!(await sClient(mtlsPort, bundleFile, doomed)).ok, 'a new handshake with the revoked certificate gets no answer');

    // The CLI is another process: the server re-reads the CA records within its poll (1 s) and tells its trust listeners.
    const reread = new Promise<void>((resolve) => {
      const stop = running.runtime.get('pki').authority.onTrustChange(() => {
        stop();
        resolve();
      });
    });
    const rotate = await runCli(['ca', 'rotate', '--config', configFile]);
    assert.equal(rotate.code, 0, rotate.err.join('\n'));
    await reread;
    await refreshBundle();
    const fresh = await enrol('fresh', `spiffe://${TD}/ns/prod/sa/fresh`);
    assert.notEqual(new X509Certificate(fresh.cert).issuer, new X509Certificate(survivor.cert).issuer, 'signed by the new intermediate');
    assert.ok((await sClient(mtlsPort, bundleFile, fresh)).ok, 'the new intermediate\'s certificate is accepted');
    assert.ok((await sClient(mtlsPort, bundleFile, survivor)).ok, 'the old intermediate\'s certificate still is');
    assert.ok(!(await sClient(mtlsPort, bundleFile, doomed)).ok, 'the revoked one still is not');

    // The CRL of the (now retired) intermediate that signed it, where the certificate says (its CRL distribution point).
    const { stdout: points } = await run('openssl', ['x509', '-in', doomed.certFile, '-noout', '-ext', 'crlDistributionPoints']);
    const crlUrl = /URI:(\S+)/.exec(points)?.[1];
    assert.ok(crlUrl?.startsWith(`${running.url}/ca/crl/`), points);
    const crlFile = join(files, 'old.crl');
    writeFileSync(crlFile, Buffer.from(await (await fetch(crlUrl!)).arrayBuffer()));
    const text = (await run('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text', '-CAfile', bundleFile, '-verify'])).stdout;
    assert.match(text, new RegExp(doomed.serial.toUpperCase()));
    assert.match(text, /Key Compromise/);
  });
});

