/**
 * SessionManager.rewriteIp (retention: privacy.retention.ipPseudonymiseDays)
 * on every hot-store driver: the IP is replaced and the session keeps its
 * expiry; a session revoked before or during the rewrite stays revoked (a
 * compare-and-set, never a plain write); a renewal in between is kept.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SessionManager, type SessionPolicy } from '../../src/identity/sessions.ts';
import type { HotStore } from '../../src/store/ports.ts';
import { hotDrivers, type HotFixture } from '../store/drivers.ts';

const policy: SessionPolicy = { idleTimeoutMs: 2_000, absoluteTimeoutMs: 5_000, renewIntervalMs: 500, maxPerUser: 10 };
const details = { amr: ['pwd'], device: 'Firefox on Linux', ip: '203.0.113.0' };

/** The store, with `beforeWrite` run between a session's read and its compare-and-set. */
function interleaved(store: HotStore, beforeWrite: () => Promise<void>): HotStore {
  let armed = true;
  return Object.assign(Object.create(store) as HotStore, {
    compareAndSet: async (key: string, version: number, value: string, ttlMs: number) => {
      if (armed) {
        armed = false;
        await beforeWrite();
      }
      return store.compareAndSet(key, version, value, ttlMs);
    },
    getVersioned: (key: string) => store.getVersioned(key),
  });
}

for (const driver of hotDrivers) {
  describe(`rewriting a session's IP on ${driver.name}`, () => {
    let fixture: HotFixture;
    let sessions: SessionManager;
    let counter = 0;
    const newUser = () => `u_ip_${driver.name}_${(counter += 1)}`;

    before(async () => {
      fixture = await driver.open();
      sessions = new SessionManager({ hot: fixture.store, clock: () => fixture.now(), policy });
    });
    after(async () => {
      await fixture.close();
    });

    it('replaces the IP, keeps everything else and the expiry; a null answer changes nothing', async () => {
      const user = newUser();
      const created = await sessions.create(user, details);
      assert.equal(await sessions.rewriteIp(created.session.handle, () => null), false);
      assert.equal(await sessions.rewriteIp(created.session.handle, (ip) => `ip-of-${ip}`), true);
      const [listed] = await sessions.list(user);
      assert.deepEqual(listed, { ...created.session, ip: 'ip-of-203.0.113.0' });
      assert.equal((await sessions.resolve(created.id))?.ip, 'ip-of-203.0.113.0');
      await fixture.advance(policy.idleTimeoutMs + 10);
      assert.equal(await sessions.resolve(created.id), null, 'the rewrite did not extend the idle expiry');
    });

    it('never brings back a session revoked before the rewrite, or between its read and its write', async () => {
      const user = newUser();
      const before = await sessions.create(user, details);
      await sessions.revoke(user, before.session.handle);
      assert.equal(await sessions.rewriteIp(before.session.handle, () => 'ip-0000000000000000'), false);
      assert.equal(await fixture.store.get(`session:${before.session.handle}`), null);

      const during = await sessions.create(user, details);
      const racing = new SessionManager({ hot: interleaved(fixture.store, () => sessions.revoke(user, during.session.handle).then(() => undefined)), clock: () => fixture.now(), policy });
      assert.equal(await racing.rewriteIp(during.session.handle, () => 'ip-0000000000000000'), false);
      assert.equal(await fixture.store.get(`session:${during.session.handle}`), null, 'still revoked');
      assert.equal(await sessions.resolve(during.id), null);
    });

    it('a renewal between the read and the write is kept: the rewrite reads again', async () => {
      const user = newUser();
      const created = await sessions.create(user, details);
      await fixture.advance(policy.renewIntervalMs + 10);
      const racing = new SessionManager({ hot: interleaved(fixture.store, () => sessions.resolve(created.id).then(() => undefined)), clock: () => fixture.now(), policy });
      assert.equal(await racing.rewriteIp(created.session.handle, (ip) => `ip-of-${ip}`), true);
      const [listed] = await sessions.list(user);
      assert.equal(listed?.ip, 'ip-of-203.0.113.0');
      assert.ok(listed !== undefined && listed.lastSeenAt >= created.session.lastSeenAt + policy.renewIntervalMs, 'the renewal stays');
    });
  });
}
