/**
 * What stands between an attacker and an account once they have part of
 * it: the password (second factor still guarded, security review 1), or a
 * stolen session (no password oracle, review 4; no new authenticator,
 * review 9). Driven over HTTP against the real server, on a test clock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry } from '../../src/audit/index.ts';
import { totpCodeAt } from '../../src/identity/totp.ts';
import { ManualClock } from '../support/clock.ts';
import { BrowserlessClient, csrfField, type PageResponse } from '../support/browserless-client.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const SESSION_COOKIE = '__Host-portcullis';

let ipCounter = 0;
/** A client address of its own (the server trusts the loopback proxy's X-Forwarded-For). */
const freshIp = () => `198.51.${Math.floor(++ipCounter / 250)}.${(ipCounter % 250) + 1}`;

async function password(client: BrowserlessClient, email: string, secret = PASSWORD, form = '/login'): Promise<PageResponse> {
  const csrf = csrfField((await client.get(form)).body)!;
  return client.post('/login', { _csrf: csrf, email, password: secret });
}

async function secondStep(client: BrowserlessClient, code: string): Promise<PageResponse> {
  const csrf = csrfField((await client.get('/login/totp')).body)!;
  return client.post('/login/totp', { _csrf: csrf, code });
}

async function formOnAccount(client: BrowserlessClient, path: string, form: Record<string, string>): Promise<PageResponse> {
  const csrf = csrfField((await client.get('/account')).body)!;
  return client.post(path, { _csrf: csrf, ...form });
}

for (const backend of testBackends) {
  describe(`sign-in hardening (${backend})`, () => {
    let server: TestServer;
    const clock = new ManualClock(Date.now());
    let users = 0;

    /** A new account with TOTP on; returns its email and TOTP secret. */
    async function userWithTotp(name: string): Promise<{ email: string; secret: string; userId: string }> {
      const email = `${name}-${++users}@example.com`;
      const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const { secret } = await server.running.identity.secondFactor.beginEnrolment(user.id, email);
      assert.ok(await server.running.identity.secondFactor.confirmEnrolment(user.id, await totpCodeAt(secret, clock.now()), {}));
      // The enrolment code's time step is spent (replay protection): move on to the next one.
      clock.advance(30_000);
      return { email, secret, userId: user.id };
    }

    before(async () => {
      server = await startTestServer({ env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' }, clock: clock.now, backend });
    });
    after(async () => {
      await server.close();
    });

    it('security review 1: a known password does not reset the count of wrong codes; the review loop over 8 connections gets fewer than 20 codes checked in 15 minutes', async () => {
      const { email, secret, userId } = await userWithTotp('bruteforce');
      let checked = 0;
      let refused = 0;
      const cycles = 40;
      const connections = 8;
      let next = 0;
      const worker = async () => {
        while (next < cycles) {
          next++;
          // A fresh address every cycle: the per-address limits alone must not be what holds.
          const attacker = new BrowserlessClient(server.url, { ip: freshIp() });
          const first = await password(attacker, email);
          if (first.location?.startsWith('/login/totp') === true) {
            for (let guess = 0; guess < 5; guess++) {
              const answer = await secondStep(attacker, String(100000 + Math.floor(Math.random() * 899999)));
              if (answer.status === 401 && /That code is not right/.test(answer.body)) checked++;
              else if (answer.status === 429) {
                refused++;
                assert.ok(Number(answer.headers.get('retry-after')) >= 1);
              } else break;
            }
          }
          // 40 cycles spread over 15 minutes of (test-clock) time.
          clock.advance(Math.floor((15 * 60_000) / cycles));
        }
      };
      await Promise.all(Array.from({ length: connections }, worker));
      assert.ok(checked < 20, `wrong codes actually checked: ${checked}`);
      assert.ok(refused > 0);
      // Redis keeps its own time for value TTLs: what follows waits on the test clock, which only the embedded store follows.
      if (backend !== 'embedded') return;

      // The right code while the account's second step is slowed is refused too, without being looked at.
      clock.advance(61_000); // the password step's own account slowdown (at most 60 s) has passed
      const owner = new BrowserlessClient(server.url, { ip: freshIp() });
      assert.match((await password(owner, email)).location ?? '', /^\/login\/totp/);
      let slowed = await secondStep(owner, '000000');
      if (slowed.status !== 429) {
        checked++;
        slowed = await secondStep(owner, '000001');
      }
      assert.equal(slowed.status, 429);
      const right = await secondStep(owner, await totpCodeAt(secret, clock.now()));
      assert.equal(right.status, 429, 'the right code is refused while the second step is slowed');
      assert.equal(owner.cookie(SESSION_COOKIE), undefined);

      // The wrong codes are on the account in the ledger (its pseudonym), not anonymous.
      const pseudonym = await server.running.ledger.pseudonyms.pseudonym(userId);
      const end = await server.running.ledger.size();
      const rows = await server.running.stores.durable.auditLog.entries(0, end);
      const wrongCodes = rows.map((row) => decodeEntry(row.entry)).filter((entry) => entry.type === 'auth.login.failed' && entry.detail?.['reason'] === 'wrong_second_factor');
      assert.equal(wrongCodes.length, checked, 'every wrong code checked is in the ledger');
      assert.ok(wrongCodes.every((entry) => entry.actor === pseudonym), 'every wrong code names the account');

      // Once the wait has passed, the owner gets in with the right code, and that whole sign-in resets the count.
      clock.advance(Number(right.headers.get('retry-after')) * 1000);
      const later = new BrowserlessClient(server.url, { ip: freshIp() });
      assert.match((await password(later, email)).location ?? '', /^\/login\/totp/);
      assert.equal((await secondStep(later, await totpCodeAt(secret, clock.now()))).location, '/account');
    });

    it('security review 10: signing in with password and code ends the session the browser held before', async () => {
      const { email, secret } = await userWithTotp('previous');
      const browser = new BrowserlessClient(server.url, { ip: freshIp() });
      await password(browser, email);
      assert.equal((await secondStep(browser, await totpCodeAt(secret, clock.now()))).location, '/account');
      const old = browser.cookie(SESSION_COOKIE)!;
      clock.advance(30_000);
      await password(browser, email, PASSWORD, '/login?reauth=1');
      assert.equal((await secondStep(browser, await totpCodeAt(secret, clock.now()))).location, '/account');
      assert.notEqual(browser.cookie(SESSION_COOKIE), old);
      const stale = new BrowserlessClient(server.url, { ip: freshIp() });
      stale.setCookie(SESSION_COOKIE, old);
      const answer = await stale.get('/account/session.json');
      assert.equal(answer.status, 401);
      assert.deepEqual(JSON.parse(answer.body), { authenticated: false });
    });

    /** A user whose account page shows `form` (the TOTP-off form needs a second factor once enrolled, then turned off). */
    async function userForForm(email: string, form: string): Promise<void> {
      const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      if (form !== '/account/totp/disable') return;
      const { secret } = await server.running.identity.secondFactor.beginEnrolment(user.id, email);
      await server.running.identity.secondFactor.confirmEnrolment(user.id, await totpCodeAt(secret, clock.now()), {});
      clock.advance(30_000);
      await server.running.identity.secondFactor.disable(user.id, {});
    }

    for (const [form, fields] of [
      ['/account/password', (guess: string) => ({ current_password: guess, new_password: 'a brand new passphrase for this' })],
      ['/account/totp/disable', (guess: string) => ({ password: guess })],
    ] as const) {
      it(`security review 4: ${form} is no password oracle: wrong passwords go through the sign-in throttle, and the session ends after 5`, async () => {
        const email = `oracle-${++users}@example.com`;
        await userForForm(email, form);
        const ip = freshIp();
        const thief = new BrowserlessClient(server.url, { ip });
        assert.equal((await password(thief, email)).location, '/account');
        const stolen = thief.cookie(SESSION_COOKIE)!;
        const statuses: number[] = [];
        for (let i = 0; i < 60; i++) {
          if (thief.cookie(SESSION_COOKIE) === undefined) thief.setCookie(SESSION_COOKIE, stolen);
          const csrf = csrfField((await thief.get('/account')).body);
          if (csrf === undefined) {
            statuses.push(303);
            continue;
          }
          const answer = await thief.post(form, { _csrf: csrf, ...fields(`guess number ${i}`) });
          statuses.push(answer.status);
          if (answer.status === 429) {
            assert.ok(Number(answer.headers.get('retry-after')) > 60);
            assert.match(answer.body, /Wait about \d+ minutes/);
          }
        }
        assert.deepEqual(statuses.slice(0, 5), [400, 400, 400, 400, 429]);
        assert.ok(statuses.slice(5).every((status) => status === 303), 'the stolen session is over: every later try is sent to sign in');
        const check = new BrowserlessClient(server.url, { ip: freshIp() });
        check.setCookie(SESSION_COOKIE, stolen);
        assert.equal((await check.get('/account/session.json')).status, 401);
        // The same throttle as sign-in: this address cannot now try the password at /login either.
        const signIn = await password(new BrowserlessClient(server.url, { ip }), email);
        assert.equal(signIn.status, 429);
        // First-hour D6: the wait in words a person reads; Retry-After keeps the seconds.
        assert.match(signIn.body, /Wait about 15 minutes, then try again\./);
        assert.match(signIn.headers.get('retry-after') ?? '', /^(89\d|900)$/);
      });

      it(`security review 4 (review of the merge): ${form} ends a stolen session after 5 wrong passwords even from 5 different addresses`, async () => {
        const email = `roaming-${++users}@example.com`;
        await userForForm(email, form);
        const owner = new BrowserlessClient(server.url, { ip: freshIp() });
        assert.equal((await password(owner, email)).location, '/account');
        const stolen = owner.cookie(SESSION_COOKIE)!;
        const statuses: number[] = [];
        for (let i = 0; i < 6; i++) {
          const thief = new BrowserlessClient(server.url, { ip: freshIp() });
          thief.setCookie(SESSION_COOKIE, stolen);
          const csrf = csrfField((await thief.get('/account')).body);
          if (csrf === undefined) {
            statuses.push(303);
            continue;
          }
          statuses.push((await thief.post(form, { _csrf: csrf, ...fields(`roaming guess ${i}`) })).status);
        }
        assert.deepEqual(statuses, [400, 400, 400, 400, 429, 303], 'the fifth wrong password ends the session, whatever the address');
      });
    }

    it('security review 9: a stolen session that signed in long ago cannot bind a new authenticator without the password', async () => {
      const email = `enrol-${++users}@example.com`;
      const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const thief = new BrowserlessClient(server.url, { ip: freshIp() });
      await password(thief, email);
      const owner = new BrowserlessClient(server.url, { ip: freshIp() });
      clock.advance(6 * 60_000);
      await password(owner, email);

      // The owner, just signed in, starts setup: the old session sees no secret and cannot confirm it.
      assert.equal((await formOnAccount(owner, '/account/totp/begin', {})).location, '/account');
      const pending = await server.running.identity.secondFactor.pendingEnrolment(user.id, email);
      assert.ok(pending);
      const thiefPage = (await thief.get('/account')).body;
      assert.doesNotMatch(thiefPage, /totp-secret|otpauth:/);
      assert.match(thiefPage, /name="password"[^>]*autocomplete="current-password"/);
      const confirm = await formOnAccount(thief, '/account/totp/confirm', { code: await totpCodeAt(pending.secret, clock.now()) });
      assert.equal(confirm.status, 400);
      assert.equal((await server.running.identity.accounts.users.byId(user.id))?.totpSecret ?? null, null, 'nothing bound');

      // Nor start its own setup without the password, or with a wrong one.
      assert.equal((await formOnAccount(thief, '/account/totp/begin', {})).status, 400);
      assert.equal((await formOnAccount(thief, '/account/totp/begin', { password: 'a guess at the password' })).status, 400);
      assert.equal((await server.running.identity.secondFactor.pendingEnrolment(user.id, email))?.secret, pending.secret, 'the pending secret is unchanged');

      // With the password, the same session may: re-authentication renews it (new id, fresh auth time).
      const before = thief.cookie(SESSION_COOKIE);
      assert.equal((await formOnAccount(thief, '/account/totp/begin', { password: PASSWORD })).location, '/account');
      assert.notEqual(thief.cookie(SESSION_COOKIE), before);
      const fresh = await server.running.identity.secondFactor.pendingEnrolment(user.id, email);
      assert.ok(fresh);
      clock.advance(30_000);
      assert.equal((await formOnAccount(thief, '/account/totp/confirm', { code: await totpCodeAt(fresh.secret, clock.now()) })).status, 200);
    });

    it('security review 3: attackers who slow the account down from 5 addresses do not keep out the user\'s own browser (device cookie)', async () => {
      const email = `lockout-${++users}@example.com`;
      await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const own = new BrowserlessClient(server.url, { ip: freshIp() });
      assert.equal((await password(own, email)).location, '/account');
      const deviceCookie = own.cookie('__Host-portcullis-device');
      assert.ok(deviceCookie, 'a device cookie after signing in');
      own.deleteCookie(SESSION_COOKIE); // signed out since

      for (let address = 0; address < 5; address++) {
        const attacker = new BrowserlessClient(server.url, { ip: freshIp() });
        for (let i = 0; i < 6; i++) await password(attacker, email, `guess ${address}-${i}`);
      }
      // The account is slowed: a browser that never signed in here waits, even with the right password.
      const stranger = await password(new BrowserlessClient(server.url, { ip: freshIp() }), email);
      assert.equal(stranger.status, 429);
      // The user's own browser, from yet another address, gets in at its first try.
      assert.equal((await password(own, email)).location, '/account');

      // A stolen device cookie buys only its own few guesses, then waits like everyone else.
      const statuses: number[] = [];
      for (let address = 0; address < 7; address++) {
        const from = new BrowserlessClient(server.url, { ip: freshIp() });
        from.setCookie('__Host-portcullis-device', deviceCookie);
        statuses.push((await password(from, email, `stolen cookie guess ${address}`)).status);
      }
      assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
      // Past the cookie's limit the account's slowdown applies again (the attackers' failures keep it closed).
      assert.ok(statuses.slice(5).includes(429), `statuses: ${statuses.join(',')}`);
      // A device cookie of another account, or a forged one, exempts nothing.
      const other = new BrowserlessClient(server.url, { ip: freshIp() });
      other.setCookie('__Host-portcullis-device', `${deviceCookie.slice(0, -2)}AA`);
      assert.equal((await password(other, email)).status, 429);
    });

    it('a right current password still changes the password (and refunds the throttle)', async () => {
      const email = `change-${++users}@example.com`;
      await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const owner = new BrowserlessClient(server.url, { ip: freshIp() });
      await password(owner, email);
      assert.equal((await formOnAccount(owner, '/account/password', { current_password: 'a wrong one first', new_password: 'another brand new passphrase' })).status, 400);
      assert.equal((await formOnAccount(owner, '/account/password', { current_password: PASSWORD, new_password: 'another brand new passphrase' })).location, '/account?done=password');
    });
  });
}
