/**
 * One-time enrolment tokens: made for exactly one SPIFFE ID of this trust
 * domain and at most 24 hours; verified (signature, type, issuer, audience,
 * lifetime) without being used up; redeemed once, also when ten redemptions
 * race on two instances sharing a hot store (every hot driver, Redis
 * included). Every forgery is tried and refused: another JWT type signed by
 * the same keyring, an edited payload or signature, another keyring, an
 * expired token.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { auditedEvents, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import type { EventHub } from '../../src/events/index.ts';
import { AuthorityError, ENROLMENT_TOKEN_TYPE, EnrolmentTokens, MAX_ENROLMENT_TTL_MS } from '../../src/pki/index.ts';
import type { HotStore } from '../../src/store/index.ts';
import { Keyring, signJwt } from '../../src/tokens/index.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, hotDrivers, type DurableFixture, type HotFixture } from '../store/drivers.ts';

const ISSUER = 'https://id.example.com';
const TD = 'id.example.com';
const ORDERS = `spiffe://${TD}/ns/prod/sa/orders`;
const MINUTE = 60_000;
const vault = KeyVault.generate();
const policy = { rotationIntervalMs: 86_400_000, jwksMaxAgeSeconds: 600, maxTokenLifetimeSeconds: 3600, refreshMs: 60_000 };

function refused(error: unknown): boolean {
  assert.ok(error instanceof AuthorityError, `expected an AuthorityError, got ${String(error)}`);
  assert.equal(error.code, 'enrolment_refused');
  return true;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('enrolment tokens', () => {
  let durable: DurableFixture;
  let ledger: Ledger;
  let events: EventHub;
  let keyring: Keyring;
  let hot: HotFixture;
  let tokens: EnrolmentTokens;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  const make = (store: HotStore, ring: Keyring = keyring) => new EnrolmentTokens({ keyring: ring, algorithm: 'ES256', hot: store, clock: clock.now, events, issuer: ISSUER, trustDomain: TD });

  before(async () => {
    durable = await durableDrivers[0]!.open();
    ledger = await openLedger({ log: durable.store.auditLog, records: durable.store.records, vault, issuer: ISSUER, clock: clock.now, audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 } });
    events = auditedEvents(ledger);
    keyring = await Keyring.open({ records: durable.store.records, vault, clock: clock.now, policy });
    hot = await hotDrivers[0]!.open();
    tokens = make(hot.store);
  });
  after(async () => {
    events.close();
    await ledger.close();
    await hot.close();
    await durable.close();
  });

  it('create → verify → redeem: true once, false after; verify does not use it up', async () => {
    const names = [ORDERS, 'dns:orders.internal', 'ip:10.0.0.7'];
    const { token, jti, expiresAt } = await tokens.create({ names, ttlMs: 15 * MINUTE, context: { actorUserId: 'u_admin' } });
    assert.equal(expiresAt.getTime(), clock.now() + 15 * MINUTE);
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(header['typ'], ENROLMENT_TOKEN_TYPE);
    const grant = tokens.verify(token);
    assert.deepEqual(grant, { jti, names, expiresAt: expiresAt.getTime() });
    assert.deepEqual(tokens.verify(token), grant, 'verifying twice is fine');
    assert.equal(await tokens.redeem(grant), true);
    assert.equal(await tokens.redeem(grant), false, 'a second redemption is refused');
    assert.equal(await tokens.redeem(tokens.verify(token)), false, 'also after verifying again');
    // The ledger names the token by its id, never the token itself.
    const size = await durable.store.auditLog.size();
    const entries = (await durable.store.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry));
    const created = entries.filter((entry) => entry.type === 'ca.enrolment.created' && entry.detail?.['jti'] === jti);
    assert.equal(created.length, 1);
    assert.equal(created[0]!.detail?.['spiffeId'], ORDERS);
    assert.ok(!JSON.stringify(entries).includes(token.split('.')[2]!), 'no signature in the log');
  });

  it('repeated names are one name; dns: and ip: names may come with the SPIFFE ID', async () => {
    const { token } = await tokens.create({ names: [ORDERS, ORDERS, 'dns:orders.internal'], ttlMs: MINUTE });
    assert.deepEqual(tokens.verify(token).names, [ORDERS, 'dns:orders.internal']);
  });

  it('create refuses no SPIFFE ID, two, another trust domain, a path-less ID, a malformed name, and lifetimes outside 1s..24h', async () => {
    const cases: Array<[string, readonly string[], number, new (...args: never[]) => Error]> = [
      ['no SPIFFE ID', ['dns:orders.internal'], MINUTE, RangeError],
      ['no names', [], MINUTE, RangeError],
      ['two SPIFFE IDs', [ORDERS, `spiffe://${TD}/ns/prod/sa/billing`], MINUTE, RangeError],
      ['another trust domain', ['spiffe://evil.example/ns/prod/sa/orders'], MINUTE, RangeError],
      ['the trust domain itself', [`spiffe://${TD}`], MINUTE, TypeError],
      ['a bare host name', ['orders.internal', ORDERS], MINUTE, TypeError],
      ['a wildcard DNS name', [ORDERS, 'dns:*.orders.internal'], MINUTE, TypeError],
      ['ttl over 24h', [ORDERS], MAX_ENROLMENT_TTL_MS + 1000, RangeError],
      ['ttl a week', [ORDERS], 7 * MAX_ENROLMENT_TTL_MS, RangeError],
      ['ttl zero', [ORDERS], 0, RangeError],
      ['ttl not an integer', [ORDERS], 1000.5, RangeError],
    ];
    for (const [what, names, ttlMs, type] of cases) await assert.rejects(tokens.create({ names, ttlMs }), type, what);
    const longest = await tokens.create({ names: [ORDERS], ttlMs: MAX_ENROLMENT_TTL_MS });
    assert.equal(longest.expiresAt.getTime(), clock.now() + 24 * 3_600_000, 'exactly 24h is allowed');
  });

  it('an access-token-typed JWT from the same keyring, with every enrolment claim, is refused (enrolment_refused)', async () => {
    const iat = Math.floor(clock.now() / 1000);
    const claims = { iss: ISSUER, aud: tokens.audience, sub: ORDERS, jti: 'forged-1', iat, exp: iat + 600, sans: [ORDERS] };
    const key = keyring.signingKey('ES256');
    assert.doesNotThrow(() => tokens.verify(signJwt(key, claims, { typ: ENROLMENT_TOKEN_TYPE })), 'the same claims with the enrolment type pass: the type is what is refused');
    for (const typ of ['at+jwt', 'JWT', 'application/at+jwt', 'logout+jwt', undefined]) {
      assert.throws(() => tokens.verify(signJwt(key, claims, typ === undefined ? {} : { typ })), refused, String(typ));
    }
    // Another audience or issuer, with the right type.
    assert.throws(() => tokens.verify(signJwt(key, { ...claims, aud: ISSUER }, { typ: ENROLMENT_TOKEN_TYPE })), refused, 'audience');
    assert.throws(() => tokens.verify(signJwt(key, { ...claims, iss: 'https://evil.example' }, { typ: ENROLMENT_TOKEN_TYPE })), refused, 'issuer');
    // Right type and claims but no list of names.
    const withoutNames: Record<string, unknown> = { ...claims };
    delete withoutNames['sans'];
    assert.throws(() => tokens.verify(signJwt(key, withoutNames, { typ: ENROLMENT_TOKEN_TYPE })), refused, 'no sans');
    assert.throws(() => tokens.verify(signJwt(key, { ...claims, sans: [ORDERS, 7] }, { typ: ENROLMENT_TOKEN_TYPE })), refused, 'a non-string name');
  });

  it('refuses a tampered token: payload edited, signature edited, alg none, another keyring', async () => {
    const { token } = await tokens.create({ names: [ORDERS], ttlMs: 10 * MINUTE });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const widened = `${header}.${b64({ ...claims, sans: [ORDERS, 'dns:admin.internal'] })}.${signature}`;
    assert.throws(() => tokens.verify(widened), refused, 'a name added');
    const renamed = `${header}.${b64({ ...claims, sub: `spiffe://${TD}/ns/prod/sa/admin`, sans: [`spiffe://${TD}/ns/prod/sa/admin`] })}.${signature}`;
    assert.throws(() => tokens.verify(renamed), refused, 'another SPIFFE ID');
    const flipped = `${header}.${payload}.${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    assert.throws(() => tokens.verify(flipped), refused, 'signature edited');
    const none = `${b64({ alg: 'none', typ: ENROLMENT_TOKEN_TYPE })}.${payload}.`;
    assert.throws(() => tokens.verify(none), refused, 'alg none');
    assert.throws(() => tokens.verify(`${token}x`), refused, 'trailing garbage');
    assert.throws(() => tokens.verify(''), refused, 'empty');
    // The same claims signed by another deployment's keyring.
    const other = await durableDrivers[0]!.open();
    try {
      const otherRing = await Keyring.open({ records: other.store.records, vault: KeyVault.generate(), clock: clock.now, policy });
      const foreign = await make(hot.store, otherRing).create({ names: [ORDERS], ttlMs: MINUTE });
      assert.throws(() => tokens.verify(foreign.token), refused, 'another keyring');
    } finally {
      await other.close();
    }
    assert.equal(tokens.verify(token).names[0], ORDERS, 'the original still verifies');
  });

  it('refuses an expired token (ManualClock), a second before expiry it still verifies', async () => {
    const { token } = await tokens.create({ names: [ORDERS], ttlMs: 5 * MINUTE });
    clock.advance(5 * MINUTE - 1000);
    const grant = tokens.verify(token);
    clock.advance(1000);
    assert.throws(() => tokens.verify(token), refused, 'at its exp');
    clock.advance(24 * 3_600_000);
    assert.throws(() => tokens.verify(token), refused, 'a day later');
    // A grant verified in time and redeemed late still claims its id once.
    assert.equal(await tokens.redeem(grant), true);
    assert.equal(await tokens.redeem(grant), false);
  });

  for (const driver of hotDrivers) {
    it(`a race of 10 redemptions on two instances sharing one ${driver.name} hot store: exactly one wins`, async () => {
      const shared = await driver.open(2);
      try {
        // The memory store lives in one process: its two instances share the one handle.
        const stores = driver.name === 'memory' ? [shared.store, shared.store] : shared.stores;
        const instances = stores.map((store) => make(store));
        assert.equal(instances.length, 2);
        for (let round = 0; round < 3; round++) {
          const { token } = await instances[0]!.create({ names: [ORDERS], ttlMs: 10 * MINUTE });
          const results = await Promise.all(Array.from({ length: 10 }, (_, i) => instances[i % 2]!.redeem(instances[i % 2]!.verify(token))));
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results.join()}`);
          assert.equal(await instances[1]!.redeem(instances[1]!.verify(token)), false, 'and it stays used');
        }
      } finally {
        await shared.close();
      }
    });
  }
});
