import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hash as argon2Hash } from '@node-rs/argon2';
import { BREACHED_LIST_MIN_LENGTH, breachedPasswordCount, isBreachedPassword } from '../../src/identity/breached-passwords.ts';
import {
  OWASP_ARGON2ID_CONFIGURATIONS,
  OWASP_MINIMUM,
  PASSWORD_HASH_MAXIMUM,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  PasswordHasher,
  PasswordPolicyError,
  checkNewPassword,
  normalisePassword,
  type PasswordPolicyCode,
} from '../../src/identity/passwords.ts';

const hasher = new PasswordHasher(OWASP_MINIMUM);
const PHC = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

function refusal(code: PasswordPolicyCode) {
  return (error: unknown) => error instanceof PasswordPolicyError && error.code === code;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function elapsedMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

describe('hashing', () => {
  it('defaults to the OWASP argon2id recommendation, one of the sheet\'s equal-strength configurations', () => {
    assert.deepEqual({ ...OWASP_MINIMUM }, { memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 });
    assert.ok(OWASP_ARGON2ID_CONFIGURATIONS.some((c) => c.memoryCostKiB === 19_456 && c.timeCost === 2 && c.parallelism === 1));
    assert.deepEqual(hasher.parameters, OWASP_MINIMUM);
  });

  it('writes an argon2id v19 PHC string with the configured parameters and a fresh salt each time', async () => {
    const first = await hasher.hash('long enough passphrase');
    const second = await hasher.hash('long enough passphrase');
    assert.match(first, PHC);
    assert.match(second, PHC);
    assert.notEqual(first.split('$')[4], second.split('$')[4], 'salts differ');
    assert.ok(!first.includes('long enough passphrase'));
  });

  it('verifies the right password and refuses a wrong one, needing no rehash at the current parameters', async () => {
    const stored = await hasher.hash('correct horse battery');
    assert.deepEqual(await hasher.verify(stored, 'correct horse battery'), { ok: true, needsRehash: false });
    assert.deepEqual(await hasher.verify(stored, 'correct horse batterY'), { ok: false, needsRehash: false });
    assert.deepEqual(await hasher.verify(stored, ''), { ok: false, needsRehash: false });
  });

  it('runs off the event loop: timers and I/O callbacks keep running while a hash and a verify compute', async () => {
    let turns = 0;
    let done = false;
    const work = hasher.hash('event loop stays free').then((stored) => hasher.verify(stored, 'event loop stays free')).finally(() => (done = true));
    while (!done) {
      await new Promise((resolve) => setImmediate(resolve));
      turns++;
    }
    assert.equal((await work).ok, true);
    assert.ok(turns > 5, `the event loop turned ${turns} times during about two argon2 computations`);
  });
});

describe('Unicode normalisation (NFKC, NIST SP 800-63B 5.1.1.2)', () => {
  const decomposed = 'cafe\u0301 au lait 42';
  const composed = 'caf\u00e9 au lait 42';

  it('a password set with a decomposed "é" verifies when typed composed, and the reverse', async () => {
    assert.notEqual(decomposed, composed);
    const fromDecomposed = await hasher.hash(checkNewPassword(decomposed));
    assert.equal((await hasher.verify(fromDecomposed, composed)).ok, true);
    assert.equal((await hasher.verify(fromDecomposed, decomposed)).ok, true);
    // hash() normalises on its own too, for callers that skip checkNewPassword.
    const fromComposed = await hasher.hash(composed);
    assert.equal((await hasher.verify(fromComposed, decomposed)).ok, true);
  });

  it('checkNewPassword returns the NFKC form, the one to hash', () => {
    assert.equal(checkNewPassword(decomposed), composed);
    assert.equal(normalisePassword('\uff21\uff22\uff23'), 'ABC');
  });

  it('fullwidth letters normalise to ASCII and then hit the breached list', () => {
    assert.equal(normalisePassword('ｐａｓｓｗｏｒｄ１２３'), 'password123');
    assert.throws(() => checkNewPassword('ｐａｓｓｗｏｒｄ１２３'), refusal('breached'));
  });
});

describe('new-password policy', () => {
  it('counts length in code points after NFKC: 7 is short, 8 and 256 pass, 257 is long', () => {
    assert.throws(() => checkNewPassword('k7#Qm2!'), refusal('too_short'));
    assert.equal(checkNewPassword('k7#Qm2!x'), 'k7#Qm2!x');
    assert.equal(checkNewPassword('x'.repeat(PASSWORD_MAX_LENGTH)).length, 256);
    assert.throws(() => checkNewPassword('x'.repeat(PASSWORD_MAX_LENGTH + 1)), refusal('too_long'));
    assert.throws(() => checkNewPassword('y'.repeat(100_000)), refusal('too_long'));
  });

  it('counts an astral character once, though it takes two UTF-16 units', () => {
    const grin = '\u{1F600}';
    assert.equal(grin.length, 2);
    assert.throws(() => checkNewPassword(grin.repeat(7)), refusal('too_short'));
    assert.equal(checkNewPassword(grin.repeat(8)), grin.repeat(8));
    assert.equal(checkNewPassword(grin.repeat(256)), grin.repeat(256));
    assert.throws(() => checkNewPassword(grin.repeat(257)), refusal('too_long'));
  });

  it('counts after normalisation: seven decomposed "é" (14 code points as typed) are too short', () => {
    assert.throws(() => checkNewPassword('e\u0301'.repeat(7)), refusal('too_short'));
    assert.equal(checkNewPassword('e\u0301'.repeat(8)), '\u00e9'.repeat(8));
  });

  it('refuses common breached passwords whatever their case', () => {
    for (const password of ['Password123', 'QWERTYUIOP', 'qwertyuiop', '1Q2w3E4r5T', 'iloveyou', 'Trustno1', 'passw0rd']) {
      assert.throws(() => checkNewPassword(password), refusal('breached'), password);
    }
    assert.equal(checkNewPassword('Tr0ub4dor&3-staple'), 'Tr0ub4dor&3-staple');
  });

  it('ships a list of thousands of entries, keeping only those the length rule lets through', () => {
    assert.ok(breachedPasswordCount() > 10_000, `${breachedPasswordCount()} entries`);
    assert.ok(PASSWORD_MIN_LENGTH >= BREACHED_LIST_MIN_LENGTH, 'a shorter minimum would let short breached passwords through unchecked');
    assert.equal(isBreachedPassword('password'), true);
    assert.equal(isBreachedPassword('123456'), false, 'shorter than 8: never stored, refused for length instead');
  });

  it('refuses a password equal to or containing the email local part (at least 4 characters), ignoring case', () => {
    const email = 'Alice.Smith@example.com';
    assert.throws(() => checkNewPassword('alice.smith', { email }), refusal('contains_identifier'));
    assert.throws(() => checkNewPassword('my-ALICE.SMITH-2024', { email }), refusal('contains_identifier'));
    assert.throws(() => checkNewPassword('robert-rocks-99', { email: 'robert+news@example.com' }), refusal('contains_identifier'));
    assert.throws(() => checkNewPassword('ｒｏｂｅｒｔ-rocks-99', { email: 'robert@example.com' }), refusal('contains_identifier'));
    assert.equal(checkNewPassword('bob-the-builder-7', { email: 'bob@example.com' }), 'bob-the-builder-7', 'a 3-character local part is not checked');
    assert.equal(checkNewPassword('my-alice.smith-2024'), 'my-alice.smith-2024', 'no email, no identifier check');
  });

  it('refuses lone surrogates, control characters and unassigned code points', () => {
    for (const password of ['\ud800abcdefgh', 'abcdefgh\udc00', 'abcdefgh\u0000', 'abc\tdefghij', 'abcdefgh\u007f', 'abcdefgh\u0085', 'abcdefgh\u0378']) {
      assert.throws(() => checkNewPassword(password), refusal('invalid'), JSON.stringify(password));
    }
    assert.equal(checkNewPassword('spaces are fine'), 'spaces are fine');
    assert.equal(checkNewPassword('👩‍👩‍👧 family zwj'), '👩‍👩‍👧 family zwj', 'format characters such as ZWJ are allowed');
  });

  it('never puts the password in the error message', () => {
    try {
      checkNewPassword('Password123');
      assert.fail('expected a refusal');
    } catch (error) {
      assert.ok(error instanceof PasswordPolicyError);
      assert.equal(error.name, 'PasswordPolicyError');
      assert.ok(!error.message.toLowerCase().includes('password123'));
    }
  });
});

describe('parameters and rehash on login', () => {
  it('needsRehash after the parameters change, then not once re-hashed', async () => {
    const stored = await hasher.hash('upgrade me on login');
    const stronger = new PasswordHasher({ ...OWASP_MINIMUM, timeCost: 3 });
    assert.deepEqual(await stronger.verify(stored, 'upgrade me on login'), { ok: true, needsRehash: true });
    assert.deepEqual(await stronger.verify(stored, 'not the password'), { ok: false, needsRehash: false }, 'a failed login never rehashes');
    const upgraded = await stronger.hash('upgrade me on login');
    assert.match(upgraded, /\$m=19456,t=3,p=1\$/);
    assert.deepEqual(await stronger.verify(upgraded, 'upgrade me on login'), { ok: true, needsRehash: false });
    assert.deepEqual(await hasher.verify(upgraded, 'upgrade me on login'), { ok: true, needsRehash: true }, 'different, even if stronger');
  });

  it('a legacy hash weaker than the OWASP minimum still verifies, and asks to be replaced', async () => {
    const legacy = await argon2Hash('legacy import 2019', { algorithm: 2, memoryCost: 4096, timeCost: 3, parallelism: 1 });
    assert.deepEqual(await hasher.verify(legacy, 'legacy import 2019'), { ok: true, needsRehash: true });
  });

  it('accepts any OWASP configuration or stronger; refuses anything below, naming the field', () => {
    for (const parameters of [...OWASP_ARGON2ID_CONFIGURATIONS, { memoryCostKiB: 65_536, timeCost: 3, parallelism: 4 }, { memoryCostKiB: 7_168, timeCost: 9, parallelism: 1 }]) {
      assert.doesNotThrow(() => new PasswordHasher(parameters), JSON.stringify(parameters));
    }
    const refused: [Partial<typeof OWASP_MINIMUM>, RegExp][] = [
      [{ memoryCostKiB: 19_455 }, /memoryCostKiB 19455 is below the OWASP minimum of 19456/],
      [{ timeCost: 1 }, /memoryCostKiB 19456 is below the OWASP minimum of 47104 for timeCost 1/],
      [{ memoryCostKiB: 7_167, timeCost: 5 }, /memoryCostKiB/],
      [{ timeCost: 0 }, /timeCost must be a positive integer/],
      [{ parallelism: 0 }, /parallelism must be a positive integer/],
      [{ memoryCostKiB: 19_456.5 }, /memoryCostKiB must be a positive integer/],
      [{ timeCost: Number.NaN }, /timeCost/],
      [{ memoryCostKiB: PASSWORD_HASH_MAXIMUM.memoryCostKiB + 1 }, /memoryCostKiB \d+ is above the maximum/],
      [{ parallelism: 65 }, /parallelism 65 is above the maximum/],
    ];
    for (const [change, message] of refused) {
      assert.throws(() => new PasswordHasher({ ...OWASP_MINIMUM, ...change }), (error: unknown) => error instanceof RangeError && message.test(error.message), JSON.stringify(change));
    }
  });
});

describe('stored values that are not a usable hash', () => {
  it('give ok: false and never throw: empty, garbage, bcrypt, argon2i/argon2d (even with the right password), v=16, absurd or malformed parameters', async () => {
    const password = 'the right password';
    const argon2i = await argon2Hash(password, { algorithm: 1, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    const argon2d = await argon2Hash(password, { algorithm: 0, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    const good = await hasher.hash(password);
    const [, , , , salt, digest] = good.split('$');
    const malformed = [
      '',
      '!',
      'garbage',
      good.slice(0, -5),
      `${good}$extra`,
      ` ${good}`,
      good.replace('$argon2id$', '$argon2ID$'),
      '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy',
      argon2i,
      argon2d,
      good.replace('v=19', 'v=16'),
      `$argon2id$v=19$m=4294967295,t=2,p=1$${salt}$${digest}`,
      `$argon2id$v=19$m=019456,t=2,p=1$${salt}$${digest}`,
      `$argon2id$v=19$m=19456,t=2,p=1,keyid=x$${salt}$${digest}`,
      `$argon2id$v=19$m=19456,t=2,p=1$${salt}=$${digest}`,
      `$argon2id$v=19$m=1,t=2,p=1$${salt}$${digest}`,
    ];
    for (const phc of malformed) {
      assert.deepEqual(await hasher.verify(phc, password), { ok: false, needsRehash: false }, JSON.stringify(phc));
    }
  });

  it('a password that cannot match (lone surrogate, far too long) gives ok: false; hash() refuses a lone surrogate', async () => {
    const stored = await hasher.hash('abcdefgh\ufffd');
    assert.deepEqual(await hasher.verify(stored, 'abcdefgh\ud800'), { ok: false, needsRehash: false }, 'no U+FFFD substitution');
    assert.deepEqual(await hasher.verify(stored, 'z'.repeat(1_000_000)), { ok: false, needsRehash: false });
    await assert.rejects(hasher.hash('abcdefgh\ud800'), refusal('invalid'));
    assert.equal(await hasher.verifyDummy('z'.repeat(1_000_000)), false);
  });
});

describe('no user enumeration', () => {
  it('verifyDummy returns false and takes what a wrong-password verify takes (medians of 15, ratio within 0.5..2)', async () => {
    const stored = await hasher.hash('the real password');
    const wrong: number[] = [];
    const dummy: number[] = [];
    const unusable: number[] = [];
    // Interleaved, so drift in machine load hits all three alike.
    for (let round = 0; round < 15; round++) {
      wrong.push(await elapsedMs(async () => assert.equal((await hasher.verify(stored, 'a wrong password')).ok, false)));
      dummy.push(await elapsedMs(async () => assert.equal(await hasher.verifyDummy('a wrong password'), false)));
      unusable.push(await elapsedMs(async () => assert.equal((await hasher.verify('!', 'a wrong password')).ok, false)));
    }
    const ratio = median(dummy) / median(wrong);
    assert.ok(ratio > 0.5 && ratio < 2, `verifyDummy ${median(dummy).toFixed(1)} ms vs wrong password ${median(wrong).toFixed(1)} ms`);
    const unusableRatio = median(unusable) / median(wrong);
    assert.ok(unusableRatio > 0.5 && unusableRatio < 2, `unusable stored value ${median(unusable).toFixed(1)} ms vs wrong password ${median(wrong).toFixed(1)} ms`);
  });

  it('verifyDummy never succeeds, not even for a password the dummy could be guessed from', async () => {
    for (const password of ['', 'password', '!', 'dummy']) assert.equal(await hasher.verifyDummy(password), false);
  });
});
