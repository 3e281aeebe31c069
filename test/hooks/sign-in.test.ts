/**
 * Hook chains in a running server: a handler added at login.before refuses
 * a sign-in with its reason, shown as a page (403, not a 5xx) and audited;
 * one that never answers fails closed at its deadline; the second-factor
 * step still runs from login.after; and the handlers run in the chain
 * file's order, not the order they were registered in.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { HookChainError, bundledChainSource, defineHook, type HookAnswer } from '../../src/hooks/index.ts';
import { startPortcullis } from '../../src/server/index.ts';
import { totpCodeAt } from '../../src/identity/totp.ts';
import { ManualClock } from '../support/clock.ts';
import { CapturedLogs, startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const BLOCKED = 'blocked@example.com';
const SLOW = 'slow@example.com';
const PLAIN = 'plain@example.com';
const MFA = 'mfa@example.com';
const MFA_REFUSED = 'mfa-refused@example.com';

/** A browser stand-in: keeps cookies, sends the Origin a browser would, never follows redirects. */
class Browser {
  readonly cookies = new Map<string, string>();
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async request(path: string, form?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') };
    if (form !== undefined) Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded', origin: this.base });
    const response = await fetch(`${this.base}${path}`, { method: form === undefined ? 'GET' : 'POST', headers, ...(form !== undefined && { body: new URLSearchParams(form).toString() }), redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';')[0]!;
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (value === '' || /max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  async csrf(path: string): Promise<string> {
    const token = /name="_csrf" value="([^"]+)"/.exec(await (await this.request(path)).text())?.[1];
    assert.ok(token, `a CSRF token on ${path}`);
    return token;
  }

  async signIn(email: string): Promise<Response> {
    return this.request('/login', { _csrf: await this.csrf('/login'), email, password: PASSWORD });
  }
}

describe('hook chains in the sign-in', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.now());
  const ran: string[] = [];
  let totpSecret: string;
  let refusedSecret: string;
  /** Users the login.after handler refuses. */
  const refusedAfter = new Set<string>();

  // Registered in the reverse of their order in the chain file.
  const recorder = defineHook({
    point: 'login.before',
    name: 'test.recorder',
    answers: ['pass'],
    run: () => (ran.push('test.recorder'), { verdict: 'pass' }),
  });
  const blocklist = defineHook({
    point: 'login.before',
    name: 'test.blocklist',
    answers: ['pass', 'deny'],
    run: (context): HookAnswer | Promise<HookAnswer> => {
      ran.push('test.blocklist');
      if (context.account === SLOW) return new Promise<HookAnswer>(() => {});
      return context.account === BLOCKED ? { verdict: 'deny', reason: 'This account is blocked by the organisation.' } : { verdict: 'pass' };
    },
  });
  const afterSecondFactor = defineHook({
    point: 'login.after',
    name: 'test.after',
    answers: ['pass', 'deny'],
    run: (context) => (refusedAfter.has(context.userId) ? { verdict: 'deny', reason: `Refused after ${context.amr.join('+')}.` } : { verdict: 'pass' }),
  });
  const chains = bundledChainSource()
    .replace(/^login\.before\s+identity\.throttle\s+pass$/m, (line) => `${line}\nlogin.before test.blocklist pass deadline=100ms\nlogin.before test.recorder pass`)
    .replace(/^login\.after\s+identity\.second-factor\s+pass$/m, (line) => `${line}\nlogin.after test.after pass`);

  async function ledger(from: number): Promise<AuditEntry[]> {
    const rows = await server.running.stores.durable.auditLog.entries(from, await server.running.ledger.size());
    return rows.map((row) => decodeEntry(row.entry));
  }

  before(async () => {
    assert.notEqual(chains, bundledChainSource(), 'the test lines went into the chain');
    server = await startTestServer({ clock: clock.now, hooks: { handlers: [afterSecondFactor, recorder, blocklist], chains } });
    const { accounts, secondFactor } = server.running.identity;
    for (const email of [BLOCKED, SLOW, PLAIN]) await accounts.createUser(email, PASSWORD, { actor: 'test' });
    const mfa = await accounts.createUser(MFA, PASSWORD, { actor: 'test' });
    totpSecret = (await secondFactor.beginEnrolment(mfa.id, MFA)).secret;
    assert.ok(await secondFactor.confirmEnrolment(mfa.id, await totpCodeAt(totpSecret, clock.now()), {}));
    const refused = await accounts.createUser(MFA_REFUSED, PASSWORD, { actor: 'test' });
    refusedSecret = (await secondFactor.beginEnrolment(refused.id, MFA_REFUSED)).secret;
    assert.ok(await secondFactor.confirmEnrolment(refused.id, await totpCodeAt(refusedSecret, clock.now()), {}));
    refusedAfter.add(refused.id);
  });
  after(async () => {
    await server.close();
  });

  it('runs the handlers in the chain file order, not their registration order', async () => {
    ran.length = 0;
    const response = await new Browser(server.url).signIn(PLAIN);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/account');
    assert.deepEqual(ran, ['test.blocklist', 'test.recorder']);
  });

  it('a login.before handler refuses a sign-in with its reason: a 403 page, no session, an audit entry', async () => {
    const from = await server.running.ledger.size();
    const browser = new Browser(server.url);
    const response = await browser.signIn(BLOCKED);
    assert.equal(response.status, 403);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await response.text(), /Sign-in refused: This account is blocked by the organisation\./);
    assert.equal(browser.cookies.has('__Host-portcullis'), false);
    const refused = (await ledger(from)).filter((entry) => entry.type === 'auth.login.failed');
    assert.equal(refused.length, 1);
    assert.deepEqual({ ...refused[0]!.detail }, { reason: 'refused_by_hook', point: 'login.before', hook: 'test.blocklist' });
    assert.equal(refused[0]!.outcome, 'denied');
    // The refusal is the page's, logged with its reason.
    assert.match(server.logs.text, /sign_in_refused_by_hook/);
  });

  it('a handler that never answers fails closed at its deadline, and the fault is audited', async () => {
    const from = await server.running.ledger.size();
    const response = await new Browser(server.url).signIn(SLOW);
    assert.equal(response.status, 403);
    assert.match(await response.text(), /Sign-in refused: This request could not be checked\. Try again later\./);
    const entries = await ledger(from);
    const fault = entries.find((entry) => entry.type === 'hook.fault');
    assert.deepEqual({ ...fault?.detail }, { point: 'login.before', hook: 'test.blocklist', line: fault?.detail?.['line'], fault: 'timeout', skipped: false });
    assert.equal(typeof fault?.detail?.['line'], 'number');
    assert.equal(entries.find((entry) => entry.type === 'auth.login.failed')?.detail?.['fault'], 'timeout');
  });

  it('the second-factor step still runs from login.after: the password alone leads to the challenge, the code to a session', async () => {
    const browser = new Browser(server.url);
    const first = await browser.signIn(MFA);
    assert.equal(first.status, 303);
    assert.equal(first.headers.get('location'), '/login/totp');
    assert.equal(browser.cookies.has('__Host-portcullis'), false);
    clock.advance(30_000);
    const second = await browser.request('/login/totp', { _csrf: await browser.csrf('/login/totp'), code: await totpCodeAt(totpSecret, clock.now()) });
    assert.equal(second.status, 303);
    assert.equal(second.headers.get('location'), '/account');
    const session = (await (await browser.request('/account/session.json')).json()) as { authenticated: boolean; amr: string[] };
    assert.deepEqual(session, { ...session, authenticated: true, amr: ['pwd', 'otp'] });
  });

  it('a login.after handler placed after the second factor decides only once the code is answered, and its refusal is a page', async () => {
    const browser = new Browser(server.url);
    const first = await browser.signIn(MFA_REFUSED);
    assert.equal(first.headers.get('location'), '/login/totp', 'the second factor comes first');
    clock.advance(30_000);
    const second = await browser.request('/login/totp', { _csrf: await browser.csrf('/login/totp'), code: await totpCodeAt(refusedSecret, clock.now()) });
    assert.equal(second.status, 403);
    assert.match(await second.text(), /Refused after pwd\+otp\./);
    assert.equal(browser.cookies.has('__Host-portcullis'), false);
  });
});

describe('a server with a chain that does not fit', () => {
  it('does not start: the error names the line, and nothing was opened', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-hooks-'));
    try {
      const config = loadConfig({ env: {}, overrides: { port: 0, dataDir } });
      // identity.throttle may fall through, but this file does not say so.
      const chains = bundledChainSource().replace(/^(login\.before\s+identity\.throttle)\s+pass$/m, '$1');
      const line = bundledChainSource().split('\n').findIndex((text) => /^login\.before\s+identity\.throttle/.test(text)) + 1;
      await assert.rejects(startPortcullis(config, { hooks: { chains }, logDestination: new CapturedLogs().stream }), (error: unknown) => {
        assert.ok(error instanceof HookChainError);
        assert.equal(error.line, line);
        assert.match(error.message, new RegExp(`^chains.cfg line ${line}: handler "identity.throttle" may answer pass, but this line does not declare that it may fall through`));
        return true;
      });
      assert.deepEqual(readdirSync(dataDir).filter((name) => !name.startsWith('master')), []);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
