/**
 * The last sign-in (what inactivity retention measures) is written on a
 * successful sign-in, with the password or with the password and a second
 * factor, at most once a day per user: writes are counted by the user
 * record's version, on each durable driver.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FailureAggregator, auditedEvents, openLedger, type Ledger } from '../../src/audit/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { Accounts } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { SessionManager } from '../../src/identity/sessions.ts';
import { LoginThrottle } from '../../src/identity/throttle.ts';
import { DeviceCookies } from '../../src/identity/device-cookies.ts';
import { SIGN_IN_RECORD_INTERVAL_MS, UserDirectory, lastActivityOf } from '../../src/identity/users.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const PASSWORD = 'correct horse battery staple';
const HOUR = 60 * 60_000;

for (const driver of durableDrivers) {
  describe(`lastSignInAt (${driver.name})`, () => {
    let fixture: DurableFixture;
    let ledger: Ledger;
    const clock = new ManualClock();

    before(async () => {
      fixture = await driver.open();
      ledger = await openLedger({
        log: fixture.store.auditLog,
        records: fixture.store.records,
        vault: KeyVault.generate(),
        issuer: 'http://127.0.0.1:9000',
        clock: clock.now,
        audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 1000 },
      });
    });
    after(async () => {
      await ledger.close();
      await fixture.close();
    });

    const accounts = () => {
      const hot = openMemoryHotStore({ clock: clock.now });
      return new Accounts({
        users: new UserDirectory(fixture.store.records),
        transaction: (fn) => fixture.store.transaction(fn),
        hasher: new PasswordHasher({ memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 }),
        sessions: new SessionManager({ hot, clock: clock.now, policy: { idleTimeoutMs: 60_000, absoluteTimeoutMs: 600_000, renewIntervalMs: 1_000, maxPerUser: 100 } }),
        throttle: new LoginThrottle({ hot, clock: clock.now }),
        devices: new DeviceCookies({ key: new Uint8Array(randomBytes(32)), clock: clock.now }),
        events: auditedEvents(ledger),
        failures: new FailureAggregator({ events: auditedEvents(ledger), hot, clock: clock.now }),
        clock: clock.now,
        maskIp: (ip) => ip,
      });
    };
    const version = async (id: string) => (await fixture.store.records.get('users', id))!.version;

    it('is written at the first sign-in, then not again within a day, then once the day is over', async () => {
      const service = accounts();
      const email = `last-${randomBytes(4).toString('hex')}@example.com`;
      const user = await service.createUser(email, PASSWORD, { actor: 'test' });
      assert.equal(user.lastSignInAt, undefined, 'none before the first sign-in');
      assert.equal(lastActivityOf(user), Math.max(user.createdAt, user.passwordChangedAt!), 'an account never signed in to is as active as its creation or last password change');
      const created = await version(user.id);

      assert.equal((await service.login(email, 'not the password', { ip: '198.51.100.1' })).outcome, 'invalid');
      assert.equal(await version(user.id), created, 'a failed sign-in writes nothing');

      const first = clock.now();
      assert.equal((await service.login(email, PASSWORD, { ip: '198.51.100.1' })).outcome, 'ok');
      assert.equal((await service.users.byId(user.id))!.lastSignInAt, first);
      assert.equal(await version(user.id), created + 1, 'one write');

      for (let i = 0; i < 5; i++) {
        clock.advance(4 * HOUR);
        assert.equal((await service.login(email, PASSWORD, { ip: '198.51.100.1' })).outcome, 'ok');
      }
      assert.equal(await version(user.id), created + 1, 'five sign-ins within the day wrote nothing');
      assert.equal((await service.users.byId(user.id))!.lastSignInAt, first);

      clock.advance(SIGN_IN_RECORD_INTERVAL_MS - 20 * HOUR);
      const second = clock.now();
      assert.equal(second - first, SIGN_IN_RECORD_INTERVAL_MS);
      // The second step of a sign-in with a second factor is a sign-in too.
      assert.equal((await service.completeSecondFactor(user.id, 'totp', { ip: '198.51.100.1' })).outcome, 'ok');
      assert.equal(await version(user.id), created + 2, 'a day later: written again');
      const updated = (await service.users.byId(user.id))!;
      assert.equal(updated.lastSignInAt, second);
      assert.equal(lastActivityOf(updated), second);
    });

    it('of concurrent sign-ins after a day, exactly one writes (compare-and-set)', async () => {
      const service = accounts();
      const email = `race-${randomBytes(4).toString('hex')}@example.com`;
      const user = await service.createUser(email, PASSWORD, { actor: 'test' });
      const created = await version(user.id);
      const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => service.login(email, PASSWORD, { ip: `198.51.100.${i + 20}` })));
      assert.ok(outcomes.every((outcome) => outcome.outcome === 'ok'));
      assert.equal(await version(user.id), created + 1, 'eight sign-ins at once: one write');
      clock.advance(SIGN_IN_RECORD_INTERVAL_MS);
      const wrote = await Promise.all(Array.from({ length: 10 }, () => service.users.recordSignIn(user.id, clock.now())));
      assert.equal(wrote.filter(Boolean).length, 1);
      assert.equal(await version(user.id), created + 2);
    });

    it('never writes back a user deleted meanwhile', async () => {
      const service = accounts();
      const user = await service.createUser(`gone-${randomBytes(4).toString('hex')}@example.com`, PASSWORD, { actor: 'test' });
      assert.equal(await service.users.delete(user.id), true);
      assert.equal(await service.users.recordSignIn(user.id, clock.now()), false);
      assert.equal(await fixture.store.records.get('users', user.id), null);
    });
  });
}
