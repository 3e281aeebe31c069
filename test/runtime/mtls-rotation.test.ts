/**
 * The rotation test of the mTLS issue: 200 keep-alive connections making
 * requests back to back, and new handshakes all along, across 50
 * rotations of the listener's certificate (a new one each time, through
 * setSecureContext) with the client trust changing at every other one (a
 * new CRL, a second CA in the bundle and out again): no request fails, no
 * connection is reset, and every handshake that starts after a rotation
 * gets that rotation's certificate or a later one.
 *
 * Bounded by counts, not time (test/support/rotation-load.ts): a rotation
 * happens once every connection has had a request answered and four new
 * handshakes were made since the one before.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { CapturedLogs } from '../support/server.ts';
import { OpensslCa, type IssuedFiles } from '../support/openssl-ca.ts';
import { TestAuthority } from '../support/listener-authority.ts';
import { runRotationLoad } from '../support/rotation-load.ts';
import { assertRefused, tlsGet } from '../support/tls-client.ts';

const CONNECTIONS = 200;
const ROTATIONS = 50;
const HANDSHAKE_LOOPS = 4;

const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-rotation-'));
let ca: OpensslCa;
let authority: TestAuthority;
let running: RunningPortcullis;
let certificates: IssuedFiles[];
let trusts: { ca: string[]; crl: Buffer[] }[];

before(async () => {
  ca = OpensslCa.create(join(dir, 'ca'), 'Rotation test CA');
  const second = OpensslCa.create(join(dir, 'second'), 'Second CA');
  authority = new TestAuthority(ca);
  certificates = Array.from({ length: ROTATIONS }, (_, index) => ca.issue(`rotation-${index + 1}`, { kind: 'server', ipAddresses: ['127.0.0.1'] }));
  ca.revoke(ca.issue('revoked', { kind: 'client' }).certFile);
  trusts = [
    { ca: [ca.cert, second.cert], crl: [ca.crl(), second.crl()] },
    { ca: [ca.cert], crl: [ca.crl()] },
  ];
  running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: join(dir, 'data'), port: 0, log: { level: 'warn' }, tls: { mtlsPort: 0 } } }), {
    logDestination: new CapturedLogs().stream,
    listenerAuthority: authority,
  });
});

after(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('rotating the mTLS listener under load', () => {
  it(`${CONNECTIONS} keep-alive connections and new handshakes across ${ROTATIONS} rotations: 0 failed requests, 0 reset connections`, { timeout: 60_000 }, async () => {
    const listener = running.mtlsListener!.listener;
    const client = ca.issue('client', { kind: 'client' });
    // Which rotation each certificate belongs to: 0 is the one the CA issued at start.
    const rotationOf = new Map([[listener.certificate!.serialNumber, 0], ...certificates.map((certificate, index) => [certificate.serialNumber, index + 1] as const)]);

    const result = await runRotationLoad({
      target: { port: Number(new URL(running.mtlsUrl!).port), ca: ca.cert, client: { cert: client.cert, key: client.key } },
      connections: CONNECTIONS,
      handshakeLoops: HANDSHAKE_LOOPS,
      rounds: ROTATIONS + 1,
      between: (rotation) => {
        const next = certificates[rotation - 1]!;
        listener.setSecureContext({ cert: readFileSync(next.certFile), key: readFileSync(next.keyFile) });
        if (rotation % 2 === 0) authority.setTrust(trusts[(rotation / 2) % 2]!);
      },
    });

    assert.deepEqual(result.errors, []);
    assert.equal(result.failedRequests, 0);
    assert.equal(result.resets, 0);
    assert.equal(result.failedHandshakes, 0);
    assert.ok(result.requests >= CONNECTIONS * (ROTATIONS + 1), `${result.requests} requests`);
    assert.ok(result.handshakes >= HANDSHAKE_LOOPS * (ROTATIONS + 1), `${result.handshakes} handshakes`);
    for (const { round, serial } of result.handshakeSerials) {
      const rotation = rotationOf.get(serial);
      assert.ok(rotation !== undefined && rotation >= round, `a handshake begun after rotation ${round} got the certificate of rotation ${rotation}`);
    }
    assert.equal(listener.certificate!.serialNumber, certificates.at(-1)!.serialNumber);
    await assertRefused(tlsGet({ port: Number(new URL(running.mtlsUrl!).port), ca: ca.cert }), 'after all the swaps, a client without a certificate is still refused');
  });
});
