/**
 * Issue 15, right of access and portability (GDPR Art. 15 and 20): the
 * export of a person seeded with everything Portcullis keeps (profile,
 * second factor and recovery codes, sessions, an application's consent and
 * refresh tokens, purpose consents, privacy preferences, earlier requests,
 * audit entries) has each section with the right content, validates
 * against the published schema with a real validator, proves its audit
 * entries against the signed checkpoint, holds no secret, and nothing of
 * another person. Each backend the environment offers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { totpCodeAt } from '../../src/identity/totp.ts';
import type { DomainEvents } from '../../src/events/index.ts';
import { PrivacyExporter, type PrivacyExport } from '../../src/privacy/index.ts';
import type { RecordStore } from '../../src/store/index.ts';
import { ManualClock } from '../support/clock.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { exportValidator, verifyAuditSection } from '../support/privacy-export.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const ADMIN_TOKEN = 'export-admin-token-0123456789abcdefghij';
const PASSWORD = 'correct horse battery staple';

for (const backend of testBackends) {
  describe(`the privacy export of a seeded person (${backend})`, () => {
    const clock = new ManualClock(Date.now());
    let server: TestServer;
    let records: RecordStore;
    let ada: { id: string; email: string };
    let bob: { id: string; email: string };
    /** Every secret seeded for Ada: none may appear in her export. */
    const secrets = new Map<string, string>();
    let clientId: string;
    let first: PrivacyExport;
    let firstText: string;

    const adminExport = async (userId: string) => {
      const response = await server.running.app.inject({ method: 'GET', url: `/admin/privacy/users/${userId}/export`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(response.statusCode, 200, response.body);
      return { document: JSON.parse(response.body) as PrivacyExport, text: response.body, response };
    };

    before(async () => {
      server = await startTestServer({ backend, clock: clock.now, env: { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN } });
      const { identity, authorizationServer } = server.running;
      const privacy = server.running.runtime.get('privacy');
      records = server.running.stores.durable.records;
      const context = { ip: '203.0.113.9', device: 'Firefox on Linux' };

      const created = await identity.accounts.createUser('ada@example.com', PASSWORD, { actor: 'test' });
      ada = { id: created.id, email: created.email };
      const other = await identity.accounts.createUser('bob@example.org', 'another long passphrase', { actor: 'test' });
      bob = { id: other.id, email: other.email };
      await identity.accounts.updateProfile(ada.id, { name: 'Ada Lovelace', locale: 'en-GB', zoneinfo: 'Europe/London' }, {});
      await identity.accounts.updateProfile(bob.id, { name: 'Bob Other' }, {});

      // A second factor, and one recovery code spent on a sign-in.
      const { secret } = await identity.secondFactor.beginEnrolment(ada.id, ada.email);
      const codes = (await identity.secondFactor.confirmEnrolment(ada.id, await totpCodeAt(secret, clock.now()), {}))!;
      secrets.set('the TOTP secret', secret);
      codes.forEach((code, i) => secrets.set(`recovery code ${i}`, code));
      const challenge = await identity.secondFactor.challenge(ada.id);
      assert.equal((await identity.secondFactor.answer(challenge, codes[0]!)).outcome, 'ok');
      const withCode = await identity.accounts.completeSecondFactor(ada.id, 'recovery_code', context);
      clock.advance(60_000);
      const withTotp = await identity.accounts.completeSecondFactor(ada.id, 'totp', { ip: '2001:db8:7:1::5', device: 'Safari on iOS' });
      assert.ok(withCode.outcome === 'ok' && withTotp.outcome === 'ok');
      for (const [name, signedIn] of [['session 1', withCode], ['session 2', withTotp]] as const) {
        secrets.set(`${name} id`, signedIn.session.id);
        secrets.set(`${name} handle`, signedIn.session.session.handle);
        secrets.set(`${name} device cookie`, signedIn.deviceCookie);
      }
      const bobSession = await identity.accounts.login(bob.email, 'another long passphrase', context);
      assert.equal(bobSession.outcome, 'ok');

      // An application: consent, a live refresh family, and a revoked one.
      const client = await registerClient(server, { client_name: 'Photo Printer', redirect_uris: ['https://printer.example/cb'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid profile offline_access' });
      clientId = client.clientId;
      secrets.set('the client secret', client.clientSecret!);
      await authorizationServer.consents.grant(ada.id, clientId, ['openid', 'profile', 'offline_access'], {});
      await authorizationServer.consents.grant(bob.id, clientId, ['openid'], {});
      const grant = { userId: ada.id, clientId, scope: 'openid profile offline_access', resources: [], authTime: clock.now(), amr: ['pwd', 'otp'], sessionHandle: withTotp.session.session.handle };
      const live = await authorizationServer.refreshTokens.start(grant, { jti: 'jti-live', exp: Math.floor(clock.now() / 1000) + 300 });
      clock.advance(1000);
      const revoked = await authorizationServer.refreshTokens.start(grant, { jti: 'jti-revoked', exp: Math.floor(clock.now() / 1000) + 300 });
      await authorizationServer.refreshTokens.revokeFamily(revoked.familyId, 'consent_withdrawn');
      secrets.set('the refresh token', live.token);
      secrets.set('the revoked refresh token', revoked.token);
      for (const familyId of [live.familyId, revoked.familyId]) {
        const family = (await records.get<{ current: { hash: string } }>('refresh-families', familyId))!;
        secrets.set(`family ${familyId} hash`, family.data.current.hash);
      }

      // Places other workflows fill (purpose consents, recipients, preferences), written as their records are.
      await records.create('privacy_consent_log', 'pc_1', { userId: ada.id, purpose: 'newsletter', version: 2, granted: true, at: clock.now() - 5000, source: 'sign-in' }, { index: { user: [ada.id] } });
      await records.create('privacy_consent_log', 'pc_2', { userId: ada.id, purpose: 'newsletter', version: 2, granted: false, at: clock.now(), source: 'account' }, { index: { user: [ada.id] } });
      await records.create('privacy_consent_log', 'pc_3', { userId: bob.id, purpose: 'bob-only-purpose', version: 1, granted: true, at: clock.now(), source: 'account' }, { index: { user: [bob.id] } });
      await records.create('data_recipients', `${ada.id}:${clientId}`, { userId: ada.id, clientId, firstAt: clock.now() - 3000, lastAt: clock.now() }, { index: { user: [ada.id] } });
      const stored = (await records.get<Record<string, unknown>>('users', ada.id))!;
      await records.update('users', ada.id, stored.version, { ...stored.data, privacy: { optOut: { value: true, at: clock.now(), source: 'gpc' } } });
      await privacy.requests.open('correction', privacy.subjects.ofUser(ada.id), 'admin');
      await privacy.requests.open('deletion', privacy.subjects.ofUser(bob.id), 'account');

      // The stored secrets themselves.
      const user = (await records.get<{ passwordHash: string; totpSecret: string }>('users', ada.id))!;
      secrets.set('the password', PASSWORD);
      secrets.set('the password hash', user.data.passwordHash);
      secrets.set('the sealed TOTP secret', user.data.totpSecret);
      const recovery = (await records.get<{ codes: { hash: string }[] }>('recovery_codes', ada.id))!;
      recovery.data.codes.forEach((code, i) => secrets.set(`recovery code hash ${i}`, code.hash));
      secrets.set('the admin token', ADMIN_TOKEN);

      ({ document: first, text: firstText } = await adminExport(ada.id));
    });
    after(async () => {
      await server.close();
    });

    it('validates against the schema served at /privacy/export-schema.json', async () => {
      const response = await server.running.app.inject({ method: 'GET', url: '/privacy/export-schema.json' });
      assert.equal(response.statusCode, 200);
      assert.match(response.headers['content-type'] as string, /^application\/schema\+json/);
      const validate = exportValidator(JSON.parse(response.body) as Record<string, unknown>);
      validate(first);
      // The validator is real: a document with a field the schema does not name, or a missing section, fails.
      assert.throws(() => validate({ ...first, profile: { ...first.profile, passwordHash: 'x' } }));
      assert.throws(() => validate({ ...first, sessions: [{ ...first.sessions[0], handle: 'x' }] }));
      const withoutAudit: Partial<PrivacyExport> = { ...first };
      delete withoutAudit.audit;
      assert.throws(() => validate(withoutAudit));
    });

    it('names the person and the issuer, and is a dated attachment that is never cached', async () => {
      assert.equal(first.format, 'portcullis-privacy-export');
      assert.equal(first.version, 1);
      assert.deepEqual(first.subject, { sub: ada.id });
      assert.equal(first.issuer, server.running.runtime.get('config').issuer);
      assert.equal(first.generatedAt, new Date(clock.now()).toISOString());
      const { response } = await adminExport(ada.id);
      assert.equal(response.headers['cache-control'], 'no-store');
      assert.match(response.headers['content-type'] as string, /^application\/json/);
      assert.match(response.headers['content-disposition'] as string, /^attachment; filename="portcullis-data-\d{4}-\d{2}-\d{2}\.json"$/);
    });

    it('profile: the address, the profile claims, the account\'s dates and state', () => {
      const { profile } = first;
      assert.equal(profile.email, 'ada@example.com');
      assert.equal(profile.claims['name'], 'Ada Lovelace');
      assert.equal(profile.claims['locale'], 'en-GB');
      assert.equal(profile.claims['zoneinfo'], 'Europe/London');
      assert.equal(typeof profile.claims['updated_at'], 'number');
      assert.equal(profile.disabled, false);
      assert.equal(profile.hasPassword, true);
      assert.ok(Date.parse(profile.createdAt) <= clock.now());
      assert.ok(profile.passwordChangedAt !== null);
    });

    it('sessions: when, from which device and masked network, how; never an id or handle', () => {
      assert.equal(first.sessions.length, 2);
      const [newest, oldest] = first.sessions;
      assert.equal(newest!.device, 'Safari on iOS');
      assert.equal(newest!.ip, '2001:db8:7::');
      assert.deepEqual(newest!.amr, ['pwd', 'otp']);
      assert.equal(oldest!.device, 'Firefox on Linux');
      assert.equal(oldest!.ip, '203.0.113.0');
      assert.deepEqual(oldest!.amr, ['pwd', 'mfa']);
      assert.ok(first.sessions.every((session) => Object.keys(session).sort().join() === 'amr,authTime,createdAt,device,expiresAt,ip,lastSeenAt'));
    });

    it('consents: the purpose consent history, oldest first, and only hers', () => {
      assert.deepEqual(
        first.consents.map((consent) => [consent.purpose, consent.version, consent.granted, consent.source]),
        [
          ['newsletter', 2, true, 'sign-in'],
          ['newsletter', 2, false, 'account'],
        ],
      );
    });

    it('applications: the client by name, what she approved, when it received her data', () => {
      assert.equal(first.applications.length, 1);
      const [application] = first.applications;
      assert.equal(application!.clientId, clientId);
      assert.equal(application!.clientName, 'Photo Printer');
      assert.deepEqual(application!.consent?.scopes, ['offline_access', 'openid', 'profile']);
      assert.deepEqual(application!.consent?.resources, []);
      assert.ok(application!.received?.firstAt !== null && application!.received?.lastAt !== null);
    });

    it('grants: each refresh family with its client, scope, dates and revocation; never a token or hash', () => {
      assert.equal(first.grants.length, 2);
      const [live, revoked] = first.grants;
      assert.equal(live!.clientName, 'Photo Printer');
      assert.equal(live!.scope, 'openid profile offline_access');
      assert.deepEqual(live!.amr, ['pwd', 'otp']);
      assert.equal(live!.revoked, null);
      assert.equal(live!.boundTo, null);
      assert.ok(Date.parse(live!.expiresAt) > clock.now());
      assert.equal(revoked!.revoked?.reason, 'consent_withdrawn');
    });

    it('second factors: enrolled or not, and the recovery codes left', () => {
      assert.deepEqual(first.secondFactors, { totp: { enrolled: true }, recoveryCodes: { remaining: 9 } });
    });

    it('preferences: her privacy choices as stored', () => {
      assert.deepEqual(first.preferences, { optOut: { value: true, at: clock.now(), source: 'gpc' } });
    });

    it('requests: hers with their deadlines; a later export shows the earlier one as an answered access request', async () => {
      assert.deepEqual(
        first.requests.map((request) => [request.kind, request.channel, request.answeredAt === null]),
        // Her own profile change is a correction answered as it was made; the seeded one is still open.
        [
          ['correction', 'account', false],
          ['correction', 'admin', true],
        ],
      );
      const { document: second } = await adminExport(ada.id);
      const access = second.requests.find((request) => request.kind === 'access');
      assert.ok(access, 'the first export was recorded as an access request');
      assert.equal(access.channel, 'admin');
      assert.equal(access.outcome, 'fulfilled');
      assert.equal(access.answeredAt, access.receivedAt);
      assert.ok(Date.parse(access.answerBy) - Date.parse(access.receivedAt) === 45 * 24 * 60 * 60_000);
    });

    it('audit: every entry about her and none about anyone else, each proved against the signed checkpoint', async () => {
      const { ledger } = server.running;
      const entries = verifyAuditSection(first, ledger.verifierKey);
      const pseudonym = await ledger.pseudonyms.existingPseudonym(ada.id);
      const bobs = await ledger.pseudonyms.existingPseudonym(bob.id);
      assert.ok(pseudonym !== null && bobs !== null);
      assert.equal(first.audit.logKey, ledger.verifierKey);
      assert.equal(first.audit.origin, ledger.origin);
      const about = (entry: Record<string, unknown>) => entry['actor'] === pseudonym || (entry['detail'] as Record<string, unknown> | undefined)?.['subject'] === pseudonym;
      assert.ok(entries.every(about), 'every entry is about her');
      assert.ok(!firstText.includes(bobs), 'nothing about Bob');
      const types = entries.map((entry) => entry['type']);
      for (const type of ['user.created', 'user.updated', 'auth.login.succeeded', 'consent.granted']) assert.ok(types.includes(type), `${type} in ${types.join(' ')}`);
      // Every one of her entries in the log up to the checkpoint is there.
      const all = await server.running.stores.durable.auditLog.entries(0, first.audit.size);
      const hers = all.filter((row) => about(JSON.parse(Buffer.from(row.entry).toString('utf8')) as Record<string, unknown>)).map((row) => row.index);
      assert.deepEqual(
        first.audit.entries.map((entry) => entry.index),
        hers,
      );
    });

    it('the export is audited: privacy.export, by the administrator, about her, counts only', async () => {
      const { ledger } = server.running;
      const size = await ledger.size();
      const rows = await server.running.stores.durable.auditLog.entries(0, size);
      const exports = rows.map((row) => JSON.parse(Buffer.from(row.entry).toString('utf8')) as Record<string, unknown>).filter((entry) => entry['type'] === 'privacy.export');
      assert.ok(exports.length >= 1);
      const entry = exports[0]!;
      assert.equal(entry['service'], 'admin');
      assert.equal(entry['actor'], await ledger.pseudonyms.existingPseudonym(ada.id));
      const detail = entry['detail'] as Record<string, unknown>;
      assert.equal(detail['channel'], 'admin');
      assert.equal(detail['auditEntries'], first.audit.entries.length);
      assert.match(String(detail['request']), /^pr_/);
      assert.ok(!JSON.stringify(entry).includes('ada@example.com'), 'no personal data in the entry');
    });

    it('holds no secret: no password or its hash, TOTP secret, recovery code or hash, session id or handle, refresh token or hash', () => {
      for (const [name, value] of secrets) assert.ok(!firstText.includes(value), `${name} is in the export`);
      assert.doesNotMatch(firstText, /argon2|passwordHash|totpSecret|"hash"|handle|successor|dpopJkt|certificateThumbprint/i);
    });

    it('holds nothing of another person', () => {
      for (const value of [bob.id, bob.email, 'Bob Other', 'bob-only-purpose']) assert.ok(!firstText.includes(value), `${value} is in Ada's export`);
    });

    it('a copy the ledger cannot record is not handed over, and its request stays open', async () => {
      const privacy = server.running.runtime.get('privacy');
      const { identity, ledger } = server.running;
      const exporter = new PrivacyExporter({
        records,
        issuer: 'https://id.example.com',
        clock: clock.now,
        events: { emit: () => Promise.reject(new Error('the ledger is full')) } as unknown as DomainEvents,
        requests: privacy.requests,
        subjects: privacy.subjects,
        sessions: identity.accounts.sessions,
        secondFactor: identity.secondFactor,
        clients: server.running.authorizationServer.clients,
        audit: ledger,
      });
      await assert.rejects(exporter.export(bob.id, { channel: 'admin' }), /the ledger is full/);
      const requests = await privacy.requests.ofSubject(privacy.subjects.ofUser(bob.id));
      const access = requests.filter((request) => request.kind === 'access');
      assert.equal(access.length, 1);
      assert.equal(access[0]!.answeredAt, undefined, 'not answered');
      assert.equal(access[0]!.outcome, undefined);
    });

    it('an unknown user: 404, nothing recorded', async () => {
      const privacy = server.running.runtime.get('privacy');
      const before = (await privacy.requests.list()).length;
      for (const id of ['u_AAAAAAAAAAAAAAAAAAAAAA', 'nobody@example.com', '..', 'u_%2e%2e']) {
        const response = await server.running.app.inject({ method: 'GET', url: `/admin/privacy/users/${id}/export`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(response.statusCode, 404, `${id}: ${response.body}`);
        assert.match(response.headers['content-type'] as string, /problem\+json/);
      }
      assert.equal((await privacy.requests.list()).length, before);
    });
  });
}
