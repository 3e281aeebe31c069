/**
 * The ledger as a subscriber of the domain events: an emitted event writes
 * the very entry the ledger wrote when features called it themselves, the
 * payload meant for reactors stays out of the log, and a ledger that cannot
 * write makes the action fail instead of losing its entry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KeyVault } from '../../src/crypto/index.ts';
import { auditedEvents, decodeEntry, openLedger, type AuditEvent, type Ledger } from '../../src/audit/index.ts';
import type { DomainEvent } from '../../src/events/index.ts';
import { ClientRegistry, validateClientMetadata } from '../../src/oauth/index.ts';
import type { DurableStore } from '../../src/store/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const vault = KeyVault.generate();

function ledgerOn(store: DurableStore): Promise<Ledger> {
  return openLedger({
    log: store.auditLog,
    records: store.records,
    vault,
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
}

describe('the audit projection (the ledger subscribes to the domain events)', () => {
  let fixture: DurableFixture;
  let ledger: Ledger;
  before(async () => {
    fixture = await durableDrivers[0]!.open();
    ledger = await ledgerOn(fixture.store);
  });
  after(async () => {
    await ledger.close();
    await fixture.close();
  });

  const entriesFrom = async (start: number) => (await fixture.store.auditLog.entries(start, await ledger.size())).map((row) => row.entry);

  it('an emitted event is recorded byte for byte as `ledger.record` recorded it', async () => {
    const event = {
      type: 'client.updated',
      outcome: 'success',
      actorUserId: 'user-42',
      actorService: 'admin',
      clientId: 'app',
      requestId: 'r1',
      traceId: 'a'.repeat(32),
      ip: '203.0.113.77',
      detail: { reason: 'approved', approved: true, count: 3, none: null },
      time: Date.UTC(2026, 11, 4, 12, 0, 0, 123),
    } as const;
    const start = await ledger.size();
    await ledger.record(event);
    await auditedEvents(ledger).emit(event);
    const [direct, emitted] = await entriesFrom(start);
    assert.ok(direct !== undefined && emitted !== undefined);
    assert.deepEqual(Buffer.from(emitted), Buffer.from(direct));
  });

  it('what an event carries for reactors stays out of the entry; a signal writes none', async () => {
    const time = Date.UTC(2026, 11, 4, 12, 0, 1);
    const detail = { uri: 'https://api.example.com', scopes: 'orders:read', alg: null, clients: 0 };
    const start = await ledger.size();
    const recorded: AuditEvent = { type: 'resource.created', outcome: 'success', actorService: 'admin', detail, time };
    await ledger.record(recorded);
    const events = auditedEvents(ledger);
    await events.emit({ ...recorded, type: 'resource.created', outcome: 'success', resource: { uri: 'https://api.example.com', scopes: ['orders:read'] } });
    await events.emit({ type: 'tokens.revoked', jti: 'jti-1' });
    const entries = await entriesFrom(start);
    assert.equal(entries.length, 2, 'tokens.revoked wrote nothing');
    assert.deepEqual(Buffer.from(entries[1]!), Buffer.from(entries[0]!));
  });

  it('user.created names the new user by their audit pseudonym, never by id', async () => {
    const userId = `user-${randomBytes(4).toString('hex')}`;
    const start = await ledger.size();
    await auditedEvents(ledger).emit({ type: 'user.created', outcome: 'success', actorService: 'cli', userId });
    const [bytes] = await entriesFrom(start);
    const entry = decodeEntry(bytes!);
    assert.equal(entry.type, 'user.created');
    assert.deepEqual(entry.detail, { subject: await ledger.pseudonyms.pseudonym(userId) });
    assert.ok(!new TextDecoder().decode(bytes).includes(userId));
  });

  it('the events of one emitAll are one batch in the log, in order', async () => {
    const start = await ledger.size();
    const batch: DomainEvent[] = [
      { type: 'auth.login.succeeded', outcome: 'success', actorUserId: 'u1', detail: { method: 'password', evictedSessions: 1 } },
      { type: 'session.revoked', outcome: 'success', actorUserId: 'u1', detail: { reason: 'session_limit' } },
    ];
    await auditedEvents(ledger).emitAll(batch);
    assert.deepEqual(
      (await entriesFrom(start)).map((bytes) => decodeEntry(bytes).type),
      ['auth.login.succeeded', 'session.revoked'],
    );
  });

  it('a ledger that cannot write (its database is gone) fails the action instead of losing the entry', async () => {
    const gone = await durableDrivers[0]!.open();
    const goneLedger = await ledgerOn(gone.store);
    await gone.close();
    const registry = new ClientRegistry({ records: fixture.store.records, secretKey: vault.derive('client-secrets'), events: auditedEvents(goneLedger), clock: () => Date.now() });
    const metadata = validateClientMetadata({ redirect_uris: ['https://app.example.com/cb'] }, { allowedScopes: ['openid'], defaultSigningAlgorithm: 'EdDSA' });
    const sizeBefore = await ledger.size();
    await assert.rejects(registry.register(metadata, { actor: 'test' }), /database is not open/, 'the ledger write failed, and the action with it');
    assert.equal(await ledger.size(), sizeBefore);
  });
});
