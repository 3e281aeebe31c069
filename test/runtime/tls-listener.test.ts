/**
 * A TLS listener takes a new certificate without a restart (issue 11
 * section 3; Node's tls.Server#setSecureContext): a real Portcullis on
 * HTTPS with certificate A; after the swap a new connection gets B, while a
 * connection opened before keeps working and the listener never closed. A
 * bad file on swap is refused and the current certificate keeps serving.
 * The certificates are made by openssl in a temporary directory.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { loadConfig } from '../../src/config/index.ts';
import { ConfigError } from '../../src/config/index.ts';
import { reloadTlsOnHangup, startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { CapturedLogs } from '../support/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'));
const certFile = join(dir, 'server.crt');
const keyFile = join(dir, 'server.key');
let running: RunningPortcullis;
const logs = new CapturedLogs();
let port: number;

/** A self-signed certificate for 127.0.0.1 (subjectAltName IP, so a client can verify it by `ca`). */
function makeCertificate(name: string): { cert: string; key: string; fingerprint: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

let certA: ReturnType<typeof makeCertificate>;
let certB: ReturnType<typeof makeCertificate>;

function install(certificate: { cert: string; key: string }): void {
  copyFileSync(certificate.cert, certFile);
  copyFileSync(certificate.key, keyFile);
}

/** A new TLS connection, and the certificate the server presented on it. */
function handshake(): Promise<{ socket: TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve({ socket, fingerprint: socket.getPeerX509Certificate()!.fingerprint256 }));
    socket.once('error', reject);
  });
}

/** GET /healthz over HTTPS on a new connection, verifying the server against `ca` only. */
function healthz(ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/healthz', ca: readFileSync(ca), agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** GET /healthz written by hand on an already open TLS connection. */
function healthzOn(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(text.split('\r\n')[0]!);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  });
}

before(async () => {
  certA = makeCertificate('a');
  certB = makeCertificate('b');
  install(certA);
  const config = loadConfig({ env: { PORTCULLIS_TLS_CERT_FILE: certFile, PORTCULLIS_TLS_KEY_FILE: keyFile }, overrides: { dataDir: join(dir, 'data'), port: 0 } });
  running = await startPortcullis(config, { logDestination: logs.stream });
  port = Number(new URL(running.url).port);
});

after(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a TLS listener swaps its certificate without a restart', () => {
  it('serves HTTPS with certificate A', async () => {
    assert.match(running.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(running.listener.secure, true);
    const { socket, fingerprint } = await handshake();
    socket.destroy();
    assert.equal(fingerprint, certA.fingerprint);
    assert.equal(await healthz(certA.cert), 200);
  });

  it('after reloadTls() a new connection gets certificate B; a connection from before still works; the listener never closed', async () => {
    const before = await handshake();
    assert.equal(before.fingerprint, certA.fingerprint);
    const server = running.listener.app.server;
    let closed = false;
    server.once('close', () => (closed = true));

    install(certB);
    running.listener.reloadTls();

    const afterSwap = await handshake();
    afterSwap.socket.destroy();
    assert.equal(afterSwap.fingerprint, certB.fingerprint, 'the new connection sees B');
    assert.equal(await healthz(certB.cert), 200, 'and verifies against B');
    await assert.rejects(healthz(certA.cert), /self-signed|unable to verify|certificate/, 'A no longer verifies a new connection');

    assert.equal(await healthzOn(before.socket), 'HTTP/1.1 200 OK', 'the connection opened with A is still served');
    before.socket.destroy();
    assert.equal(server.listening, true);
    assert.equal(closed, false, 'the server was never closed');
    assert.equal(Number(new URL(running.url).port), port);
  });

  it('refuses a certificate file that is not PEM, or a key of another certificate, and keeps serving the current one', async () => {
    writeFileSync(certFile, 'not a certificate\n');
    assert.throws(() => running.listener.reloadTls(), (error) => error instanceof ConfigError && /TLS certificate or key is not usable/.test(error.message));
    copyFileSync(certA.cert, certFile);
    copyFileSync(certB.key, keyFile);
    assert.throws(() => running.listener.reloadTls(), ConfigError, 'A with the key of B');
    rmSync(certFile);
    assert.throws(() => running.listener.reloadTls(), { message: 'cannot read the TLS certificate or key (ENOENT)' });

    const { socket, fingerprint } = await handshake();
    socket.destroy();
    assert.equal(fingerprint, certB.fingerprint, 'B still serves');
    assert.equal(await healthz(certB.cert), 200);
  });

  it('a plain HTTP listener has no context to swap', async () => {
    const plain = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: join(dir, 'plain'), port: 0 } }), { logDestination: new CapturedLogs().stream });
    try {
      assert.equal(plain.listener.secure, false);
      assert.throws(() => plain.listener.reloadTls(), TypeError);
      assert.throws(() => plain.listener.setSecureContext({ cert: readFileSync(certA.cert), key: readFileSync(certA.key) }), TypeError);
    } finally {
      await plain.stop();
    }
  });

  it('SIGHUP (systemctl reload) reads the files again; a pair that does not load is refused in the log, naming no key material, and the current certificate keeps serving', async () => {
    const stopListening = reloadTlsOnHangup(running);
    try {
      install(certA);
      // The files are also watched: wait for the signal's own line, not the watch's.
      const reloaded = logs.next(/"signal":"SIGHUP".*"msg":"TLS certificate reloaded"/);
      process.kill(process.pid, 'SIGHUP');
      await reloaded;
      const first = await handshake();
      first.socket.destroy();
      assert.equal(first.fingerprint, certA.fingerprint, 'a new connection gets the certificate now in the files');

      copyFileSync(certB.key, keyFile);
      const refused = logs.next(/"signal":"SIGHUP".*"msg":"TLS certificate reload refused/);
      process.kill(process.pid, 'SIGHUP');
      const line = await refused;
      assert.doesNotMatch(line, /PRIVATE KEY|BEGIN/, 'the log names the problem, not the key');
      const second = await handshake();
      second.socket.destroy();
      assert.equal(second.fingerprint, certA.fingerprint, 'A still serves');
    } finally {
      stopListening();
    }
  });
});
