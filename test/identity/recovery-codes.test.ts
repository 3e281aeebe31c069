/**
 * Recovery codes: format and entropy, single use (also under concurrent use,
 * on every durable driver), input normalisation, and a stored record that
 * holds nothing a reader could log in with.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  RECOVERY_CODES_COLLECTION,
  RecoveryCodeStoreError,
  consumeRecoveryCode,
  generateRecoveryCodes,
  normaliseRecoveryCode,
  remainingRecoveryCodes,
  saveRecoveryCodes,
  type StoredRecoveryCodes,
} from '../../src/identity/recovery-codes.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const PEERS = 4;
const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';
const key = new Uint8Array(randomBytes(32));
const user = (label: string) => `${label}-${randomBytes(6).toString('hex')}`;

describe('generateRecoveryCodes', () => {
  it('makes ten xxxx-xxxx-xxxx codes of 12 unambiguous symbols (60 bits), all different', () => {
    const { codes, stored } = generateRecoveryCodes(key);
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const code of codes) assert.match(code, /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/);
    assert.equal(CROCKFORD.length, 32, '5 bits per symbol, 12 symbols = 60 bits');
    assert.equal(stored.codes.length, 10);
    assert.ok(stored.codes.every((entry) => entry.usedAt === null && /^[A-Za-z0-9_-]{43}$/.test(entry.hash)));
    assert.equal(generateRecoveryCodes(key, 3).codes.length, 3);
    assert.throws(() => generateRecoveryCodes(key, 0), RangeError);
    assert.throws(() => generateRecoveryCodes(new Uint8Array(16)), TypeError, 'a short key is refused');
  });

  it('draws every symbol uniformly (no modulo bias, all 32 in use)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      for (const code of generateRecoveryCodes(key).codes) for (const symbol of code.replaceAll('-', '')) counts.set(symbol, (counts.get(symbol) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort().join(''), CROCKFORD);
    // 24,000 symbols: 750 expected per symbol; a bias would show far outside ±25 %.
    for (const [symbol, count] of counts) assert.ok(count > 560 && count < 940, `${symbol}: ${count}`);
  });

  it('keeps nothing secret in the stored set: neither the codes in any spelling nor unkeyed hashes', () => {
    const { codes, stored } = generateRecoveryCodes(key);
    const json = JSON.stringify(stored);
    for (const code of codes) {
      const bare = code.replaceAll('-', '');
      for (const spelling of [code, bare, code.toUpperCase(), bare.toUpperCase(), bare.slice(0, 8), bare.slice(4)]) {
        assert.ok(!json.includes(spelling), `stored set contains ${spelling}`);
      }
    }
    const other = generateRecoveryCodes(new Uint8Array(randomBytes(32)));
    assert.ok(other.stored.codes.every((entry) => !stored.codes.some((mine) => mine.hash === entry.hash)));
  });
});

describe('normaliseRecoveryCode', () => {
  it('ignores case, dashes and spaces, and reads i, l, o as 1, 1, 0', () => {
    assert.equal(normaliseRecoveryCode('ABCD-efgh-1234'), 'abcdefgh1234');
    assert.equal(normaliseRecoveryCode(' abcd efgh 1234 '), 'abcdefgh1234');
    assert.equal(normaliseRecoveryCode('abcdefgh1234'), 'abcdefgh1234');
    assert.equal(normaliseRecoveryCode('ABCD-EFGH-I2L4'), 'abcdefgh1214');
    assert.equal(normaliseRecoveryCode('oooo-OOOO-0000'), '000000000000');
  });

  it('refuses anything that cannot be a code', () => {
    for (const input of ['', 'abcd-efgh-123', 'abcd-efgh-12345', 'abcd-efgh-123u', 'abcd_efgh_1234', 'abcd-efgh-12é4', 'x'.repeat(1000)]) {
      assert.equal(normaliseRecoveryCode(input), null, input);
    }
  });
});

for (const driver of durableDrivers) {
  describe(`recovery codes in the durable store: ${driver.name}`, () => {
    let fx: DurableFixture;
    before(async () => {
      fx = await driver.open(PEERS);
    });
    after(async () => {
      await fx.close();
    });
    const records = () => fx.store.records;
    const peer = (i: number) => fx.stores[i % fx.stores.length]!.records;

    async function enrol(count = 10) {
      const id = user('user');
      const clock = new ManualClock();
      const { codes, stored } = generateRecoveryCodes(key, count);
      await saveRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id, stored);
      const consume = (code: string, withKey = key) => consumeRecoveryCode(records(), RECOVERY_CODES_COLLECTION, id, code, withKey, clock.now);
      return { id, clock, codes, consume };
    }

    it('each code works exactly once, in any order, and the count goes down', async () => {
      const { id, clock, codes, consume } = await enrol();
      assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id), 10);
      for (const [i, code] of [...codes].reverse().entries()) {
        assert.equal(await consume(code), true, code);
        assert.equal(await consume(code), false, `${code} again`);
        assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id), 9 - i);
      }
      const record = await records().get<StoredRecoveryCodes>(RECOVERY_CODES_COLLECTION, id);
      assert.ok(record?.data.codes.every((entry) => entry.usedAt === clock.now()), 'usedAt comes from the injected clock');
    });

    it('refuses a wrong code, a code of another user, a code checked with another key, and a user without codes', async () => {
      const alice = await enrol();
      const bob = await enrol();
      assert.equal(await alice.consume(generateRecoveryCodes(key).codes[0]!), false);
      assert.equal(await alice.consume(bob.codes[0]!), false);
      assert.equal(await alice.consume(alice.codes[0]!, new Uint8Array(randomBytes(32))), false);
      assert.equal(await alice.consume('not a code'), false);
      assert.equal(await consumeRecoveryCode(records(), RECOVERY_CODES_COLLECTION, user('nobody'), alice.codes[0]!, key), false);
      assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, user('nobody')), 0);
      assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, alice.id), 10, 'failed attempts spend nothing');
    });

    it('accepts the code however it is typed: case, dashes, spaces', async () => {
      const { codes, consume } = await enrol(3);
      const [first, second, third] = codes as [string, string, string];
      assert.equal(await consume(first.toUpperCase()), true);
      assert.equal(await consume(` ${second.replaceAll('-', ' ')} `), true);
      assert.equal(await consume(third.replaceAll('-', '')), true);
      assert.equal(await consume(third), false, 'the different spellings are one code');
    });

    it('regenerating replaces the set: old codes stop working', async () => {
      const { id, codes, consume } = await enrol();
      const fresh = generateRecoveryCodes(key);
      await saveRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id, fresh.stored);
      assert.equal(await consume(codes[0]!), false);
      assert.equal(await consume(fresh.codes[0]!), true);
    });

    it('keeps nothing secret in the stored record', async () => {
      const { id, codes, consume } = await enrol();
      await consume(codes[0]!);
      const json = JSON.stringify(await records().get(RECOVERY_CODES_COLLECTION, id));
      for (const code of codes) {
        for (const spelling of [code, code.replaceAll('-', ''), code.toUpperCase()]) assert.ok(!json.includes(spelling), spelling);
      }
    });

    it('of 20 concurrent uses of one code, across instances, exactly one succeeds', async () => {
      const { id, codes } = await enrol();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => consumeRecoveryCode(peer(i), RECOVERY_CODES_COLLECTION, id, codes[0]!, key)),
      );
      assert.equal(results.filter(Boolean).length, 1, results.join(','));
      assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id), 9);
    });

    it('concurrent uses of different codes all succeed (conflicts are retried, not lost)', async () => {
      const { id, codes } = await enrol();
      const results = await Promise.all(codes.slice(0, 5).map((code, i) => consumeRecoveryCode(peer(i), RECOVERY_CODES_COLLECTION, id, code, key)));
      assert.deepEqual(results, [true, true, true, true, true]);
      assert.equal(await remainingRecoveryCodes(records(), RECOVERY_CODES_COLLECTION, id), 5);
    });

    it('refuses a record of an unknown shape rather than guessing', async () => {
      const id = user('corrupt');
      await records().create(RECOVERY_CODES_COLLECTION, id, { codes: ['abcd-efgh-1234'] });
      await assert.rejects(consumeRecoveryCode(records(), RECOVERY_CODES_COLLECTION, id, 'abcd-efgh-1234', key), RecoveryCodeStoreError);
    });
  });
}
