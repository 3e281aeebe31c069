/**
 * An erasure racing sign-ins of the same person (issue 15): many browsers
 * post the right password on the sign-in page while the account is erased.
 * Whatever order they land in, afterwards the erased id has no live
 * session (the session manager's list and the user's session set are
 * empty), and every session cookie a browser was given is refused. A
 * sign-in that made its session before the erasure committed is ended by
 * the erasure; one that made it after is ended by the sign-in itself, which
 * reads the account again once its session exists (Accounts.#signIn).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { privacyDeployment, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const ROUNDS = 6;
const SIGN_INS = 8;
const SESSION_COOKIE = '__Host-portcullis';

for (const backend of testBackends) {
  describe(`erasure racing sign-ins of the same person (${backend})`, () => {
    let deployment: PrivacyDeployment;
    before(async () => {
      deployment = await privacyDeployment(backend);
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
    });

    it(`leaves no live session for the erased id, in ${ROUNDS} rounds of ${SIGN_INS} concurrent sign-ins`, async (t) => {
      const { running } = deployment;
      const { sessions } = running.identity.accounts;
      const outcomes = { before: 0, refused: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        const email = `race-${round}-${randomBytes(4).toString('hex')}@example.test`;
        const user = await running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
        // Each browser has the sign-in form, from its own address (the throttle counts per network).
        const browsers = await Promise.all(
          Array.from({ length: SIGN_INS }, async (_, index) => {
            const browser = new BrowserlessClient(deployment.url, { ip: `198.51.100.${10 * round + index + 1}` });
            const form = await browser.get('/login');
            return { browser, csrf: csrfField(form.body)! };
          }),
        );
        // The erasure starts after 0, 1 or 2 answers came back, so it lands at different points of the sign-ins.
        let answered = 0;
        let release: () => void = () => undefined;
        const startErasure = new Promise<void>((resolve) => (release = resolve));
        const waitFor = round % 3;
        if (waitFor === 0) release();
        const posts = browsers.map(async ({ browser, csrf }) => {
          const answer = await browser.post('/login', { _csrf: csrf, email, password: PASSWORD });
          answered += 1;
          if (answered === waitFor) release();
          return answer;
        });
        const erasure = startErasure.then(() => running.erasure.erasures.request(user.id, { channel: 'admin', actorService: 'test' }, { grace: false }));
        const answers = await Promise.all(posts);
        assert.equal((await erasure).kind, 'erased');

        for (const answer of answers) {
          if (answer.status === 303) {
            assert.equal(answer.location, '/account');
            outcomes.before += 1;
          } else {
            assert.equal(answer.status, 401, `a sign-in after the erasure is refused like an unknown account: ${answer.status}`);
            outcomes.refused += 1;
          }
        }
        assert.deepEqual(await sessions.list(user.id), [], `round ${round}: no live session`);
        assert.deepEqual(await running.stores.hot.boundedSetMembers(`user-sessions:${user.id}`), [], `round ${round}: the user's session set is empty`);
        for (const { browser } of browsers) {
          const cookie = browser.cookie(SESSION_COOKIE);
          if (cookie === undefined) continue;
          assert.equal(await sessions.resolve(cookie), null, `round ${round}: a cookie given out resolves to no session`);
          assert.equal((await browser.get('/account/session.json')).status, 401, `round ${round}: a cookie given out is refused`);
        }
        assert.equal(await running.identity.accounts.users.byId(user.id), null);
      }
      t.diagnostic(`sign-ins answered with a session: ${outcomes.before}; refused after the erasure: ${outcomes.refused}`);
    });
  });
}
