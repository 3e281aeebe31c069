/**
 * `portcullis agent` as a service's operator runs it: a child process
 * against a real server on a real socket. Enrolment with a one-time token
 * or client credentials writes cert.pem (leaf + intermediate), key.pem
 * (0600) and bundle.pem that `openssl verify` accepts, with exactly the
 * names asked; every refusal (a replayed, expired, garbage or too-narrow
 * token, a name outside the client's cert_sans, no mTLS endpoint) is one
 * line and a non-zero exit with no file written and no secret printed.
 * While the CA is down the agent retries with growing waits and enrols
 * once it is back. Renewal over mutual TLS rotates the key and runs the
 * hook; a revoked certificate ends the agent with exit 3 and one line,
 * whether the listener refuses it in the handshake, the renewal route
 * refuses it, or the CRL lists it. The schedule (two thirds of the
 * lifetime) is checked in-process with a fake clock against the same server.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, renewalTime } from '../../src/cli/agent/agent.ts';
import { backoffDelay } from '../../src/cli/agent/backoff.ts';
import { HttpCa, type AgentCa } from '../../src/cli/agent/ca-client.ts';
import { AGENT_EXIT, AgentExit, AgentStopped, CaRefusalError, CaUnavailableError } from '../../src/cli/agent/errors.ts';
import { TRUST_DOMAIN, caDeployment, spawnAgent, startRenewalListener, type CaDeployment, type RenewalListener } from '../support/ca.ts';
import { freePort, runBinary, within } from '../support/process.ts';

const SVC_A = `spiffe://${TRUST_DOMAIN}/svc/a`;

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The names of a certificate file, as openssl prints them (URI:..., DNS:...). */
function sansOf(certFile: string): string[] {
  return new X509Certificate(readFileSync(certFile)).subjectAltName!.split(', ').sort();
}

function serialOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).serialNumber.toLowerCase().replace(/^(00)+/, '');
}

/** `portcullis agent ...` to completion. */
function agent(args: string[], cwd: string) {
  return runBinary(['agent', ...args], { cwd, timeoutMs: 30_000 });
}

function errLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '');
}

describe('portcullis agent: enrolment', () => {
  let ca: CaDeployment;
  let work: string;

  before(async () => {
    ca = await caDeployment('portcullis-agent-');
    await ca.start();
    work = mkdtempSync(join(tmpdir(), 'portcullis-agent-work-'));
  });
  after(async () => {
    await ca?.remove();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('enrols with a token: cert.pem (leaf + intermediate), key.pem 0600, bundle.pem; openssl verifies it; exactly the names asked; the hook ran', async () => {
    const token = await ca.token([SVC_A, 'dns:a.agent.test']);
    writeFileSync(join(work, 'token'), `${token}\n`);
    const out = join(work, 'a');
    const marker = join(work, 'hook-ran');
    const run = await agent(['--ca-url', ca.url, '--token-file', 'token', '--san', SVC_A, '--san', 'dns:a.agent.test', '--out', out, '--once', '--exec-on-renew', `touch ${marker}`], work);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^enrolled [0-9a-f]+ ${SVC_A} until \\d{4}-`, 'm'));
    assert.deepEqual(readdirSync(out).sort(), ['bundle.pem', 'cert.pem', 'key.pem']);
    assert.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(out).mode & 0o777, 0o700);
    assert.match(openssl(['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'cert.pem')]), /cert\.pem: OK/);
    assert.equal(readFileSync(join(out, 'cert.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)!.length, 2);
    assert.deepEqual(sansOf(join(out, 'cert.pem')), ['DNS:a.agent.test', `URI:${SVC_A}`]);
    assert.ok(new X509Certificate(readFileSync(join(out, 'cert.pem'))).checkPrivateKey(createPrivateKey(readFileSync(join(out, 'key.pem')))));
    assert.ok(existsSync(marker), 'the --exec-on-renew command ran');
    assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token), 'the token is never printed');
    assert.match(run.stdout, new RegExp(serialOf(join(out, 'cert.pem'))));

    // The same token again: refused in one line, nothing written.
    const again = join(work, 'a-again');
    const replay = await agent(['--ca-url', ca.url, '--token', token, '--san', SVC_A, '--san', 'dns:a.agent.test', '--out', again, '--once'], work);
    assert.equal(replay.code, AGENT_EXIT.refused);
    assert.deepEqual(errLines(replay.stderr), ['portcullis agent: /ca/sign refused (401 unauthorized): This enrolment token was already used.']);
    assert.equal(existsSync(join(again, 'cert.pem')), false);
    assert.ok(!replay.stderr.includes(token));
  });

  it('enrols with client credentials (scope ca:issue, cert_sans); a name outside cert_sans is refused in one line', async () => {
    const svc = `spiffe://${TRUST_DOMAIN}/svc/b`;
    const { clientId, secret } = await ca.client([svc, 'dns:b.agent.test']);
    writeFileSync(join(work, 'secret'), `${secret}\n`, { mode: 0o600 });
    const out = join(work, 'b');
    const run = await agent(['--ca-url', ca.url, '--client-id', clientId, '--client-secret-file', 'secret', '--san', svc, '--san', 'dns:b.agent.test', '--out', out, '--once'], work);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(sansOf(join(out, 'cert.pem')), ['DNS:b.agent.test', `URI:${svc}`]);
    assert.match(openssl(['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'cert.pem')]), /OK/);

    const outside = join(work, 'b-outside');
    const refused = await agent(['--ca-url', ca.url, '--client-id', clientId, '--client-secret-file', 'secret', '--san', svc, '--san', 'dns:c.agent.test', '--out', outside, '--once'], work);
    assert.equal(refused.code, AGENT_EXIT.refused);
    assert.deepEqual(errLines(refused.stderr), ['portcullis agent: /ca/sign refused (403 name-not-permitted): the caller may not have dns:c.agent.test in a certificate']);
    assert.equal(existsSync(join(outside, 'cert.pem')), false);

    // A wrong secret is the token endpoint's refusal, in one line.
    writeFileSync(join(work, 'wrong-secret'), 'not-the-secret\n');
    const wrong = await agent(['--ca-url', ca.url, '--client-id', clientId, '--client-secret-file', 'wrong-secret', '--san', svc, '--out', outside, '--once'], work);
    assert.equal(wrong.code, AGENT_EXIT.refused);
    assert.equal(errLines(wrong.stderr).length, 1);
    assert.match(wrong.stderr, /the token endpoint refused \(401 invalid_client\)/);
    for (const text of [run.stdout, run.stderr, refused.stderr, wrong.stderr]) assert.ok(!text.includes(secret), 'the client secret is never printed');
  });

  it('refuses a token for other names, an expired token and a garbage token: one line, non-zero, nothing written', async () => {
    const narrow = await ca.token([`spiffe://${TRUST_DOMAIN}/svc/c`]);
    const expiring = await ca.token([SVC_A], '1s');
    const cases: { token: string; line: RegExp }[] = [
      { token: narrow, line: /^portcullis agent: \/ca\/sign refused \(403 name-not-permitted\): the caller may not have spiffe:\/\/agent\.test\/svc\/a in a certificate$/ },
      { token: expiring, line: /^portcullis agent: \/ca\/sign refused \(401 unauthorized\): The enrolment token is not valid: wrong signature, type or audience, or expired\.$/ },
      { token: 'not.a.token', line: /^portcullis agent: \/ca\/sign refused \(401 unauthorized\): The enrolment token is not valid/ },
    ];
    // The server's clock moves past the short token's expiry (not the test's).
    ca.clockOffsetMs = 120_000;
    try {
      for (const [index, { token, line }] of cases.entries()) {
        const out = join(work, `refused-${index}`);
        const run = await agent(['--ca-url', ca.url, '--token', token, '--san', SVC_A, '--out', out, '--once'], work);
        assert.equal(run.code, AGENT_EXIT.refused, run.stderr);
        const lines = errLines(run.stderr);
        assert.equal(lines.length, 1, run.stderr);
        assert.match(lines[0]!, line);
        assert.equal(run.stdout, '');
        assert.equal(existsSync(out), false);
      }
    } finally {
      ca.clockOffsetMs = 0;
    }
  });

  it('refuses mistakes in its flags in one line (no credential, two credentials, two SPIFFE IDs, a plain-http renewal URL)', async () => {
    const base = ['--ca-url', ca.url, '--out', join(work, 'flags'), '--once'];
    for (const [args, line] of [
      [['--san', SVC_A], /exactly one of --token, --token-file, or --client-id/],
      [['--san', SVC_A, '--token', 'x', '--client-id', 'c'], /exactly one of --token/],
      [['--san', SVC_A, '--san', `spiffe://${TRUST_DOMAIN}/svc/z`, '--token', 'x'], /--san: exactly one spiffe:/],
      [['--san', 'a.agent.test', '--token', 'x'], /--san a\.agent\.test: write spiffe:/],
      [['--san', SVC_A, '--token', 'x', '--renew-url', `${ca.url}/ca/renew`], /--renew-url: .* must be https/],
      [['--san', SVC_A, '--client-id', 'c'], /--client-id needs --client-secret-file/],
    ] as const) {
      const run = await agent([...base, ...args], work);
      assert.equal(run.code, AGENT_EXIT.refused, args.join(' '));
      assert.equal(errLines(run.stderr).length, 1, run.stderr);
      assert.match(run.stderr, line);
    }
    assert.equal(existsSync(join(work, 'flags')), false);
  });

  it('as a daemon, says in one line that it could never renew when the server advertises no mTLS endpoint, before using the token', async () => {
    const token = await ca.token([SVC_A]);
    const out = join(work, 'no-mtls');
    const run = await agent(['--ca-url', ca.url, '--token', token, '--san', SVC_A, '--out', out], work);
    assert.equal(run.code, AGENT_EXIT.refused);
    assert.deepEqual(errLines(run.stderr), [
      `portcullis agent: ${ca.url} advertises no mutual TLS endpoint (mtls_endpoint_aliases; the server's tls.mtlsPort), so the certificate could not be renewed: enable it, or pass --renew-url`,
    ]);
    assert.equal(existsSync(out), false);
    // The token was not used up.
    const once = await agent(['--ca-url', ca.url, '--token', token, '--san', SVC_A, '--out', out, '--once'], work);
    assert.equal(once.code, 0, once.stderr);
  });
});

describe('portcullis agent: while the CA is down', () => {
  let ca: CaDeployment;
  let work: string;

  before(async () => {
    ca = await caDeployment('portcullis-agent-down-');
    work = mkdtempSync(join(tmpdir(), 'portcullis-agent-work-'));
  });
  after(async () => {
    await ca?.remove();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('retries with growing waits, keeps going until the CA listens on its port, then enrols; SIGTERM stops it with exit 0', async () => {
    const token = await ca.token([SVC_A]);
    const out = join(work, 'down');
    const listener = await startRenewalListenerLater(ca);
    const agentProcess = spawnAgent(['--ca-url', ca.url, '--token', token, '--san', SVC_A, '--out', out, '--renew-url', listener.url, '--retry-initial-ms', '200', '--retry-max', '5s'], { cwd: work });
    try {
      const waits: number[] = [];
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const line = await agentProcess.line(/^retrying in /);
        assert.match(line, new RegExp(`^retrying in [0-9.]+s: /ca/bundle at ${ca.url.replace(/\./g, '\\.')} is unreachable \\(ECONNREFUSED\\)$`));
        waits.push(Number(/retrying in ([0-9.]+)s/.exec(line)![1]));
      }
      assert.ok(waits[0]! <= 0.2 && waits[1]! >= 0.2 && waits[2]! >= 0.4 && waits[2]! > waits[0]!, `waits grow: ${waits.join(', ')}`);
      assert.equal(existsSync(join(out, 'cert.pem')), false);
      await ca.start();
      await listener.ready();
      const enrolled = await agentProcess.line(/^enrolled /, 30_000);
      assert.match(enrolled, new RegExp(`^enrolled [0-9a-f]+ ${SVC_A} until `));
      assert.match(openssl(['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'cert.pem')]), /OK/);
      assert.equal(await agentProcess.stop(), 0);
      assert.equal(agentProcess.lines.at(-1)!.text, 'stopped');
    } finally {
      await agentProcess.stop();
      await listener.close();
    }
  });
});

/** A renewal listener whose port is known before the server runs (the agent is told it up front). */
async function startRenewalListenerLater(ca: CaDeployment): Promise<{ url: string; ready(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  let listener: RenewalListener | undefined;
  return {
    url: `https://127.0.0.1:${port}/ca/renew`,
    ready: async () => {
      listener = await startRenewalListener(ca.running, port);
    },
    close: async () => listener?.close(),
  };
}

describe('portcullis agent: renewal over mutual TLS, and revocation', () => {
  let ca: CaDeployment;
  let listener: RenewalListener;
  let work: string;

  before(async () => {
    ca = await caDeployment('portcullis-agent-renew-', { pki: { trustDomain: TRUST_DOMAIN, defaultTtl: '1m' } });
    await ca.start();
    listener = await startRenewalListener(ca.running);
    work = mkdtempSync(join(tmpdir(), 'portcullis-agent-work-'));
  });
  after(async () => {
    await listener?.close();
    await ca?.remove();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  async function enrolled(name: string): Promise<{ out: string; hookLog: string; args: string[] }> {
    const svc = `spiffe://${TRUST_DOMAIN}/svc/${name}`;
    const out = join(work, name);
    const hookLog = join(work, `${name}.hook`);
    const args = ['--ca-url', ca.url, '--token', await ca.token([svc]), '--san', svc, '--out', out, '--renew-url', listener.url, '--exec-on-renew', `echo ran >> ${hookLog}`];
    const run = await agent([...args, '--once', '--ttl', '1m'], work);
    assert.equal(run.code, 0, run.stderr);
    return { out, hookLog, args };
  }

  it('--once with a valid certificate renews it over mTLS: new serial, new key, same names, the hook ran again', async () => {
    const { out, hookLog, args } = await enrolled('renew');
    const before = { serial: serialOf(join(out, 'cert.pem')), key: readFileSync(join(out, 'key.pem'), 'utf8') };
    const run = await agent([...args, '--once'], work);
    assert.equal(run.code, 0, run.stderr);
    const serial = serialOf(join(out, 'cert.pem'));
    assert.notEqual(serial, before.serial);
    assert.equal(run.stdout.trim().split('\n').at(-1), `renewed ${serial} (was ${before.serial}) until ${new X509Certificate(readFileSync(join(out, 'cert.pem'))).validToDate.toISOString()}`);
    assert.notEqual(readFileSync(join(out, 'key.pem'), 'utf8'), before.key, 'the key rotated');
    assert.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
    assert.deepEqual(sansOf(join(out, 'cert.pem')), [`URI:spiffe://${TRUST_DOMAIN}/svc/renew`]);
    assert.match(openssl(['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'cert.pem')]), /OK/);
    assert.equal(readFileSync(hookLog, 'utf8'), 'ran\nran\n');
    assert.deepEqual(readdirSync(out).sort(), ['bundle.pem', 'cert.pem', 'key.pem'], 'no temporary file is left behind');
  });

  it('a failing --exec-on-renew is reported in one line and does not stop the agent', async () => {
    const { out, args } = await enrolled('hook-fails');
    const run = await agent([...args.slice(0, -2), '--exec-on-renew', 'exit 7', '--once'], work);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(errLines(run.stderr), ['portcullis agent: --exec-on-renew failed: exit code 7']);
    assert.match(run.stdout, /^renewed /m);
    assert.ok(existsSync(join(out, 'cert.pem')));
  });

  it('does not renew at a server whose certificate does not chain to the CA: exit 1, one line, files unchanged', async () => {
    const { out, args } = await enrolled('impostor');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'impostor.key', '-out', 'impostor.pem', '-days', '1', '-subj', '/CN=impostor', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: work, stdio: 'ignore' });
    let asked = false;
    const impostor = createHttpsServer({ cert: readFileSync(join(work, 'impostor.pem')), key: readFileSync(join(work, 'impostor.key')) }, (_request, response) => {
      asked = true;
      response.end();
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const before = readFileSync(join(out, 'cert.pem'), 'utf8');
      const renewUrl = `https://127.0.0.1:${(impostor.address() as { port: number }).port}/ca/renew`;
      const run = await agent([...args.map((arg) => (arg === listener.url ? renewUrl : arg)), '--once'], work);
      assert.equal(run.code, AGENT_EXIT.refused, run.stderr);
      assert.deepEqual(errLines(run.stderr), [`portcullis agent: ${new URL(renewUrl).origin} presented a certificate that is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)`]);
      assert.equal(asked, false, 'no request reached it');
      assert.equal(readFileSync(join(out, 'cert.pem'), 'utf8'), before);
    } finally {
      impostor.closeAllConnections();
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
  });

  it('exits 3 with one line when the renewal route refuses the certificate as revoked (the listener has not yet read the CRL)', async () => {
    const { out, args } = await enrolled('revoked-route');
    const serial = serialOf(join(out, 'cert.pem'));
    const before = readFileSync(join(out, 'cert.pem'), 'utf8');
    assert.equal((await ca.cli(['ca', 'revoke', serial, '--reason', 'keyCompromise'])).code, 0);
    const run = await agent([...args, '--once'], work);
    assert.equal(run.code, AGENT_EXIT.revoked);
    assert.deepEqual(errLines(run.stderr), [`portcullis agent: certificate ${serial} is revoked; enrol again`]);
    assert.equal(readFileSync(join(out, 'cert.pem'), 'utf8'), before, 'the files are left as they were');
  });

  it('exits 3 with one line when the mTLS listener refuses the revoked certificate in the TLS handshake', async () => {
    const { out, args } = await enrolled('revoked-tls');
    const serial = serialOf(join(out, 'cert.pem'));
    assert.equal((await ca.cli(['ca', 'revoke', serial])).code, 0);
    await listener.refreshTrust();
    const run = await agent([...args, '--once'], work);
    assert.equal(run.code, AGENT_EXIT.revoked, run.stderr);
    assert.deepEqual(errLines(run.stderr), [`portcullis agent: certificate ${serial} is revoked; enrol again`]);
  });

  it('as a daemon, notices a revocation on the CRL before the renewal is due: exit 3, one line', async () => {
    const { out, args } = await enrolled('revoked-crl');
    const serial = serialOf(join(out, 'cert.pem'));
    const daemon = spawnAgent([...args, '--crl-interval', '1s'], { cwd: work });
    try {
      await daemon.line(/^using /);
      assert.equal((await ca.cli(['ca', 'revoke', serial])).code, 0);
      assert.equal(await within(daemon.exited, 20_000, 'the agent exiting'), AGENT_EXIT.revoked);
      assert.deepEqual(
        daemon.lines.filter((line) => line.stream === 'err').map((line) => line.text),
        [`portcullis agent: certificate ${serial} is revoked; enrol again`],
      );
    } finally {
      await daemon.stop();
    }
  });

  it('renews at two thirds of the lifetime, with a new key each time, and stops at a revocation (fake clock, real server)', async () => {
    const svc = `spiffe://${TRUST_DOMAIN}/svc/schedule`;
    const out = join(work, 'schedule');
    let now = Date.now();
    const sleeps: { at: number; ms: number }[] = [];
    const events: string[] = [];
    let writes = 0;
    const keys = new Set<string>();
    const certificates: { notBefore: number; notAfter: number }[] = [];
    const stop = new AbortController();
    let revokedSerial: string | undefined;
    const schedule = new Agent({
      ca: new HttpCa(new URL(ca.url)),
      caUrl: ca.url,
      credentials: { kind: 'token', token: await ca.token([svc]) },
      names: { spiffeId: svc, dns: [], ips: [] },
      outDir: out,
      ttl: '1m',
      renewUrl: listener.url,
      once: false,
      backoff: { initialMs: 1000, capMs: 60_000 },
      crlIntervalMs: 0,
      afterWrite: async () => {
        writes += 1;
        keys.add(readFileSync(join(out, 'key.pem'), 'utf8'));
        const written = new X509Certificate(readFileSync(join(out, 'cert.pem')));
        certificates.push({ notBefore: written.validFromDate.getTime(), notAfter: written.validToDate.getTime() });
        return undefined;
      },
      clock: () => now,
      sleep: async (ms) => {
        sleeps.push({ at: now, ms });
        // The server's clock moves with the agent's, as if the time had passed.
        now += ms;
        ca.clockOffsetMs = now - Date.now();
        // After two renewals, revoke the current certificate: the next renewal must end the agent.
        if (writes === 3 && revokedSerial === undefined) {
          revokedSerial = serialOf(join(out, 'cert.pem'));
          assert.equal((await ca.cli(['ca', 'revoke', revokedSerial])).code, 0);
        }
        if (sleeps.length > 10) stop.abort();
      },
      random: () => 0.5,
      out: (line) => events.push(line),
      err: (line) => events.push(line),
    });
    let ended: unknown;
    try {
      ended = await schedule.run(stop.signal).then(
        () => undefined,
        (error: unknown) => error,
      );
    } finally {
      ca.clockOffsetMs = 0;
    }
    assert.ok(ended instanceof AgentExit, `the agent ended with ${String(ended)}; events: ${events.join(' | ')}`);
    assert.equal(ended.exitCode, AGENT_EXIT.revoked);
    assert.equal(ended.message, `certificate ${revokedSerial} is revoked; enrol again`);
    assert.equal(writes, 3, events.join(' | '));
    assert.equal(keys.size, 3, 'each renewal brought a new key');
    assert.deepEqual(
      events.map((line) => line.split(' ')[0]),
      ['enrolled', 'renewed', 'renewed'],
    );
    // Each wait ended exactly at two thirds of the then current certificate's lifetime (about 20 s after a
    // certificate of one minute, backdated by one, was issued), and the next certificate followed at once.
    assert.equal(sleeps.length, 3);
    for (const [index, sleep] of sleeps.entries()) {
      const certificate = certificates[index]!;
      assert.equal(sleep.at + sleep.ms, renewalTime(certificate.notBefore, certificate.notAfter), `wait ${index}`);
      assert.ok(sleep.ms > 18_000 && sleep.ms < 21_000, `wait ${index}: ${sleep.ms} ms`);
    }
  });
});

describe('agent backoff', () => {
  it('grows from initial to the cap, each wait in [ceiling/2, ceiling]', () => {
    const policy = { initialMs: 1000, capMs: 60_000 };
    assert.deepEqual([0, 1, 2, 3, 6, 7, 40].map((attempt) => backoffDelay(attempt, policy, () => 0)), [500, 1000, 2000, 4000, 30_000, 30_000, 30_000]);
    assert.deepEqual([0, 1, 2, 3, 6, 7, 40].map((attempt) => backoffDelay(attempt, policy, () => 0.999_999)), [1000, 2000, 4000, 8000, 60_000, 60_000, 60_000]);
  });

  it('renewal time is two thirds into the lifetime', () => {
    assert.equal(renewalTime(0, 90_000), 60_000);
    assert.equal(renewalTime(1_000, 121_000), 81_000);
  });

  it('AgentStopped is not an exit', () => {
    assert.ok(!(new AgentStopped('x') instanceof AgentExit));
  });
});

describe('agent loop: the CA stays down until the certificate expires (fake clock, stub CA)', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'portcullis-agent-stub-'));
    // Any certificate and key do to start with: the stub CA never answers.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=stub', '-addext', `subjectAltName=URI:${SVC_A}`], { cwd: work, stdio: 'ignore' });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  function run(credentials: ConstructorParameters<typeof Agent>[0]['credentials']) {
    const start = Date.now();
    let now = start;
    const lines: string[] = [];
    const waits: number[] = [];
    const down = () => Promise.reject(new CaUnavailableError('/ca/bundle at https://ca.test is unreachable (ECONNREFUSED)'));
    const expiry = new X509Certificate(readFileSync(join(work, 'cert.pem'))).validToDate.getTime();
    const stub: AgentCa = {
      discover: () => Promise.resolve({ tokenEndpoint: 'https://ca.test/token', mtlsOrigin: 'https://ca.test:8443' }),
      accessToken: () => Promise.resolve('access-token'),
      sign: () => Promise.reject(new CaRefusalError('name-not-permitted', '/ca/sign refused (403 name-not-permitted): stub')),
      renew: down,
      // Back once the certificate has expired: too late to renew, in time to enrol again.
      bundle: () => (now < expiry ? down() : Promise.resolve('')),
      crl: down,
    };
    const loop = new Agent({
      ca: stub,
      caUrl: 'https://ca.test',
      credentials,
      names: { spiffeId: SVC_A, dns: [], ips: [] },
      outDir: work,
      once: false,
      backoff: { initialMs: 1000, capMs: 3_600_000 },
      crlIntervalMs: 0,
      clock: () => now,
      sleep: async (ms) => {
        waits.push(ms);
        now += ms;
        // These sleeps take no time: a loop that never ended would starve the test runner.
        if (waits.length > 500) throw new Error('the agent never gave up');
      },
      random: () => 0.5,
      out: (line) => lines.push(line),
      err: (line) => lines.push(line),
    });
    return loop.run(new AbortController().signal).then(
      () => ({ error: undefined as unknown, lines, waits, waited: now - start, expiresIn: expiry - start }),
      (error: unknown) => ({ error, lines, waits, waited: now - start, expiresIn: expiry - start }),
    );
  }

  it('with a token: retries with growing waits, none past the expiry, then exits 4 in one line', async () => {
    const { error, lines, waits, waited, expiresIn } = await run({ kind: 'token', token: 'unused' });
    assert.equal(waited, expiresIn, 'the last wait ends at the expiry, not after it');
    assert.ok(error instanceof AgentExit, String(error));
    assert.equal(error.exitCode, AGENT_EXIT.expired);
    assert.match(error.message, /^certificate [0-9a-f]+ expired at \S+ before it could be renewed; enrol again$/);
    const retries = lines.filter((line) => line.startsWith('retrying in '));
    assert.ok(retries.length >= 10, lines.join(' | '));
    assert.equal(retries[0], 'retrying in 0.8s: /ca/bundle at https://ca.test is unreachable (ECONNREFUSED)');
    const retryWaits = waits.slice(1, -1);
    for (let index = 1; index < retryWaits.length; index += 1) assert.ok(retryWaits[index]! >= retryWaits[index - 1]!, `waits grow: ${retryWaits.join(', ')}`);
    assert.equal(readFileSync(join(work, 'cert.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)!.length, 1, 'the files were left alone');
  });

  it('with client credentials: enrols again once the certificate expired (here refused: exit 1)', async () => {
    const { error, lines } = await run({ kind: 'client', clientId: 'c_1', secret: 's' });
    assert.ok(error instanceof AgentExit, String(error));
    assert.ok(lines.some((line) => /^portcullis agent: certificate [0-9a-f]+ expired before it could be renewed; enrolling again$/.test(line)), lines.join(' | '));
  });
});
