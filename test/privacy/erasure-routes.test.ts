/**
 * Erasure's doors (issue 15): legal holds stop every one of them (the
 * command line, the admin API, the page) and nothing is deleted until the
 * hold is released; the Delete my account page asks for the password of
 * the session's own user every time and never applies a form made for
 * someone else (a second person signing in within the same browser, the
 * Keycloak bug #26925), throttles wrong passwords and refuses forged posts;
 * and the privacy admin API answers 401, 404 and 400 where it should, and
 * never a 5xx.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { User } from '../../src/identity/index.ts';
import type { ErasureRecord } from '../../src/privacy/index.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { ADMIN_TOKEN, clientPost, codeFlow, ledgerEntries, privacyDeployment, signedInBrowser, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const FIRST_PASSWORD = 'the first person chose this passphrase';
const SECOND_PASSWORD = 'a second person has another passphrase';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const SESSION_COOKIE = '__Host-portcullis';

for (const backend of testBackends) {
  describe(`erasure: legal holds, the Delete my account page, the privacy admin API (${backend})`, () => {
    let deployment: PrivacyDeployment;
    before(async () => {
      deployment = await privacyDeployment(backend);
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
    });

    const newUser = async (label: string, password = PASSWORD): Promise<User> => deployment.running.identity.accounts.createUser(`${label}-${randomBytes(4).toString('hex')}@example.test`, password, { actor: 'test' });
    const exists = async (user: User) => (await deployment.running.identity.accounts.users.byId(user.id)) !== null;
    const deleteForm = async (browser: BrowserlessClient): Promise<string> => {
      const form = await browser.get('/account/delete');
      assert.equal(form.status, 200, `the delete page: ${form.status} ${form.location ?? ''}`);
      return csrfField(form.body)!;
    };

    it('a legal hold refuses the erasure on the command line (exit 1), the admin API (403) and the page (403), and nothing is deleted; released, the erasure goes ahead', async () => {
      const { running } = deployment;
      const user = await newUser('held');
      const app = await registerClient(deployment, { client_name: 'Held app', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email', token_endpoint_auth_method: 'client_secret_basic' });
      const browser = await signedInBrowser(deployment.url, user.email, PASSWORD);
      await codeFlow(deployment.url, browser, { email: user.email, password: PASSWORD }, app, REDIRECT, 'openid email');

      const held = await deployment.cli(['privacy', 'hold', 'set', user.email, '--reason', 'litigation hold 2026-17']);
      assert.equal(held.code, 0, held.err.join('\n'));
      assert.deepEqual(held.out, [`${user.email} is on legal hold.`]);

      const cli = await deployment.cli(['user', 'erase', user.email]);
      assert.equal(cli.code, 1);
      assert.deepEqual(cli.err, ['portcullis: erasure refused: a legal hold stops the erasure of this account']);
      const viaApi = await deployment.admin(`/admin/privacy/users/${user.id}/erasure`, { body: {} });
      assert.equal(viaApi.status, 403);
      assert.match(viaApi.headers.get('content-type') ?? '', /problem\+json/);
      const page = await browser.post('/account/delete', { _csrf: await deleteForm(browser), password: PASSWORD, confirm: 'yes' });
      assert.equal(page.status, 403);
      assert.match(page.body, /cannot be deleted now/);

      assert.ok(await exists(user), 'the account is there');
      assert.equal((await browser.get('/account/session.json')).status, 200, 'its session too');
      assert.equal((await running.authorizationServer.consents.list(user.id)).length, 1, 'and its consent');
      assert.equal((await running.authorizationServer.recipients.ofUser(user.id)).length, 1);
      assert.deepEqual(await running.erasure.erasures.list(), [], 'no erasure was recorded');
      assert.ok(await running.ledger.pseudonyms.existingPseudonym(user.id));
      assert.ok((await ledgerEntries(running)).some((entry) => entry.type === 'privacy.hold.set' && entry.service === 'cli' && !JSON.stringify(entry).includes('litigation')), 'the hold is audited, without its reason');
      // Each refusal answers a deletion request, and the records say so (CCPA regulations section 7101).
      const subject = running.erasure.subjects.ofUser(user.id);
      const refused = await running.erasure.requests.ofSubject(subject);
      assert.deepEqual(refused.map((request) => [request.kind, request.channel, request.outcome]), [['deletion', 'cli', 'refused'], ['deletion', 'admin', 'refused'], ['deletion', 'account', 'refused']]);
      assert.ok(refused.every((request) => request.answeredAt !== undefined));
      const denied = (await ledgerEntries(running)).filter((entry) => entry.type === 'privacy.erasure' && entry.outcome === 'denied' && entry.detail?.['reason'] === 'legal_hold');
      assert.deepEqual(denied.map((entry) => entry.detail?.['request']), refused.map((request) => request.id));

      const released = await deployment.cli(['privacy', 'hold', 'release', user.email]);
      assert.equal(released.code, 0, released.err.join('\n'));
      const erased = await deployment.cli(['user', 'erase', user.email]);
      assert.equal(erased.code, 0, erased.err.join('\n'));
      assert.equal(await exists(user), false);
      assert.ok((await ledgerEntries(running)).some((entry) => entry.type === 'privacy.hold.released'));
      assert.deepEqual((await running.erasure.requests.ofSubject(subject)).map((request) => request.outcome), ['refused', 'refused', 'refused', 'fulfilled']);
    });

    it('the admin API places and releases holds, idempotently', async () => {
      const user = await newUser('api-held');
      const hold = (method: string, body?: unknown) => deployment.admin(`/admin/privacy/users/${user.id}/hold`, { method, ...(body !== undefined && { body }) });
      assert.equal((await hold('PUT', { reason: 'audit request 42' })).status, 201);
      assert.equal((await hold('PUT', { reason: 'audit request 42' })).status, 200);
      assert.equal(await deployment.running.erasure.holds.isHeld(user.id), true);
      assert.equal((await deployment.admin(`/admin/privacy/users/${user.id}/erasure`, { body: { grace: false } })).status, 403);
      assert.deepEqual(await (await hold('DELETE')).json(), { released: true });
      assert.deepEqual(await (await hold('DELETE')).json(), { released: false });
      const erased = await deployment.admin(`/admin/privacy/users/${user.id}/erasure`, { body: { grace: false } });
      assert.equal(erased.status, 200);
      const body = (await erased.json()) as { outcome: string; erasure: ErasureRecord };
      assert.equal(body.outcome, 'erased');
      assert.ok(!('userId' in body.erasure));
    });

    it('a form made for the person signed in before never erases anyone when another signs in within the same browser (Keycloak #26925)', async () => {
      const first = await newUser('first', FIRST_PASSWORD);
      const second = await newUser('second', SECOND_PASSWORD);
      const browser = await signedInBrowser(deployment.url, first.email, FIRST_PASSWORD);
      const firstForm = await deleteForm(browser);
      const firstSession = browser.cookie(SESSION_COOKIE)!;

      // The second person signs in within the same browser (the sign-in page, asked for a fresh sign-in).
      const login = await browser.get('/login?reauth=1');
      assert.equal(login.status, 200);
      const signedIn = await browser.post('/login', { _csrf: csrfField(login.body)!, email: second.email, password: SECOND_PASSWORD });
      assert.equal(signedIn.location, '/account');
      assert.notEqual(browser.cookie(SESSION_COOKIE), firstSession);
      assert.equal(await deployment.running.identity.accounts.sessions.resolve(firstSession), null, 'the first session ended');

      // The first person's form, with either person's password, in the second person's session.
      for (const password of [FIRST_PASSWORD, SECOND_PASSWORD]) {
        const posted = await browser.post('/account/delete', { _csrf: firstForm, password, confirm: 'yes' });
        assert.equal(posted.status, 403, 'the first person\'s form is refused in the second person\'s session');
      }
      assert.ok(await exists(first));
      assert.ok(await exists(second));

      // The second person's own form names them, and needs their password, not the first person's.
      const secondPage = await browser.get('/account/delete');
      assert.ok(secondPage.body.includes(second.email) && !secondPage.body.includes(first.email));
      const wrong = await browser.post('/account/delete', { _csrf: csrfField(secondPage.body)!, password: FIRST_PASSWORD, confirm: 'yes' });
      assert.equal(wrong.status, 400);
      assert.match(wrong.body, /The password is not right; nothing was deleted/);
      assert.ok(await exists(first));
      assert.ok(await exists(second));
      const deleted = await browser.post('/account/delete', { _csrf: csrfField(secondPage.body)!, password: SECOND_PASSWORD, confirm: 'yes' });
      assert.equal(deleted.status, 200, deleted.body.slice(0, 300));
      assert.equal(await exists(second), false, 'the second person deleted their own account');
      assert.ok(await exists(first), 'the first person is untouched');
      const erasures = await deployment.running.erasure.erasures.list();
      assert.equal(erasures.filter((erasure) => erasure.subject === deployment.running.erasure.subjects.ofUser(first.id)).length, 0, 'no erasure names the first person');
    });

    it('needs the password of the account (not another account\'s) and the box ticked; wrong passwords are throttled and end the session', async () => {
      const user = await newUser('reauth');
      await newUser('reauth-other', SECOND_PASSWORD);
      const browser = await signedInBrowser(deployment.url, user.email, PASSWORD);
      // An application holds tokens of this session (they end with it, as on the other pages: security review 4).
      const app = await registerClient(deployment, { client_name: 'Session app', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email', token_endpoint_auth_method: 'client_secret_basic' });
      const tokens = await codeFlow(deployment.url, browser, { email: user.email, password: PASSWORD }, app, REDIRECT, 'openid email');
      const active = async () => (await clientPost(deployment.url, '/introspect', app, { token: tokens['access_token'] as string })).body['active'];
      assert.equal(await active(), true);
      const csrf = await deleteForm(browser);

      const unticked = await browser.post('/account/delete', { _csrf: csrf, password: PASSWORD });
      assert.equal(unticked.status, 400);
      assert.match(unticked.body, /Tick the box/);
      assert.ok(await exists(user));

      const statuses: number[] = [];
      for (let attempt = 0; attempt < 8 && !statuses.includes(429); attempt++) {
        const answer = await browser.post('/account/delete', { _csrf: csrf, password: attempt % 2 === 0 ? 'wrong password number one' : SECOND_PASSWORD, confirm: 'yes' });
        statuses.push(answer.status);
        if (answer.status === 429) assert.ok(answer.headers.get('retry-after'), 'a 429 says when to come back');
      }
      assert.ok(statuses.at(-1) === 429 && statuses.slice(0, -1).every((status) => status === 400) && statuses.length >= 3, `400 for each wrong password, then 429: ${statuses.join(',')}`);
      assert.equal(browser.cookie(SESSION_COOKIE), undefined, 'the session cookie is cleared');
      assert.equal((await browser.get('/account/session.json')).status, 401, 'the session ended');
      assert.deepEqual(await deployment.running.identity.accounts.sessions.list(user.id), []);
      assert.equal(await active(), false, 'the ended session\'s access token is revoked');
      assert.ok(await exists(user), 'nothing was erased');
      const afterwards = await browser.post('/account/delete', { _csrf: csrf, password: PASSWORD, confirm: 'yes' });
      assert.equal(afterwards.status, 303, 'signed out: sent to sign in');
      assert.equal(afterwards.location, '/login');
      assert.ok(await exists(user));
    });

    it('refuses a cross-origin post, a cross-site one and one without its CSRF token (403), and asks a signed-out browser to sign in', async () => {
      const user = await newUser('forged');
      const browser = await signedInBrowser(deployment.url, user.email, PASSWORD);
      const csrf = await deleteForm(browser);
      const form = { _csrf: csrf, password: PASSWORD, confirm: 'yes' };
      assert.equal((await browser.post('/account/delete', form, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })).status, 403);
      assert.equal((await browser.post('/account/delete', form, { origin: null, 'sec-fetch-site': 'cross-site' })).status, 403);
      assert.equal((await browser.post('/account/delete', { password: PASSWORD, confirm: 'yes' })).status, 403);
      assert.equal((await browser.post('/account/delete', { ...form, _csrf: `${csrf.slice(0, -2)}xx` })).status, 403);
      assert.equal((await browser.post('/account/delete/cancel', { _csrf: 'forged' })).status, 403);
      assert.ok(await exists(user));
      const stranger = new BrowserlessClient(deployment.url);
      assert.equal((await stranger.get('/account/delete')).location, '/login?return_to=%2Faccount%2Fdelete');
      assert.equal((await stranger.post('/account/delete', form)).location, '/login');
      assert.ok(await exists(user));
    });

    it('`portcullis privacy run` runs the job once, and a second run within the interval leaves it to the holder of the lease', async () => {
      const first = await deployment.cli(['privacy', 'run']);
      assert.equal(first.code, 0, first.err.join('\n'));
      assert.match(first.out.join('\n'), /^Erasures carried out: 0\. Notices newly overdue: 0\. Requests newly overdue: 0\.\nErasure clean-ups finished after a failure: 0; last passes made: 0 \(records written after their erasure, removed: 0\)\.\nRetention: \d+ records scanned;/);
      const second = await deployment.cli(['privacy', 'run']);
      assert.equal(second.code, 0, second.err.join('\n'));
      assert.deepEqual(second.out, ['Another instance is running the job now; nothing done.']);
      assert.equal(await deployment.running.erasure.runJob(), null, 'the server\'s own run waits too');
      assert.ok((await ledgerEntries(deployment.running)).some((entry) => entry.type === 'privacy.retention.ran' && entry.service === 'system'));
      await deployment.running.stores.hot.delete('privacy:job-lease');
    });

    it('the admin API: 401 without the bearer, 404 for unknown ids, 400 for bad bodies and queries, never a 5xx', async () => {
      const user = await newUser('admin-api');
      const unknownUser = `u_${randomBytes(16).toString('base64url').slice(0, 22)}`;
      const unknownErasure = `er_${randomBytes(12).toString('base64url')}`;
      const routes: [string, string, unknown?][] = [
        ['GET', '/admin/privacy/requests'],
        ['GET', '/admin/privacy/erasures'],
        ['GET', `/admin/privacy/erasures/${unknownErasure}`],
        ['POST', `/admin/privacy/users/${user.id}/erasure`, {}],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, { reason: 'x' }],
        ['DELETE', `/admin/privacy/users/${user.id}/hold`],
      ];
      for (const [method, path, body] of routes) {
        for (const token of [null, 'not-the-admin-token-0123456789abcdefghij']) {
          const answer = await deployment.admin(path, { method, token, ...(body !== undefined && { body }) });
          assert.equal(answer.status, 401, `${method} ${path} with ${token === null ? 'no' : 'a wrong'} bearer`);
          assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer realm="portcullis-admin"/);
        }
      }
      assert.ok(await exists(user), 'nothing happened without the bearer');
      assert.equal(await deployment.running.erasure.holds.isHeld(user.id), false);

      const cases: [string, string, unknown, number][] = [
        ['GET', `/admin/privacy/erasures/${unknownErasure}`, undefined, 404],
        ['GET', '/admin/privacy/erasures/not-an-id', undefined, 404],
        ['GET', '/admin/privacy/erasures/%00', undefined, 404],
        ['POST', `/admin/privacy/users/${unknownUser}/erasure`, {}, 404],
        ['POST', '/admin/privacy/users/nobody@example.test/erasure', {}, 404],
        ['PUT', `/admin/privacy/users/${unknownUser}/hold`, { reason: 'x' }, 404],
        ['DELETE', `/admin/privacy/users/${unknownUser}/hold`, undefined, 404],
        ['POST', `/admin/privacy/users/${user.id}/erasure`, { grace: 'yes' }, 400],
        ['POST', `/admin/privacy/users/${user.id}/erasure`, [], 400],
        ['POST', `/admin/privacy/users/${user.id}/erasure`, 'erase', 400],
        ['POST', `/admin/privacy/users/${user.id}/erasure`, 17, 400],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, {}, 400],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, { reason: '   ' }, 400],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, { reason: 'x'.repeat(201) }, 400],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, { reason: ['a'] }, 400],
        ['PUT', `/admin/privacy/users/${user.id}/hold`, null, 400],
        ['GET', '/admin/privacy/requests?limit=0', undefined, 400],
        ['GET', '/admin/privacy/requests?limit=abc', undefined, 400],
        ['GET', '/admin/privacy/erasures?limit=1000', undefined, 400],
        ['GET', '/admin/privacy/erasures?after=..%2F..', undefined, 400],
        ['GET', '/admin/privacy/erasures?after=a&after=b', undefined, 400],
      ];
      for (const [method, path, body, expected] of cases) {
        const answer = await deployment.admin(path, { method, ...(body !== undefined && { body }) });
        assert.equal(answer.status, expected, `${method} ${path} ${JSON.stringify(body)}: ${await answer.text()}`);
      }
      // Bodies that are not JSON at all.
      for (const [contentType, raw] of [['application/json', '{"grace":'], ['text/plain', 'grace=true'], ['application/x-www-form-urlencoded', 'grace=true']] as const) {
        const answer = await fetch(`${deployment.url}/admin/privacy/users/${user.id}/erasure`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': contentType }, body: raw });
        assert.ok(answer.status >= 400 && answer.status < 500, `${contentType}: ${answer.status}`);
      }
      assert.ok(await exists(user), 'no bad request erased anyone');
      assert.equal(await deployment.running.erasure.holds.isHeld(user.id), false);

      // And the lists page through with `after`.
      for (const label of ['page-a', 'page-b']) {
        const victim = await newUser(label);
        assert.equal((await deployment.admin(`/admin/privacy/users/${victim.id}/erasure`, { body: {} })).status, 200);
      }
      const all = (await (await deployment.admin('/admin/privacy/erasures')).json()) as { erasures: ErasureRecord[]; next: string | null };
      assert.ok(all.erasures.length >= 2);
      const first = (await (await deployment.admin('/admin/privacy/erasures?limit=1')).json()) as { erasures: ErasureRecord[]; next: string | null };
      assert.equal(first.erasures.length, 1);
      assert.equal(first.next, first.erasures[0]!.id);
      const rest = (await (await deployment.admin(`/admin/privacy/erasures?after=${first.next}`)).json()) as { erasures: ErasureRecord[] };
      assert.deepEqual([...first.erasures, ...rest.erasures].map((erasure) => erasure.id), all.erasures.map((erasure) => erasure.id));
      const requests = (await (await deployment.admin('/admin/privacy/requests')).json()) as { requests: { kind: string; outcome?: string }[] };
      assert.ok(requests.requests.filter((request) => request.kind === 'deletion' && request.outcome === 'fulfilled').length >= 2);
      assert.ok(!deployment.logs.text.includes('"level":50'), `no error was logged:\n${deployment.logs.text.slice(0, 2000)}`);
    });
  });
}
