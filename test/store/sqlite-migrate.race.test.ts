/**
 * Two (here four) processes that start together on one SQLite file apply
 * each migration exactly once: BEGIN IMMEDIATE serialises them.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { migrations } from '../../src/store/migrations/index.ts';
import { BIN, within } from '../support/process.ts';

function migrate(cwd: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, 'migrate'], { cwd, env: { PATH: process.env['PATH'] ?? '' } });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

it('four `portcullis migrate` processes at once on one SQLite file apply each migration once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-sqlite-race-'));
  // `migrate` migrates an existing database and never creates one (first-hour D7): start from an empty file.
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'portcullis.db'), '');
  try {
    const results = await within(Promise.all(Array.from({ length: 4 }, () => migrate(dir))), 30_000, 'four migrate processes');
    assert.deepEqual(results.map((r) => r.code), [0, 0, 0, 0]);
    const appliedLines = results.flatMap((r) => r.stdout.split('\n').filter((line) => line.trim().startsWith('applied ')));
    assert.equal(appliedLines.length, migrations.length, 'each migration is reported applied by exactly one process');
    const db = new DatabaseSync(join(dir, 'data', 'portcullis.db'));
    try {
      const rows = db.prepare('SELECT version, COUNT(*) AS n FROM portcullis_migrations GROUP BY version ORDER BY version').all() as { version: number; n: number }[];
      assert.deepEqual(rows.map((row) => [row.version, row.n]), migrations.map((m) => [m.version, 1]));
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
