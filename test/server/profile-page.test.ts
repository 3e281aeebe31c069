/**
 * The profile section of the account page (first-hour review D13): a user
 * sets and clears their OIDC Core 5.1 profile claims with a CSRF-protected
 * form; a bad value, a forged or cross-site post changes nothing; the audit
 * entry names the changed fields and never holds their values.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import { UserError, checkProfileChange, type User } from '../../src/identity/index.ts';
import { BrowserlessClient, csrfField, type PageResponse } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const PROFILE = { name: 'Zoë Ångström', given_name: 'Zoë', family_name: 'Ångström', locale: 'sv-SE', zoneinfo: 'Europe/Stockholm', picture: 'https://images.example.net/zoe.png' };

for (const backend of testBackends) {
  describe(`account page: profile (first-hour review D13) (${backend})`, () => {
    let server: TestServer;
    const clock = new ManualClock(Date.now());
    let users = 0;

    before(async () => {
      server = await startTestServer({ fixedPort: true, clock: clock.now, backend });
    });
    after(async () => {
      await server.close();
    });

    async function signedIn(): Promise<{ user: User; client: BrowserlessClient }> {
      users += 1;
      const user = await server.running.identity.accounts.createUser(`profile-${users}@example.org`, PASSWORD, { actor: 'test' });
      const client = new BrowserlessClient(server.url);
      const form = await client.get('/login');
      assert.equal((await client.post('/login', { _csrf: csrfField(form.body)!, email: user.email, password: PASSWORD })).status, 303);
      return { user, client };
    }

    const profileOf = async (user: User) => (await server.running.identity.accounts.users.byId(user.id))!.profile;

    async function postProfile(client: BrowserlessClient, fields: Record<string, string>): Promise<PageResponse> {
      const token = csrfField((await client.get('/account')).body)!;
      return client.post('/account/profile', { _csrf: token, ...fields });
    }

    async function auditEntries(start: number): Promise<{ entry: AuditEntry; text: string }[]> {
      const rows = await server.running.stores.durable.auditLog.entries(start, await server.running.ledger.size());
      return rows.map((row) => ({ entry: decodeEntry(row.entry), text: Buffer.from(row.entry).toString('utf8') }));
    }

    it('shows a profile form with the CSRF field, and saves every claim with updated_at set by the server', async () => {
      const { user, client } = await signedIn();
      const page = await client.get('/account');
      assert.equal(page.status, 200);
      assert.match(page.body, /<form method="post" action="\/account\/profile">\s*<input type="hidden" name="_csrf" value="[^"]+">/);
      for (const field of Object.keys(PROFILE)) assert.match(page.body, new RegExp(`<label for="profile-${field}">`), `a labelled ${field} field`);

      const saved = await postProfile(client, { ...PROFILE, updated_at: '1' });
      assert.equal(saved.status, 303, saved.body.slice(0, 300));
      assert.equal(saved.location, '/account?done=profile');
      assert.deepEqual(await profileOf(user), { ...PROFILE, updated_at: Math.floor(clock.now() / 1000) }, 'updated_at is the server clock, never the form');
      const shown = await client.get('/account?done=profile');
      assert.match(shown.body, /Your profile was saved\./);
      assert.match(shown.body, /value="Zoë Ångström"/);
      assert.match(shown.body, /value="Europe\/Stockholm"/);
    });

    it('an empty field removes that claim; an unchanged form does not move updated_at', async () => {
      const { user, client } = await signedIn();
      assert.equal((await postProfile(client, PROFILE)).status, 303);
      const first = (await profileOf(user))!.updated_at;
      clock.advance(60_000);
      assert.equal((await postProfile(client, PROFILE)).status, 303);
      assert.equal((await profileOf(user))!.updated_at, first, 'nothing changed, so updated_at stays');
      assert.equal((await postProfile(client, { ...PROFILE, picture: '', given_name: '' })).status, 303);
      const { given_name, picture, ...rest } = PROFILE;
      void given_name;
      void picture;
      assert.deepEqual(await profileOf(user), { ...rest, updated_at: Math.floor(clock.now() / 1000) });
    });

    it('refuses a bad zoneinfo, locale, picture or name with a clear 400, changing nothing (not even the good fields beside it)', async () => {
      const { user, client } = await signedIn();
      assert.equal((await postProfile(client, PROFILE)).status, 303);
      const before = await profileOf(user);
      const cases: [Record<string, string>, RegExp][] = [
        [{ zoneinfo: 'Mars/Olympus_Mons' }, /zoneinfo: is not an IANA time zone name/],
        [{ zoneinfo: '+01:00' }, /zoneinfo: is not an IANA time zone name/],
        [{ locale: 'not a tag!' }, /locale: is not a BCP 47 language tag/],
        [{ picture: 'http://images.example.net/zoe.png' }, /picture: must be an https URL/],
        [{ picture: 'javascript:alert(1)' }, /picture: must be an https URL/],
        [{ picture: 'https://user:pw@images.example.net/zoe.png' }, /picture: must not contain a user name or password/],
        [{ name: 'Zoë\u0000Ångström' }, /name: must not contain control characters/],
        [{ name: 'Zoë\u202Emörtsgnå' }, /name: must not contain control characters/],
        [{ family_name: 'x'.repeat(201) }, /family_name: must be at most 200 characters/],
      ];
      for (const [bad, message] of cases) {
        const answer = await postProfile(client, { ...PROFILE, name: 'A new name', ...bad });
        assert.equal(answer.status, 400, JSON.stringify(bad));
        assert.match(answer.body, /role="alert"/);
        assert.match(answer.body, message, JSON.stringify(bad));
        assert.deepEqual(await profileOf(user), before, `${JSON.stringify(bad)}: nothing changed`);
      }
      // A field sent twice is ambiguous: refused, not half-applied.
      const token = csrfField((await client.get('/account')).body)!;
      const twice = await client.request('/account/profile', { body: `_csrf=${encodeURIComponent(token)}&name=One&name=Two`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(twice.status, 400);
      assert.deepEqual(await profileOf(user), before);
    });

    it('refuses a forged post (no token, another user\'s token, another origin) with 403, changing nothing', async () => {
      const victim = await signedIn();
      const attacker = await signedIn();
      const attackerToken = csrfField((await attacker.client.get('/account')).body)!;
      const ownToken = csrfField((await victim.client.get('/account')).body)!;
      const attempts: [string, PageResponse][] = [
        ['no token', await victim.client.post('/account/profile', { name: 'Forged' })],
        ["another user's token", await victim.client.post('/account/profile', { _csrf: attackerToken, name: 'Forged' })],
        ['another origin', await victim.client.request('/account/profile', { form: { _csrf: ownToken, name: 'Forged' }, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })],
      ];
      for (const [what, answer] of attempts) {
        assert.equal(answer.status, 403, what);
        assert.match(answer.body, /Request refused/, what);
      }
      assert.equal(await profileOf(victim.user), undefined, 'the profile was never written');
    });

    it('sends a signed-out visitor to sign in', async () => {
      const answer = await new BrowserlessClient(server.url).post('/account/profile', { name: 'Nobody' });
      assert.equal(answer.status, 303);
      assert.equal(answer.location, '/login');
    });

    it('audits a change as user.updated with the names of the changed fields and none of their values', async () => {
      const { user, client } = await signedIn();
      const start = await server.running.ledger.size();
      assert.equal((await postProfile(client, { name: 'Émile Zola', zoneinfo: 'Europe/Paris' })).status, 303);
      assert.equal((await postProfile(client, { zoneinfo: 'Nope/Nowhere' })).status, 400);
      const entries = (await auditEntries(start)).filter(({ entry }) => entry.type === 'user.updated');
      assert.equal(entries.length, 1, 'one entry for the one change; the refused one changed nothing');
      assert.deepEqual(entries[0]!.entry.detail, { change: 'profile', fields: 'name,zoneinfo' });
      assert.ok(entries[0]!.entry.actor !== undefined && entries[0]!.entry.actor !== user.id, 'the actor is a pseudonym');
      for (const value of ['Émile', 'Zola', 'Europe/Paris', 'Nope/Nowhere']) {
        assert.ok(!entries.some(({ text }) => text.includes(value)), `no entry holds ${value}`);
      }
    });
  });
}

it('in production, a picture must be https even on loopback (OIDC Core 5.1 picture; http only for local development)', () => {
  const loopback = { picture: 'http://127.0.0.1:8080/me.png' };
  assert.deepEqual(checkProfileChange(loopback, { allowLoopbackHttp: true }), loopback);
  assert.throws(() => checkProfileChange(loopback, { allowLoopbackHttp: false }), (error) => error instanceof UserError && error.code === 'invalid_profile' && /must be an https URL/.test(error.message));
  assert.throws(() => checkProfileChange({ picture: 'http://images.example.net/me.png' }, { allowLoopbackHttp: true }), UserError);
});
