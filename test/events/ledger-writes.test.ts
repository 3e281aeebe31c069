/**
 * Issue 11 section 4: the ledger writes; no feature imports it to write.
 * Features emit domain events; only src/audit (the ledger and its
 * projection) records entries.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../src');
/** Feature modules: they emit, they never hold the ledger. */
const FEATURES = ['identity', 'oauth', 'tokens', 'events'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
}

it('no module outside src/audit calls ledger.record or recordAll', () => {
  const violations = sourceFiles(SRC)
    .filter((file) => !relative(SRC, file).startsWith('audit'))
    .filter((file) => /\bledger\??\.record(All)?\s*\(/i.test(readFileSync(file, 'utf8')))
    .map((file) => relative(SRC, file));
  assert.deepEqual(violations, []);
});

it('no feature module imports the Ledger', () => {
  const violations = FEATURES.flatMap((feature) => sourceFiles(join(SRC, feature)))
    .filter((file) => /import[^;]*\bLedger\b[^;]*from '[./]+audit\/index\.ts'/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(SRC, file));
  assert.deepEqual(violations, []);
});
