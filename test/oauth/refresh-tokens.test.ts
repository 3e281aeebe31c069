/**
 * Refresh token families in the durable store, on every durable driver:
 * what the sweep deletes (expired, idle, long-revoked) and what it keeps
 * (live families, recently revoked ones), and two instances sweeping at
 * once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KeyVault } from '../../src/crypto/index.ts';
import { RefreshTokens, type RefreshGrant } from '../../src/oauth/refresh-tokens.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const grant = (userId: string): RefreshGrant => ({ clientId: 'app', userId, scope: 'openid offline_access', resources: [], authTime: Date.now(), amr: ['pwd'] });
const build = async (_: RefreshGrant, refreshToken: string) => ({ access_token: 'a', refresh_token: refreshToken, accessTokenJti: randomBytes(8).toString('hex'), accessTokenExp: Math.floor(Date.now() / 1000) + 600 });

for (const driver of durableDrivers) {
  describe(`refresh token families on ${driver.name}`, () => {
    let fixture: DurableFixture;
    const clock = new ManualClock(Date.now());
    let tokens: RefreshTokens;
    before(async () => {
      fixture = await driver.open(1);
      tokens = new RefreshTokens({
        records: fixture.store.records,
        clock: clock.now,
        policy: { idleTtlSeconds: 3600, absoluteTtlSeconds: 86_400, graceSeconds: 10 },
        vault: KeyVault.generate(),
      });
    });
    after(async () => {
      await fixture.close();
    });

    it('sweeps idle, expired and long-revoked families and keeps live and recently revoked ones', async () => {
      const at = { jti: 'j', exp: Math.floor(clock.now() / 1000) + 600 };
      const idle = await tokens.start(grant('idle-user'), at);
      const revokedLongAgo = await tokens.start(grant('revoked-user'), at);
      await tokens.revokeFamily(revokedLongAgo.familyId, 'test');
      clock.advance(3_700_000);
      const live = await tokens.start(grant('live-user'), at);
      const revokedRecently = await tokens.start(grant('recent-user'), at);
      await tokens.revokeFamily(revokedRecently.familyId, 'test');
      const swept = await tokens.sweep();
      assert.equal(swept, 2);
      assert.equal((await tokens.families('idle-user')).length, 0);
      assert.equal(await fixture.store.records.get('refresh-families', idle.familyId), null, 'idle family deleted');
      assert.equal(await fixture.store.records.get('refresh-families', revokedLongAgo.familyId), null, 'long-revoked family deleted');
      assert.notEqual(await fixture.store.records.get('refresh-families', revokedRecently.familyId), null, 'recently revoked family kept');
      assert.equal((await tokens.rotate(live.token, 'app', build)).outcome, 'rotated', 'the live family still works');
      clock.advance(86_400_000);
      assert.ok((await tokens.sweep()) >= 1, 'past its absolute lifetime, it goes too');
      assert.equal(await fixture.store.records.get('refresh-families', live.familyId), null);
    });

    it('two instances sweeping at once delete each dead family once, and leave live ones alone', async () => {
      const other = new RefreshTokens({
        records: fixture.stores[0]!.records,
        clock: clock.now,
        policy: { idleTtlSeconds: 3600, absoluteTtlSeconds: 86_400, graceSeconds: 10 },
        vault: KeyVault.generate(),
      });
      const dead = await Promise.all(Array.from({ length: 30 }, (_, i) => tokens.start(grant(`dead-${i}`), { jti: 'j', exp: 0 })));
      clock.advance(3_600_000);
      const live = await Promise.all(Array.from({ length: 10 }, (_, i) => tokens.start(grant(`alive-${i}`), { jti: 'j', exp: 0 })));
      const [a, b] = await Promise.all([tokens.sweep(), other.sweep()]);
      assert.equal(a + b, dead.length, `${a} + ${b} deletions`);
      for (const family of dead) assert.equal(await fixture.store.records.get('refresh-families', family.familyId), null);
      for (const family of live) assert.equal((await tokens.rotate(family.token, 'app', build)).outcome, 'rotated');
    });
  });
}
