/**
 * Issue 15: who may get a person's export. From the account page only the
 * signed-in person gets their own copy, and only with a recent sign-in or
 * their current password (checked through the sign-in throttle); no
 * parameter names anyone else (IDOR); a person who signs in after another
 * in the same browser gets their own data and never the other's (Keycloak
 * #26925); a day allows privacy.exportsPerDay copies; the admin API needs
 * the admin bearer and is throttled.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_FAILURES_PER_MINUTE } from '../../src/server/admin-auth.ts';
import { SESSION_COOKIE } from '../../src/server/identity-routes.ts';
import { REAUTHENTICATION_MAX_AGE_MS, THROTTLE } from '../../src/identity/index.ts';
import type { PrivacyExport } from '../../src/privacy/index.ts';
import { BrowserlessClient, csrfField, type PageResponse } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const ADMIN_TOKEN = 'export-admin-token-0123456789abcdefghij';
const PASSWORDS: Record<string, string> = {
  'alice@example.com': 'lighthouse keeper at dawn',
  'bob@example.com': 'marmalade on the windowsill',
  'carol@example.com': 'seven herons over the marsh',
  'dave@example.com': 'copper kettle singing softly',
};

async function signIn(server: TestServer, email: string, browser = new BrowserlessClient(server.url), path = '/login'): Promise<BrowserlessClient> {
  const form = await browser.get(path);
  const signedIn = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORDS[email]! });
  assert.equal(signedIn.status, 303, signedIn.body);
  assert.equal(signedIn.location, '/account');
  return browser;
}

async function accountCsrf(browser: BrowserlessClient): Promise<{ csrf: string; page: PageResponse }> {
  const page = await browser.get('/account');
  assert.equal(page.status, 200);
  return { csrf: csrfField(page.body)!, page };
}

const exported = (response: PageResponse): PrivacyExport => {
  assert.equal(response.status, 200, response.body.slice(0, 300));
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  return JSON.parse(response.body) as PrivacyExport;
};

describe('who gets a privacy export', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;
  const ids: Record<string, string> = {};

  before(async () => {
    server = await startTestServer({ clock: clock.now, env: { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }, overrides: { privacy: { exportsPerDay: 100 } } });
    for (const email of Object.keys(PASSWORDS)) ids[email] = (await server.running.identity.accounts.createUser(email, PASSWORDS[email]!, { actor: 'test' })).id;
  });
  after(async () => {
    await server.close();
  });

  it('a fresh session downloads its own data from the account page, as a JSON attachment never cached', async () => {
    const alice = await signIn(server, 'alice@example.com');
    const { csrf, page } = await accountCsrf(alice);
    assert.match(page.body, /action="\/account\/export"/);
    assert.doesNotMatch(page.body, /id="export-password"/, 'no password asked of a fresh session');
    assert.match(page.body, /href="\/privacy\/export-schema\.json"/);
    const response = await alice.post('/account/export', { _csrf: csrf });
    const document = exported(response);
    assert.equal(document.subject.sub, ids['alice@example.com']);
    assert.equal(document.profile.email, 'alice@example.com');
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.match(response.headers.get('content-disposition') ?? '', /^attachment; filename="portcullis-data-\d{4}-\d{2}-\d{2}\.json"$/);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    // The session itself is in it, without its id.
    assert.equal(document.sessions.length, 1);
    assert.ok(!response.body.includes(alice.cookie(SESSION_COOKIE)!));
  });

  it('an older session must give the current password: none asks for it, a wrong one is refused, the right one downloads', async () => {
    const alice = await signIn(server, 'alice@example.com');
    clock.advance(REAUTHENTICATION_MAX_AGE_MS + 60_000);
    const { csrf, page } = await accountCsrf(alice);
    assert.match(page.body, /id="export-password"/, 'the form asks for the password');
    const none = await alice.post('/account/export', { _csrf: csrf });
    assert.equal(none.status, 400);
    assert.match(none.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(none.body, /Enter your current password/);
    assert.ok(!none.body.includes(ids['alice@example.com']!));
    const wrong = await alice.post('/account/export', { _csrf: csrf, password: 'not her password at all' });
    assert.equal(wrong.status, 400);
    assert.match(wrong.body, /password is not right/);
    // Another person's right password is not hers.
    const bobs = await alice.post('/account/export', { _csrf: csrf, password: PASSWORDS['bob@example.com']! });
    assert.equal(bobs.status, 400);
    const right = await alice.post('/account/export', { _csrf: csrf, password: PASSWORDS['alice@example.com']! });
    assert.equal(exported(right).subject.sub, ids['alice@example.com']);
  });

  it('wrong passwords are throttled with sign-in: the fifth ends the session, and no copy is made', async () => {
    const carol = await signIn(server, 'carol@example.com');
    clock.advance(REAUTHENTICATION_MAX_AGE_MS + 60_000);
    const { csrf } = await accountCsrf(carol);
    for (let attempt = 1; attempt < THROTTLE.pairLimit; attempt++) {
      assert.equal((await carol.post('/account/export', { _csrf: csrf, password: `wrong guess ${attempt}` })).status, 400, `attempt ${attempt}`);
    }
    const last = await carol.post('/account/export', { _csrf: csrf, password: 'wrong guess 5' });
    assert.equal(last.status, 429);
    assert.ok(Number(last.headers.get('retry-after')) > 0);
    assert.equal(carol.cookie(SESSION_COOKIE), undefined, 'the session cookie is cleared');
    // Her right password does not help the ended session.
    const after = await carol.post('/account/export', { _csrf: csrf, password: PASSWORDS['carol@example.com']! });
    assert.equal(after.status, 303);
    assert.match(after.location ?? '', /^\/login/);
    const requests = await server.running.runtime.get('privacy').requests.ofSubject(server.running.runtime.get('privacy').subjects.ofUser(ids['carol@example.com']!));
    assert.deepEqual(requests, [], 'no access request was recorded');
  });

  it('IDOR: no parameter of any kind gets another person\'s data', async () => {
    const alice = await signIn(server, 'alice@example.com');
    const bobBrowser = await signIn(server, 'bob@example.com');
    const { csrf } = await accountCsrf(alice);
    const { csrf: bobCsrf } = await accountCsrf(bobBrowser);
    const bobHandle = (await server.running.identity.accounts.sessions.list(ids['bob@example.com']!))[0]!.handle;
    const bob = { id: ids['bob@example.com']!, email: 'bob@example.com', session: bobBrowser.cookie(SESSION_COOKIE)!, handle: bobHandle };
    /** `exported`: the request is a valid export request, so it must be answered, with Alice's copy. */
    const aliceOnly = (what: string, response: { status: number; body: string }, exported = false) => {
      for (const value of [bob.id, bob.email]) assert.ok(!response.body.includes(value), `${what}: Bob's ${value} in the answer`);
      if (exported) assert.equal(response.status, 200, `${what}: ${response.status}`);
      if (response.status === 200) assert.equal((JSON.parse(response.body) as PrivacyExport).subject.sub, ids['alice@example.com'], what);
      else assert.ok(response.status >= 300 && response.status < 500, `${what}: ${response.status}`);
    };

    // Query parameters and body fields that might name a person: each ignored.
    for (const name of ['user', 'userId', 'id', 'sub', 'email', 'session', 'account']) {
      for (const value of [bob.id, bob.email]) aliceOnly(`?${name}=`, await alice.request(`/account/export?${new URLSearchParams({ [name]: value }).toString()}`, { form: { _csrf: csrf } }), true);
      for (const value of [bob.id, bob.email, bob.handle, bob.session]) aliceOnly(`body ${name}`, await alice.post('/account/export', { _csrf: csrf, [name]: value }), true);
    }
    // A JSON body with the same fields, the person as an array or an object, or a prototype to pollute.
    for (const body of [JSON.stringify({ _csrf: csrf, user: bob.id }), JSON.stringify({ _csrf: csrf, sub: [bob.id] }), JSON.stringify({ _csrf: csrf, user: { id: bob.id } })]) {
      aliceOnly('JSON body', await alice.request('/account/export', { body, headers: { 'content-type': 'application/json' } }), true);
    }
    aliceOnly('__proto__', await alice.request('/account/export', { body: `{"_csrf":${JSON.stringify(csrf)},"__proto__":{"user":${JSON.stringify(bob.id)}}}`, headers: { 'content-type': 'application/json' } }));
    // Bob's session handle (what the account page's session forms carry) or his CSRF token in Alice's form.
    aliceOnly('Bob\'s CSRF token', await alice.post('/account/export', { _csrf: bobCsrf }));
    assert.equal((await alice.post('/account/export', { _csrf: bobCsrf })).status, 403);
    // Path tricks, sent raw (fetch would normalise them): they reach no export, or Alice's.
    const cookie = `${SESSION_COOKIE}=${alice.cookie(SESSION_COOKIE)!}`;
    const headers = { cookie, origin: new URL(server.url).origin, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' };
    for (const path of [
      `/account/export/${bob.id}`,
      `/account/export/..%2F..%2Fadmin%2Fprivacy%2Fusers%2F${bob.id}%2Fexport`,
      `/account/export;user=${bob.id}`,
      `/account/export%3Fuser=${bob.id}`,
      `/account/export/`,
      `//account/export?user=${bob.id}`,
      `/ACCOUNT/EXPORT?user=${bob.id}`,
      `/account/./export?user=${bob.id}`,
      `/account/export%00?user=${bob.id}`,
      `/account/export?user=${bob.id}&user=${bob.email}`,
      `/admin/privacy/users/${bob.id}/export`,
      `/admin/privacy/users/${bob.id}/../../users/${bob.id}/export`,
    ]) {
      for (const method of ['GET', 'POST'] as const) {
        const response = await server.running.app.inject({ method, url: path, headers, payload: `_csrf=${encodeURIComponent(csrf)}&user=${bob.id}` });
        aliceOnly(`${method} ${path}`, { status: response.statusCode, body: response.body });
      }
    }
    // Alice's own credentials are no admin bearer.
    for (const bearer of [alice.cookie(SESSION_COOKIE)!, csrf]) {
      const response = await server.running.app.inject({ method: 'GET', url: `/admin/privacy/users/${bob.id}/export`, headers: { cookie, authorization: `Bearer ${bearer}` } });
      assert.equal(response.statusCode, 401);
      aliceOnly('a session as bearer', { status: response.statusCode, body: response.body });
    }
    // Nothing was recorded for Bob.
    const privacy = server.running.runtime.get('privacy');
    assert.deepEqual(await privacy.requests.ofSubject(privacy.subjects.ofUser(bob.id)), []);
  });

  it('a forged form is refused: another origin, no token, a GET', async () => {
    const alice = await signIn(server, 'alice@example.com');
    const { csrf } = await accountCsrf(alice);
    assert.equal((await alice.post('/account/export', { _csrf: csrf }, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })).status, 403);
    assert.equal((await alice.post('/account/export', {})).status, 403);
    assert.equal((await alice.get('/account/export')).status, 405);
    assert.equal((await new BrowserlessClient(server.url).post('/account/export', { _csrf: csrf })).location, '/login?return_to=%2Faccount');
  });

  it('Keycloak #26925: after B signs in in the browser A used, B downloads B\'s data, and A\'s is not reachable without A\'s own sign-in', async () => {
    const browser = await signIn(server, 'alice@example.com');
    const aliceCookie = browser.cookie(SESSION_COOKIE)!;
    const { csrf: aliceCsrf } = await accountCsrf(browser);
    clock.advance(10 * 60_000);
    // Bob signs in on the same browser (same cookie jar), through the sign-in page.
    await signIn(server, 'bob@example.com', browser, '/login?reauth=1');
    assert.notEqual(browser.cookie(SESSION_COOKIE), aliceCookie);
    const { csrf } = await accountCsrf(browser);
    const bobs = exported(await browser.post('/account/export', { _csrf: csrf }));
    assert.equal(bobs.subject.sub, ids['bob@example.com']);
    assert.equal(bobs.profile.email, 'bob@example.com');
    // Alice's form (her CSRF token) in Bob's session: refused, not Alice's data.
    const stale = await browser.post('/account/export', { _csrf: aliceCsrf, password: PASSWORDS['alice@example.com']! });
    assert.equal(stale.status, 403);
    assert.ok(!stale.body.includes(ids['alice@example.com']!));
    // Alice's session ended when Bob signed in: her cookie put back gets the sign-in page.
    browser.setCookie(SESSION_COOKIE, aliceCookie);
    const back = await browser.post('/account/export', { _csrf: aliceCsrf });
    assert.equal(back.status, 303);
    assert.match(back.location ?? '', /^\/login/);
    // A session of Alice's that is still alive but old (another tab's jar) needs her password, even with Bob's.
    const alice = await signIn(server, 'alice@example.com');
    clock.advance(REAUTHENTICATION_MAX_AGE_MS + 1000);
    const { csrf: oldCsrf } = await accountCsrf(alice);
    assert.equal((await alice.post('/account/export', { _csrf: oldCsrf, password: PASSWORDS['bob@example.com']! })).status, 400);
    assert.equal((await alice.post('/account/export', { _csrf: oldCsrf })).status, 400);
  });

  it('the admin API: the bearer is required, wrong ones are throttled, the export is the path\'s user\'s', async () => {
    const url = `/admin/privacy/users/${ids['dave@example.com']!}/export`;
    const none = await server.running.app.inject({ method: 'GET', url });
    assert.equal(none.statusCode, 401);
    assert.match(none.headers['www-authenticate'] as string, /^Bearer realm="portcullis-admin"$/);
    assert.ok(!none.body.includes('dave@example.com'));
    const wrong = await server.running.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer not-the-admin-token' } });
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.headers['www-authenticate'] as string, /invalid_token/);
    const right = await server.running.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(right.statusCode, 200);
    assert.equal((JSON.parse(right.body) as PrivacyExport).subject.sub, ids['dave@example.com']);
    assert.equal((await server.running.app.inject({ method: 'HEAD', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode, 405, 'no export by HEAD');
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++) await server.running.app.inject({ method: 'GET', url, headers: { authorization: `Bearer wrong-${i}` } });
    const throttled = await server.running.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(throttled.statusCode, 429);
    assert.ok(Number(throttled.headers['retry-after']) > 0);
    assert.ok(!throttled.body.includes('dave@example.com'));
    clock.advance(2 * 60_000);
    assert.equal((await server.running.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode, 200, 'the next minute lets the right bearer in');
  });
});

describe('exports per day', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;
  let userId: string;

  before(async () => {
    server = await startTestServer({ clock: clock.now, overrides: { privacy: { exportsPerDay: 2 } } });
    userId = (await server.running.identity.accounts.createUser('alice@example.com', PASSWORDS['alice@example.com']!, { actor: 'test' })).id;
  });
  after(async () => {
    await server.close();
  });

  it('privacy.exportsPerDay copies a day, then 429 with Retry-After; each copy audited and recorded; a new day allows more', async () => {
    const alice = await signIn(server, 'alice@example.com');
    const { csrf } = await accountCsrf(alice);
    for (let i = 0; i < 2; i++) exported(await alice.post('/account/export', { _csrf: csrf }));
    const refused = await alice.post('/account/export', { _csrf: csrf });
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter > 23 * 3600 && retryAfter <= 24 * 3600, `${retryAfter}`);
    assert.match(refused.body, /Wait about 24 hours/);
    assert.match(refused.headers.get('content-type') ?? '', /^text\/html/);
    const privacy = server.running.runtime.get('privacy');
    const requests = await privacy.requests.ofSubject(privacy.subjects.ofUser(userId));
    assert.deepEqual(
      requests.map((request) => [request.kind, request.channel, request.outcome]),
      [
        ['access', 'account', 'fulfilled'],
        ['access', 'account', 'fulfilled'],
      ],
    );
    const { auditLog } = server.running.stores.durable;
    const entries = (await auditLog.entries(0, await auditLog.size())).map((row) => JSON.parse(Buffer.from(row.entry).toString('utf8')) as { type: string; service?: string; actor?: string; detail?: Record<string, unknown> });
    const exports = entries.filter((entry) => entry.type === 'privacy.export');
    assert.equal(exports.length, 2);
    for (const entry of exports) {
      assert.equal(entry.service, undefined, 'the person acted');
      assert.equal(entry.actor, await server.running.ledger.pseudonyms.existingPseudonym(userId));
      assert.equal(entry.detail?.['channel'], 'account');
    }
    clock.advance(24 * 3600_000 + 1000);
    // A day later (the session has ended meanwhile): a new day's copies.
    const again = await signIn(server, 'alice@example.com');
    exported(await again.post('/account/export', { _csrf: (await accountCsrf(again)).csrf }));
  });
});
