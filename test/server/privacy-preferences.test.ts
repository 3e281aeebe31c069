/**
 * The person's privacy choices through the real pages (issue 15), driven
 * like a browser against a listening server on the embedded deployment:
 * - Global Privacy Control: `Sec-GPC: 1` on a signed-in page request opts
 *   the person out (once, audited, a security signal queued, an answered
 *   opt_out consumer request); a visitor's is kept in a __Host- cookie and
 *   carried at sign-in; without the header, or with another value, or on a
 *   route that is no page, nothing changes;
 * - the account page's switch (on, off; off refused while GPC is sent) and
 *   purposes (grant, withdraw; the history keeps every decision);
 * - forged forms (no CSRF token, another Origin) change nothing;
 * - consent asked after sign-in, again when a purpose's version goes up
 *   between two starts of the server, not when decided;
 * - /.well-known/gpc.json.
 * And once on PostgreSQL + Redis: the opt-out's transaction commits the
 * user record, its history, its consumer request and its signal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as wait } from 'node:timers/promises';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import type { User } from '../../src/identity/index.ts';
import { totpCodeAt } from '../../src/identity/totp.ts';
import { CONSENT_LOG, ConsumerRequests, OPT_OUT_PURPOSE, subjectHasher, type ConsentRecord } from '../../src/privacy/index.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { BrowserlessClient, csrfField, type PageResponse } from '../support/browserless-client.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const GPC = { 'sec-gpc': '1' };
const GPC_COOKIE = '__Host-portcullis-gpc';

const PURPOSES = [
  { id: 'newsletter', description: 'Send you our newsletter', legalBasis: 'consent', version: 1, scopes: ['email'] },
  { id: 'analytics', description: 'Measure how the site is used', legalBasis: 'consent', version: 1 },
  { id: 'billing', description: 'Bill you for the service', legalBasis: 'contract', version: 1, scopes: ['profile'] },
] as const;

/** Everything a test looks at on one server: its users, their history, the ledger, the signal log. */
function probe(server: TestServer) {
  const records = server.running.stores.durable.records;
  let count = 0;
  return {
    async user(name: string): Promise<User> {
      count += 1;
      return server.running.identity.accounts.createUser(`${name}-${count}-${Date.now()}@example.org`, PASSWORD, { actor: 'test' });
    },
    async current(userId: string): Promise<User> {
      return (await server.running.identity.accounts.users.byId(userId))!;
    },
    async history(userId: string): Promise<ConsentRecord[]> {
      return (await records.findBy<Omit<ConsentRecord, 'id'>>(CONSENT_LOG, 'user', userId, { limit: 100 })).map((record) => ({ id: record.id, ...record.data })).sort((a, b) => a.at - b.at);
    },
    async requests(userId: string) {
      return new ConsumerRequests({ records, clock: Date.now }).ofSubject(subjectHasher(server.running.runtime.get('vault')).ofUser(userId));
    },
    /** The ledger's entries about the user (by their pseudonym) of these types. */
    async entries(userId: string, ...types: string[]): Promise<AuditEntry[]> {
      const actor = await server.running.ledger.pseudonyms.pseudonym(userId);
      const size = await server.running.ledger.size();
      const out: AuditEntry[] = [];
      for (let from = 0; from < size; from += 1000) {
        for (const row of await server.running.stores.durable.auditLog.entries(from, Math.min(size, from + 1000))) {
          const entry = decodeEntry(row.entry);
          if (entry.actor === actor && types.includes(entry.type)) out.push(entry);
        }
      }
      return out;
    },
    /** The security events about the user in the signal log, waiting up to 5 s for `expected` of them. */
    async signals(userId: string, type: string, expected: number) {
      const deadline = Date.now() + 5000;
      for (;;) {
        const entries = (await server.running.signals.transmitter.log.after(0, 10_000)).filter((entry) => entry.type === type && entry.subject['sub'] === userId);
        if (entries.length >= expected || Date.now() > deadline) return entries;
        await wait(25);
      }
    },
  };
}

/** The account page's item of one purpose. */
function purposeItem(body: string, id: string): string {
  const item = new RegExp(`<li id="purpose-${id}">[^]*?</li>`).exec(body);
  assert.ok(item, `the account page lists ${id}`);
  return item[0];
}

/** Signs in through the form; answers the purposes page (when shown) with `answer`; resolves with where the browser ended up. */
async function signIn(client: BrowserlessClient, email: string, answer: 'grant' | 'decline' = 'grant', returnTo?: string): Promise<{ login: PageResponse; asked: PageResponse | undefined; location: string }> {
  const form = await client.get(`/login${returnTo !== undefined ? `?return_to=${encodeURIComponent(returnTo)}` : ''}`);
  assert.equal(form.status, 200);
  const login = await client.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD, ...(returnTo !== undefined && { return_to: returnTo }) });
  assert.equal(login.status, 303, login.body.slice(0, 300));
  if (!login.location!.startsWith('/privacy/purposes')) return { login, asked: undefined, location: login.location! };
  const asked = await client.get(login.location!);
  assert.equal(asked.status, 200, asked.body.slice(0, 300));
  const answers = Object.fromEntries([...asked.body.matchAll(/name="(consent_[a-z0-9_-]+)" value="grant"/g)].map((match) => [match[1]!, answer]));
  const returned = /name="return_to" value="([^"]*)"/.exec(asked.body)![1]!.replaceAll('&amp;', '&');
  const answered = await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: returned, ...answers });
  assert.equal(answered.status, 303, answered.body.slice(0, 300));
  return { login, asked, location: answered.location! };
}

describe('privacy choices through the pages (embedded)', () => {
  let server: TestServer;
  let p: ReturnType<typeof probe>;

  before(async () => {
    server = await startTestServer({ fixedPort: true, overrides: { privacy: { purposes: PURPOSES } } });
    p = probe(server);
  });
  after(async () => {
    await server.close();
  });

  const browser = (headers?: Record<string, string>) => new BrowserlessClient(server.url, headers !== undefined ? { headers } : {});

  describe('Global Privacy Control', () => {
    it('GET /.well-known/gpc.json says the site honours GPC: {"gpc": true, "lastUpdate": "YYYY-MM-DD"}, application/json', async () => {
      const response = await fetch(`${server.url}/.well-known/gpc.json`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await response.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['gpc', 'lastUpdate']);
      assert.equal(body['gpc'], true);
      assert.match(String(body['lastUpdate']), /^\d{4}-\d{2}-\d{2}$/);
      assert.ok(!Number.isNaN(Date.parse(String(body['lastUpdate']))));
    });

    it('Sec-GPC: 1 on a signed-in page request opts the person out: user record, history, answered opt_out request, audit entry, security signal', async () => {
      const user = await p.user('gpc');
      const client = browser();
      await signIn(client, user.email);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined, 'not yet');
      const page = await client.get('/account', GPC);
      assert.equal(page.status, 200);
      assert.match(page.body, /id="opt-out-state">"Do not sell or share my personal information" is <strong>on<\/strong>/);
      assert.match(page.body, /Global Privacy Control signal/);
      const optOut = (await p.current(user.id)).privacy?.optOut;
      assert.equal(optOut?.source, 'gpc');
      const history = await p.history(user.id);
      assert.deepEqual(history.filter((record) => record.purpose === OPT_OUT_PURPOSE).map((record) => [record.granted, record.source, record.version]), [[true, 'gpc', 1]]);
      const requests = await p.requests(user.id);
      assert.deepEqual(requests.map((request) => [request.kind, request.channel, request.outcome]), [['opt_out', 'gpc', 'fulfilled']]);
      const entries = await p.entries(user.id, 'privacy.opt_out.changed');
      assert.equal(entries.length, 1);
      assert.deepEqual(entries[0]!.detail, { optOut: true, source: 'gpc', request: requests[0]!.id });
      const signals = await p.signals(user.id, SECURITY_EVENT_TYPES.privacyOptOutChanged, 1);
      assert.equal(signals.length, 1, 'the security signal reached the signal log');
      assert.equal(signals[0]!.members['opt_out'], true);
      assert.equal(signals[0]!.members['initiating_entity'], 'user');
    });

    it('records it once: more GPC page requests (GET and POST pages) add no history, entry or request', async () => {
      const user = await p.user('gpc-once');
      const client = browser(GPC);
      await signIn(client, user.email);
      for (const path of ['/account', '/logout', '/login', '/privacy/purposes', '/account']) assert.ok((await client.get(path)).status < 400, path);
      assert.equal((await p.history(user.id)).filter((record) => record.purpose === OPT_OUT_PURPOSE).length, 1);
      assert.equal((await p.entries(user.id, 'privacy.opt_out.changed')).length, 1);
      assert.equal((await p.requests(user.id)).length, 1);
    });

    it('without the header, with another value, or on a route that is no page, nothing changes', async () => {
      const user = await p.user('no-gpc');
      const client = browser();
      await signIn(client, user.email);
      assert.equal((await client.get('/account')).status, 200);
      for (const value of ['0', '', 'true', '11', '1, 1']) assert.equal((await client.get('/account', { 'sec-gpc': value })).status, 200, value);
      for (const path of ['/.well-known/openid-configuration', '/healthz', '/jwks', '/']) await client.get(path, GPC);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
      assert.deepEqual((await p.history(user.id)).filter((record) => record.purpose === OPT_OUT_PURPOSE), []);
      assert.deepEqual(await p.entries(user.id, 'privacy.opt_out.changed'), []);
      assert.deepEqual(await p.requests(user.id), []);
      const visitor = await browser().get('/login', { 'sec-gpc': '0' });
      assert.equal(visitor.setCookies.find((cookie) => cookie.name === GPC_COOKIE), undefined, 'no cookie without the signal');
    });

    it("a visitor's GPC is kept in a __Host- cookie and carried to the account at sign-in, even when the sign-in itself does not send it", async () => {
      const user = await p.user('visitor');
      const client = browser();
      const page = await client.get('/login', GPC);
      const cookie = page.setCookies.find((candidate) => candidate.name === GPC_COOKIE);
      assert.ok(cookie, 'the visitor cookie');
      assert.equal(cookie.value, '1');
      assert.equal(cookie.attributes.get('secure'), true);
      assert.equal(cookie.attributes.get('httponly'), true);
      assert.equal(cookie.attributes.get('path'), '/');
      assert.ok(!cookie.attributes.has('domain'));
      assert.equal((await p.current(user.id)).privacy, undefined, 'nothing recorded before sign-in');
      const { login } = await signIn(client, user.email);
      assert.equal((await p.current(user.id)).privacy?.optOut?.source, 'gpc', 'carried at sign-in');
      assert.ok(login.setCookies.some((candidate) => candidate.name === GPC_COOKIE && (candidate.value === '' || Number(candidate.attributes.get('max-age')) <= 0)), 'the cookie is cleared');
      assert.equal(client.cookie(GPC_COOKIE), undefined);
      assert.equal((await p.entries(user.id, 'privacy.opt_out.changed')).length, 1);
    });

    it('a visitor without the signal is not opted out at sign-in', async () => {
      const user = await p.user('visitor-none');
      const client = browser();
      await client.get('/login');
      await signIn(client, user.email);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
    });
  });

  describe('the account page', () => {
    it('shows the switch, and the purposes with description, legal basis, version and decision; Grant/Withdraw only for consent', async () => {
      const user = await p.user('page');
      const client = browser();
      await signIn(client, user.email, 'decline');
      const page = await client.get('/account');
      assert.equal(page.status, 200);
      assert.match(page.body, /<form method="post" action="\/account\/privacy\/opt-out">.*name="opt_out" value="on"/s);
      assert.match(page.body, /Do not sell or share my personal information/);
      for (const purpose of PURPOSES) assert.match(page.body, new RegExp(`id="purpose-${purpose.id}"><strong>${purpose.description}</strong> <span class="hint">\\(version 1; legal basis: `));
      assert.match(page.body, /legal basis: your consent \(GDPR Art\. 6\(1\)\(a\)\)/);
      assert.match(page.body, /legal basis: needed for our contract with you \(GDPR Art\. 6\(1\)\(b\)\)/);
      assert.match(purposeItem(page.body, 'newsletter'), /You declined on \d{4}-\d{2}-\d{2}\.[^]*name="decision" value="grant"/);
      assert.match(purposeItem(page.body, 'billing'), /No consent is asked/);
      assert.doesNotMatch(purposeItem(page.body, 'billing'), /<form/, 'no switch for a purpose not based on consent');
    });

    it('the switch turns the opt-out on and off (source account); each is a history record; on is an answered opt_out request', async () => {
      const user = await p.user('switch');
      const client = browser();
      await signIn(client, user.email);
      let page = await client.get('/account');
      const on = await client.post('/account/privacy/opt-out', { _csrf: csrfField(page.body)!, opt_out: 'on' });
      assert.equal(on.status, 303);
      assert.equal(on.location, '/account?done=opt-out');
      assert.equal((await p.current(user.id)).privacy?.optOut?.source, 'account');
      page = await client.get(on.location);
      assert.match(page.body, /is <strong>on<\/strong>/);
      const off = await client.post('/account/privacy/opt-out', { _csrf: csrfField(page.body)!, opt_out: 'off' });
      assert.equal(off.status, 303);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
      assert.deepEqual((await p.history(user.id)).filter((record) => record.purpose === OPT_OUT_PURPOSE).map((record) => [record.granted, record.source]), [[true, 'account'], [false, 'account']]);
      assert.deepEqual((await p.requests(user.id)).map((request) => [request.kind, request.channel]), [['opt_out', 'account']]);
      assert.deepEqual((await p.entries(user.id, 'privacy.opt_out.changed')).map((entry) => entry.detail?.['optOut']), [true, false]);
    });

    it('turning it off while the browser sends GPC is refused with an explanation (409), and it stays on', async () => {
      const user = await p.user('held');
      const client = browser();
      await signIn(client, user.email);
      const page = await client.get('/account', GPC);
      assert.match(page.body, /id="gpc-holds"/, 'the page says why there is no off switch');
      assert.doesNotMatch(page.body, /name="opt_out" value="off"/);
      const refused = await client.post('/account/privacy/opt-out', { _csrf: csrfField(page.body)!, opt_out: 'off' }, GPC);
      assert.equal(refused.status, 409);
      assert.match(refused.body, /Global Privacy Control/);
      assert.match(refused.body, /stays on/);
      assert.ok((await p.current(user.id)).privacy?.optOut !== undefined);
      assert.equal((await p.history(user.id)).filter((record) => record.purpose === OPT_OUT_PURPOSE).length, 1, 'only the GPC opt-out');
    });

    it('a purpose is withdrawn and granted again on the account page; every decision is a record (append-only)', async () => {
      const user = await p.user('withdraw');
      const client = browser();
      await signIn(client, user.email, 'grant');
      let page = await client.get('/account');
      assert.match(purposeItem(page.body, 'newsletter'), /You consented on [^]*name="decision" value="withdraw"/);
      const withdrawn = await client.post('/account/privacy/purposes', { _csrf: csrfField(page.body)!, purpose: 'newsletter', decision: 'withdraw' });
      assert.equal(withdrawn.status, 303);
      assert.equal(withdrawn.location, '/account?done=consent');
      assert.equal((await p.current(user.id)).privacy?.consents?.['newsletter']?.granted, false);
      page = await client.get('/account');
      assert.match(purposeItem(page.body, 'newsletter'), /You declined on [^]*name="decision" value="grant"/);
      assert.match(purposeItem(page.body, 'analytics'), /You consented on [^]*name="decision" value="withdraw"/, 'the other purpose is unchanged');
      await client.post('/account/privacy/purposes', { _csrf: csrfField(page.body)!, purpose: 'newsletter', decision: 'grant' });
      const newsletter = (await p.history(user.id)).filter((record) => record.purpose === 'newsletter');
      assert.deepEqual(newsletter.map((record) => [record.granted, record.source]), [[true, 'sign-in'], [false, 'account'], [true, 'account']]);
      assert.deepEqual((await p.entries(user.id, 'privacy.consent.changed')).filter((entry) => entry.detail?.['purpose'] === 'newsletter').map((entry) => entry.detail?.['granted']), [true, false, true]);
      assert.equal((await p.signals(user.id, SECURITY_EVENT_TYPES.privacyConsentChanged, 4)).length, 4, 'one signal per decision (analytics, then newsletter three times)');
    });

    it('an unknown purpose, one not based on consent, or a bad decision is a 400 and changes nothing', async () => {
      const user = await p.user('bad');
      const client = browser();
      await signIn(client, user.email);
      const before = await p.history(user.id);
      const page = await client.get('/account');
      const token = csrfField(page.body)!;
      const forms: Record<string, string>[] = [
        { purpose: 'nothing', decision: 'withdraw' },
        { purpose: 'billing', decision: 'withdraw' },
        { purpose: 'constructor', decision: 'grant' },
        { purpose: 'newsletter', decision: 'maybe' },
        { decision: 'grant' },
      ];
      for (const form of forms) {
        const response = await client.post('/account/privacy/purposes', { _csrf: token, ...form });
        assert.equal(response.status, 400, JSON.stringify(form));
        assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
      }
      for (const choice of ['', 'yes', 'ON']) assert.equal((await client.post('/account/privacy/opt-out', { _csrf: token, opt_out: choice })).status, 400, choice);
      assert.deepEqual(await p.history(user.id), before);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
    });

    it('forged forms (no CSRF token, a wrong one, another Origin, cross-site) are refused with 403 and change nothing', async () => {
      const user = await p.user('forged');
      const client = browser();
      await signIn(client, user.email, 'grant');
      const token = csrfField((await client.get('/account')).body)!;
      const before = await p.history(user.id);
      const forms: [string, Record<string, string>][] = [
        ['/account/privacy/opt-out', { opt_out: 'on' }],
        ['/account/privacy/purposes', { purpose: 'newsletter', decision: 'withdraw' }],
        ['/privacy/purposes', { return_to: '/account', consent_newsletter: 'decline', consent_analytics: 'decline' }],
      ];
      for (const [path, form] of forms) {
        const attempts: [string, PageResponse][] = [
          ['no token', await client.post(path, form)],
          ['wrong token', await client.post(path, { ...form, _csrf: 'A'.repeat(43) })],
          ['another origin', await client.post(path, { ...form, _csrf: token }, { origin: 'https://evil.example' })],
          ['cross-site, no Origin', await client.post(path, { ...form, _csrf: token }, { origin: null, 'sec-fetch-site': 'cross-site' })],
        ];
        for (const [what, response] of attempts) {
          assert.equal(response.status, 403, `${path}: ${what}`);
          assert.match(response.body, /Request refused/, `${path}: ${what}`);
        }
      }
      assert.deepEqual(await p.history(user.id), before);
      assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
      assert.equal((await p.current(user.id)).privacy?.consents?.['newsletter']?.granted, true);
    });

    it('signed out, the forms go to sign-in and change nothing', async () => {
      const client = browser();
      const response = await client.post('/account/privacy/opt-out', { opt_out: 'on' });
      assert.equal(response.status, 303);
      assert.equal(response.location, '/login');
      const asked = await client.get('/privacy/purposes?return_to=%2Fauthorize%2Fresume%3Finteraction%3Dx');
      assert.equal(asked.status, 303);
      assert.equal(asked.location, `/login?return_to=${encodeURIComponent('/authorize/resume?interaction=x')}`);
    });
  });

  describe('consent asked at sign-in', () => {
    it('asks for every consent purpose without a decision (not the contract one); a missing answer is a 400 that records nothing; then continues to return_to', async () => {
      const user = await p.user('ask');
      const client = browser();
      const form = await client.get('/login');
      const login = await client.post('/login', { _csrf: csrfField(form.body)!, email: user.email, password: PASSWORD });
      assert.equal(login.location, `/privacy/purposes?return_to=${encodeURIComponent('/account')}`);
      const asked = await client.get(login.location);
      assert.equal(asked.status, 200);
      assert.match(asked.body, /name="consent_newsletter" value="grant"/);
      assert.match(asked.body, /name="consent_analytics" value="decline"/);
      assert.doesNotMatch(asked.body, /consent_billing/);
      const partial = await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: '/account', consent_newsletter: 'grant' });
      assert.equal(partial.status, 400);
      assert.match(partial.body, /Answer each question/);
      const odd = await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: '/account', consent_newsletter: 'grant', consent_analytics: 'perhaps' });
      assert.equal(odd.status, 400);
      assert.deepEqual(await p.history(user.id), []);
      const done = await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: '//evil.example/x', consent_newsletter: 'grant', consent_analytics: 'decline' });
      assert.equal(done.status, 303);
      assert.equal(done.location, '/account', 'an unsafe return_to falls back to the account page');
      assert.deepEqual((await p.history(user.id)).map((record) => `${record.purpose}:${String(record.granted)}:${record.source}:${record.version}`).sort(), ['analytics:false:sign-in:1', 'newsletter:true:sign-in:1']);
      assert.equal((await client.get('/privacy/purposes?return_to=%2Faccount')).status, 303, 'nothing left to ask');
    });

    it('is not asked again once decided (granted or declined)', async () => {
      const user = await p.user('decided');
      await signIn(browser(), user.email, 'decline');
      const again = await signIn(browser(), user.email);
      assert.equal(again.asked, undefined);
      assert.equal(again.location, '/account');
    });

    it('after password + second factor too: a visitor GPC cookie is carried and the purposes are asked, then on to return_to', async () => {
      const user = await p.user('second-factor');
      const { secondFactor } = server.running.identity;
      const { secret } = await secondFactor.beginEnrolment(user.id, user.email);
      const recovery = await secondFactor.confirmEnrolment(user.id, await totpCodeAt(secret, Date.now()), {});
      assert.ok(recovery !== null);
      const client = browser();
      const form = await client.get('/login?return_to=%2Faccount%3Fdone%3Dprofile', GPC);
      assert.equal(client.cookie(GPC_COOKIE), '1');
      const password = await client.post('/login', { _csrf: csrfField(form.body)!, email: user.email, password: PASSWORD, return_to: '/account?done=profile' });
      assert.match(password.location ?? '', /^\/login\/totp/);
      assert.equal((await p.current(user.id)).privacy, undefined, 'the password alone records nothing');
      const challenge = await client.get(password.location!);
      const second = await client.post('/login/totp', { _csrf: csrfField(challenge.body)!, code: recovery[0]!, return_to: '/account?done=profile' });
      assert.equal(second.status, 303);
      assert.equal(second.location, `/privacy/purposes?return_to=${encodeURIComponent('/account?done=profile')}`);
      assert.equal((await p.current(user.id)).privacy?.optOut?.source, 'gpc');
      assert.equal(client.cookie(GPC_COOKIE), undefined, 'the cookie is cleared');
      const asked = await client.get(second.location);
      const done = await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: '/account?done=profile', consent_newsletter: 'grant', consent_analytics: 'grant' });
      assert.equal(done.location, '/account?done=profile');
    });

    it('the question continues to the return_to of the sign-in', async () => {
      const user = await p.user('return');
      const { asked, location } = await signIn(browser(), user.email, 'grant', '/account?done=profile');
      assert.ok(asked !== undefined);
      assert.equal(location, '/account?done=profile');
    });
  });
});

describe('consent asked again when a purpose version goes up between two starts of the server (embedded)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-purposes-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('version 1 decided; after a restart with version 2 only that purpose is asked again, naming the version answered; then not again', async () => {
    let email: string;
    let userId: string;
    const first = await startTestServer({ dataDir, overrides: { privacy: { purposes: PURPOSES } } });
    try {
      const user = await probe(first).user('versions');
      email = user.email;
      userId = user.id;
      const { asked } = await signIn(new BrowserlessClient(first.url), email, 'grant');
      assert.ok(asked !== undefined);
    } finally {
      await first.close();
    }
    const second = await startTestServer({ dataDir, overrides: { privacy: { purposes: PURPOSES.map((purpose) => (purpose.id === 'newsletter' ? { ...purpose, version: 2, description: 'Send you our newsletter and offers' } : purpose)) } } });
    try {
      const client = new BrowserlessClient(second.url);
      const form = await client.get('/login');
      const login = await client.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD });
      assert.match(login.location ?? '', /^\/privacy\/purposes\?/);
      const asked = await client.get(login.location!);
      assert.match(asked.body, /name="consent_newsletter"/);
      assert.doesNotMatch(asked.body, /name="consent_analytics"/, 'analytics is decided at its current version');
      assert.match(asked.body, /version 2; it changed since you answered version 1/);
      assert.equal((await client.post('/privacy/purposes', { _csrf: csrfField(asked.body)!, return_to: '/account', consent_newsletter: 'decline' })).status, 303);
      const history = await probe(second).history(userId);
      assert.deepEqual(history.filter((record) => record.purpose === 'newsletter').map((record) => [record.version, record.granted]), [[1, true], [2, false]]);
      const again = await signIn(new BrowserlessClient(second.url), email);
      assert.equal(again.asked, undefined, 'decided at version 2');
    } finally {
      await second.close();
    }
  });
});

const postgres = testBackends.includes('postgres+redis') ? false : 'set PORTCULLIS_TEST_DATABASE_URL and PORTCULLIS_TEST_REDIS_URL';

describe('privacy choices on PostgreSQL + Redis', { skip: postgres }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ backend: 'postgres+redis', overrides: { privacy: { purposes: PURPOSES } } });
  });
  after(async () => {
    await server?.close();
  });

  it('a GPC opt-out and the consent asked at sign-in commit the user record, their history, the consumer request and the signals together', async () => {
    const p = probe(server);
    const user = await p.user('pg');
    const client = new BrowserlessClient(server.url, { headers: GPC });
    await signIn(client, user.email, 'grant');
    const current = await p.current(user.id);
    assert.equal(current.privacy?.optOut?.source, 'gpc');
    assert.deepEqual(Object.keys(current.privacy?.consents ?? {}).sort(), ['analytics', 'newsletter']);
    assert.equal((await p.history(user.id)).length, 3);
    assert.deepEqual((await p.requests(user.id)).map((request) => request.kind), ['opt_out']);
    assert.equal((await p.signals(user.id, SECURITY_EVENT_TYPES.privacyOptOutChanged, 1)).length, 1);
    assert.equal((await p.signals(user.id, SECURITY_EVENT_TYPES.privacyConsentChanged, 2)).length, 2);
    assert.equal((await p.entries(user.id, 'privacy.opt_out.changed', 'privacy.consent.changed')).length, 3);
  });

  it('when the signal cannot be queued, nothing of the opt-out is kept', async () => {
    const p = probe(server);
    const user = await p.user('pg-rollback');
    const client = new BrowserlessClient(server.url);
    await signIn(client, user.email, 'grant');
    const remove = server.running.events.stager(async () => {
      throw new Error('the outbox is unavailable');
    });
    try {
      const refused = await client.get('/account', GPC);
      assert.equal(refused.status, 500, 'the store failed: a server error, not a silent loss');
    } finally {
      remove();
    }
    assert.equal((await p.current(user.id)).privacy?.optOut, undefined);
    assert.deepEqual((await p.history(user.id)).filter((record) => record.purpose === OPT_OUT_PURPOSE), []);
    assert.deepEqual(await p.requests(user.id), []);
    assert.equal((await client.get('/account', GPC)).status, 200, 'the next request records it');
    assert.equal((await p.current(user.id)).privacy?.optOut?.source, 'gpc');
  });
});
