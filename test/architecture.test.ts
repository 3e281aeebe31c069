/**
 * Architecture rules (DESIGN.md "Layout"): modules reach each other only
 * through their index.ts, and only src/store/ touches a database driver.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '../src');
const DRIVERS = new Set(['pg', 'ioredis', 'node:sqlite']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((match) => match[1]!);
}

const moduleOf = (file: string) => relative(SRC, file).split(sep)[0]!;

it('a module imports another only through its index.ts', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const specifier of imports(file).filter((s) => s.startsWith('.'))) {
      const target = resolve(dirname(file), specifier);
      if (moduleOf(target) !== moduleOf(file) && relative(SRC, target).split(sep).length > 1 && !target.endsWith(`${sep}index.ts`)) {
        violations.push(`${relative(SRC, file)} -> ${specifier}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

it('only src/store/ imports a database driver', () => {
  const violations = sourceFiles(SRC)
    .filter((file) => moduleOf(file) !== 'store')
    .flatMap((file) => imports(file).filter((s) => DRIVERS.has(s)).map((s) => `${relative(SRC, file)} -> ${s}`));
  assert.deepEqual(violations, []);
});
