/**
 * The mTLS listener's own certificate, when the CA issues it, is renewed
 * at two thirds of its lifetime; a failed renewal keeps the current one
 * serving and is retried with backoff. The schedule with mocked timers
 * (including a lifetime past setTimeout's 24.8-day limit), then a real
 * Portcullis whose test CA issues four-second certificates.
 */
import { after, afterEach, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { renewalTime, scheduleRenewal, type CertificateInfo, type RenewalEvent } from '../../src/runtime/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { CapturedLogs } from '../support/server.ts';
import { OpensslCa } from '../support/openssl-ca.ts';
import { TestAuthority } from '../support/listener-authority.ts';
import { tlsGet } from '../support/tls-client.ts';

const DAY = 86_400_000;

/** Lets the promise chains a timer started run to their end (setImmediate is not mocked). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function certificate(serialNumber: string, notBefore: number, notAfter: number): CertificateInfo {
  return { serialNumber, notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
}

describe('the renewal schedule', () => {
  afterEach(() => mock.timers.reset());

  it('is at two thirds of the lifetime', () => {
    assert.equal(renewalTime(certificate('01', 0, 3000)), 2000);
    assert.equal(renewalTime(certificate('01', 1_000_000, 1_000_000 + 90 * DAY)), 1_000_000 + 60 * DAY);
  });

  it('a 90-day certificate renews at day 60, not at once: setTimeout fires at once past 2^31 - 1 ms, so the wait is taken in steps', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    let issued = 0;
    const installed: string[] = [];
    const renewal = scheduleRenewal(certificate('01', 0, 90 * DAY), {
      issue: async () => {
        issued += 1;
        return { cert: 'c', key: 'k', notBefore: new Date(Date.now()), notAfter: new Date(Date.now() + 90 * DAY) };
      },
      install: () => {
        installed.push('02');
        return certificate('02', Date.now(), Date.now() + 90 * DAY);
      },
      clock: () => Date.now(),
      report: () => undefined,
    });
    mock.timers.tick(1000);
    await settle();
    assert.equal(issued, 0, 'not renewed at once');
    mock.timers.tick(60 * DAY - 1001);
    await settle();
    assert.equal(issued, 0, 'not before day 60');
    mock.timers.tick(1);
    await settle();
    assert.equal(issued, 1, 'at day 60');
    assert.deepEqual(installed, ['02']);
    renewal.close();
  });

  it('a failure keeps the current certificate and is retried after 1 s, 2 s, 4 s, ... up to the maximum', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const events: RenewalEvent[] = [];
    let failuresLeft = 5;
    let installs = 0;
    const renewal = scheduleRenewal(certificate('01', 0, 3000), {
      issue: async () => {
        if (failuresLeft > 0) {
          failuresLeft -= 1;
          throw new Error('CA unavailable');
        }
        return { cert: 'c', key: 'k', notBefore: new Date(Date.now()), notAfter: new Date(Date.now() + 3000) };
      },
      install: () => {
        installs += 1;
        return certificate('02', Date.now(), Date.now() + 3000);
      },
      clock: () => Date.now(),
      report: (event) => events.push(event),
      retry: { firstMs: 1000, maxMs: 5000 },
    });
    mock.timers.tick(2000);
    await settle();
    for (const wait of [1000, 2000, 4000, 5000, 5000]) {
      assert.equal(installs, 0, 'the current certificate stays while renewal fails');
      mock.timers.tick(wait);
      await settle();
    }
    assert.deepEqual(
      events.map((event) => (event.kind === 'failed' ? [event.attempt, event.retryInMs, event.reason] : event.kind)),
      [[1, 1000, 'CA unavailable'], [2, 2000, 'CA unavailable'], [3, 4000, 'CA unavailable'], [4, 5000, 'CA unavailable'], [5, 5000, 'CA unavailable'], 'renewed'],
    );
    assert.equal(installs, 1);
    const renewed = events.at(-1) as Extract<RenewalEvent, { kind: 'renewed' }>;
    assert.equal(renewed.nextAt.getTime(), renewalTime(renewed.certificate), 'and the next renewal is scheduled from the new certificate');
    renewal.close();
  });

  it('once closed, an issuance that answers afterwards installs nothing', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    let answer: (() => void) | undefined;
    let installs = 0;
    const renewal = scheduleRenewal(certificate('01', 0, 3000), {
      issue: () =>
        new Promise((resolve) => {
          answer = () => resolve({ cert: 'c', key: 'k', notBefore: new Date(0), notAfter: new Date(3000) });
        }),
      install: () => {
        installs += 1;
        return certificate('02', 0, 3000);
      },
      clock: () => Date.now(),
      report: () => undefined,
    });
    mock.timers.tick(2000);
    await settle();
    assert.ok(answer !== undefined, 'the issuance started');
    renewal.close();
    answer();
    await settle();
    assert.equal(installs, 0);
  });
});

describe('a running Portcullis renews its mTLS certificate from the CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-renewal-'));
  const logs = new CapturedLogs();
  let ca: OpensslCa;
  let authority: TestAuthority;
  let running: RunningPortcullis;

  before(async () => {
    ca = OpensslCa.create(join(dir, 'ca'), 'Renewal test CA');
    authority = new TestAuthority(ca, { lifetimeMs: 4000 });
    running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: join(dir, 'data'), port: 0, tls: { mtlsPort: 0 } } }), { logDestination: logs.stream, listenerAuthority: authority });
  });

  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('at two thirds of a 4 s lifetime: a failure keeps the old certificate serving; the retry 1 s later installs a new one that new handshakes get', async () => {
    const client = ca.issue('client', { kind: 'client' });
    const target = { port: Number(new URL(running.mtlsUrl!).port), ca: ca.cert, client: { cert: client.cert, key: client.key } };
    const first = running.mtlsListener!.listener.certificate!;
    assert.equal(first.serialNumber, authority.serials[0]);
    assert.equal((await tlsGet(target)).serverSerial, first.serialNumber);

    authority.interceptNext(async () => {
      throw new Error('CA unavailable');
    });
    const failed = logs.next(/mTLS certificate renewal failed/);
    const renewed = logs.next(/mTLS certificate renewed/);

    const failure = JSON.parse(await failed);
    assert.equal(failure.level, 'warn');
    assert.equal(failure.reason, 'CA unavailable');
    assert.equal(failure.retryInMs, 1000);
    assert.ok(Date.parse(failure.time) >= renewalTime(first), `not before two thirds of the lifetime (${failure.time})`);
    assert.equal((await tlsGet(target)).serverSerial, first.serialNumber, 'the old certificate still serves');

    const renewal = JSON.parse(await renewed);
    assert.equal(authority.serials.length, 2);
    assert.equal(renewal.serialNumber, authority.serials[1]);
    const second = running.mtlsListener!.listener.certificate!;
    assert.equal(renewal.nextRenewal, new Date(renewalTime(second)).toISOString());
    const exchange = await tlsGet(target);
    assert.equal(exchange.status, 200);
    assert.equal(exchange.serverSerial, authority.serials[1], 'new handshakes get the renewed certificate');
    assert.deepEqual(authority.requests.at(-1), { dnsNames: [], ipAddresses: ['127.0.0.1'] });
  });
});
