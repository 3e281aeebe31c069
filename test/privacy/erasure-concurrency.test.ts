/**
 * Two erasures of the same person at once (an administrator and the
 * person, say): one is carried out, the other finds nobody (issue 15: "a
 * concurrent erasure of the same person commits once"). One erasure record,
 * one tombstone, one notice per recipient, one deletion request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ERASURE_NOTICE_TOPIC, storedTombstones } from '../../src/privacy/index.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { codeFlow, ledgerEntries, privacyDeployment, signedInBrowser, startNoticeReceiver, type NoticeReceiver, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const ROUNDS = 5;
const CONCURRENT = 4;

for (const backend of testBackends) {
  describe(`concurrent erasures of the same person (${backend})`, () => {
    let deployment: PrivacyDeployment;
    let receiver: NoticeReceiver;
    before(async () => {
      receiver = await startNoticeReceiver();
      deployment = await privacyDeployment(backend);
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
      await receiver?.close();
    });

    it(`carry it out once: ${ROUNDS} rounds of ${CONCURRENT} admin API erasures at once`, async () => {
      const { running } = deployment;
      const app = await registerClient(deployment, { client_name: 'Application A', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email', token_endpoint_auth_method: 'client_secret_basic', erasure_notification_uri: receiver.url });
      for (let round = 0; round < ROUNDS; round++) {
        const email = `twice-${round}-${randomBytes(4).toString('hex')}@example.test`;
        const user = await running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
        const browser = await signedInBrowser(deployment.url, email, PASSWORD);
        await codeFlow(deployment.url, browser, { email, password: PASSWORD }, app, REDIRECT, 'openid email');
        const subject = running.erasure.subjects.ofUser(user.id);

        const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => deployment.admin(`/admin/privacy/users/${user.id}/erasure`, { body: {} })));
        const statuses = answers.map((answer) => answer.status).sort();
        assert.deepEqual(statuses, [200, ...Array<number>(CONCURRENT - 1).fill(404)], `round ${round}: one erasure, the others find nobody`);

        const erasures = (await running.erasure.erasures.list({ limit: 1000 })).filter((erasure) => erasure.subject === subject);
        assert.equal(erasures.length, 1, `round ${round}: one erasure record`);
        assert.equal((await storedTombstones(running.stores.durable.records)).filter((tombstone) => tombstone.user === subject).length, 1);
        const notices = (await deployment.outboxRows(ERASURE_NOTICE_TOPIC)).filter((row) => row.key.startsWith(`privacy-erasure:${erasures[0]!.id}:`));
        assert.equal(notices.length, 1, `round ${round}: one notice to the one recipient`);
        const requests = await running.erasure.requests.ofSubject(subject);
        assert.deepEqual(requests.map((request) => request.outcome), ['fulfilled'], `round ${round}: one deletion request, fulfilled`);
        const entries = (await ledgerEntries(running)).filter((entry) => entry.type === 'privacy.erasure' && entry.outcome === 'success' && entry.detail?.['erasure'] === erasures[0]!.id);
        assert.equal(entries.length, 1);
      }
      assert.equal((await running.erasure.erasures.list({ limit: 1000 })).length, ROUNDS);
    });
  });
}
