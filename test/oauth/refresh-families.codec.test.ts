/**
 * A refresh family of the wrong shape in the store is a clear error, not a
 * cast: before typed collections, a family whose grant lacked its client id
 * was read as `FamilyData` and its rotation went on to compare `undefined`
 * with the presenting client, revoking the family as if another client had
 * presented it. Now the codec refuses the record before any decision.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KeyVault } from '../../src/crypto/index.ts';
import { RefreshTokens, type RefreshGrant } from '../../src/oauth/refresh-tokens.ts';
import { RecordCodecError } from '../../src/store/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const grant: RefreshGrant = { clientId: 'app', userId: 'alice', scope: 'openid offline_access', resources: [], authTime: Date.now(), amr: ['pwd'] };
const build = async (_: RefreshGrant, refreshToken: string) => ({ refresh_token: refreshToken, accessTokenJti: randomBytes(8).toString('hex'), accessTokenExp: Math.floor(Date.now() / 1000) + 600 });

for (const driver of durableDrivers) {
  describe(`refresh families of the wrong shape on ${driver.name}`, () => {
    let fixture: DurableFixture;
    let tokens: RefreshTokens;
    before(async () => {
      fixture = await driver.open(1);
      tokens = new RefreshTokens({
        records: fixture.store.records,
        clock: () => Date.now(),
        policy: { idleTtlSeconds: 3600, absoluteTtlSeconds: 86_400, graceSeconds: 10 },
        vault: KeyVault.generate(),
      });
    });
    after(async () => {
      await fixture.close();
    });

    it('refuses to rotate, inspect or revoke a family whose grant lost its client id, and leaves it as it was', async () => {
      const { token, familyId } = await tokens.start(grant, { jti: 'j', exp: Math.floor(Date.now() / 1000) + 600 });
      const stored = await fixture.store.records.get<{ grant: Record<string, unknown> }>('refresh-families', familyId);
      const grantWithoutClient = { ...stored!.data.grant };
      delete grantWithoutClient['clientId'];
      assert.equal(await fixture.store.records.update('refresh-families', familyId, 1, { ...stored!.data, grant: grantWithoutClient }), 2);

      await assert.rejects(tokens.rotate(token, 'app', build), (error: unknown) => error instanceof RecordCodecError && /refresh-families/.test(error.message) && /clientId/.test(error.message));
      await assert.rejects(tokens.inspect(token), RecordCodecError);
      await assert.rejects(tokens.revokeFamily(familyId, 'logout'), RecordCodecError);
      const after = await fixture.store.records.get('refresh-families', familyId);
      assert.equal(after?.version, 2, 'nothing was written: no revocation by mistake');
    });

    it('still rotates a well-formed family', async () => {
      const { token } = await tokens.start(grant, { jti: 'j', exp: Math.floor(Date.now() / 1000) + 600 });
      assert.equal((await tokens.rotate(token, 'app', build)).outcome, 'rotated');
    });
  });
}
