/**
 * The Accounts service on real stores: a hash made under old argon2
 * parameters is upgraded at the next successful sign-in (and only then),
 * and the upgrade is not a way in for a wrong password. Every change that
 * ends a user's sessions (password change, reset, disable, delete) hands
 * them to `onSessionsEnding` while they are still live (OAuth queues their
 * back-channel logouts there), and ends them even when that fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FailureAggregator, auditedEvents, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { Accounts, type OnSessionsEnding } from '../../src/identity/accounts.ts';
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

  /** Each change that ends sessions, run with `onSessionsEnding`; `keep` is the session a password change is made from. */
  const endingChanges: { readonly name: string; readonly keeps: boolean; readonly run: (accounts: Accounts, userId: string, keep: string, onSessionsEnding: OnSessionsEnding) => Promise<unknown> }[] = [
    { name: 'changePassword', keeps: true, run: (accounts, userId, keep, onSessionsEnding) => accounts.changePassword(userId, PASSWORD, 'a brand new passphrase for the test', keep, { ip: '198.51.100.20' }, { onSessionsEnding }) },
    { name: 'setPassword', keeps: false, run: (accounts, userId, _keep, onSessionsEnding) => accounts.setPassword(userId, 'a brand new passphrase for the test', { actor: 'test' }, { onSessionsEnding }) },
    { name: 'setDisabled', keeps: false, run: (accounts, userId, _keep, onSessionsEnding) => accounts.setDisabled(userId, true, { actor: 'test' }, { onSessionsEnding }) },
    { name: 'deleteUser', keeps: false, run: (accounts, userId, _keep, onSessionsEnding) => accounts.deleteUser(userId, { actor: 'test' }, { onSessionsEnding }) },
  ];

  async function withSessions(accounts: Accounts, label: string) {
    const user = await accounts.createUser(`${label}-${randomBytes(3).toString('hex')}@example.com`, PASSWORD, { actor: 'test' });
    const open = async () => (await accounts.sessions.create(user.id, { amr: ['pwd'], device: 'test', ip: '198.51.100.21' })).session.handle;
    return { userId: user.id, keep: await open(), others: [await open(), await open()] };
  }

  for (const change of endingChanges) {
    it(`${change.name}: onSessionsEnding gets the sessions that end while they are live, and again once they ended`, async () => {
      const accounts = accountsWith(OLD);
      const { userId, keep, others } = await withSessions(accounts, change.name);
      const ending = change.keeps ? others : [keep, ...others];
      const seen: { handles: string[]; live: boolean[]; ended: boolean }[] = [];
      await change.run(accounts, userId, keep, async (handles, pass) => {
        seen.push({ handles: [...handles], live: await Promise.all(handles.map((handle) => accounts.sessions.isLive(handle))), ended: pass.ended });
      });
      assert.equal(seen.length, 2);
      for (const one of seen) assert.deepEqual(one.handles.toSorted(), ending.toSorted(), 'every session that ends, and only those');
      assert.deepEqual(seen.map((one) => one.ended), [false, true]);
      assert.ok(seen[0]!.live.every(Boolean), 'each still live when first handed over');
      assert.ok(seen[1]!.live.every((live) => !live), 'and ended when handed over again');
      for (const handle of ending) assert.equal(await accounts.sessions.isLive(handle), false, 'then ended');
      assert.equal(await accounts.sessions.isLive(keep), change.keeps, 'the session the change is made from goes on');
    });

    it(`${change.name}: a session that starts while the first pass runs is handed over in the second`, async () => {
      const accounts = accountsWith(OLD);
      const { userId, keep, others } = await withSessions(accounts, `${change.name}-race`);
      let late: string | undefined;
      const second: string[] = [];
      await change.run(accounts, userId, keep, async (handles, pass) => {
        if (!pass.ended) late = (await accounts.sessions.create(userId, { amr: ['pwd'], device: 'test', ip: '198.51.100.23' })).session.handle;
        else second.push(...handles);
      });
      assert.ok(late !== undefined);
      assert.ok(second.includes(late), 'the late session is in the second pass');
      for (const handle of [...others, late]) assert.equal(await accounts.sessions.isLive(handle), false);
    });

    it(`${change.name}: when onSessionsEnding fails, the sessions end all the same and its error is thrown`, async () => {
      const accounts = accountsWith(OLD);
      const { userId, keep, others } = await withSessions(accounts, `${change.name}-fails`);
      const ending = change.keeps ? others : [keep, ...others];
      const failure = new StoreUnavailableError('test', 'the outbox is unavailable');
      await assert.rejects(
        change.run(accounts, userId, keep, () => Promise.reject(failure)),
        (error) => error === failure,
      );
      for (const handle of ending) assert.equal(await accounts.sessions.isLive(handle), false, 'ended despite the failure');
      assert.equal(await accounts.sessions.isLive(keep), change.keeps);
    });
  }

  it('the change itself stands when onSessionsEnding fails (audited), a delete too', async () => {
    const failing = () => Promise.reject(new Error('the outbox is unavailable'));
    const accounts = accountsWith(OLD);
    const changed = await withSessions(accounts, 'stands');
    const sizeBefore = await ledger.size();
    await assert.rejects(accounts.changePassword(changed.userId, PASSWORD, 'a brand new passphrase for the test', changed.keep, { ip: '198.51.100.22' }, { onSessionsEnding: failing }), /outbox/);
    assert.equal((await accounts.login((await accounts.users.byId(changed.userId))!.email, 'a brand new passphrase for the test', { ip: '198.51.100.22' })).outcome, 'ok', 'the new password is set');
    const entries = (await ledger.entries(sizeBefore, await ledger.size())).map((row) => decodeEntry(row.entry));
    assert.ok(entries.some((entry) => entry.type === 'user.updated' && entry.outcome === 'success' && entry.detail?.['change'] === 'password' && entry.detail?.['sessionsEnded'] === 2), 'audited with the sessions it ended');

    const disabled = await withSessions(accounts, 'stands-disabled');
    await assert.rejects(accounts.setDisabled(disabled.userId, true, { actor: 'test' }, { onSessionsEnding: failing }), /outbox/);
    assert.equal((await accounts.users.byId(disabled.userId))?.disabled, true, 'disabled');

    const deleted = await withSessions(accounts, 'stands-deleted');
    await assert.rejects(accounts.deleteUser(deleted.userId, { actor: 'test' }, { onSessionsEnding: failing }), /outbox/);
    assert.equal(await accounts.users.byId(deleted.userId), null, 'deleted all the same: the person an administrator removes cannot sign in again');
  });
});

