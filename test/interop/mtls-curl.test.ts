/**
 * RFC 8705 with a client we did not write: Debian's curl (OpenSSL) presents
 * a certificate from the test CA (`--cert`, `--key`, `--cacert`) to an HTTPS
 * listener that asks for one, and does a whole client_credentials grant with
 * tls_client_auth. The access token it gets is bound to that certificate
 * (cnf.x5t#S256 is the SHA-256 of the DER curl sent), introspection over
 * curl shows the binding, and the same request without the certificate is
 * refused. Without curl the file fails with one clear line, not skips.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { ALPHA, jwtPayload, makeTestPki, startMtlsListener, type MtlsListener, type TestPki } from '../support/mtls.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const run = promisify(execFile);

/** curl's answer: the HTTP status (from --write-out) and the JSON body. */
async function curl(args: string[]): Promise<{ status: number; body: Record<string, unknown> }> {
  let stdout: string;
  try {
    // Asynchronous: the server answering runs in this very process.
    ({ stdout } = await run('curl', ['--silent', '--show-error', '--max-time', '20', '--write-out', '\n%{http_code}', ...args]));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('curl is missing: apt-get install -y curl');
    throw error;
  }
  const newline = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, newline);
  return { status: Number(stdout.slice(newline + 1)), body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

describe('curl does an RFC 8705 tls_client_auth client_credentials grant', () => {
  let pki: TestPki;
  let server: TestServer;
  let listener: MtlsListener;
  let clientId: string;

  before(async () => {
    pki = makeTestPki();
    server = await startTestServer({ fixedPort: true });
    listener = await startMtlsListener(server.running.app, pki);
    const metadata = validateClientMetadata(
      { client_name: 'curl', grant_types: ['client_credentials'], scope: 'openid', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: ALPHA.uri },
      { allowedScopes: ['openid'], defaultSigningAlgorithm: 'EdDSA' },
    );
    clientId = (await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true })).client.client_id;
  });
  after(async () => {
    await listener?.close();
    await server?.close();
    pki?.remove();
  });

  it('gets a token bound to the certificate curl presented, which introspection over curl confirms', async () => {
    const withCertificate = ['--cacert', pki.ca.certFile, '--cert', pki.alpha.certFile, '--key', pki.alpha.keyFile];
    const granted = await curl([...withCertificate, '--data-urlencode', 'grant_type=client_credentials', '--data-urlencode', `client_id=${clientId}`, `${listener.url}/token`]);
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.equal(granted.body['token_type'], 'Bearer');
    const token = granted.body['access_token'] as string;
    assert.deepEqual(jwtPayload(token)['cnf'], { 'x5t#S256': pki.alpha.thumbprint });

    const introspected = await curl([...withCertificate, '--data-urlencode', `token=${token}`, '--data-urlencode', `client_id=${clientId}`, `${listener.url}/introspect`]);
    assert.equal(introspected.status, 200);
    assert.equal(introspected.body['active'], true);
    assert.deepEqual(introspected.body['cnf'], { 'x5t#S256': pki.alpha.thumbprint });
  });

  it('is refused without the certificate (invalid_client), and with a certificate of another name', async () => {
    const form = ['--data-urlencode', 'grant_type=client_credentials', '--data-urlencode', `client_id=${clientId}`, `${listener.url}/token`];
    const bare = await curl(['--cacert', pki.ca.certFile, ...form]);
    assert.equal(bare.status, 401);
    assert.equal(bare.body['error'], 'invalid_client');
    const beta = await curl(['--cacert', pki.ca.certFile, '--cert', pki.beta.certFile, '--key', pki.beta.keyFile, ...form]);
    assert.equal(beta.status, 401);
    assert.equal(beta.body['error'], 'invalid_client');
  });
});
