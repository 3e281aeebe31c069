/**
 * `portcullis audit verify` against an intruder with write access to the
 * database. For each durable driver, a real log (40 varied entries,
 * checkpoints signed at 10, 25 and 40) is built, its key and latest
 * checkpoint saved as a user would (`audit key`, `audit checkpoint`); then
 * each case edits a fresh copy of the store with SQL, below every API, the
 * way someone with `sqlite3` or `psql` would (dropping the append-only
 * triggers first), and proves the verifier exits 1, prints TAMPERED and
 * names the right problem and first bad index.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSignerKey, parseSignerKey, signCheckpoint } from '../../src/audit/checkpoint/index.ts';
import { leafHash, nodeHash, rootHash } from '../../src/audit/merkle/index.ts';
import { auditDrivers, buildAuditLog, runBinary, runCli, type AuditDriver, type AuditLogFixture, type CliRun } from '../support/audit-log.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface SavedByUser {
  /** `portcullis audit key`, pinned. */
  readonly verifierKey: string;
  readonly keyFile: string;
  /** `portcullis audit checkpoint`, kept for --trusted. */
  readonly checkpointFile: string;
  readonly checkpoint: string;
}

/** What the user keeps from the intact log: the key and the latest checkpoint, through the CLI (and a first verify). */
async function saveAsUser(log: AuditLogFixture): Promise<SavedByUser> {
  const key = await runCli(['audit', 'key', '--config', log.configFile]);
  assert.equal(key.code, 0, key.stderr);
  assert.deepEqual(key.out, [log.verifierKey], 'audit key prints the log key');
  const checkpoint = await runCli(['audit', 'checkpoint', '--config', log.configFile]);
  assert.equal(checkpoint.code, 0, checkpoint.stderr);
  const text = `${checkpoint.stdout}\n`;
  assert.match(text, /^id\.example\.com\/audit\n40\n[A-Za-z0-9+/]{43}=\n/, `the latest checkpoint is of size 40:\n${text}`);
  const keyFile = join(log.dir, 'log.vkey');
  const checkpointFile = join(log.dir, 'trusted-checkpoint.txt');
  writeFileSync(keyFile, `${key.out[0]}\n`);
  writeFileSync(checkpointFile, text);
  // Each case starts from a log that verifies: what fails afterwards is the intruder's doing.
  const intact = await runCli(['audit', 'verify', '--config', log.configFile, '--key', key.out[0]!]);
  assert.equal(intact.code, 0, `the log verifies before tampering\n${intact.stdout}\n${intact.stderr}`);
  return { verifierKey: key.out[0]!, keyFile, checkpointFile, checkpoint: text };
}

/** A fresh log for one case; closed (and its schema dropped) afterwards. */
async function withLog(driver: AuditDriver, work: (log: AuditLogFixture, saved: SavedByUser) => Promise<void>): Promise<void> {
  const log = await buildAuditLog(driver);
  try {
    await work(log, await saveAsUser(log));
  } finally {
    await log.close();
  }
}

function verify(log: AuditLogFixture, ...extra: string[]): Promise<CliRun> {
  return runCli(['audit', 'verify', '--config', log.configFile, ...extra]);
}

interface Finding {
  readonly kind: string;
  readonly message: string;
}

/** Asserts the text report says TAMPERED with exit 1, and returns what it names. */
function tampered(run: CliRun): { firstBadIndex: number | undefined; findings: Finding[]; kinds: string[] } {
  const context = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  assert.equal(run.code, 1, `exit 1 on tampering\n${context}`);
  assert.match(run.out[0] ?? '', /^TAMPERED: \d+ problem\(s\) found\.$/, context);
  const badIndexLine = run.out.find((line) => line.startsWith('First bad index: '));
  const findings = run.out.slice(1).flatMap((line) => {
    const match = /^ {2}([a-z_]+): (.+)$/.exec(line);
    return match === null ? [] : [{ kind: match[1]!, message: match[2]! }];
  });
  assert.ok(findings.length > 0, `lists the problems\n${context}`);
  return {
    firstBadIndex: badIndexLine === undefined ? undefined : Number(badIndexLine.slice('First bad index: '.length)),
    findings,
    kinds: [...new Set(findings.map((finding) => finding.kind))].sort(),
  };
}

function assertVerified(run: CliRun, entries: number): void {
  assert.equal(run.code, 0, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.out[0] ?? '', new RegExp(`^OK: ${entries} entries and \\d+ checkpoints verified\\.$`));
}

// ---------------------------------------------------------------------------
// What the intruder does, in SQL.

/** The append-only triggers refuse edits; an intruder with the database drops them first. */
async function dropAppendOnlyTriggers(log: AuditLogFixture): Promise<void> {
  if (log.driver === 'sqlite') {
    await log.sql('DROP TRIGGER audit_entries_no_update');
    await log.sql('DROP TRIGGER audit_entries_no_delete');
  } else {
    await log.sql('DROP TRIGGER audit_entries_append_only ON audit_entries');
    await log.sql('DROP TRIGGER audit_entries_no_truncate ON audit_entries');
  }
}

async function setEntry(log: AuditLogFixture, index: number, entry: Uint8Array): Promise<void> {
  await log.sql('UPDATE audit_entries SET entry = $1 WHERE idx = $2', [Buffer.from(entry), index]);
}

async function setHead(log: AuditLogFixture, size: number): Promise<void> {
  await log.sql('UPDATE audit_head SET size = $1 WHERE id = 1', [size]);
}

/** Moves entries with idx >= from by `by` (either sign), through a far offset so no two rows ever share an idx mid-statement. */
async function shiftEntries(log: AuditLogFixture, from: number, by: number): Promise<void> {
  const far = 1_000_000;
  await log.sql('UPDATE audit_entries SET idx = idx + $1 WHERE idx >= $2', [far, from]);
  await log.sql('UPDATE audit_entries SET idx = idx - $1 WHERE idx >= $2', [far - by, far]);
}

/** Entry 17 with its outcome flipped: still canonical JSON, same length, one word changed. */
function flippedEntry17(log: AuditLogFixture): Uint8Array {
  const original = decoder.decode(log.entries[17]);
  assert.ok(original.includes('"outcome":"success"'), original);
  return encoder.encode(original.replace('"outcome":"success"', '"outcome":"failure"'));
}

/** Every complete-subtree node (level, idx) of a tree over `leaves`, as the ledger stores them. */
function treeNodes(leaves: readonly Uint8Array[]): { level: number; index: number; hash: Uint8Array }[] {
  const nodes: { level: number; index: number; hash: Uint8Array }[] = [];
  let level = 0;
  let row = leaves.map(leafHash);
  while (row.length > 0) {
    row.forEach((hash, index) => nodes.push({ level, index, hash }));
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < row.length; i += 2) next.push(nodeHash(row[i]!, row[i + 1]!));
    row = next;
    level += 1;
  }
  return nodes;
}

function originOf(verifierKey: string): string {
  return verifierKey.slice(0, verifierKey.indexOf('+'));
}

async function checkpointNotes(log: AuditLogFixture): Promise<{ id: number; size: number; note: string }[]> {
  const rows = await log.sql<{ id: number | string; size: number | string; note: string }>('SELECT id, size, note FROM audit_checkpoints ORDER BY id');
  return rows.map((row) => ({ id: Number(row.id), size: Number(row.size), note: row.note }));
}

// ---------------------------------------------------------------------------

for (const driver of auditDrivers) {
  describe(`audit verify catches an intruder with SQL access (${driver})`, () => {
    it('the intact log verifies with the pinned key, the key file and the saved checkpoint; the database refuses edits while its triggers stand', async () => {
      await withLog(driver, async (log, saved) => {
        const pinned = await verify(log, '--key', saved.verifierKey);
        assertVerified(pinned, 40);
        assert.deepEqual(pinned.out, [
          'OK: 40 entries and 3 checkpoints verified.',
          `Latest verified checkpoint: size 40, root ${saved.checkpoint.split('\n')[2]}.`,
        ]);
        assert.deepEqual(pinned.err, [], 'no warning with a pinned key');
        const withFiles = await verify(log, '--key-file', saved.keyFile, '--trusted', saved.checkpointFile);
        assertVerified(withFiles, 40);
        assert.match(withFiles.out[0]!, /and 4 checkpoints verified/, 'the trusted checkpoint is checked too');

        // The append-only triggers stop an UPDATE, a DELETE (and, on PostgreSQL, a TRUNCATE).
        await assert.rejects(setEntry(log, 17, flippedEntry17(log)), /append-only/);
        await assert.rejects(log.sql('DELETE FROM audit_entries WHERE idx = 12'), /append-only/);
        if (driver === 'postgres') await assert.rejects(log.sql('TRUNCATE audit_entries'), /append-only/);
        assertVerified(await verify(log, '--key', saved.verifierKey), 40);
      });
    });

    it('1. a modified entry (17: success -> failure) is named exactly: root_mismatch at 17', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await setEntry(log, 17, flippedEntry17(log));
        const run = await verify(log, '--key', saved.verifierKey);
        const report = tampered(run);
        assert.equal(report.firstBadIndex, 17);
        assert.deepEqual(report.kinds, ['root_mismatch']);
        assert.equal(report.findings.length, 2, 'the checkpoints of size 25 and 40 no longer match; 10 still does');
        for (const finding of report.findings) assert.match(finding.message, /entry 17 differs from its stored leaf hash/);

        const json = await verify(log, '--key', saved.verifierKey, '--json');
        assert.equal(json.code, 1);
        const parsed = JSON.parse(json.stdout) as { ok: boolean; entries: number; firstBadIndex: number; problems: { kind: string; index: number; checkpointSize: number }[]; latest: { size: number } };
        assert.equal(parsed.ok, false);
        assert.equal(parsed.entries, 40);
        assert.equal(parsed.firstBadIndex, 17);
        assert.deepEqual(
          parsed.problems.map(({ kind, index, checkpointSize }) => ({ kind, index, checkpointSize })),
          [
            { kind: 'root_mismatch', index: 17, checkpointSize: 25 },
            { kind: 'root_mismatch', index: 17, checkpointSize: 40 },
          ],
        );
        assert.equal(parsed.latest.size, 10, 'the last checkpoint that still holds');

        if (driver === 'sqlite') {
          // The same verdict from the real binary, as an operator runs it.
          const binary = await runBinary(['audit', 'verify', '--config', log.configFile, '--key', saved.verifierKey], { cwd: log.dir });
          assert.equal(binary.code, 1, binary.stderr);
          assert.match(binary.stdout, /^TAMPERED: 2 problem\(s\) found\.\nFirst bad index: 17\n {2}root_mismatch: /);
          assert.equal(binary.stderr, '');
        }
      });
    });

    it('2. a modified entry whose level-0 node is rewritten to match is still caught (root_mismatch at the range start, 10)', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        const forged = flippedEntry17(log);
        await setEntry(log, 17, forged);
        await log.sql('UPDATE audit_nodes SET hash = $1 WHERE level = 0 AND idx = 17', [Buffer.from(leafHash(forged))]);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.deepEqual(report.kinds, ['root_mismatch']);
        assert.equal(report.firstBadIndex, 10, 'the stored leaf hashes cannot name the entry: the range after the last good checkpoint (10) is reported');
        for (const finding of report.findings) assert.match(finding.message, /a bad entry lies in \[10, (25|40)\).*node rows were rewritten/);
      });
    });

    it('3. a deleted entry with the later ones shifted down and the head fixed is caught at 12', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await log.sql('DELETE FROM audit_entries WHERE idx = 12');
        await shiftEntries(log, 13, -1);
        await setHead(log, 39);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.equal(report.firstBadIndex, 12);
        assert.deepEqual(report.kinds, ['rollback', 'root_mismatch'], 'the log is one short of the checkpoint of 40, and 25 no longer matches');
        assert.ok(report.findings.some((finding) => finding.kind === 'root_mismatch' && /entry 12 differs/.test(finding.message)));
      });
    });

    it('4. a deleted entry leaving a hole is caught as a gap at 12', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await log.sql('DELETE FROM audit_entries WHERE idx = 12');
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.equal(report.firstBadIndex, 12);
        assert.ok(report.kinds.includes('gap'), report.kinds.join());
        assert.ok(report.findings.some((finding) => finding.kind === 'gap' && finding.message === 'entry 12 is missing'));
        assert.ok(report.kinds.includes('size_mismatch'), 'the head still says 40');
      });
    });

    it('5. an inserted entry (forged at 20, the rest shifted up, the head bumped) is caught at 20', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await shiftEntries(log, 20, 1);
        const forged = encoder.encode(decoder.decode(log.entries[19]).replace('"requestId":"req-19"', '"requestId":"req-19b"'));
        await log.sql('INSERT INTO audit_entries (idx, entry, recorded_at) VALUES ($1, $2, $3)', [20, Buffer.from(forged), 0]);
        await setHead(log, 41);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.equal(report.firstBadIndex, 20);
        assert.deepEqual(report.kinds, ['root_mismatch']);
        assert.ok(report.findings.every((finding) => /entry 20 differs/.test(finding.message)));
      });
    });

    it('6. reordered entries (5 and 6 swapped) are caught at 5', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await setEntry(log, 5, log.entries[6]!);
        await setEntry(log, 6, log.entries[5]!);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.equal(report.firstBadIndex, 5);
        assert.deepEqual(report.kinds, ['root_mismatch']);
        assert.equal(report.findings.length, 3, 'no checkpoint holds any more: 10, 25 and 40 all cover entry 5');
      });
    });

    it('7a. a checkpoint forged with another key for the same origin is caught as bad_signature', async () => {
      await withLog(driver, async (log, saved) => {
        const origin = originOf(saved.verifierKey);
        const impostor = parseSignerKey(generateSignerKey(origin).signerKey);
        // It vouches for a log where entry 17 says "failure".
        const rewritten = log.entries.map((entry, i) => (i === 17 ? flippedEntry17(log) : entry));
        const root = rootHash(rewritten.map(leafHash));
        const note = signCheckpoint({ origin, size: 40, rootHash: root, time: 1_900_000_000 }, impostor);
        await log.sql('INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES ($1, $2, $3, $4)', [40, Buffer.from(root), note, 1_900_000_000_000]);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.deepEqual(report.kinds, ['bad_signature']);
        assert.equal(report.findings.length, 1);
        assert.match(report.findings[0]!.message, /not signed by log key id\.example\.com\/audit \(forged\)/);
        assert.equal(report.firstBadIndex, undefined, 'a forged note names no entry');
      });
    });

    it("7b. a stored checkpoint whose root or size was edited in the note's text is caught as bad_signature", async () => {
      await withLog(driver, async (log, saved) => {
        const notes = await checkpointNotes(log);
        assert.deepEqual(notes.map((note) => note.size), [10, 25, 40]);
        const [ten, twentyFive, forty] = notes;
        // The root of the checkpoint of 25 replaced by the one of 40, in the note and in the column.
        const rootOf = (note: string) => note.split('\n')[2]!;
        const editedRoot = twentyFive!.note.replace(`\n${rootOf(twentyFive!.note)}\n`, `\n${rootOf(forty!.note)}\n`);
        assert.notEqual(editedRoot, twentyFive!.note);
        await log.sql('UPDATE audit_checkpoints SET note = $1, root_hash = $2 WHERE id = $3', [editedRoot, Buffer.from(rootOf(forty!.note), 'base64'), twentyFive!.id]);
        // The size of the checkpoint of 10 made 9.
        const editedSize = ten!.note.replace(/^(.*)\n10\n/, '$1\n9\n');
        assert.notEqual(editedSize, ten!.note);
        await log.sql('UPDATE audit_checkpoints SET note = $1, size = 9 WHERE id = $2', [editedSize, ten!.id]);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.deepEqual(report.kinds, ['bad_signature']);
        assert.equal(report.findings.length, 2, 'both edited notes, and only those');
        for (const finding of report.findings) assert.match(finding.message, /signature/);
      });
    });

    it('8a. a rolled-back log (last 10 entries and their nodes deleted, head 30) is caught: the stored checkpoint says 40', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await log.sql('DELETE FROM audit_entries WHERE idx >= 30');
        // Every node whose subtree reaches past entry 29.
        await log.sql('DELETE FROM audit_nodes WHERE (idx + 1) * (1 << level) > 30');
        await setHead(log, 30);
        const report = tampered(await verify(log, '--key', saved.verifierKey));
        assert.deepEqual(report.kinds, ['rollback']);
        assert.equal(report.firstBadIndex, 30);
        assert.match(report.findings[0]!.message, /size 40 covers more than the 30 entries/);
      });
    });

    it('8b. rolled back together with the checkpoints beyond it, the log verifies; only the saved checkpoint (--trusted) catches it', async () => {
      await withLog(driver, async (log, saved) => {
        await dropAppendOnlyTriggers(log);
        await log.sql('DELETE FROM audit_entries WHERE idx >= 30');
        await log.sql('DELETE FROM audit_nodes WHERE (idx + 1) * (1 << level) > 30');
        await setHead(log, 30);
        await log.sql('DELETE FROM audit_checkpoints WHERE size > 30');

        // Why a user keeps a checkpoint: the store alone now tells a consistent, shorter story.
        const unaware = await verify(log, '--key', saved.verifierKey);
        assertVerified(unaware, 30);
        assert.deepEqual(unaware.out, [
          'OK: 30 entries and 2 checkpoints verified.',
          `Latest verified checkpoint: size 25, root ${(await checkpointNotes(log))[1]!.note.split('\n')[2]}.`,
          '5 newer entries are not covered by a checkpoint yet.',
        ]);

        const report = tampered(await verify(log, '--key', saved.verifierKey, '--trusted', saved.checkpointFile));
        assert.deepEqual(report.kinds, ['rollback']);
        assert.equal(report.firstBadIndex, 30);
        assert.match(report.findings[0]!.message, /^the trusted checkpoint of size 40 covers more than the 30 entries/);
      });
    });

    it('9. a replaced log key with a rewritten, re-signed log is caught with --key pinned or --trusted; unpinned, the CLI warns and is fooled', async () => {
      await withLog(driver, async (log, saved) => {
        const origin = originOf(saved.verifierKey);
        const generated = generateSignerKey(origin);
        const impostor = parseSignerKey(generated.signerKey);
        await dropAppendOnlyTriggers(log);
        // Rewrite history: entry 17, every tree node, every checkpoint, and the key record.
        const rewritten = log.entries.map((entry, i) => (i === 17 ? flippedEntry17(log) : entry));
        await setEntry(log, 17, rewritten[17]!);
        for (const node of treeNodes(rewritten)) {
          await log.sql('UPDATE audit_nodes SET hash = $1 WHERE level = $2 AND idx = $3', [Buffer.from(node.hash), node.level, node.index]);
        }
        await log.sql('DELETE FROM audit_checkpoints');
        for (const size of [10, 25, 40]) {
          const root = rootHash(rewritten.slice(0, size).map(leafHash));
          const note = signCheckpoint({ origin, size, rootHash: root, time: 1_800_000_000 + size }, impostor);
          await log.sql('INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES ($1, $2, $3, $4)', [size, Buffer.from(root), note, 1_800_000_000_000]);
        }
        const [record] = await log.sql<{ data: string | Record<string, unknown> }>("SELECT data FROM records WHERE collection = 'audit' AND id = 'log-key'");
        const data = typeof record!.data === 'string' ? (JSON.parse(record!.data) as Record<string, unknown>) : record!.data;
        assert.equal(data['verifierKey'], saved.verifierKey);
        await log.sql("UPDATE records SET data = $1 WHERE collection = 'audit' AND id = 'log-key'", [JSON.stringify({ ...data, verifierKey: generated.verifierKey })]);

        // Unpinned, the verifier takes the store's word for the key: it warns, and the rewrite passes.
        const unpinned = await verify(log);
        assertVerified(unpinned, 40);
        assert.equal(unpinned.err.length, 1, unpinned.stderr);
        assert.match(unpinned.err[0]!, /^warning: using the log key the source itself provides \(.+\); pin it with --key so a replaced key is caught$/);
        assert.ok(unpinned.err[0]!.includes(generated.verifierKey), 'the warning shows the key it used: the replaced one');

        // Pinned (on the command line or from the key file), every checkpoint is forged.
        for (const pin of [['--key', saved.verifierKey], ['--key-file', saved.keyFile]]) {
          const run = await verify(log, ...pin);
          const report = tampered(run);
          assert.deepEqual(report.kinds, ['bad_signature']);
          assert.equal(report.findings.length, 3);
          assert.equal(run.err.length, 1, run.stderr);
          assert.match(run.err[0]!, /^warning: the source's log key \(.+\) is not the one you pinned: the key may have been replaced$/);
        }

        // The saved checkpoint catches it even unpinned: it does not verify with the replaced key...
        const trustedOnly = tampered(await verify(log, '--trusted', saved.checkpointFile));
        assert.deepEqual(trustedOnly.kinds, ['trusted_unverifiable']);
        // ...and pinned as well, it shows the entries are not the ones signed.
        const both = tampered(await verify(log, '--key', saved.verifierKey, '--trusted', saved.checkpointFile));
        assert.deepEqual(both.kinds, ['bad_signature', 'root_mismatch']);
        assert.ok(both.findings.some((finding) => finding.kind === 'root_mismatch' && /^the trusted checkpoint of size 40 does not match/.test(finding.message)));
      });
    });
  });
}

describe('audit verify reads only what it is given', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('an unreadable --trusted file or --key-file is one line and exit 1, before the store is opened', async () => {
    const config = join(dir, 'portcullis.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data') }));
    const trusted = await runCli(['audit', 'verify', '--config', config, '--trusted', join(dir, 'missing.txt')]);
    assert.equal(trusted.code, 1);
    assert.deepEqual(trusted.err, [`portcullis: cannot read trusted checkpoint ${join(dir, 'missing.txt')} (ENOENT)`]);
    const keyFile = await runCli(['audit', 'verify', '--config', config, '--key-file', join(dir, 'missing.vkey')]);
    assert.equal(keyFile.code, 1);
    assert.deepEqual(keyFile.err, [`portcullis: cannot read key file ${join(dir, 'missing.vkey')} (ENOENT)`]);
  });
});
