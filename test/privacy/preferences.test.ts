/**
 * PrivacyPreferences on real durable stores (SQLite, and PostgreSQL when
 * its test URL is set): the opt-out and consent per purpose change the user
 * record, append one history record per decision and stage their events in
 * one transaction; a repeated choice records nothing; a bad purpose
 * refuses the whole list; racing identical changes record once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyVault } from '../../src/crypto/index.ts';
import { EventHub, type DomainEvent } from '../../src/events/index.ts';
import { UserDirectory } from '../../src/identity/index.ts';
import { CONSENT_LOG, ConsumerRequests, OPT_OUT_PURPOSE, PreferenceError, createPrivacyPreferences, subjectHasher, type PrivacyPreferences, type Purpose } from '../../src/privacy/index.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const detailOf = (event: DomainEvent | undefined) => (event !== undefined && 'detail' in event ? event.detail : undefined);

const PURPOSES: Purpose[] = [
  { id: 'marketing', description: 'Emails about new products', legalBasis: 'consent', version: 2, scopes: ['email'] },
  { id: 'constructor', description: 'A purpose whose id is an Object.prototype name', legalBasis: 'consent', version: 1 },
  { id: 'billing', description: 'Invoices', legalBasis: 'contract', version: 1 },
];

for (const driver of durableDrivers) {
  describe(`privacy preferences (${driver.name})`, () => {
    let fixture: DurableFixture;
    let preferences: PrivacyPreferences;
    let users: UserDirectory;
    const recorded: DomainEvent[] = [];
    /** The events staged inside a transaction (their signals' outbox writes), by type. */
    const staged: string[] = [];
    const clock = new ManualClock(Date.UTC(2026, 11, 5, 9, 0, 0));
    const vault = KeyVault.generate();
    let count = 0;

    before(async () => {
      fixture = await driver.open();
      users = new UserDirectory(fixture.store.records);
      const events = new EventHub();
      events.record(async (batch) => {
        recorded.push(...batch);
      });
      events.stager(async (_tx, batch) => {
        staged.push(...batch.map((event) => event.type));
      });
      preferences = createPrivacyPreferences({ purposes: PURPOSES, durable: fixture.store, users, events, vault, clock: clock.now });
    });
    after(async () => {
      await fixture.close();
    });

    const newUser = async () => users.create(`pref-${++count}-${driver.name}@example.org`, null, clock.now());
    const history = async (userId: string) => (await fixture.store.records.findBy(CONSENT_LOG, 'user', userId, { limit: 100 })).map((record) => record.data as { purpose: string; granted: boolean; version: number; source: string });

    it('opting out sets the user record, appends one history record, opens an answered opt_out request and stages its event; again changes nothing', async () => {
      const user = await newUser();
      const before = recorded.length;
      assert.equal(await preferences.setOptOut(user.id, true, 'gpc', { requestId: 'r1', ip: '203.0.113.9' }), true);
      const after = await users.byId(user.id);
      assert.deepEqual(after!.privacy, { optOut: { at: clock.now(), source: 'gpc' } });
      assert.deepEqual(await history(user.id), [{ userId: user.id, purpose: OPT_OUT_PURPOSE, version: 1, granted: true, at: clock.now(), source: 'gpc' }]);
      const requests = await new ConsumerRequests({ records: fixture.store.records, clock: clock.now }).ofSubject(subjectHasher(vault).ofUser(user.id));
      assert.equal(requests.length, 1);
      assert.equal(requests[0]!.kind, 'opt_out');
      assert.equal(requests[0]!.channel, 'gpc');
      assert.equal(requests[0]!.outcome, 'fulfilled');
      const event = recorded.at(-1)!;
      assert.equal(recorded.length, before + 1);
      assert.equal(event.type, 'privacy.opt_out.changed');
      assert.deepEqual(detailOf(event), { optOut: true, source: 'gpc', request: requests[0]!.id });
      assert.equal(staged.at(-1), 'privacy.opt_out.changed', 'staged inside the transaction');
      assert.equal(await preferences.setOptOut(user.id, true, 'account'), false, 'already on');
      assert.equal((await history(user.id)).length, 1);
      assert.equal(recorded.length, before + 1);
    });

    it('turning it off is a second history record (append-only), not a consumer request; GPC cannot turn it off', async () => {
      const user = await newUser();
      await preferences.setOptOut(user.id, true, 'account');
      clock.advance(1000);
      await assert.rejects(preferences.setOptOut(user.id, false, 'gpc'), PreferenceError);
      assert.equal(await preferences.setOptOut(user.id, false, 'account'), true);
      assert.equal((await users.byId(user.id))!.privacy?.optOut, undefined);
      assert.deepEqual((await history(user.id)).map((record) => record.granted).sort(), [false, true]);
      const requests = await new ConsumerRequests({ records: fixture.store.records, clock: clock.now }).ofSubject(subjectHasher(vault).ofUser(user.id));
      assert.equal(requests.length, 1, 'only the opt-out is a request');
    });

    it('consent decisions are recorded at the purpose version, one record each; the same decision again records nothing', async () => {
      const user = await newUser();
      assert.deepEqual(preferences.pending(user).map((purpose) => purpose.id), ['marketing', 'constructor'], 'consent purposes without a decision; constructor is not found on the prototype');
      assert.equal(await preferences.decide(user.id, [{ purpose: 'marketing', granted: true }, { purpose: 'constructor', granted: false }], 'sign-in'), 2);
      let current = (await users.byId(user.id))!;
      assert.deepEqual(current.privacy?.consents, { marketing: { version: 2, granted: true, at: clock.now(), source: 'sign-in' }, constructor: { version: 1, granted: false, at: clock.now(), source: 'sign-in' } });
      assert.deepEqual(preferences.pending(current), []);
      assert.equal(await preferences.decide(user.id, [{ purpose: 'marketing', granted: true }], 'account'), 0);
      clock.advance(1000);
      assert.equal(await preferences.decide(user.id, [{ purpose: 'marketing', granted: false }], 'account'), 1);
      current = (await users.byId(user.id))!;
      assert.equal(current.privacy?.consents?.['marketing']?.granted, false);
      const log = await preferences.history(user.id);
      assert.equal(log.length, 3, 'three decisions, three records');
      // The first two share their time; the withdrawal is last.
      assert.deepEqual(log.slice(0, 2).map((record) => `${record.purpose}:${String(record.granted)}:${record.source}`).sort(), ['constructor:false:sign-in', 'marketing:true:sign-in']);
      assert.deepEqual([log[2]!.purpose, log[2]!.granted, log[2]!.version, log[2]!.source], ['marketing', false, 2, 'account']);
      const events = recorded.filter((event) => event.type === 'privacy.consent.changed' && event.actorUserId === user.id);
      assert.deepEqual(events.map(detailOf), [
        { purpose: 'marketing', version: 2, granted: true, source: 'sign-in' },
        { purpose: 'constructor', version: 1, granted: false, source: 'sign-in' },
        { purpose: 'marketing', version: 2, granted: false, source: 'account' },
      ]);
    });

    it('an unknown purpose, or one not based on consent, refuses the whole list: nothing changes', async () => {
      const user = await newUser();
      await assert.rejects(preferences.decide(user.id, [{ purpose: 'marketing', granted: true }, { purpose: 'nope', granted: true }], 'account'), (error: unknown) => error instanceof PreferenceError && error.code === 'unknown_purpose');
      await assert.rejects(preferences.decide(user.id, [{ purpose: 'marketing', granted: true }, { purpose: 'billing', granted: true }], 'account'), (error: unknown) => error instanceof PreferenceError && error.code === 'not_consent');
      await assert.rejects(preferences.decide(user.id, [{ purpose: '__proto__', granted: true }], 'account'), PreferenceError);
      assert.equal((await users.byId(user.id))!.privacy, undefined);
      assert.deepEqual(await history(user.id), []);
    });

    it('racing identical opt-outs: exactly one history record and one event', async () => {
      const user = await newUser();
      const before = recorded.filter((event) => event.actorUserId === user.id).length;
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => preferences.setOptOut(user.id, true, 'gpc')));
      assert.equal(outcomes.filter(Boolean).length, 1);
      assert.equal((await history(user.id)).length, 1);
      assert.equal(recorded.filter((event) => event.actorUserId === user.id).length, before + 1);
    });
  });
}
