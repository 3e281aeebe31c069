/**
 * The ledger: what `record` writes, pseudonyms and erasure, IP handling,
 * secrets refused at the door, group commit under concurrent writers (also
 * two instances sharing PostgreSQL), backpressure, checkpoints, cosignatures.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import canonicalize from 'canonicalize';
import { KeyVault } from '../../src/crypto/index.ts';
import { AuditBackpressureError, AuditEventError, AuditRequestError, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import { cosign, generateCosignatureKey, openCheckpoint, parseCosignatureSignerKey, parseVerifierKey } from '../../src/audit/checkpoint/index.ts';
import { leafHash, rootHash, verifyConsistency, verifyInclusion } from '../../src/audit/merkle/index.ts';
import type { AuditLogStore, DurableStore } from '../../src/store/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const vault = KeyVault.generate();

async function ledgerOn(store: DurableStore, overrides: { log?: AuditLogStore; ipAddresses?: 'truncate' | 'hash' | 'omit'; witnesses?: string[]; maxPendingEntries?: number } = {}): Promise<Ledger> {
  return openLedger({
    log: overrides.log ?? store.auditLog,
    records: store.records,
    vault,
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: overrides.ipAddresses ?? 'truncate', witnesses: overrides.witnesses ?? [], maxPendingEntries: overrides.maxPendingEntries ?? 10_000 },
  });
}

/** The store's audit log with some methods replaced (the drivers keep #private state, so no Object.create). */
function withOverrides(log: AuditLogStore, overrides: Partial<AuditLogStore>): AuditLogStore {
  const wrapped = {} as Record<string, unknown>;
  for (const name of ['append', 'size', 'entries', 'nodes', 'addCheckpoint', 'latestCheckpoint', 'checkpointOfSize', 'checkpoints', 'addCosignature', 'cosignatures', 'subjectEntries', 'indexSubject', 'forgetSubject'] as const) {
    wrapped[name] = overrides[name] ?? (log[name] as (...args: unknown[]) => unknown).bind(log);
  }
  return wrapped as unknown as AuditLogStore;
}

async function allEntries(store: DurableStore): Promise<Uint8Array[]> {
  const size = await store.auditLog.size();
  const entries: Uint8Array[] = [];
  for (let start = 0; start < size; start += 1000) {
    for (const row of await store.auditLog.entries(start, Math.min(size, start + 1000))) entries.push(row.entry);
  }
  return entries;
}

for (const driver of durableDrivers) {
  describe(`ledger on ${driver.name}`, () => {
    let fixture: DurableFixture;
    before(async () => {
      fixture = await driver.open(2);
    });
    after(async () => {
      await fixture.close();
    });

    it('records canonical JSON entries with sequential indices and no raw user id', async () => {
      const ledger = await ledgerOn(fixture.store);
      const start = await ledger.size();
      const first = await ledger.record({ type: 'auth.login.succeeded', outcome: 'success', actorUserId: 'user-42', clientId: 'app', requestId: 'r1', traceId: 'a'.repeat(32), ip: '203.0.113.77', detail: { method: 'password', mfa: false } });
      const second = await ledger.record({ type: 'auth.login.failed', outcome: 'failure', actorUserId: 'user-42', detail: { reason: 'wrong password' } });
      assert.deepEqual([first.index, second.index], [start, start + 1]);
      const [row1, row2] = await fixture.store.auditLog.entries(start, start + 2);
      const text = new TextDecoder().decode(row1!.entry);
      assert.equal(text, canonicalize(JSON.parse(text)), 'the entry is RFC 8785 canonical');
      const entry = decodeEntry(row1!.entry);
      assert.equal(entry.type, 'auth.login.succeeded');
      assert.equal(entry.client, 'app');
      assert.equal(entry.ip, '203.0.113.0/24');
      assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(!text.includes('user-42'), 'the user id itself never enters the log');
      assert.equal(decodeEntry(row2!.entry).actor, entry.actor, 'one user, one pseudonym');
      const other = await ledger.record({ type: 'auth.login.failed', outcome: 'failure', actorUserId: 'user-43' });
      const [row3] = await fixture.store.auditLog.entries(other.index, other.index + 1);
      assert.notEqual(decodeEntry(row3!.entry).actor, entry.actor);
    });

    it('erasure destroys the pseudonym secret; entries and proofs stay valid, and the person is unlinkable', async () => {
      const ledger = await ledgerOn(fixture.store);
      const { index } = await ledger.record({ type: 'user.updated', outcome: 'success', actorUserId: 'user-erased' });
      const before = await ledger.signCheckpoint();
      const pseudonym = await ledger.pseudonyms.existingPseudonym('user-erased');
      assert.ok(pseudonym !== null);

      assert.equal(await ledger.forgetSubject('user-erased'), true);
      assert.equal(await ledger.pseudonyms.existingPseudonym('user-erased'), null);
      const later = await ledger.signCheckpoint();
      const [erasure] = await fixture.store.auditLog.entries(later.size - 1, later.size);
      const erasureText = new TextDecoder().decode(erasure!.entry);
      assert.equal(decodeEntry(erasure!.entry).type, 'audit.subject.forgotten');
      assert.ok(!erasureText.includes('user-erased') && !erasureText.includes(pseudonym), 'the erasure record names nobody');

      const [row] = await fixture.store.auditLog.entries(index, index + 1);
      assert.equal(decodeEntry(row!.entry).actor, pseudonym, 'the entry is untouched');
      const verifier = parseVerifierKey(ledger.verifierKey);
      const oldRoot = openCheckpoint(before.note, verifier).rootHash;
      const newRoot = openCheckpoint(later.note, verifier).rootHash;
      const inclusion = await ledger.inclusionProof(index, later.size);
      assert.ok(verifyInclusion(leafHash(row!.entry), index, later.size, inclusion.proof, newRoot));
      assert.ok(verifyConsistency(before.size, later.size, oldRoot, newRoot, await ledger.consistencyProof(before.size, later.size)));
      // Were the same id ever seen again, it gets no pseudonym at all: no new, linkable history starts.
      assert.equal(await ledger.pseudonyms.pseudonym('user-erased'), null);
    });

    it('stores IP addresses truncated, keyed-hashed or not at all, by config', async () => {
      const read = async (ledger: Ledger, ip: string) => {
        const { index } = await ledger.record({ type: 'auth.logout', outcome: 'success', ip });
        const [row] = await fixture.store.auditLog.entries(index, index + 1);
        return { entry: decodeEntry(row!.entry), text: new TextDecoder().decode(row!.entry) };
      };
      const truncating = await ledgerOn(fixture.store, { ipAddresses: 'truncate' });
      assert.equal((await read(truncating, '2001:db8:abcd:12::7')).entry.ip, '2001:db8:abcd::/48');
      assert.equal((await read(truncating, '::ffff:198.51.100.9')).entry.ip, '198.51.100.0/24');
      assert.equal((await read(truncating, 'not-an-ip')).entry.ip, undefined);
      const hashing = await ledgerOn(fixture.store, { ipAddresses: 'hash' });
      const hashed = await read(hashing, '198.51.100.9');
      assert.match(hashed.entry.ip ?? '', /^hmac:[A-Za-z0-9_-]{22}$/);
      assert.ok(!hashed.text.includes('198.51.100'));
      assert.equal((await read(hashing, '198.51.100.9')).entry.ip, hashed.entry.ip, 'correlatable');
      assert.equal((await read(await ledgerOn(fixture.store, { ipAddresses: 'omit' }), '198.51.100.9')).entry.ip, undefined);
    });

    it('refuses secrets and malformed events before writing anything', async () => {
      const ledger = await ledgerOn(fixture.store);
      const size = await ledger.size();
      for (const key of ['password', 'newPassword', 'accessToken', 'refresh_token', 'client_secret', 'code', 'authorization', 'cookie', 'privateKey', 'code_verifier', 'otp']) {
        await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'success', detail: { [key]: 'hunter2' } }), AuditEventError, key);
      }
      await assert.rejects(ledger.record({ type: 'no.such.type' as never, outcome: 'success' }), AuditEventError);
      await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'maybe' as never }), AuditEventError);
      await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'success', detail: { nested: { a: 1 } as never } }), AuditEventError);
      await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'success', detail: { long: 'x'.repeat(257) } }), AuditEventError);
      await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'success', requestId: 'a\nforged' }), AuditEventError);
      await assert.rejects(ledger.record({ type: 'token.issued', outcome: 'success', detail: { lone: '\ud800' } }), AuditEventError);
      assert.equal(await ledger.size(), size, 'nothing was written');
    });

    it('gives 400 concurrent writers on two instances distinct, gapless indices, in few batches', async () => {
      let appends = 0;
      const counted = (store: DurableStore): AuditLogStore =>
        withOverrides(store.auditLog, {
          append: (...args) => {
            appends += 1;
            return store.auditLog.append(...args);
          },
        });
      const ledgers = await Promise.all(fixture.stores.map((store) => ledgerOn(store, { log: counted(store) })));
      const start = await ledgers[0]!.size();
      const writers = 400;
      const results = await Promise.all(
        Array.from({ length: writers }, (_, i) => ledgers[i % ledgers.length]!.record({ type: 'token.issued', outcome: 'success', requestId: `race-${i}` })),
      );
      const indices = results.map((result) => result.index).sort((a, b) => a - b);
      assert.deepEqual(indices, Array.from({ length: writers }, (_, i) => start + i), 'every index once, none skipped');
      assert.ok(appends < writers / 4, `group commit batched ${writers} records into ${appends} appends`);
      const entries = await allEntries(fixture.store);
      assert.equal(entries.length, start + writers);
      const requestIds = new Set(entries.slice(start).map((entry) => decodeEntry(entry).requestId));
      assert.equal(requestIds.size, writers, 'every record is in the log exactly once');
      const checkpoint = await ledgers[1]!.signCheckpoint();
      assert.deepEqual(checkpoint.rootHash, rootHash(entries.map(leafHash)), 'the stored tree matches the entries');
    });

    it('records the events of one action together: one append, consecutive indices, all or none', async () => {
      const appended: number[] = [];
      const counted = withOverrides(fixture.store.auditLog, {
        append: (entries, ...rest) => {
          appended.push(entries.length);
          return fixture.store.auditLog.append(entries, ...rest);
        },
      });
      const ledger = await ledgerOn(fixture.store, { log: counted, maxPendingEntries: 3 });
      const event = (i: number) => ({ type: 'session.revoked', outcome: 'success', actorUserId: 'user-7', requestId: `group-${i}` }) as const;
      const recorded = await ledger.recordAll([event(0), event(1), event(2)]);
      assert.deepEqual(appended, [3], 'one append for the whole group');
      assert.deepEqual(recorded.map((r) => r.index), [recorded[0]!.index, recorded[0]!.index + 1, recorded[0]!.index + 2]);
      const size = await ledger.size();
      await assert.rejects(ledger.recordAll([event(3), { type: 'token.issued', outcome: 'success', detail: { password: 'hunter2' } }]), AuditEventError);
      await assert.rejects(ledger.recordAll([event(4), event(5), event(6), event(7)]), AuditBackpressureError);
      assert.equal(await ledger.size(), size, 'a refused group writes none of its events');
      assert.deepEqual(appended, [3]);
    });

    it('refuses new records with backpressure when the store cannot keep up, and loses none it accepted', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let started!: () => void;
      const inFlight = new Promise<void>((resolve) => {
        started = resolve;
      });
      const slow = withOverrides(fixture.store.auditLog, {
        append: async (...args) => {
          started();
          await gate;
          return fixture.store.auditLog.append(...args);
        },
      });
      const ledger = await ledgerOn(fixture.store, { log: slow, maxPendingEntries: 5 });
      const record = (requestId: string) => ledger.record({ type: 'token.issued', outcome: 'success', requestId });
      // One batch of three is in flight and stuck; five more may wait; the next is refused.
      const first = [record('bp-0'), record('bp-1'), record('bp-2')];
      await inFlight;
      const waiting = Array.from({ length: 5 }, (_, i) => record(`bp-wait-${i}`));
      await new Promise((resolve) => setImmediate(resolve));
      await assert.rejects(record('bp-refused'), AuditBackpressureError);
      release();
      const indices = (await Promise.all([...first, ...waiting])).map((result) => result.index);
      assert.equal(new Set(indices).size, 8, 'every accepted record was written');
    });

    it('signs verifiable checkpoints, only when the log grew, and keeps every one', async () => {
      const ledger = await ledgerOn(fixture.store);
      await ledger.record({ type: 'client.registered', outcome: 'success', clientId: 'c1' });
      const checkpoint = await ledger.checkpointIfGrown();
      assert.ok(checkpoint !== null);
      assert.equal(await ledger.checkpointIfGrown(), null, 'no growth, no new checkpoint');
      const opened = openCheckpoint(checkpoint.note, parseVerifierKey(ledger.verifierKey));
      assert.equal(opened.origin, 'id.example.com/audit');
      assert.equal(opened.size, await ledger.size());
      assert.deepEqual(opened.rootHash, rootHash((await allEntries(fixture.store)).map(leafHash)));
      const all = await ledger.checkpoints({ limit: 1000 });
      assert.ok(all.some((kept) => kept.id === checkpoint.id));
    });

    it('verifies, stores and serves witness cosignatures; refuses forged or foreign ones', async () => {
      const witnessKey = generateCosignatureKey('witness.example.org');
      const witness = parseCosignatureSignerKey(witnessKey.signerKey);
      const ledger = await ledgerOn(fixture.store, { witnesses: [witnessKey.verifierKey] });
      await ledger.record({ type: 'client.updated', outcome: 'success' });
      const checkpoint = await ledger.signCheckpoint();
      const line = cosign(checkpoint.note, witness, Math.floor(Date.now() / 1000));
      const result = await ledger.addCosignatures(checkpoint.note + line);
      assert.equal(result.stored.length, 1);
      assert.ok((await ledger.cosignedNote(checkpoint)).endsWith(line));
      assert.deepEqual((await ledger.addCosignatures(checkpoint.note + line)).duplicates, result.stored);

      const stranger = parseCosignatureSignerKey(generateCosignatureKey('witness.example.org').signerKey);
      await assert.rejects(ledger.addCosignatures(checkpoint.note + cosign(checkpoint.note, stranger, 1)), AuditRequestError, 'a key the server does not trust');
      const forged = line.replace(/ (\S)(\S+)\n$/, (_m, first: string, rest: string) => ` ${first === 'A' ? 'B' : 'A'}${rest}\n`);
      await assert.rejects(ledger.addCosignatures(checkpoint.note + forged), AuditRequestError);
      const otherLog = checkpoint.note.replace(/^(.*\n)(\d+)\n/, (_m, origin: string, size: string) => `${origin}${Number(size) + 1000}\n`);
      await assert.rejects(ledger.addCosignatures(otherLog + line), AuditRequestError, 'a checkpoint this log never signed');
      await assert.rejects(ledger.addCosignatures('not a note'), AuditRequestError);
    });
  });
}
