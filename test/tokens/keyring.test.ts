/**
 * The signing-key manager: first keys, the RFC 7517 publication schedule
 * (a successor is published one JWKS max-age before it signs; a retired key
 * stays until its last token expired), revocation, sealing at rest, one
 * rotation across many instances (compare-and-set on one record), and
 * instances taking up each other's changes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as wait } from 'node:timers/promises';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { auditedEvents, decodeEntry, openLedger } from '../../src/audit/index.ts';
import type { DomainEvent } from '../../src/events/index.ts';
import { KeyVault, SealedSecretError } from '../../src/crypto/index.ts';
import type { DurableStore } from '../../src/store/ports.ts';
import {
  Keyring,
  KeyringError,
  SIGNING_ALGORITHMS,
  signJwt,
  verifyJwt,
  type KeyInfo,
  type KeyringEvents,
  type KeyringPolicy,
  type SigningAlgorithm,
} from '../../src/tokens/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';
import { ManualClock } from '../support/clock.ts';

const HOUR = 3_600_000;
const policy: KeyringPolicy = { rotationIntervalMs: 24 * HOUR, jwksMaxAgeSeconds: 600, maxTokenLifetimeSeconds: 3600, refreshMs: 60_000 };
const MAX_AGE_MS = policy.jwksMaxAgeSeconds * 1000;
const LIFETIME_MS = policy.maxTokenLifetimeSeconds * 1000;
const ISSUER = 'https://id.example.com';
const vault = KeyVault.generate();
const sqlite = durableDrivers[0]!;

/** Keeps what the keyring emits (what the ledger would record), so tests can read the events. */
class RecordingLedger implements KeyringEvents {
  readonly events: DomainEvent<'key.created' | 'key.revoked'>[] = [];
  async emitAll(events: readonly DomainEvent[]): Promise<void> {
    this.events.push(...(events as DomainEvent<'key.created' | 'key.revoked'>[]));
  }
}

function open(store: DurableStore, clock: ManualClock, options: { ledger?: KeyringEvents; policy?: KeyringPolicy; vault?: KeyVault } = {}): Promise<Keyring> {
  return Keyring.open({ records: store.records, vault: options.vault ?? vault, clock: clock.now, policy: options.policy ?? policy, ...(options.ledger && { events: options.ledger }) });
}

function byAlg(keyring: Keyring, alg: SigningAlgorithm): KeyInfo[] {
  return keyring.list().filter((key) => key.alg === alg);
}

function info(keyring: Keyring, kid: string): KeyInfo {
  const found = keyring.list().find((key) => key.kid === kid);
  assert.ok(found, `key ${kid} is listed`);
  return found;
}

function publishedKids(keyring: Keyring): string[] {
  return (JSON.parse(keyring.jwks()) as JSONWebKeySet).keys.map((key) => key.kid!);
}

function currentKids(keyring: Keyring): Map<SigningAlgorithm, string> {
  return new Map(SIGNING_ALGORITHMS.map((alg) => [alg, keyring.signingKey(alg).kid]));
}

async function storedJson(store: DurableStore): Promise<{ version: number; text: string }> {
  const record = await store.records.get('signing-keys', 'keyring');
  assert.ok(record);
  return { version: record.version, text: JSON.stringify(record.data) };
}

function token(keyring: Keyring, alg: SigningAlgorithm, now: number): string {
  const iat = Math.floor(now / 1000);
  return signJwt(keyring.signingKey(alg), { iss: ISSUER, sub: 'u_alice', aud: 'api', iat, exp: iat + policy.maxTokenLifetimeSeconds }, { typ: 'at+jwt' });
}

describe('Keyring', () => {
  let fixture: DurableFixture;
  let store: DurableStore;
  before(async () => {
    fixture = await sqlite.open(2);
    store = fixture.store;
  });
  after(() => fixture.close());

  /** A fresh, empty keyring record for a test that needs one. */
  async function reset(): Promise<void> {
    await store.records.delete('signing-keys', 'keyring');
  }

  it('first open creates one key per algorithm, signing at once, published with its RFC 7638 thumbprint as kid', async () => {
    await reset();
    const clock = new ManualClock();
    const ledger = new RecordingLedger();
    const keyring = await open(store, clock, { ledger });
    const keys = keyring.list();
    assert.deepEqual(keys.map((key) => key.alg), [...SIGNING_ALGORITHMS]);
    for (const key of keys) {
      assert.equal(key.state, 'current');
      assert.equal(key.activatesAt, clock.now());
      assert.equal(keyring.signingKey(key.alg).kid, key.kid);
      assert.equal(keyring.verificationKey(key.kid)?.alg, key.alg);
    }
    const jwks = JSON.parse(keyring.jwks()) as JSONWebKeySet;
    const shapes = new Map<string, Partial<JWK>>([
      ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
      ['ES256', { kty: 'EC', crv: 'P-256' }],
      ['RS256', { kty: 'RSA', e: 'AQAB' }],
      ['PS256', { kty: 'RSA', e: 'AQAB' }],
    ]);
    assert.equal(jwks.keys.length, 4);
    for (const jwk of jwks.keys) {
      assert.equal(jwk.use, 'sig');
      assert.equal(jwk.kid, await calculateJwkThumbprint(jwk), 'kid is the RFC 7638 thumbprint');
      for (const [member, value] of Object.entries(shapes.get(jwk.alg!)!)) assert.equal((jwk as Record<string, unknown>)[member], value, `${jwk.alg} ${member}`);
      if (jwk.kty === 'RSA') assert.equal(Buffer.from(jwk.n!, 'base64url').length, 256, 'RSA 2048');
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(member in jwk), `no private member ${member}`);
    }
    assert.deepEqual(
      ledger.events.map((event) => [event.type, event.actorService, event.detail?.['reason'], event.detail?.['alg']]),
      SIGNING_ALGORITHMS.map((alg) => ['key.created', 'system', 'initial', alg]),
    );

    const again = await open(store, clock, { ledger });
    assert.deepEqual(again.list(), keys, 'a second open uses the stored keys');
    assert.equal(ledger.events.length, 4);
    assert.equal((await storedJson(store)).version, 1);
  });

  it('stores private keys sealed: no private JWK member and no PKCS #8 in the record; another master key cannot open them', async () => {
    await reset();
    const clock = new ManualClock();
    const keyring = await open(store, clock);
    const { text } = await storedJson(store);
    for (const alg of SIGNING_ALGORITHMS) {
      const privateKey = keyring.signingKey(alg).privateKey;
      const jwk = privateKey.export({ format: 'jwk' });
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) {
        if (jwk[member] !== undefined) assert.ok(!text.includes(jwk[member]), `${alg} ${member} is not in the stored JSON`);
      }
      const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
      assert.ok(!text.includes(pkcs8.toString('base64')) && !text.includes(pkcs8.toString('base64url')), `${alg} PKCS #8 is not in the stored JSON`);
    }
    assert.ok(!text.includes('PRIVATE KEY'));
    await assert.rejects(open(store, clock, { vault: KeyVault.generate() }), SealedSecretError);
  });

  it('refuses a stored private key moved under another kid', async () => {
    await reset();
    const clock = new ManualClock();
    await open(store, clock);
    const record = (await store.records.get<{ format: 1; keys: { alg: string; sealedPrivateKey: string }[] }>('signing-keys', 'keyring'))!;
    const keys = record.data.keys.map((key) => ({ ...key }));
    const rs256 = keys.find((key) => key.alg === 'RS256')!;
    const ps256 = keys.find((key) => key.alg === 'PS256')!;
    [rs256.sealedPrivateKey, ps256.sealedPrivateKey] = [ps256.sealedPrivateKey, rs256.sealedPrivateKey];
    assert.ok(await store.records.update('signing-keys', 'keyring', record.version, { ...record.data, keys }));
    await assert.rejects(open(store, clock), (error: unknown) => error instanceof KeyringError && /does not match its kid/.test(error.message));
  });

  it('publishes a successor one JWKS max-age before it signs; the old key retires and stays published until its last token expired, then is dropped', async () => {
    await reset();
    const clock = new ManualClock();
    const ledger = new RecordingLedger();
    const keyring = await open(store, clock, { ledger });
    const first = currentKids(keyring);
    const start = clock.now();

    clock.advance(policy.rotationIntervalMs - MAX_AGE_MS - 1);
    assert.deepEqual(await keyring.maintain(), [], 'not due one millisecond before');
    clock.advance(1);
    const created = await keyring.maintain();
    assert.deepEqual(created.map((key) => key.alg), [...SIGNING_ALGORITHMS]);
    const activatesAt = start + policy.rotationIntervalMs;
    for (const key of created) {
      assert.equal(key.state, 'next');
      assert.equal(key.createdAt, clock.now());
      assert.equal(key.activatesAt, activatesAt);
      assert.ok(key.activatesAt - key.createdAt >= MAX_AGE_MS, 'published at least one max-age before signing');
      assert.ok(publishedKids(keyring).includes(key.kid));
      assert.notEqual(keyring.signingKey(key.alg).kid, key.kid, 'not signing yet');
      const old = info(keyring, first.get(key.alg)!);
      assert.deepEqual([old.state, old.retiredAt, old.removeAt], ['current', activatesAt, activatesAt + LIFETIME_MS]);
    }
    assert.deepEqual(await keyring.maintain(), [], 'one successor only');
    assert.deepEqual(
      ledger.events.slice(4).map((event) => [event.type, event.actorService, event.detail?.['reason']]),
      SIGNING_ALGORITHMS.map(() => ['key.created', 'system', 'scheduled']),
    );

    clock.advance(activatesAt - clock.now() - 1);
    assert.deepEqual(currentKids(keyring), first, 'the old keys sign until the takeover');
    clock.advance(1);
    for (const key of created) {
      assert.equal(keyring.signingKey(key.alg).kid, key.kid, 'the successor signs from its activation, without a write');
      assert.equal(info(keyring, key.kid).state, 'current');
      assert.equal(info(keyring, first.get(key.alg)!).state, 'retired');
      assert.ok(keyring.verificationKey(first.get(key.alg)!), 'the retired key still verifies');
    }
    assert.deepEqual(await keyring.maintain(), []);
    assert.equal(publishedKids(keyring).length, 8);

    clock.advance(LIFETIME_MS - 1);
    assert.equal(publishedKids(keyring).length, 8, 'retired keys stay until their last token expired');
    clock.advance(1);
    assert.deepEqual(publishedKids(keyring).sort(), created.map((key) => key.kid).sort(), 'then they leave the JWKS');
    for (const kid of first.values()) assert.equal(keyring.verificationKey(kid), undefined);
    assert.equal(keyring.list().length, 8, 'still in the record until the schedule runs');
    assert.deepEqual(await keyring.maintain(), [], 'dropping creates nothing');
    assert.deepEqual(keyring.list().map((key) => key.kid).sort(), created.map((key) => key.kid).sort());
    assert.equal(JSON.parse((await storedJson(store)).text).keys.length, 4, 'dropped from the stored record');
  });

  it('a late schedule run still gives the successor a full max-age of notice; the old key signs on meanwhile', async () => {
    await reset();
    const clock = new ManualClock();
    const keyring = await open(store, clock);
    const first = keyring.signingKey('EdDSA').kid;
    clock.advance(policy.rotationIntervalMs + 5 * HOUR);
    const [created] = (await keyring.maintain()).filter((key) => key.alg === 'EdDSA');
    assert.equal(created!.activatesAt, clock.now() + MAX_AGE_MS);
    clock.advance(MAX_AGE_MS - 1);
    assert.equal(keyring.signingKey('EdDSA').kid, first);
    clock.advance(1);
    assert.equal(keyring.signingKey('EdDSA').kid, created!.kid);
  });

  it('signs and verifies without a single failure across several rotations, for verifiers that cache the JWKS for its max-age', async () => {
    await reset();
    const fast: KeyringPolicy = { rotationIntervalMs: 2 * HOUR, jwksMaxAgeSeconds: 600, maxTokenLifetimeSeconds: 1800, refreshMs: 60_000 };
    const clock = new ManualClock();
    const keyring = await open(store, clock, { policy: fast });
    const step = 250_000;
    const maxAgeMs = fast.jwksMaxAgeSeconds * 1000;
    // Two verifiers fetching at different moments, each keeping its copy for max-age
    // and never refetching early (not even on an unknown kid).
    const verifiers = [0, 1].map((offset) => ({ offset, fetchedAt: -Infinity, keys: createLocalJWKSet({ keys: [] }) }));
    let live: { token: string; exp: number; alg: SigningAlgorithm }[] = [];
    const kidsUsed = new Map<SigningAlgorithm, Set<string>>(SIGNING_ALGORITHMS.map((alg) => [alg, new Set()]));
    let verified = 0;
    const failures: string[] = [];
    const steps = Math.ceil((4.25 * fast.rotationIntervalMs) / step);
    for (let i = 0; i < steps; i++) {
      clock.advance(step);
      const now = clock.now();
      // A verifier fetches just before the schedule runs: the worst moment,
      // as it then misses a key published in this step for a whole max-age.
      for (const verifier of verifiers) {
        if (i >= verifier.offset && now >= verifier.fetchedAt + maxAgeMs) Object.assign(verifier, { fetchedAt: now, keys: createLocalJWKSet(JSON.parse(keyring.jwks()) as JSONWebKeySet) });
      }
      await keyring.maintain();
      for (const alg of SIGNING_ALGORITHMS) {
        kidsUsed.get(alg)!.add(keyring.signingKey(alg).kid);
        live.push({ token: token(keyring, alg, now), exp: Math.floor(now / 1000) + fast.maxTokenLifetimeSeconds, alg });
      }
      live = live.filter((entry) => entry.exp * 1000 > now);
      for (const entry of live) {
        try {
          verifyJwt(entry.token, keyring, { now, issuer: ISSUER, audience: 'api', typ: 'at+jwt' });
        } catch (error) {
          failures.push(`step ${i} ${entry.alg} keyring: ${(error as Error).message}`);
        }
        for (const verifier of verifiers.filter((candidate) => candidate.fetchedAt > -Infinity)) {
          await jwtVerify(entry.token, verifier.keys, { issuer: ISSUER, audience: 'api', typ: 'at+jwt', algorithms: [entry.alg], currentDate: new Date(now) }).then(
            () => verified++,
            (error: Error) => failures.push(`step ${i} ${entry.alg} verifier ${verifier.offset}: ${error.message}`),
          );
        }
      }
      for (const alg of SIGNING_ALGORITHMS) assert.ok(byAlg(keyring, alg).length <= 3, 'old keys are dropped: current, next, one retired at most');
    }
    assert.deepEqual(failures, []);
    assert.ok(verified > 4000, `${verified} verifications`);
    for (const [alg, kids] of kidsUsed) assert.equal(kids.size, 5, `${alg}: the first key and four successors signed`);
  });

  it('rotate publishes a key now that signs one max-age later; an unknown algorithm is refused', async () => {
    await reset();
    const clock = new ManualClock();
    const ledger = new RecordingLedger();
    const keyring = await open(store, clock, { ledger });
    const old = keyring.signingKey('ES256').kid;
    clock.advance(HOUR);
    const rotated = await keyring.rotate('ES256');
    assert.deepEqual([rotated.alg, rotated.state, rotated.activatesAt], ['ES256', 'next', clock.now() + MAX_AGE_MS]);
    assert.ok(publishedKids(keyring).includes(rotated.kid));
    assert.equal(keyring.signingKey('ES256').kid, old);
    clock.advance(MAX_AGE_MS);
    assert.equal(keyring.signingKey('ES256').kid, rotated.kid);
    assert.equal(info(keyring, old).retiredAt, rotated.activatesAt);
    assert.equal((await keyring.rotate()).alg, 'EdDSA', 'EdDSA by default');
    assert.deepEqual(
      ledger.events.slice(4).map((event) => [event.type, event.actorService, event.detail?.['reason'], event.detail?.['alg']]),
      [
        ['key.created', 'admin', 'manual', 'ES256'],
        ['key.created', 'admin', 'manual', 'EdDSA'],
      ],
    );
    await assert.rejects(keyring.rotate('HS256' as SigningAlgorithm), KeyringError);
  });

  it('revoke takes the key out of the JWKS at once; a fresh key signs from now; retired and next keys are revoked without a replacement', async () => {
    await reset();
    const clock = new ManualClock();
    const ledger = new RecordingLedger();
    const keyring = await open(store, clock, { ledger });
    const compromised = keyring.signingKey('EdDSA').kid;
    const signedBefore = token(keyring, 'EdDSA', clock.now());
    clock.advance(60_000);

    const revoked = await keyring.revoke(compromised);
    assert.deepEqual([revoked.kid, revoked.state, revoked.revokedAt], [compromised, 'revoked', clock.now()]);
    assert.ok(!publishedKids(keyring).includes(compromised));
    assert.equal(keyring.verificationKey(compromised), undefined);
    assert.throws(() => verifyJwt(signedBefore, keyring, { now: clock.now(), issuer: ISSUER }), /unknown kid/);
    const replacement = keyring.signingKey('EdDSA');
    assert.notEqual(replacement.kid, compromised);
    assert.deepEqual([info(keyring, replacement.kid).state, info(keyring, replacement.kid).activatesAt], ['current', clock.now()]);
    verifyJwt(token(keyring, 'EdDSA', clock.now()), keyring, { now: clock.now(), issuer: ISSUER });
    assert.deepEqual(
      ledger.events.slice(4).map((event) => [event.type, event.actorService, event.detail?.['kid'], event.detail?.['reason'] ?? null]),
      [
        ['key.revoked', 'admin', compromised, null],
        ['key.created', 'admin', replacement.kid, 'replaces_revoked'],
      ],
    );

    await assert.rejects(keyring.revoke(compromised), /already revoked/);
    await assert.rejects(keyring.revoke('no-such-kid'), (error: unknown) => error instanceof KeyringError && /no signing key no-such-kid/.test(error.message));

    // A successor not yet signing: revoked, nothing replaces it, the current key signs on.
    const next = await keyring.rotate('ES256');
    const es256 = keyring.signingKey('ES256').kid;
    await keyring.revoke(next.kid);
    assert.equal(keyring.signingKey('ES256').kid, es256);
    assert.equal(byAlg(keyring, 'ES256').length, 2);
    clock.advance(MAX_AGE_MS);
    assert.equal(keyring.signingKey('ES256').kid, es256, 'a revoked successor never takes over');

    // A retired key: revoked, it leaves the JWKS before its time; the signing key is unchanged.
    const rs256 = keyring.signingKey('RS256').kid;
    await keyring.rotate('RS256');
    clock.advance(MAX_AGE_MS);
    assert.equal(info(keyring, rs256).state, 'retired');
    const signing = keyring.signingKey('RS256').kid;
    await keyring.revoke(rs256);
    assert.equal(keyring.verificationKey(rs256), undefined);
    assert.equal(keyring.signingKey('RS256').kid, signing);
    assert.equal(byAlg(keyring, 'RS256').length, 2);

    // Revoked keys leave the record once nothing they signed could still be alive.
    clock.advance(LIFETIME_MS);
    await keyring.maintain();
    assert.ok(keyring.list().every((key) => key.state !== 'revoked'));
  });

  it('records key events in the audit ledger without key material', async () => {
    await reset();
    const clock = new ManualClock();
    const ledger = await openLedger({
      log: store.auditLog,
      records: store.records,
      vault,
      issuer: ISSUER,
      clock: clock.now,
      audit: { ipAddresses: 'omit', witnesses: [], maxPendingEntries: 1000 },
    });
    try {
      const before = await ledger.size();
      const keyring = await open(store, clock, { ledger: auditedEvents(ledger) });
      await keyring.revoke(keyring.signingKey('PS256').kid);
      const entries = (await store.auditLog.entries(before, await ledger.size())).map((row) => decodeEntry(row.entry));
      assert.deepEqual(
        entries.map((entry) => [entry.type, entry.service, entry.detail?.['alg'], entry.detail?.['reason'] ?? null]),
        [
          ...SIGNING_ALGORITHMS.map((alg) => ['key.created', 'system', alg, 'initial']),
          ['key.revoked', 'admin', 'PS256', null],
          ['key.created', 'admin', 'PS256', 'replaces_revoked'],
        ],
      );
      const text = JSON.stringify(entries);
      for (const alg of SIGNING_ALGORITHMS) {
        const jwk = keyring.signingKey(alg).privateKey.export({ format: 'jwk' });
        assert.ok(!text.includes(jwk.d!), `${alg}: no private key in the audit log`);
      }
    } finally {
      await ledger.close();
    }
  });

  it('an instance whose clock is seconds behind neither makes keys of its own nor stops signing after a revocation', async () => {
    await reset();
    const ahead = new ManualClock();
    const behind = new ManualClock(ahead.now() - 5000);
    const a = await open(store, ahead);
    const b = await open(fixture.stores[1]!, behind);
    assert.deepEqual(b.list(), a.list(), 'the first keys, not a second set');
    assert.deepEqual(b.list().map((key) => key.state), ['current', 'current', 'current', 'current']);
    assert.deepEqual(currentKids(b), currentKids(a));

    ahead.advance(HOUR);
    behind.advance(HOUR);
    const revoked = a.signingKey('ES256').kid;
    await a.revoke(revoked);
    await b.refresh();
    assert.equal(b.signingKey('ES256').kid, a.signingKey('ES256').kid, 'the replacement signs on the slow instance too');
    assert.notEqual(b.signingKey('ES256').kid, revoked);
  });

  it('another instance takes up a rotation and a revocation at its next refresh, or by itself once started', async () => {
    await reset();
    const clock = new ManualClock();
    const a = await open(store, clock);
    const b = await open(fixture.stores[1]!, clock, { policy: { ...policy, refreshMs: 100 } });
    const rotated = await a.rotate('EdDSA');
    assert.equal(b.verificationKey(rotated.kid), undefined, 'not seen before a refresh');
    await b.refresh();
    assert.ok(b.verificationKey(rotated.kid));
    assert.ok(publishedKids(b).includes(rotated.kid));
    clock.advance(MAX_AGE_MS);
    assert.equal(b.signingKey('EdDSA').kid, rotated.kid, 'both take over at the same moment, by the clock');

    await a.revoke(rotated.kid);
    assert.ok(b.verificationKey(rotated.kid));
    await b.refresh();
    assert.equal(b.verificationKey(rotated.kid), undefined);
    assert.equal(b.signingKey('EdDSA').kid, a.signingKey('EdDSA').kid, "b signs with a's replacement");

    const errors: unknown[] = [];
    b.start((error) => errors.push(error));
    try {
      const next = await a.rotate('ES256');
      for (let waited = 0; !b.verificationKey(next.kid) && waited < 5000; waited += 50) await wait(50);
      assert.ok(b.verificationKey(next.kid), 'picked up by the timer');
      assert.deepEqual(errors, []);
    } finally {
      b.close();
    }
  });
});

for (const driver of durableDrivers) {
  describe(`Keyring on ${driver.name}: five instances on one database`, () => {
    it('racing open() make exactly one set of keys; racing maintain() exactly one successor per algorithm; racing revoke() exactly one revocation', async () => {
      const fixture = await driver.open(5);
      try {
        const clock = new ManualClock();
        const ledger = new RecordingLedger();
        const keyrings = await Promise.all(fixture.stores.map((store) => open(store, clock, { ledger })));
        const kids = keyrings.map((keyring) => keyring.list().map((key) => key.kid).join());
        assert.equal(new Set(kids).size, 1, 'every instance uses the same keys');
        assert.equal(keyrings[0]!.list().length, 4);
        assert.equal((await storedJson(fixture.store)).version, 1);
        assert.equal(ledger.events.length, 4, 'only the winner recorded');

        clock.advance(policy.rotationIntervalMs - MAX_AGE_MS);
        const created = (await Promise.all(keyrings.map((keyring) => keyring.maintain()))).flat();
        assert.deepEqual(created.map((key) => key.alg).sort(), [...SIGNING_ALGORITHMS].sort(), 'one successor per algorithm, in all');
        assert.equal((await storedJson(fixture.store)).version, 2);
        assert.equal(ledger.events.length, 8);
        for (const keyring of keyrings) {
          assert.deepEqual(
            keyring.list().filter((key) => key.state === 'next').map((key) => key.kid).sort(),
            created.map((key) => key.kid).sort(),
            'the losers use the winner’s successors',
          );
        }

        const target = keyrings[0]!.signingKey('ES256').kid;
        const results = await Promise.allSettled(keyrings.map((keyring) => keyring.revoke(target)));
        assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
        for (const result of results) {
          if (result.status === 'rejected') assert.match((result.reason as Error).message, /already revoked/);
        }
        await Promise.all(keyrings.map((keyring) => keyring.refresh()));
        const es256 = keyrings.map((keyring) => keyring.signingKey('ES256').kid);
        assert.equal(new Set(es256).size, 1, 'one replacement, used by all');
        assert.notEqual(es256[0], target);
        assert.equal(byAlg(keyrings[0]!, 'ES256').length, 3, 'revoked, replacement, scheduled successor');
      } finally {
        await fixture.close();
      }
    });
  });
}
