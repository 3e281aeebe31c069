/**
 * The Accounts service on real stores: a hash made under old argon2
 * parameters is upgraded at the next successful sign-in (and only then),
 * and the upgrade is not a way in for a wrong password.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FailureAggregator, auditedEvents, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { Accounts } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { SessionManager } from '../../src/identity/sessions.ts';
import { LoginThrottle } from '../../src/identity/throttle.ts';
import { DeviceCookies } from '../../src/identity/device-cookies.ts';
import { UserDirectory } from '../../src/identity/users.ts';
import { THROTTLE } from '../../src/identity/throttle.ts';
import { StoreUnavailableError } from '../../src/store/index.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { failingWhile } from '../support/outage.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const PASSWORD = 'correct horse battery staple';
const OLD = { memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 };
const NEW = { memoryCostKiB: 19_456, timeCost: 3, parallelism: 1 };

describe('password hashes are upgraded at sign-in', () => {
  const driver = durableDrivers[0]!;
  let fixture: DurableFixture;
  let ledger: Ledger;

  before(async () => {
    fixture = await driver.open();
    ledger = await openLedger({
      log: fixture.store.auditLog,
      records: fixture.store.records,
      vault: KeyVault.generate(),
      issuer: 'http://127.0.0.1:9000',
      clock: () => Date.now(),
      audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 1000 },
    });
  });
  after(async () => {
    await ledger.close();
    await fixture.close();
  });

  const accountsWith = (parameters: typeof OLD, outage?: { readonly durableDown: () => boolean }) => {
    const hot = openMemoryHotStore();
    // The durable store as its breaker presents it during an outage: every call fails at once.
    const records = outage === undefined ? fixture.store.records : failingWhile(fixture.store.records, outage.durableDown);
    return new Accounts({
      users: new UserDirectory(records),
      transaction: (fn) => fixture.store.transaction(fn),
      hasher: new PasswordHasher(parameters),
      sessions: new SessionManager({ hot, clock: () => Date.now(), policy: { idleTimeoutMs: 60_000, absoluteTimeoutMs: 600_000, renewIntervalMs: 1_000, maxPerUser: 10 } }),
      throttle: new LoginThrottle({ hot, clock: () => Date.now() }),
      devices: new DeviceCookies({ key: new Uint8Array(randomBytes(32)), clock: () => Date.now() }),
      events: auditedEvents(ledger),
      failures: new FailureAggregator({ events: auditedEvents(ledger), hot, clock: () => Date.now() }),
      clock: () => Date.now(),
      maskIp: (ip) => ip,
    });
  };

  it('security review 11: 1,000 throttled sign-ins from one network add at most a few ledger entries, each with its count', async () => {
    const accounts = accountsWith(OLD);
    await accounts.createUser('flood@example.com', PASSWORD, { actor: 'test' });
    const sizeBefore = await ledger.size();
    const outcomes: string[] = [];
    // Sequential: each wrong attempt is argon2 work until the pair locks, then each refusal is free to the attacker.
    for (let i = 0; i < 1000; i++) outcomes.push((await accounts.login('flood@example.com', 'a wrong guess', { ip: '198.51.100.7' })).outcome);
    assert.equal(outcomes.filter((outcome) => outcome === 'invalid').length, 5, 'the pair lock stops the guesses after 5');
    assert.equal(outcomes.filter((outcome) => outcome === 'throttled').length, 995);
    const sizeAfter = await ledger.size();
    const added = sizeAfter - sizeBefore;
    // 5 wrong passwords, each its own entry; the 995 refusals as counts 1, 10, 100 (one window) or a few more (two windows).
    assert.ok(added <= 5 + 6, `ledger grew by ${added}`);
    const entries = (await ledger.entries(sizeBefore, sizeAfter)).map((row) => decodeEntry(row.entry));
    const aggregated = entries.filter((entry) => entry.detail?.['reason'] === 'throttled');
    assert.ok(aggregated.length >= 3 && aggregated.every((entry) => entry.detail?.['aggregated'] === true && typeof entry.detail?.['count'] === 'number'));
  });

  it('issue 16: sign-ins refused because the account could not be read are given back to the throttle; checked ones never are', async () => {
    let down = false;
    const accounts = accountsWith(OLD, { durableDown: () => down });
    await accounts.createUser('outage@example.com', PASSWORD, { actor: 'test' });
    down = true;
    for (let attempt = 0; attempt <= THROTTLE.pairLimit + 1; attempt++) {
      await assert.rejects(accounts.login('outage@example.com', PASSWORD, { ip: '198.51.100.9' }), StoreUnavailableError);
    }
    down = false;
    assert.equal((await accounts.login('outage@example.com', PASSWORD, { ip: '198.51.100.9' })).outcome, 'ok', 'the person is not locked out by the outage');
    // The negative: wrong passwords that were checked count, and the pair locks at its limit.
    const outcomes: string[] = [];
    for (let attempt = 0; attempt <= THROTTLE.pairLimit; attempt++) outcomes.push((await accounts.login('outage@example.com', `wrong ${attempt}`, { ip: '198.51.100.10' })).outcome);
    assert.deepEqual(outcomes, ['invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'throttled']);
  });

  it('rehashes with the current parameters after a right password, never after a wrong one', async () => {
    const before = accountsWith(OLD);
    const user = await before.createUser('upgrade@example.com', PASSWORD, { actor: 'test' });
    assert.match(user.passwordHash ?? '', /\$m=19456,t=2,p=1\$/);

    const after = accountsWith(NEW);
    assert.equal((await after.login('upgrade@example.com', 'not the password at all', { ip: '198.51.100.1' })).outcome, 'invalid');
    assert.match((await after.users.byId(user.id))?.passwordHash ?? '', /\$m=19456,t=2,p=1\$/, 'a wrong password changes nothing');

    assert.equal((await after.login('upgrade@example.com', PASSWORD, { ip: '198.51.100.1' })).outcome, 'ok');
    const upgraded = (await after.users.byId(user.id))?.passwordHash ?? '';
    assert.match(upgraded, /\$m=19456,t=3,p=1\$/);
    assert.equal((await after.login('upgrade@example.com', PASSWORD, { ip: '198.51.100.1' })).outcome, 'ok', 'the upgraded hash verifies');
    assert.equal((await after.users.byId(user.id))?.passwordHash, upgraded, 'and is not rehashed again');
  });

  it('security review 21: of 12 parallel password changes from the same current password exactly one wins', async () => {
    const accounts = accountsWith(OLD);
    const user = await accounts.createUser('race@example.com', PASSWORD, { actor: 'test' });
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, i) => accounts.changePassword(user.id, PASSWORD, `a new passphrase number ${i} of the contest`, 'none', { ip: `198.51.100.${i + 10}` })),
    );
    const winners = outcomes.flatMap((outcome, i) => (outcome === 'changed' ? [i] : []));
    assert.equal(winners.length, 1, `changed: ${winners.join(',')}`);
    // The others lose the compare-and-set, or (beyond the account's 10 free attempts) wait at the throttle.
    const losers = outcomes.filter((_, i) => i !== winners[0]);
    assert.ok(losers.every((outcome) => outcome !== 'changed' && (outcome.outcome === 'throttled' || (outcome.outcome === 'wrong_password' && !outcome.endSession))));
    assert.ok(losers.filter((outcome) => outcome !== 'changed' && outcome.outcome === 'wrong_password').length >= 8, 'most got past the throttle and lost the race itself');
    // The stored password is the winner's.
    const stored = (await accounts.users.byId(user.id))?.passwordHash ?? '';
    assert.equal((await new PasswordHasher(OLD).verify(stored, `a new passphrase number ${winners[0]} of the contest`)).ok, true);
  });
});

