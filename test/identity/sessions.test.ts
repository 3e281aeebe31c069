/**
 * Sessions on every hot-store driver: idle and absolute expiry with sliding
 * renewal, revocation that renewal cannot undo, and the concurrent-session
 * limit under 50 parallel sign-ins.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SessionManager, sessionHandle, type SessionPolicy } from '../../src/identity/sessions.ts';
import { hotDrivers, type HotFixture } from '../store/drivers.ts';

const policy: SessionPolicy = { idleTimeoutMs: 2_000, absoluteTimeoutMs: 5_000, renewIntervalMs: 500, maxPerUser: 10 };
const details = { amr: ['pwd'], device: 'Chrome on Linux', ip: '203.0.113.0' };

for (const driver of hotDrivers) {
  describe(`sessions on ${driver.name}`, () => {
    let fixture: HotFixture;
    let sessions: SessionManager;
    let userCounter = 0;
    const newUser = () => `u_test_${driver.name}_${(userCounter += 1)}`;

    before(async () => {
      fixture = await driver.open();
      sessions = new SessionManager({ hot: fixture.store, clock: () => fixture.now(), policy });
    });
    after(async () => {
      await fixture.close();
    });

    it('keeps only a hash of the id, resolves the id, and nothing else', async () => {
      const user = newUser();
      const created = await sessions.create(user, details);
      assert.ok(created.id.length >= 43, 'at least 256 bits, base64url');
      assert.equal(created.session.handle, sessionHandle(created.id));
      assert.equal(await fixture.store.get(`session:${created.id}`), null, 'the raw id is not a key');
      assert.ok(!(await fixture.store.get(`session:${created.session.handle}`))!.includes(created.id), 'nor part of the value');
      assert.equal((await sessions.resolve(created.id))?.userId, user);
      assert.equal(await sessions.resolve(created.session.handle), null, 'the stored handle is not a credential');
      assert.equal(await sessions.resolve(`${created.id.slice(0, -1)}${created.id.endsWith('A') ? 'B' : 'A'}`), null);
      assert.equal(await sessions.resolve(''), null);
    });

    it('ends an idle session, renews a used one, and ends every session at its absolute lifetime', async () => {
      const idle = await sessions.create(newUser(), details);
      const used = await sessions.create(newUser(), details);
      for (let elapsed = 0; elapsed < 4_000; elapsed += 1_000) {
        await fixture.advance(1_000);
        assert.ok((await sessions.resolve(used.id)) !== null, `used session alive at ${elapsed + 1000} ms`);
      }
      assert.equal(await sessions.resolve(idle.id), null, 'idle beyond 2 s');
      await fixture.advance(1_100);
      assert.equal(await sessions.resolve(used.id), null, 'absolute lifetime of 5 s, however much it is used');
    });

    it('a revoked session stays revoked even when a renewal races with the revocation', async () => {
      const user = newUser();
      const created = await sessions.create(user, details);
      await fixture.advance(600); // renewal due on the next resolve
      const [resolved] = await Promise.all([sessions.resolve(created.id), sessions.revoke(user, created.session.handle)]);
      assert.ok(resolved === null || resolved.userId === user);
      assert.equal(await sessions.resolve(created.id), null);
      assert.equal(await sessions.resolve(created.id), null, 'and stays so');
    });

    it('50 parallel sign-ins of one user leave exactly 10 live sessions; every evicted one is refused', async () => {
      const user = newUser();
      const created = await Promise.all(Array.from({ length: 50 }, () => sessions.create(user, details)));
      const evicted = created.flatMap((session) => session.evicted);
      assert.equal(evicted.length, 40, 'each eviction reported exactly once');
      assert.equal(new Set(evicted).size, 40);
      const resolved = await Promise.all(created.map((session) => sessions.resolve(session.id)));
      const live = created.filter((_session, i) => resolved[i] !== null);
      assert.equal(live.length, 10);
      for (const session of created) {
        if (evicted.includes(session.session.handle)) assert.equal(await sessions.resolve(session.id), null, 'an evicted session is refused');
      }
      assert.equal((await sessions.list(user)).length, 10);
    });

    it('revokeAll ends every session of the user but the one kept, and no one else’s', async () => {
      const user = newUser();
      const other = newUser();
      const mine = await Promise.all([1, 2, 3].map(() => sessions.create(user, details)));
      const theirs = await sessions.create(other, details);
      assert.equal(await sessions.revokeAll(user, mine[0]!.session.handle), 2);
      assert.ok((await sessions.resolve(mine[0]!.id)) !== null);
      assert.equal(await sessions.resolve(mine[1]!.id), null);
      assert.equal(await sessions.resolve(mine[2]!.id), null);
      assert.ok((await sessions.resolve(theirs.id)) !== null);
    });
  });
}
