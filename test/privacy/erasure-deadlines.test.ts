/**
 * The erasure's deadlines, on a server whose clock the test moves (issue
 * 15): a recipient that is away for a day (its notice fails and is retried,
 * is flagged overdue once privacy.recipientDeadlineHours passed, and is
 * delivered late when it comes back); the grace period of
 * privacy.erasureGraceDays (scheduled on the page, cancelled there, or
 * carried out by the privacy job once due); and consumer requests (listed
 * answered or open; one past its legal answer deadline flagged overdue once
 * by the job).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ERASURE_NOTICE_TOPIC, type ConsumerRequest, type ErasureRecord } from '../../src/privacy/index.ts';
import type { User } from '../../src/identity/index.ts';
import { csrfField, type BrowserlessClient } from '../support/browserless-client.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { codeFlow, ledgerEntries, privacyDeployment, runPrivacyJob, signedInBrowser, startNoticeReceiver, type NoticeReceiver, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const HOUR = 60 * 60_000;
const DAY = 24 * HOUR;

/** A person signed in on the pages who let application A (with an erasure_notification_uri) in. */
async function personWithApplication(deployment: PrivacyDeployment, noticeUri: string): Promise<{ user: User; app: RegisteredClient; browser: BrowserlessClient }> {
  const email = `deadline-${randomBytes(4).toString('hex')}@example.test`;
  const user = await deployment.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
  const app = await registerClient(deployment, { client_name: 'Application A', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email', token_endpoint_auth_method: 'client_secret_basic', erasure_notification_uri: noticeUri });
  const browser = await signedInBrowser(deployment.url, email, PASSWORD);
  await codeFlow(deployment.url, browser, { email, password: PASSWORD }, app, REDIRECT, 'openid email');
  return { user, app, browser };
}

/** Asks for the deletion on the page (password, box ticked): with a grace period it is scheduled, and the page says when. */
async function scheduleOnPage(browser: BrowserlessClient): Promise<void> {
  const form = await browser.get('/account/delete');
  assert.equal(form.status, 200);
  assert.match(form.body, /after 7 days, during which you can cancel/);
  const asked = await browser.post('/account/delete', { _csrf: csrfField(form.body)!, password: PASSWORD, confirm: 'yes' });
  assert.equal(asked.status, 303, asked.body.slice(0, 300));
  assert.equal(asked.location, '/account/delete');
}

for (const backend of testBackends) {
  describe(`a recipient away for a day, with privacy.recipientDeadlineHours 12 (${backend})`, () => {
    let deployment: PrivacyDeployment;
    let receiver: NoticeReceiver;
    before(async () => {
      receiver = await startNoticeReceiver();
      deployment = await privacyDeployment(backend, { privacy: { recipientDeadlineHours: 12 } });
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
      await receiver?.close();
    });

    it('retries the failing notice, flags it overdue once past the deadline, and delivers it late when the recipient is back', async () => {
      const { running } = deployment;
      const { user, app } = await personWithApplication(deployment, receiver.url);
      receiver.status = 503;
      const erased = await deployment.admin(`/admin/privacy/users/${user.id}/erasure`, { body: {} });
      assert.equal(erased.status, 200, await erased.clone().text());
      const { erasure } = (await erased.json()) as { erasure: ErasureRecord };
      const key = `privacy-erasure:${erasure.id}:${app.clientId}`;
      const notice = async () => (await deployment.outboxRows(ERASURE_NOTICE_TOPIC)).find((row) => row.key === key)!;
      const recipient = async () => (await running.erasure.erasures.get(erasure.id))!.recipients.find((one) => one.clientId === app.clientId)!;

      await deployment.outbox().runOnce();
      const first = await notice();
      assert.ok(first.attempts >= 1 && !first.delivered, JSON.stringify(first));
      assert.match(first.lastError ?? '', /answered 503/);
      const attempts = [first.attempts];
      for (let hour = 1; hour <= 24; hour++) {
        deployment.clock.advance(HOUR);
        await deployment.outbox().runOnce();
        attempts.push((await notice()).attempts);
        if (hour === 6) {
          assert.equal((await runPrivacyJob(running)).noticesOverdue, 0, 'not overdue before the deadline');
          assert.equal((await recipient()).state, 'pending');
        }
        if (hour === 13) {
          assert.equal((await runPrivacyJob(running)).noticesOverdue, 1, 'overdue after the deadline');
          const overdue = await recipient();
          assert.equal(overdue.state, 'overdue');
          assert.ok(overdue.overdueAt !== undefined && overdue.overdueAt > overdue.deadline);
        }
        if (hour === 20) assert.equal((await runPrivacyJob(running)).noticesOverdue, 0, 'flagged once');
      }
      assert.ok(attempts.every((count, index) => index === 0 || count >= attempts[index - 1]!), `attempts never go down: ${attempts.join(',')}`);
      assert.ok(attempts.at(-1)! >= attempts[0]! + 24, `retried every hour: ${attempts.join(',')}`);
      assert.equal(receiver.attempts, attempts.at(-1), 'each attempt reached the recipient');
      assert.equal(receiver.received.length, 0);
      assert.equal((await recipient()).state, 'overdue', 'still overdue, still retried');

      receiver.status = 202;
      deployment.clock.advance(HOUR);
      await deployment.outbox().runOnce();
      assert.equal((await notice()).delivered, true);
      const delivered = await recipient();
      assert.equal(delivered.state, 'delivered');
      assert.ok(delivered.deliveredAt !== undefined && delivered.deliveredAt > delivered.deadline);
      assert.equal(receiver.received.length, 1);

      const entries = await ledgerEntries(running);
      const overdueEntries = entries.filter((entry) => entry.type === 'privacy.recipient.overdue' && entry.detail?.['erasure'] === erasure.id);
      assert.equal(overdueEntries.length, 1);
      assert.equal(overdueEntries[0]!.client, app.clientId);
      assert.equal(overdueEntries[0]!.outcome, 'failure');
      const notified = entries.filter((entry) => entry.type === 'privacy.recipient.notified' && entry.detail?.['erasure'] === erasure.id);
      assert.deepEqual(
        notified.map((entry) => ({ client: entry.client, result: entry.detail?.['result'], late: entry.detail?.['late'] })),
        [{ client: app.clientId, result: 'delivered', late: true }],
      );
    });
  });

  describe(`a grace period of 7 days (${backend})`, () => {
    let deployment: PrivacyDeployment;
    before(async () => {
      deployment = await privacyDeployment(backend, { privacy: { erasureGraceDays: 7 } });
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
    });

    it('the page schedules the erasure and shows its date; cancelling it there keeps the account, and is audited', async () => {
      const { running } = deployment;
      const email = `grace-${randomBytes(4).toString('hex')}@example.test`;
      const user = await running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const browser = await signedInBrowser(deployment.url, email, PASSWORD);
      await scheduleOnPage(browser);
      const scheduled = (await running.erasure.erasures.scheduledFor(user.id))!;
      assert.ok(scheduled, 'an erasure is scheduled');
      assert.equal(scheduled.dueAt - scheduled.requestedAt, 7 * DAY);
      const shown = await browser.get('/account/delete');
      assert.equal(shown.status, 200);
      assert.ok(shown.body.includes(new Date(scheduled.dueAt).toUTCString()), 'the page shows the date');
      assert.match(shown.body, /Keep my account/);
      assert.equal((await browser.get('/account/session.json')).status, 200, 'the account stays usable meanwhile');
      const request = (await running.erasure.requests.get(scheduled.request))!;
      assert.equal(request.answeredAt, undefined, 'the deletion request is open');

      const cancelled = await browser.post('/account/delete/cancel', { _csrf: csrfField(shown.body)! });
      assert.equal(cancelled.status, 303);
      assert.equal(cancelled.location, '/account');
      assert.equal(await running.erasure.erasures.scheduledFor(user.id), null);
      const record = (await running.erasure.erasures.get(scheduled.id))!;
      assert.equal(record.state, 'cancelled');
      assert.ok(!('userId' in record), 'a cancelled erasure keeps no user id');
      assert.equal((await running.erasure.requests.get(scheduled.request))!.outcome, 'cancelled');
      assert.match((await browser.get('/account/delete')).body, /Delete my account/);

      const pseudonym = await running.ledger.pseudonyms.existingPseudonym(user.id);
      const entries = await ledgerEntries(running);
      for (const type of ['privacy.erasure.requested', 'privacy.erasure.cancelled'] as const) {
        const entry = entries.find((candidate) => candidate.type === type && candidate.detail?.['erasure'] === scheduled.id);
        assert.ok(entry, type);
        assert.equal(entry.actor, pseudonym, `${type} names the person by their pseudonym`);
      }

      deployment.clock.advance(8 * DAY);
      assert.equal((await runPrivacyJob(running)).erasuresCarriedOut, 0);
      assert.ok(await running.identity.accounts.users.byId(user.id), 'a cancelled erasure is never carried out');
    });

    it('not cancelled, the job carries it out once due, not before', async () => {
      const { running } = deployment;
      const email = `grace-${randomBytes(4).toString('hex')}@example.test`;
      const user = await running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const browser = await signedInBrowser(deployment.url, email, PASSWORD);
      await scheduleOnPage(browser);
      const scheduled = (await running.erasure.erasures.scheduledFor(user.id))!;
      // Asking again while one is scheduled schedules nothing new.
      const again = await running.erasure.erasures.request(user.id, { channel: 'account' }, { grace: true });
      assert.equal(again.erasure.id, scheduled.id);

      deployment.clock.advance(7 * DAY - HOUR);
      assert.equal((await runPrivacyJob(running)).erasuresCarriedOut, 0, 'not before it is due');
      assert.ok(await running.identity.accounts.users.byId(user.id));
      deployment.clock.advance(2 * HOUR);
      assert.equal((await runPrivacyJob(running)).erasuresCarriedOut, 1);
      assert.equal(await running.identity.accounts.users.byId(user.id), null, 'erased');
      assert.deepEqual(await running.identity.accounts.sessions.list(user.id), []);
      const record = (await running.erasure.erasures.get(scheduled.id))!;
      assert.equal(record.state, 'executed');
      assert.ok(!('userId' in record));
      assert.equal((await running.erasure.requests.get(scheduled.request))!.outcome, 'fulfilled');
      const entries = await ledgerEntries(running);
      assert.ok(entries.some((entry) => entry.type === 'privacy.erasure' && entry.detail?.['erasure'] === scheduled.id && entry.service === 'system'));
      assert.equal((await runPrivacyJob(running)).erasuresCarriedOut, 0, 'once');
    });

    // Security review of issue 15: an erasure that overtakes or meets a scheduled one.
    it('an immediate erasure carries out the scheduled one: its record is executed without the id, its request answered; the job finds nothing left', async () => {
      const { running } = deployment;
      const user = await running.identity.accounts.createUser(`overtaken-${randomBytes(4).toString('hex')}@example.test`, PASSWORD, { actor: 'test' });
      const scheduled = await running.erasure.erasures.request(user.id, { channel: 'account' }, { grace: true });
      assert.equal(scheduled.kind, 'scheduled');
      const now = await running.erasure.erasures.request(user.id, { channel: 'admin', actorService: 'admin' }, { grace: false });
      assert.equal(now.kind, 'erased');
      assert.equal(now.erasure.id, scheduled.erasure.id, 'the scheduled erasure is the one carried out');
      const record = (await running.erasure.erasures.get(scheduled.erasure.id))!;
      assert.equal(record.state, 'executed');
      assert.ok(!('userId' in record), 'the record no longer names the account');
      assert.equal((await running.erasure.requests.get(scheduled.erasure.request))!.outcome, 'fulfilled');
      deployment.clock.advance(8 * DAY);
      assert.equal((await runPrivacyJob(running)).erasuresCarriedOut, 0);
    });

    it('a held account cannot schedule an erasure: refused at the asking, the request recorded as refused', async () => {
      const { running } = deployment;
      const user = await running.identity.accounts.createUser(`held-${randomBytes(4).toString('hex')}@example.test`, PASSWORD, { actor: 'test' });
      await running.erasure.holds.set(user.id, 'litigation', 'test');
      await assert.rejects(running.erasure.erasures.request(user.id, { channel: 'account' }, { grace: true }), (error: unknown) => error instanceof Error && error.name === 'ErasureRefusedError');
      assert.equal(await running.erasure.erasures.scheduledFor(user.id), null);
      const requests = await running.erasure.requests.ofSubject(running.erasure.subjects.ofUser(user.id));
      assert.deepEqual(requests.map((request) => [request.kind, request.outcome]), [['deletion', 'refused']]);
    });
  });

  describe(`consumer requests and their deadlines (${backend})`, () => {
    let deployment: PrivacyDeployment;
    before(async () => {
      deployment = await privacyDeployment(backend, { privacy: { erasureGraceDays: 7 } });
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
    });

    it('lists the deletion request an erasure answered and a scheduled one still open; the job flags one past its answer deadline, once', async () => {
      const { running } = deployment;
      const tag = randomBytes(4).toString('hex');
      const waiting = await running.identity.accounts.createUser(`waiting-${tag}@example.test`, PASSWORD, { actor: 'test' });
      const gone = await running.identity.accounts.createUser(`gone-${tag}@example.test`, PASSWORD, { actor: 'test' });
      const scheduledRun = await deployment.cli(['user', 'erase', waiting.email, '--grace', '--json']);
      assert.equal(scheduledRun.code, 0, scheduledRun.err.join('\n'));
      const scheduled = JSON.parse(scheduledRun.out.join('\n')) as ErasureRecord;
      assert.equal(scheduled.state, 'scheduled');
      const erasedRun = await deployment.cli(['user', 'erase', gone.email, '--json']);
      assert.equal(erasedRun.code, 0, erasedRun.err.join('\n'));
      const erased = JSON.parse(erasedRun.out.join('\n')) as ErasureRecord;
      assert.equal(erased.state, 'executed');

      const listed = await deployment.cli(['privacy', 'requests', '--json']);
      assert.equal(listed.code, 0, listed.err.join('\n'));
      const requests = JSON.parse(listed.out.join('\n')) as ConsumerRequest[];
      const answered = requests.find((request) => request.id === erased.request)!;
      assert.equal(answered.kind, 'deletion');
      assert.equal(answered.outcome, 'fulfilled');
      assert.ok(answered.answeredAt !== undefined);
      const open = requests.find((request) => request.id === scheduled.request)!;
      assert.equal(open.kind, 'deletion');
      assert.equal(open.answeredAt, undefined);
      assert.equal(open.erasure, scheduled.id);
      assert.ok(!JSON.stringify(requests).includes(waiting.id) && !JSON.stringify(requests).includes(gone.email), 'requests name people by keyed hashes only');
      const openOnly = await deployment.cli(['privacy', 'requests', '--open', '--json']);
      assert.deepEqual((JSON.parse(openOnly.out.join('\n')) as ConsumerRequest[]).map((request) => request.id), [scheduled.request]);

      // A legal hold keeps the scheduled erasure from being carried out, and its request waits past the 45 days.
      const held = await deployment.cli(['privacy', 'hold', 'set', waiting.email, '--reason', 'pending litigation']);
      assert.equal(held.code, 0, held.err.join('\n'));
      deployment.clock.advance(44 * DAY);
      const early = await runPrivacyJob(running);
      assert.deepEqual([early.erasuresCarriedOut, early.requestsOverdue], [0, 0]);
      deployment.clock.advance(2 * DAY);
      const late = await runPrivacyJob(running);
      assert.deepEqual([late.erasuresCarriedOut, late.requestsOverdue], [0, 1]);
      const flagged = (await running.erasure.requests.get(scheduled.request))!;
      assert.ok(flagged.overdue?.answer !== undefined && flagged.overdue.answer > flagged.answerBy);
      const entries = await ledgerEntries(running);
      const overdue = entries.filter((entry) => entry.type === 'privacy.request.overdue');
      assert.deepEqual(
        overdue.map((entry) => entry.detail),
        [{ request: scheduled.request, kind: 'deletion', deadline: 'answer' }],
      );
      assert.equal((await runPrivacyJob(running)).requestsOverdue, 0, 'flagged once');
      assert.ok(await running.identity.accounts.users.byId(waiting.id), 'the held account is still there');
    });
  });
}
