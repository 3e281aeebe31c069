/**
 * The mTLS listener (`tls.mtlsPort`): a second listener of the same
 * application that requires a client certificate chained to the CA's
 * trust (RFC 8705 section 2), verified in the handshake. A real Portcullis,
 * real sockets, a test ListenerAuthority over an openssl-made CA (the
 * built-in CA is not there yet): who gets in, who does not, a revocation
 * applied without a restart, ALPN, and openssl s_client as an outside client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { FastifyPluginAsync } from 'fastify';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { serverNames } from '../../src/runtime/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { CapturedLogs } from '../support/server.ts';
import { OpensslCa, selfSigned, type IssuedFiles } from '../support/openssl-ca.ts';
import { TestAuthority } from '../support/listener-authority.ts';
import { assertRefused, tlsGet, type TlsTarget } from '../support/tls-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'));
const logs = new CapturedLogs();
let ca: OpensslCa;
let authority: TestAuthority;
let alice: IssuedFiles;
let bob: IssuedFiles;
let mallory: IssuedFiles;
let carol: IssuedFiles;
let running: RunningPortcullis;
let port: number;

/** A route that says which client certificate the request's socket carries (what RFC 8705 client authentication reads). */
const peerRoute: FastifyPluginAsync = async (app) => {
  app.get('/test/peer', async (request) => {
    const socket = request.raw.socket as Partial<TLSSocket>;
    return { subject: socket.getPeerX509Certificate?.()?.subject ?? null };
  });
};

function target(client?: IssuedFiles, extra: Partial<TlsTarget> = {}): TlsTarget {
  return { port, ca: ca.cert, ...(client !== undefined && { client: { cert: client.cert, key: client.key } }), ...extra };
}

/** openssl s_client with a request on stdin; its exit code and everything it printed. */
function sClient(args: readonly string[], input: string | undefined): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    // -ign_eof: after stdin ends, wait for the server's answer (or alert) instead of quitting.
    const child = execFile('openssl', ['s_client', '-ign_eof', '-connect', `127.0.0.1:${port}`, '-CAfile', ca.certFile, ...args], { timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, output: `${stdout}\n${stderr}` });
    });
    child.stdin!.end(input ?? '');
  });
}

before(async () => {
  ca = OpensslCa.create(join(dir, 'ca'), 'Portcullis test CA');
  const foreign = OpensslCa.create(join(dir, 'foreign'), 'Foreign CA');
  alice = ca.issue('alice', { kind: 'client' });
  bob = ca.issue('bob', { kind: 'client' });
  mallory = foreign.issue('mallory', { kind: 'client' });
  carol = selfSigned(dir, 'carol', { kind: 'client' });
  authority = new TestAuthority(ca);
  const config = loadConfig({ env: {}, overrides: { dataDir: join(dir, 'data'), port: 0, tls: { mtlsPort: 0 } } });
  running = await startPortcullis(config, { logDestination: logs.stream, listenerAuthority: authority, plugins: [peerRoute] });
  port = Number(new URL(running.mtlsUrl!).port);
});

after(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the mTLS listener', () => {
  it('serves the same routes as the main listener, on a certificate the CA issued for its address', async () => {
    assert.match(running.mtlsUrl!, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(authority.requests[0], { dnsNames: [], ipAddresses: ['127.0.0.1'] });
    const exchange = await tlsGet(target(alice), '/.well-known/openid-configuration');
    assert.equal(exchange.status, 200);
    assert.equal(exchange.serverSerial, authority.serials[0]);
    const main = await fetch(`${running.url}/.well-known/openid-configuration`);
    assert.deepEqual(JSON.parse(exchange.body), await main.json(), 'the same discovery document');
  });

  it('a client certificate from the CA: the request succeeds and the route sees the certificate', async () => {
    const exchange = await tlsGet(target(alice), '/test/peer');
    assert.equal(exchange.status, 200);
    assert.match(JSON.parse(exchange.body).subject, /CN=alice-/);
  });

  it('no client certificate: the handshake fails (TLS 1.3: certificate_required; TLS 1.2: before it completes)', async () => {
    await assertRefused(tlsGet(target()));
    await assertRefused(tlsGet(target(undefined, { maxVersion: 'TLSv1.2' })));
  });

  it('a certificate of another CA: the handshake fails', async () => {
    await assertRefused(tlsGet(target(mallory)));
    await assertRefused(tlsGet(target(mallory, { maxVersion: 'TLSv1.2' })));
  });

  it('ALPN: a client offering h2 and http/1.1 gets http/1.1 (WebSocket upgrades are HTTP/1.1)', async () => {
    const exchange = await tlsGet(target(alice, { alpn: ['h2', 'http/1.1'] }));
    assert.equal(exchange.alpn, 'http/1.1');
    assert.equal(exchange.status, 200);
    await assertRefused(tlsGet(target(alice, { alpn: ['h2'] })), 'h2 alone is refused, not served');
  });

  it('openssl s_client: accepted with a valid certificate, refused without one', async () => {
    const request = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';
    const accepted = await sClient(['-cert', alice.certFile, '-key', alice.keyFile, '-alpn', 'h2,http/1.1'], request);
    assert.equal(accepted.code, 0, accepted.output);
    assert.match(accepted.output, /Verify return code: 0 \(ok\)/);
    assert.match(accepted.output, /ALPN protocol: http\/1\.1/);
    assert.match(accepted.output, /HTTP\/1\.1 200 OK/);

    // In TLS 1.3 the client's side of the handshake is done before the
    // server checks (or misses) its certificate, so s_client with an empty
    // stdin exits 0 without ever reading the server's alert: the refusal
    // shows once it reads, or at once in TLS 1.2.
    const refused = await sClient([], request);
    assert.notEqual(refused.code, 0, refused.output);
    assert.match(refused.output, /alert certificate required/);
    assert.doesNotMatch(refused.output, /HTTP\/1\.1 200/);
    const refused12 = await sClient(['-tls1_2'], undefined);
    assert.notEqual(refused12.code, 0, refused12.output);
    assert.match(refused12.output, /alert handshake failure|alert certificate required/);
  });

  it('a revocation applies without a restart: a new handshake with the revoked certificate fails, another certificate still works, a saved session is not resumed', async () => {
    const before = await tlsGet(target(alice));
    assert.equal(before.status, 200);
    assert.ok(before.session !== undefined, 'the server gave a session ticket');
    const resumed = await tlsGet(target(alice, { session: before.session }));
    assert.equal(resumed.resumed, true, 'resumption works while alice is in good standing');

    ca.revoke(alice.certFile);
    const updated = logs.next(/mTLS client trust updated/);
    authority.setTrust({ ca: [ca.cert], crl: [ca.crl()] });
    await updated;

    await assertRefused(tlsGet(target(alice)), 'alice is refused');
    await assertRefused(tlsGet(target(alice, { session: resumed.session ?? before.session })), 'and cannot resume a session from before');
    assert.equal((await tlsGet(target(bob))).status, 200, 'bob still gets in');
    assert.equal(running.runtime.get('mtlsListener')!.listener.certificate?.serialNumber, authority.serials[0], 'the certificate did not change');
  });

  it('trust that does not load is refused, logged, and the current trust stays', async () => {
    for (const trust of [{ ca: ['not a certificate'], crl: [] }, { ca: [ca.cert], crl: [Buffer.from('not a CRL')] }, { ca: [ca.cert.slice(0, 200)], crl: [] }]) {
      const refused = logs.next(/mTLS client trust update refused/);
      authority.setTrust(trust);
      const line = JSON.parse(await refused);
      assert.equal(line.level, 'error');
      assert.match(line.reason, /^client trust: (entry 0 of the CA bundle is not a PEM X.509 certificate|CRL 0 does not parse)/);
      assert.equal((await tlsGet(target(bob))).status, 200);
    }
    await assertRefused(tlsGet(target(alice)), 'alice is still revoked');
  });

  it('a registered self-signed client certificate is trusted as it is, but not while any CRL is set (OpenSSL checks every chain for a CRL: pinned for the CA)', async () => {
    const updated = logs.next(/mTLS client trust updated/);
    authority.setTrust({ ca: [ca.cert, carol.cert], crl: [] });
    await updated;
    assert.equal((await tlsGet(target(carol))).status, 200, 'carol by her own certificate');

    const withCrl = logs.next(/mTLS client trust updated/);
    authority.setTrust({ ca: [ca.cert, carol.cert], crl: [ca.crl()] });
    await withCrl;
    await assertRefused(tlsGet(target(carol)));
    assert.equal((await tlsGet(target(bob))).status, 200);
  });
});

describe('starting the mTLS listener', () => {
  it('before `ca init`, the start fails saying so, and nothing is left listening', async () => {
    const config = loadConfig({ env: {}, overrides: { dataDir: join(dir, 'no-ca'), port: 0, tls: { mtlsPort: 0 } } });
    await assert.rejects(
      startPortcullis(config, { logDestination: new CapturedLogs().stream }),
      (error) => error instanceof ConfigError && /tls\.mtlsPort is set, but the built-in CA is not initialised: run `portcullis ca init`/.test(error.message),
    );
  });

  it('with certificate files but no CA, it still fails: nothing says which client certificates to trust', async () => {
    const server = ca.issue('files', { kind: 'server', ipAddresses: ['127.0.0.1'] });
    const config = loadConfig({ env: {}, overrides: { dataDir: join(dir, 'files-no-ca'), port: 0, tls: { mtlsPort: 0, mtlsCertFile: server.certFile, mtlsKeyFile: server.keyFile } } });
    await assert.rejects(
      startPortcullis(config, { logDestination: new CapturedLogs().stream }),
      (error) => error instanceof ConfigError && /client certificates the mTLS listener trusts\)$/.test(error.message),
    );
  });

  it('asks the CA for a certificate naming the issuer host, and the listen host when it is one address', () => {
    assert.deepEqual(serverNames({ issuer: 'https://ID.example.com', host: '0.0.0.0' }), { dnsNames: ['id.example.com'], ipAddresses: [] });
    assert.deepEqual(serverNames({ issuer: 'https://id.example.com:8443', host: '10.0.0.7' }), { dnsNames: ['id.example.com'], ipAddresses: ['10.0.0.7'] });
    assert.deepEqual(serverNames({ issuer: 'https://[::1]:9443', host: '::1' }), { dnsNames: [], ipAddresses: ['::1'] });
    assert.deepEqual(serverNames({ issuer: 'http://127.0.0.1:9000', host: '::' }), { dnsNames: [], ipAddresses: ['127.0.0.1'] });
  });

  it('a stopped instance unsubscribes from the authority', async () => {
    const own = new TestAuthority(ca);
    const config = loadConfig({ env: {}, overrides: { dataDir: join(dir, 'unsubscribe'), port: 0, tls: { mtlsPort: 0 } } });
    const instance = await startPortcullis(config, { logDestination: new CapturedLogs().stream, listenerAuthority: own });
    assert.equal(own.subscribers, 1);
    await instance.stop();
    assert.equal(own.subscribers, 0);
  });
});
