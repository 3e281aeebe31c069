/**
 * Two-step verification through the real pages: enrolment confirmed by a
 * code, sign-in that needs the code, recovery codes that work once, a
 * challenge that allows five tries and yields one session, and codes that
 * cannot be replayed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { totpCodeAt } from '../../src/identity/totp.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';

/** A browser stand-in: keeps cookies, sends the Origin a browser would, never follows redirects. */
class Client {
  readonly cookies = new Map<string, string>();
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async request(path: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') };
    let body: string | undefined;
    if (init.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['origin'] = this.base;
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(`${this.base}${path}`, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, ...(body !== undefined && { body }), redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, value] = [pair!.slice(0, pair!.indexOf('=')), pair!.slice(pair!.indexOf('=') + 1)];
      if (value === '' || /max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  async csrfFrom(path: string): Promise<string> {
    const text = await (await this.request(path)).text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text)?.[1];
    assert.ok(token, `a CSRF token on ${path}`);
    return token;
  }

  async password(email: string): Promise<Response> {
    const csrf = await this.csrfFrom('/login');
    return this.request('/login', { form: { _csrf: csrf, email, password: PASSWORD } });
  }

  async secondStep(code: string): Promise<Response> {
    const csrf = await this.csrfFrom('/login/totp');
    return this.request('/login/totp', { form: { _csrf: csrf, code } });
  }
}

describe('two-step verification', () => {
  let server: TestServer;
  let secret: string;
  let recoveryCodes: string[];
  /** The code the second test signs in with, replayed by the third. */
  let usedCode: string;
  const email = 'mfa@example.com';
  const clock = new ManualClock(Date.now());

  before(async () => {
    server = await startTestServer({ env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' }, clock: clock.now });
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
  });
  after(async () => {
    await server.close();
  });

  it('is turned on only once a code from the app confirms the secret, and shows recovery codes once', async () => {
    const browser = new Client(server.url);
    assert.equal((await browser.password(email)).headers.get('location'), '/account');
    let csrf = await browser.csrfFrom('/account');
    assert.equal((await browser.request('/account/totp/begin', { form: { _csrf: csrf } })).status, 303);
    const page = await (await browser.request('/account')).text();
    secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(page)![1]!.replaceAll(' ', '');
    assert.match(page, /href="otpauth:\/\/totp\//);
    csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const wrong = await browser.request('/account/totp/confirm', { form: { _csrf: csrf, code: '000000' } });
    assert.equal(wrong.status, 400);
    assert.equal((await server.running.identity.accounts.users.byEmail(email))?.totpSecret ?? null, null, 'not on before a right code');
    const confirmed = await browser.request('/account/totp/confirm', { form: { _csrf: csrf, code: await totpCodeAt(secret, clock.now()) } });
    assert.equal(confirmed.status, 200);
    recoveryCodes = [...(await confirmed.text()).matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((match) => match[1]!);
    assert.equal(recoveryCodes.length, 10);
    const stored = await server.running.identity.accounts.users.byEmail(email);
    assert.ok(stored?.totpSecret && !stored.totpSecret.includes(secret), 'the secret is sealed at rest');
  });

  it('a correct password alone no longer signs in; password then code does', async () => {
    const browser = new Client(server.url);
    const first = await browser.password(email);
    assert.equal(first.headers.get('location'), '/login/totp');
    assert.equal(browser.cookies.has('__Host-portcullis'), false, 'no session after the password alone');
    assert.equal((await browser.request('/account/session.json')).status, 401);
    // The next 30 s step's code is accepted too (RFC 6238 5.2: one step of clock drift).
    usedCode = await totpCodeAt(secret, clock.now() + 30_000);
    const done = await browser.secondStep(usedCode);
    assert.equal(done.headers.get('location'), '/account');
    const session = (await (await browser.request('/account/session.json')).json()) as { amr: string[] };
    assert.deepEqual(session.amr, ['pwd', 'otp']);
  });

  it('a code cannot be used twice, and a challenge allows five wrong tries', async () => {
    const replay = new Client(server.url);
    await replay.password(email);
    assert.equal((await replay.secondStep(usedCode)).status, 401, 'the same code again is refused');

    const guesser = new Client(server.url);
    await guesser.password(email);
    for (let i = 0; i < 4; i++) assert.match(await (await guesser.secondStep(`12345${i}`)).text(), /attempts left/);
    const fifth = await guesser.secondStep('123459');
    assert.equal(fifth.status, 401);
    const sixth = await guesser.secondStep(await totpCodeAt(secret, clock.now()));
    assert.equal(sixth.status, 401, 'the challenge is spent after five wrong tries');
    assert.match(await sixth.text(), /Start again with your password/);
    assert.equal(guesser.cookies.has('__Host-portcullis'), false);
  });

  it('a recovery code signs in once', async () => {
    // Six wrong codes so far on this account: the second step is slowed (security review 1) until a little time passes.
    clock.advance(60_000);
    const browser = new Client(server.url);
    await browser.password(email);
    assert.equal((await browser.secondStep(recoveryCodes[0]!.toUpperCase())).headers.get('location'), '/account');
    const again = new Client(server.url);
    await again.password(email);
    assert.equal((await again.secondStep(recoveryCodes[0]!)).status, 401, 'spent');
  });

  it('the challenge cookie is bound to its CSRF token: a forged second step is refused', async () => {
    const victim = new Client(server.url);
    await victim.password(email);
    const attacker = new Client(server.url);
    await attacker.password(email);
    const attackerToken = await attacker.csrfFrom('/login/totp');
    const forged = await victim.request('/login/totp', { form: { _csrf: attackerToken, code: await totpCodeAt(secret, clock.now()) } });
    assert.equal(forged.status, 403);
  });
});
