/**
 * Retention rules (issue 15, "Retention"), on a real server per deployment
 * (embedded SQLite; PostgreSQL + Redis), a test clock, and a real SMTP
 * server in this process that the server's outbox sends notices to.
 *
 * One story over 61 days, with inactiveAccountDays 60 (notice 14 days
 * before), sessionDays 30 and ipPseudonymiseDays 7:
 * - day 8: the IP of a session 8 days old becomes a keyed pseudonym, which
 *   the account page shows; a held person's session keeps its IP;
 * - day 31: a session 31 days old ends (its browser is signed out, its
 *   tokens end) and a younger one stays; the held person's stays;
 * - day 47: two people unused for 47 days get exactly one notice each (the
 *   SMTP server receives one mail to each address, the Message-ID is the
 *   outbox key); the held person gets none; a second run sends nothing;
 * - day 50: one of them signs in;
 * - day 61: the other is erased (an erasure on the `retention` channel);
 *   the one who signed in is not (the notice is void); the held person is
 *   neither noticed nor erased and keeps their session.
 * Each run's ledger entry has its counts. Two concurrent runs: one runs.
 * Without mail.smtpUrl nobody is noticed, so nobody is erased.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { setTimeout as wait } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import { decodeEntry } from '../../src/audit/index.ts';
import { Retention, ipPseudonym, isIpPseudonym, type JobReport } from '../../src/privacy/index.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow } from '../support/privacy-deployment.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const DAY = 24 * 60 * 60_000;
const LEASE_KEY = 'privacy:job-lease';

/** One mail as the SMTP server received it. */
interface ReceivedMail {
  readonly to: readonly string[];
  readonly raw: string;
}

/** A real SMTP server on a loopback port (no TLS, no authentication: a local relay). */
async function startSmtp(): Promise<{ url: string; received: ReceivedMail[]; close: () => Promise<void> }> {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({ to: session.envelope.rcptTo.map((address) => address.address), raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { url: `smtp://127.0.0.1:${port}`, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A header of a raw message (unfolded). */
function header(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head)?.[1]?.trim();
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await wait(20);
  }
}

async function signIn(server: TestServer, email: string, ip: string): Promise<BrowserlessClient> {
  const browser = new BrowserlessClient(server.url, { ip });
  const form = await browser.get('/login');
  const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD });
  assert.deepEqual({ status: answer.status, location: answer.location }, { status: 303, location: '/account' });
  return browser;
}

for (const backend of testBackends) {
  describe(`retention rules (${backend})`, () => {
    const clock = new ManualClock(Date.now());
    let smtp: Awaited<ReturnType<typeof startSmtp>>;
    let server: TestServer;
    const tag = randomBytes(4).toString('hex');
    const emails = { idle: `idle-${tag}@example.com`, returning: `returning-${tag}@example.com`, held: `held-${tag}@example.com`, active: `active-${tag}@example.com` };
    const ids: Record<keyof typeof emails, string> = { idle: '', returning: '', held: '', active: '' };
    const browsers: { held?: BrowserlessClient; oldest?: BrowserlessClient; younger?: BrowserlessClient } = {};

    /** The job again, as the next interval would run it (Redis keeps the lease by its own clock, so it is let go here). */
    async function nextRun(): Promise<JobReport> {
      await server.running.stores.hot.delete(LEASE_KEY);
      const report = await server.running.erasure.runJob();
      assert.ok(report !== null, 'the job ran');
      return report;
    }

    async function lastRetentionEntry(): Promise<Record<string, unknown>> {
      const size = await server.running.ledger.size();
      const entries = (await server.running.ledger.entries(Math.max(0, size - 200), size)).map((row) => decodeEntry(row.entry));
      const entry = entries.filter((candidate) => candidate.type === 'privacy.retention.ran').at(-1);
      assert.ok(entry !== undefined, 'a privacy.retention.ran entry');
      return { ...entry.detail };
    }

    before(async () => {
      smtp = await startSmtp();
      server = await startTestServer({
        backend,
        clock: clock.now,
        env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' },
        overrides: {
          mail: { smtpUrl: smtp.url, from: 'Portcullis <no-reply@example.com>' },
          privacy: { retention: { inactiveAccountDays: 60, inactiveNoticeDays: 14, sessionDays: 30, ipPseudonymiseDays: 7, interval: '1h' } },
          // Sessions long enough for the rules to meet them.
          identity: { sessionIdleTimeoutMs: 400 * DAY, sessionAbsoluteTimeoutMs: 400 * DAY },
        },
      });
      for (const name of Object.keys(emails) as (keyof typeof emails)[]) {
        ids[name] = (await server.running.identity.accounts.createUser(emails[name], PASSWORD, { actor: 'test' })).id;
      }
      browsers.held = await signIn(server, emails.held, '203.0.113.9');
      browsers.oldest = await signIn(server, emails.active, '198.51.100.23');
      assert.equal(await server.running.erasure.holds.set(ids.held, 'litigation 2026-17', 'test'), true);
    });
    after(async () => {
      await server?.close();
      await smtp?.close();
    });

    const sessionsOf = (userId: string) => server.running.identity.accounts.sessions.list(userId);

    it('two concurrent runs: one runs, the other finds the lease taken', async () => {
      const reports = await Promise.all([server.running.erasure.runJob(), server.running.erasure.runJob()]);
      assert.equal(reports.filter((report) => report === null).length, 1, 'one was refused');
      assert.equal(reports.filter((report) => report !== null).length, 1, 'one ran');
      assert.equal(await server.running.erasure.runJob(), null, 'and the lease holds until the interval is over');
    });

    it('day 8: the IP of a session older than ipPseudonymiseDays becomes a keyed pseudonym, shown on the account page; not for a held person', async () => {
      clock.advance(8 * DAY);
      const report = await nextRun();
      assert.equal(report.retention.ipsPseudonymised, 1);
      assert.equal(report.retention.sessionsDropped, 0);
      assert.equal(report.retention.held, 1, 'the held person was left alone');
      const [session] = await sessionsOf(ids.active);
      assert.ok(session !== undefined && isIpPseudonym(session.ip), `pseudonymised: ${session?.ip}`);
      assert.notEqual(session.ip, '198.51.100.0');
      const page = await browsers.oldest!.get('/account');
      assert.equal(page.status, 200);
      assert.ok(page.body.includes(`<td>${session.ip}</td>`), 'the account page shows the pseudonym');
      assert.ok(!page.body.includes('198.51.100'), 'and no longer the (masked) address');
      const [held] = await sessionsOf(ids.held);
      assert.equal(held?.ip, '203.0.113.0', 'the held person\'s session keeps its masked IP');
      // Keyed: the same network gives the same pseudonym under this deployment's key only.
      assert.notEqual(session.ip, ipPseudonym(new Uint8Array(32), '198.51.100.0'));

      // A second run leaves the pseudonym alone.
      clock.advance(60_000);
      assert.equal((await nextRun()).retention.ipsPseudonymised, 0);
      browsers.younger = await signIn(server, emails.active, '198.51.100.24');
    });

    it('day 31: a session older than sessionDays ends (signed out, tokens ended) and is dropped; a younger one stays; a held one stays', async () => {
      clock.advance(23 * DAY);
      const sizeBefore = await server.running.ledger.size();
      const report = await nextRun();
      assert.equal(report.retention.sessionsDropped, 1);
      assert.equal(report.retention.ipsPseudonymised, 1, 'the younger session, 23 days old, is past ipPseudonymiseDays');
      const left = await sessionsOf(ids.active);
      assert.equal(left.length, 1, 'one session left');
      assert.equal((await browsers.oldest!.get('/account')).status, 303, 'the old session is signed out');
      assert.equal((await browsers.younger!.get('/account')).status, 200, 'the younger one is not');
      assert.equal((await sessionsOf(ids.held)).length, 1, 'the held person keeps their session');
      const added = (await server.running.ledger.entries(sizeBefore, await server.running.ledger.size())).map((row) => decodeEntry(row.entry));
      assert.ok(added.some((entry) => entry.type === 'session.revoked' && entry.service === 'system' && entry.detail?.['reason'] === 'retention'), 'the ending is audited');
      assert.ok(added.some((entry) => entry.type === 'token.revoked' && entry.detail?.['kind'] === 'session'), 'its tokens end with it');
      const detail = await lastRetentionEntry();
      assert.equal(detail['sessionsDropped'], 1);
      assert.equal(detail['ipsPseudonymised'], 1);
      assert.equal(detail['held'], 1);
      // The active person signs in now and again, so they are never idle.
      await signIn(server, emails.active, '198.51.100.24');
    });

    it('day 47: the unused accounts get exactly one notice each by mail, the held one none; a second run sends nothing', async () => {
      clock.advance(16 * DAY);
      const report = await nextRun();
      assert.equal(report.retention.inactiveNoticed, 2);
      assert.equal(report.retention.inactiveErased, 0);
      assert.equal(report.retention.noticeMail, true);
      await until('two mails', () => smtp.received.length >= 2);
      assert.deepEqual(smtp.received.map((mail) => mail.to).flat().sort(), [emails.idle, emails.returning].sort());
      for (const mail of smtp.received) {
        assert.match(header(mail.raw, 'Subject') ?? '', /will be deleted for inactivity/);
        assert.match(header(mail.raw, 'From') ?? '', /no-reply@example\.com/);
        const id = mail.to[0] === emails.idle ? ids.idle : ids.returning;
        assert.equal(header(mail.raw, 'Message-ID'), `<inactive-notice.${id}.${clock.now()}@127.0.0.1>`, 'the Message-ID is the outbox key');
        assert.match(mail.raw, /sign in at http:\/\/127\.0\.0\.1:\d+\/login/);
      }
      // The notice period starts when the SMTP server took the mail.
      const sentAt = async (userId: string) => ((await server.running.stores.durable.records.get('privacy_retention', userId))?.data as { sentAt?: number } | undefined)?.sentAt;
      await until('the notices recorded as sent', async () => (await sentAt(ids.idle)) !== undefined && (await sentAt(ids.returning)) !== undefined);
      assert.equal(await server.running.stores.durable.records.get('privacy_retention', ids.held), null, 'no notice for the held person');

      clock.advance(DAY);
      const again = await nextRun();
      assert.equal(again.retention.inactiveNoticed, 0, 'noticed once');
      await wait(300);
      assert.equal(smtp.received.length, 2, 'exactly one mail each');
    });

    it('day 61: the account unused since is erased; the one signed in to after its notice is not; the held one is neither noticed nor erased and keeps its session', async () => {
      clock.advance(2 * DAY);
      await signIn(server, emails.returning, '192.0.2.44');
      clock.advance(10 * DAY);
      assert.equal((await nextRun()).retention.inactiveErased, 0, 'day 60: the mail went out 13 days ago, one day short of the notice period');
      clock.advance(DAY);
      const report = await nextRun();
      assert.equal(report.retention.inactiveErased, 1);
      assert.equal(report.retention.noticesVoided, 0, 'voided by the run of day 60 already');
      assert.equal(await server.running.identity.accounts.users.byId(ids.idle), null, 'erased');
      assert.equal(await server.running.stores.durable.records.get('privacy_retention', ids.idle), null, 'with its notice');
      const erasures = await server.running.erasure.erasures.list();
      assert.ok(erasures.some((erasure) => erasure.channel === 'retention' && erasure.state === 'executed' && erasure.subject === server.running.erasure.subjects.ofUser(ids.idle)));
      assert.notEqual(await server.running.identity.accounts.users.byId(ids.returning), null, 'signed in after the notice: kept');
      assert.notEqual(await server.running.identity.accounts.users.byId(ids.held), null, 'held: kept');
      assert.equal((await sessionsOf(ids.held)).length, 1, 'held: the 61-day-old session is still there');
      assert.equal((await browsers.held!.get('/account')).status, 200);
      assert.equal(smtp.received.length, 2, 'and still no mail to the held person');
      const detail = await lastRetentionEntry();
      assert.equal(detail['inactiveErased'], 1);
      assert.equal(detail['inactiveNoticed'], 0);
      assert.equal(detail['held'], 1);
      assert.equal(detail['noticeMail'], true);
      assert.equal(detail['complete'], true);
      assert.ok(typeof detail['recordsScanned'] === 'number' && detail['recordsScanned'] >= 4);
    });

    it('the sign-in after the notice voided it: the run of day 60 dropped the notice record', async () => {
      assert.equal(await server.running.stores.durable.records.get('privacy_retention', ids.returning), null);
      const size = await server.running.ledger.size();
      const entries = (await server.running.ledger.entries(Math.max(0, size - 400), size)).map((row) => decodeEntry(row.entry));
      assert.ok(entries.some((entry) => entry.type === 'privacy.retention.ran' && entry.detail?.['noticesVoided'] === 1));
    });
  });
}

describe('retention without mail.smtpUrl', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ clock: clock.now, overrides: { privacy: { retention: { inactiveAccountDays: 60, inactiveNoticeDays: 14 } } } });
  });
  after(async () => {
    await server?.close();
  });

  it('says so at start, notices nobody and so erases nobody, and reports it', async () => {
    assert.ok(server.logs.text.includes('no inactivity notice can be sent, so no inactive account is erased'), 'the config warning is logged');
    const user = await server.running.identity.accounts.createUser(`unmailed-${randomBytes(4).toString('hex')}@example.com`, PASSWORD, { actor: 'test' });
    clock.advance(400 * DAY);
    const report = await server.running.erasure.runJob();
    assert.ok(report !== null);
    assert.equal(report.retention.noticeMail, false);
    assert.equal(report.retention.inactiveUnnoticed, 1);
    assert.equal(report.retention.inactiveNoticed, 0);
    assert.equal(report.retention.inactiveErased, 0);
    assert.notEqual(await server.running.identity.accounts.users.byId(user.id), null);
  });

  it('stops between pages once the job has lost its lease, and reports the run incomplete', async () => {
    for (let i = 0; i < 3; i++) await server.running.identity.accounts.createUser(`paged-${i}-${randomBytes(4).toString('hex')}@example.com`, PASSWORD, { actor: 'test' });
    const running = server.running;
    const retention = new Retention({
      durable: running.stores.durable,
      identity: running.identity,
      oauth: running.authorizationServer,
      events: running.events,
      clock: clock.now,
      erasures: running.erasure.erasures,
      holds: running.erasure.holds,
      rules: { inactiveAccountDays: 0, inactiveNoticeDays: 30, sessionDays: 1, ipPseudonymiseDays: 0 },
      mail: false,
      ipKey: new Uint8Array(32),
      issuer: 'http://127.0.0.1:9000',
      pageSize: 1,
    });
    let asked = 0;
    const stopped = await retention.run(async () => ++asked < 2);
    assert.equal(stopped.complete, false);
    assert.equal(asked, 2, 'asked after each page until refused');
    const whole = await retention.run();
    assert.equal(whole.complete, true);
    assert.ok(whole.recordsScanned >= 4 && stopped.recordsScanned < whole.recordsScanned, `${stopped.recordsScanned} of ${whole.recordsScanned}`);
  });

  it('a refresh-token use counts as activity, written at most once a day: an app that keeps the person signed in keeps their account', async () => {
    const email = `refreshing-${randomBytes(4).toString('hex')}@example.com`;
    const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const client = await registerClient(server, { client_name: 'Offline app', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid offline_access', token_endpoint_auth_method: 'client_secret_basic' });
    const browser = new BrowserlessClient(server.url, { ip: '198.51.100.61' });
    const issued = await codeFlow(server.url, browser, { email, password: PASSWORD }, client, REDIRECT, 'openid offline_access');
    const signedInAt = (await server.running.identity.accounts.users.byId(user.id))?.lastSignInAt;
    assert.equal(signedInAt, clock.now(), 'the sign-in is the first activity');
    const refresh = async (token: string): Promise<string> => {
      const answer = await clientPost(server.url, '/token', client, { grant_type: 'refresh_token', refresh_token: token });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body['refresh_token'] as string;
    };
    clock.advance(10 * DAY);
    const token = await refresh(issued['refresh_token'] as string);
    assert.equal((await server.running.identity.accounts.users.byId(user.id))?.lastSignInAt, clock.now(), 'ten days on, the refresh is recorded');
    const recordedAt = clock.now();
    clock.advance(12 * 60 * 60_000);
    await refresh(token);
    assert.equal((await server.running.identity.accounts.users.byId(user.id))?.lastSignInAt, recordedAt, 'half a day later, no second write');
    // A refresh token presented again (a replay) is refused and is no activity.
    clock.advance(2 * DAY);
    const replayed = await clientPost(server.url, '/token', client, { grant_type: 'refresh_token', refresh_token: issued['refresh_token'] as string });
    assert.equal(replayed.status, 400);
    assert.equal((await server.running.identity.accounts.users.byId(user.id))?.lastSignInAt, recordedAt, 'a refused refresh records nothing');
  });
});
