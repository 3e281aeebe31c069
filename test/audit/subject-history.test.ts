/**
 * A person's audit history (issue 15): the subject index the ledger writes
 * with the entries, Ledger.subjectHistory with batched inclusion proofs, the
 * offline verifier of such a history (and what it catches), forgetting
 * without resurrection, the backfill of older entries, and
 * `portcullis audit verify --file` on a privacy export. On SQLite and, when
 * PORTCULLIS_TEST_DATABASE_URL is set, PostgreSQL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVault } from '../../src/crypto/index.ts';
import { auditEventsOf, auditedEvents, decodeEntry, forgetIn, openLedger, verifySubjectHistory, type Ledger, type SubjectHistory } from '../../src/audit/index.ts';
import { generateSignerKey, openCheckpoint, parseSignerKey, parseVerifierKey, signCheckpoint } from '../../src/audit/checkpoint/index.ts';
import { leafHash, verifyInclusion } from '../../src/audit/merkle/index.ts';
import { storedInclusionProof, storedInclusionProofs } from '../../src/audit/tree.ts';
import type { AuditLogStore, DurableStore, TreeNodeAddress } from '../../src/store/index.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';
import { runCli } from '../support/audit-log.ts';

const vault = KeyVault.generate();
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function ledgerOn(store: DurableStore, log: AuditLogStore = store.auditLog): Promise<Ledger> {
  return openLedger({
    log,
    records: store.records,
    vault,
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
}

const newUser = () => `user-${randomBytes(6).toString('hex')}`;
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** A history as plain, writable JSON, to tamper with. */
interface WritableHistory {
  checkpoint: string;
  size: number;
  logKey: string;
  origin: string;
  entries: { index: number; entry: Record<string, unknown>; entryBase64: string; proof: string[] }[];
}
const copy = (history: SubjectHistory): WritableHistory => JSON.parse(JSON.stringify(history)) as WritableHistory;

/** The kinds of the problems the verifier reports for `history` under the ledger's own key. */
function problemKinds(history: unknown, verifierKey: string): string[] {
  return verifySubjectHistory(history, { logKey: parseVerifierKey(verifierKey) }).problems.map((problem) => problem.kind);
}

for (const driver of durableDrivers) {
  describe(`subject history on ${driver.name}`, () => {
    let fixture: DurableFixture;
    let ledger: Ledger;
    before(async () => {
      fixture = await driver.open(2);
      ledger = await ledgerOn(fixture.store);
    });
    after(async () => {
      await ledger.close();
      await fixture.close();
    });

    /** Records a mix: alice and bob as actors, a service, and alice's user.created (detail.subject). */
    async function recordMix(alice: string, bob: string, rounds: number): Promise<{ alice: number[]; bob: number[] }> {
      const mine: number[] = [];
      const theirs: number[] = [];
      const events = auditedEvents(ledger);
      const start = await ledger.size();
      await events.emit({ type: 'user.created', outcome: 'success', actorService: 'cli', userId: alice });
      mine.push(start);
      for (let i = 0; i < rounds; i++) {
        const [a, b, c] = await ledger.recordAll([
          { type: 'auth.login.succeeded', outcome: 'success', actorUserId: alice, detail: { round: i } },
          { type: 'auth.login.failed', outcome: 'failure', actorUserId: bob, detail: { round: i } },
          { type: 'key.created', outcome: 'success', actorService: 'rotation' },
        ]);
        mine.push(a!.index);
        theirs.push(b!.index);
        assert.ok(c !== undefined);
        if (i % 3 === 0) mine.push((await ledger.record({ type: 'token.issued', outcome: 'success', actorUserId: alice, clientId: 'app' })).index);
      }
      return { alice: mine, bob: theirs };
    }

    it('writes the subject index with the entries: actor and user.created subject, nobody else', async () => {
      const [alice, bob] = [newUser(), newUser()];
      const recorded = await recordMix(alice, bob, 5);
      const log = fixture.store.auditLog;
      const pseudonymOf = async (user: string) => (await ledger.pseudonyms.existingPseudonym(user))!;
      const indexed = async (user: string) => (await log.subjectEntries(await pseudonymOf(user), { limit: 1000 })).map((row) => row.index);
      assert.deepEqual(await indexed(alice), recorded.alice);
      assert.deepEqual(await indexed(bob), recorded.bob);
      const [created] = await log.subjectEntries(await pseudonymOf(alice), { limit: 1 });
      assert.deepEqual(decodeEntry(created!.entry).detail, { subject: await pseudonymOf(alice) }, 'user.created is indexed under detail.subject');
    });

    it('subjectHistory: exactly the person\'s entries, each proven against a checkpoint signed for it', async () => {
      const [alice, bob] = [newUser(), newUser()];
      const recorded = await recordMix(alice, bob, 12);
      const size = await ledger.size();
      const history = await ledger.subjectHistory(alice);
      assert.equal(history.size, size, 'a checkpoint was signed for the grown log');
      assert.equal(history.origin, ledger.origin);
      assert.equal(history.logKey, ledger.verifierKey);
      assert.deepEqual(history.entries.map((entry) => entry.index), recorded.alice);
      const checkpoint = openCheckpoint(history.checkpoint, parseVerifierKey(ledger.verifierKey));
      assert.equal(checkpoint.size, size);
      const aliceActor = await ledger.pseudonyms.existingPseudonym(alice);
      const stored = new Map((await fixture.store.auditLog.entries(0, size)).map((row) => [row.index, row.entry]));
      for (const item of history.entries) {
        const bytes = Buffer.from(item.entryBase64, 'base64');
        assert.deepEqual(bytes, Buffer.from(stored.get(item.index)!), `entry ${item.index}: the stored bytes`);
        assert.deepEqual(item.entry, decodeEntry(bytes));
        assert.ok(item.entry.actor === aliceActor || item.entry.detail?.['subject'] === aliceActor, `entry ${item.index} names alice`);
        const proof = item.proof.map((element) => new Uint8Array(Buffer.from(element, 'base64')));
        assert.ok(verifyInclusion(leafHash(bytes), item.index, size, proof, checkpoint.rootHash), `entry ${item.index} is proven`);
      }
      const report = verifySubjectHistory(history, { logKey: parseVerifierKey(ledger.verifierKey) });
      assert.deepEqual(report.problems, []);
      assert.equal(report.ok, true);
      assert.equal(report.verified, recorded.alice.length);
      // Nothing new recorded: the same checkpoint serves again.
      const again = await ledger.subjectHistory(bob);
      assert.equal(again.checkpoint, history.checkpoint);
      assert.deepEqual(again.entries.map((entry) => entry.index), recorded.bob);
      assert.deepEqual((await ledger.subjectHistory(newUser())).entries, [], 'a user never recorded has none');
    });

    it('the verifier catches a tampered entry, a tampered proof, a wrong key and another log\'s checkpoint', async () => {
      const [alice, bob] = [newUser(), newUser()];
      await recordMix(alice, bob, 4);
      const history = await ledger.subjectHistory(alice);
      const key = ledger.verifierKey;
      assert.deepEqual(problemKinds(history, key), []);

      // The entry shown differs from its bytes.
      const shown = copy(history);
      shown.entries[1]!.entry['outcome'] = 'failure';
      assert.deepEqual(problemKinds(shown, key), ['entry_mismatch']);
      // Other bytes, consistently decoded: the proof no longer leads to the root.
      const rewritten = copy(history);
      const edited = { ...rewritten.entries[1]!.entry, outcome: 'failure' };
      rewritten.entries[1]!.entry = edited;
      rewritten.entries[1]!.entryBase64 = b64(new TextEncoder().encode(canonicalize(edited)));
      assert.deepEqual(problemKinds(rewritten, key), ['bad_proof']);
      // Bytes that are not what the ledger writes.
      const spaced = copy(history);
      spaced.entries[0]!.entryBase64 = b64(new TextEncoder().encode(JSON.stringify(spaced.entries[0]!.entry, null, 1)));
      assert.deepEqual(problemKinds(spaced, key), ['bad_entry']);
      // One bit of one proof element.
      const proofFlip = copy(history);
      const element = Buffer.from(proofFlip.entries[2]!.proof[0]!, 'base64');
      element[0]! ^= 1;
      proofFlip.entries[2]!.proof[0] = element.toString('base64');
      assert.deepEqual(problemKinds(proofFlip, key), ['bad_proof']);
      // A proof cut short, and an entry moved to another index.
      const short = copy(history);
      short.entries[2]!.proof.pop();
      assert.deepEqual(problemKinds(short, key), ['bad_proof']);
      const moved = copy(history);
      moved.entries[2]!.index += 1;
      assert.ok(problemKinds(moved, key).includes('bad_proof'));
      // The history's size is not the checkpoint's.
      const resized = copy(history);
      resized.size += 1;
      assert.deepEqual(problemKinds(resized, key), ['size_mismatch']);

      // A key of the same name that is not the log's.
      const impostor = generateSignerKey(ledger.origin);
      assert.deepEqual(problemKinds(history, impostor.verifierKey), ['bad_signature']);
      // The same tree head signed by another log (its own key, its own origin).
      const checkpoint = openCheckpoint(history.checkpoint, parseVerifierKey(key));
      const other = generateSignerKey('other.example/audit');
      const foreign = copy(history);
      foreign.checkpoint = signCheckpoint({ origin: 'other.example/audit', size: checkpoint.size, rootHash: checkpoint.rootHash }, parseSignerKey(other.signerKey));
      foreign.origin = 'other.example/audit';
      foreign.logKey = other.verifierKey;
      assert.deepEqual(problemKinds(foreign, key), ['bad_signature']);
      // Verified with the other log's key, it is still not this log's.
      assert.deepEqual(problemKinds(foreign, other.verifierKey).filter((kind) => kind !== 'wrong_origin'), [], 'it is a good checkpoint of the other log');
      assert.deepEqual(problemKinds({ ...foreign, origin: ledger.origin }, other.verifierKey), ['wrong_origin']);
      // A checkpoint of another size of this very log: proofs do not carry over.
      await ledger.record({ type: 'key.created', outcome: 'success', actorService: 'rotation' });
      const later = await ledger.subjectHistory(bob);
      const swapped = copy(history);
      swapped.checkpoint = later.checkpoint;
      swapped.size = later.size;
      assert.ok(problemKinds(swapped, key).every((kind) => kind === 'bad_proof') && problemKinds(swapped, key).length > 0);
      // Garbage never throws.
      for (const junk of [null, 42, 'x', [], {}, { entries: 'x' }, { entries: [null, { index: -1 }, { index: 0 }] }]) {
        const report = verifySubjectHistory(junk, { logKey: parseVerifierKey(key) });
        assert.equal(report.ok, false, JSON.stringify(junk));
      }
    });

    it('storedInclusionProofs: the proofs one by one would give, in a few node queries', async () => {
      const log = fixture.store.auditLog;
      const size = await log.size();
      const indices = Array.from({ length: 300 }, (_, i) => Math.floor((i * size) / 300));
      const asked: TreeNodeAddress[][] = [];
      const counting = { nodes: (addresses: readonly TreeNodeAddress[]) => (asked.push([...addresses]), log.nodes(addresses)) } as unknown as AuditLogStore;
      const batched = await storedInclusionProofs(counting, [...indices, indices[0]!], size);
      assert.equal(asked.length, 1, 'one node query for 300 proofs');
      const keys = asked[0]!.map((address) => `${address.level}:${address.index}`);
      assert.equal(new Set(keys).size, keys.length, 'each node asked for once');
      assert.equal(batched.length, indices.length + 1);
      for (const [i, index] of [...indices, indices[0]!].entries()) {
        const single = await storedInclusionProof(log, index, size);
        assert.deepEqual(batched[i]!.map(b64), single.proof.map(b64), `proof of ${index}`);
      }
      assert.deepEqual(await storedInclusionProofs(counting, [], size), []);
    });

    it('forgetting: the history empties, the index rows go, and later events name nobody', async () => {
      const [alice, bob] = [newUser(), newUser()];
      await recordMix(alice, bob, 3);
      const pseudonym = (await ledger.pseudonyms.existingPseudonym(alice))!;
      const log = fixture.store.auditLog;
      assert.ok((await log.subjectEntries(pseudonym)).length > 0);

      assert.equal(await ledger.forgetSubject(alice), true);
      assert.deepEqual(await log.subjectEntries(pseudonym), [], 'the index rows are gone');
      assert.deepEqual((await ledger.subjectHistory(alice)).entries, []);
      assert.ok((await ledger.subjectHistory(bob)).entries.length > 0, 'bob keeps his');

      // Whatever happens to alice from now on is recorded without an actor.
      const { index } = await ledger.record({ type: 'auth.login.failed', outcome: 'failure', actorUserId: alice, clientId: 'app' });
      const [row] = await log.entries(index, index + 1);
      const entry = decodeEntry(row!.entry);
      assert.equal(entry.actor, undefined);
      assert.equal(entry.client, 'app');
      assert.equal(await ledger.pseudonyms.pseudonym(alice), null);
      const [created] = await auditEventsOf({ type: 'user.created', outcome: 'success', actorService: 'cli', userId: alice }, ledger.pseudonyms);
      assert.equal(created!.detail, undefined, 'user.created names no subject either');
      const record = await fixture.store.records.get<Record<string, unknown>>('audit_subject_keys', alice);
      assert.deepEqual(Object.keys(record!.data), ['forgottenAt'], 'no secret came back');
      assert.deepEqual((await ledger.subjectHistory(alice)).entries, []);
      assert.equal(await ledger.forgetSubject(alice), false, 'a second erasure finds no secret');
    });

    it('forgetIn inside a durable transaction returns the pseudonym to drop; a never-seen user is marked too', async () => {
      const [carol, dave, erin] = [newUser(), newUser(), newUser()];
      await recordMix(carol, dave, 2);
      const pseudonym = await ledger.pseudonyms.existingPseudonym(carol);
      const forgotten = await fixture.store.transaction((tx) => forgetIn(tx.records, carol, 1_767_225_600_000));
      assert.equal(forgotten, pseudonym);
      assert.ok((await fixture.store.auditLog.subjectEntries(pseudonym!)).length > 0, 'the index is the caller\'s next step');
      assert.ok((await ledger.dropSubjectIndex(pseudonym!)) > 0);
      assert.deepEqual((await ledger.subjectHistory(carol)).entries, []);
      assert.equal(await fixture.store.transaction((tx) => forgetIn(tx.records, carol)), null, 'idempotent');
      const marker = await fixture.store.records.get('audit_subject_keys', carol);
      assert.deepEqual(marker!.data, { forgottenAt: 1_767_225_600_000 }, 'the first erasure\'s time stays');
      // A rolled-back erasure leaves the secret where it was.
      const before = await ledger.pseudonyms.existingPseudonym(dave);
      await assert.rejects(
        fixture.store.transaction(async (tx) => {
          await forgetIn(tx.records, dave);
          throw new Error('erasure aborted');
        }),
        /erasure aborted/,
      );
      assert.equal(await ledger.pseudonyms.existingPseudonym(dave), before);
      // Someone erased before the ledger ever saw them never gets a secret.
      assert.equal(await forgetIn(fixture.store.records, erin), null);
      assert.equal(await ledger.pseudonyms.pseudonym(erin), null);
      const { index } = await ledger.record({ type: 'user.updated', outcome: 'success', actorUserId: erin });
      assert.equal(decodeEntry((await fixture.store.auditLog.entries(index, index + 1))[0]!.entry).actor, undefined);
    });

    it('concurrent first uses agree on one pseudonym, on every instance; a racing forget wins for good', async () => {
      const user = newUser();
      const others = await Promise.all(fixture.stores.map((store) => ledgerOn(store)));
      try {
        const all = await Promise.all(Array.from({ length: 24 }, (_, i) => others[i % others.length]!.pseudonyms.pseudonym(user)));
        assert.equal(new Set(all).size, 1);
        assert.equal(typeof all[0], 'string');
        const racer = newUser();
        const results = await Promise.all([
          ...Array.from({ length: 10 }, (_, i) => others[i % others.length]!.pseudonyms.pseudonym(racer)),
          forgetIn(fixture.stores[1 % fixture.stores.length]!.records, racer),
          ...Array.from({ length: 10 }, (_, i) => others[i % others.length]!.pseudonyms.pseudonym(racer)),
        ]);
        const named = new Set(results.filter((value): value is string => value !== null));
        assert.ok(named.size <= 1, 'one secret at most was ever handed out');
        assert.equal(await ledger.pseudonyms.pseudonym(racer), null, 'after the forget, none');
        const record = await fixture.store.records.get<Record<string, unknown>>('audit_subject_keys', racer);
        assert.deepEqual(Object.keys(record!.data), ['forgottenAt']);
      } finally {
        for (const other of others) await other.close();
      }
    });

    it('indexSubject backfills entries recorded before the index existed, once', async () => {
      const [frank, gina] = [newUser(), newUser()];
      const recorded = await recordMix(frank, gina, 6);
      const pseudonym = (await ledger.pseudonyms.existingPseudonym(frank))!;
      // As if recorded before migration 6: no index rows.
      await fixture.store.auditLog.forgetSubject(pseudonym);
      assert.deepEqual((await ledger.subjectHistory(frank)).entries, []);
      assert.equal(await ledger.indexSubject(frank), recorded.alice.length);
      assert.equal(await ledger.indexSubject(frank), 0, 'idempotent');
      const history = await ledger.subjectHistory(frank);
      assert.deepEqual(history.entries.map((entry) => entry.index), recorded.alice);
      assert.equal(verifySubjectHistory(history, { logKey: parseVerifierKey(ledger.verifierKey) }).ok, true);
      assert.equal(await ledger.indexSubject(newUser()), 0, 'a user without a pseudonym');
    });

    it('portcullis audit verify --file on a privacy export: OK, and exit 1 on a tampered copy', async () => {
      const [alice, bob] = [newUser(), newUser()];
      const recorded = await recordMix(alice, bob, 5);
      const history = await ledger.subjectHistory(alice);
      const dir = mkdtempSync(join(tmpdir(), 'portcullis-privacy-export-'));
      dirs.push(dir);
      const exportFile = (name: string, audit: unknown, space?: number) => {
        const path = join(dir, name);
        writeFileSync(path, JSON.stringify({ format: 'portcullis-privacy-export', subject: { id: alice }, audit }, null, space));
        return path;
      };
      const good = exportFile('export.json', history, 2);
      const ok = await runCli(['audit', 'verify', '--file', good, '--key', ledger.verifierKey]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(ok.out, [`OK: ${recorded.alice.length} of your entries verified against the checkpoint of size ${history.size}.`]);
      assert.deepEqual(ok.err, []);

      // Unpinned: the file's own key, with the warning; compact JSON on one line works too.
      const compact = exportFile('compact.json', history);
      const unpinned = await runCli(['audit', 'verify', '--file', compact]);
      assert.equal(unpinned.code, 0, unpinned.stderr);
      assert.match(unpinned.stderr, /warning: using the log key the source itself provides/);

      const tampered = copy(history);
      tampered.entries[0]!.entry['outcome'] = 'denied';
      const bad = await runCli(['audit', 'verify', '--file', exportFile('tampered.json', tampered, 2), '--key', ledger.verifierKey]);
      assert.equal(bad.code, 1, bad.stdout);
      assert.match(bad.out[0]!, /^TAMPERED: 1 problem\(s\) found/);
      assert.match(bad.stdout, /entry_mismatch: entry \d+/);

      // A file that pins another log's key in itself still fails against the pinned key.
      const impostor = generateSignerKey(ledger.origin);
      const foreign = await runCli(['audit', 'verify', '--file', good, '--key', impostor.verifierKey]);
      assert.equal(foreign.code, 1);
      assert.match(foreign.stderr, /is not the one you pinned/);
      assert.match(foreign.stdout, /bad_signature/);

      const json = await runCli(['audit', 'verify', '--file', good, '--key', ledger.verifierKey, '--json']);
      assert.equal(json.code, 0);
      assert.equal((JSON.parse(json.stdout) as { verified: number }).verified, recorded.alice.length);
    });
  });
}
