/**
 * The crypto core is a bottom layer and the only holder of the master key
 * (issue 11 section 2). The module edge table of test/architecture.test.ts
 * covers modules in general; these are the rules this layer promises.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

function imports(file: string): string[] {
  // `from '…'`, `import '…'`, `import('…')`; not a method call such as Buffer.from('…').
  return [...readFileSync(file, 'utf8').matchAll(/(?<![.\w])(?:from\s+|import\s*\(\s*|import\s+)'([^']+)'/g)].map((match) => match[1]!);
}

const moduleOf = (file: string) => relative(SRC, file).split(sep)[0]!;

function modulesImportedBy(module: string): Set<string> {
  const found = new Set<string>();
  for (const file of sourceFiles(join(SRC, module))) {
    for (const specifier of imports(file).filter((s) => s.startsWith('.'))) found.add(moduleOf(resolve(dirname(file), specifier)));
  }
  found.delete(module);
  return found;
}

it('src/crypto imports only node: built-ins and its own files', () => {
  const violations = sourceFiles(join(SRC, 'crypto')).flatMap((file) =>
    imports(file)
      .filter((specifier) => !specifier.startsWith('node:') && !(specifier.startsWith('.') && moduleOf(resolve(dirname(file), specifier)) === 'crypto'))
      .map((specifier) => `${relative(SRC, file)} -> ${specifier}`),
  );
  assert.deepEqual(violations, []);
});

it('audit and tokens do not import each other (the circle through the log key and the keyring ledger is gone)', () => {
  assert.ok(!modulesImportedBy('audit').has('tokens'), 'audit imports tokens');
  assert.ok(!modulesImportedBy('tokens').has('audit'), 'tokens imports audit');
});

it('only src/crypto handles the master key; elsewhere it is only the name of a setting', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC).filter((file) => !['crypto', 'config'].includes(moduleOf(file)))) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        // `config.masterKey` / `masterKeyFile` are the settings (config/schema.ts), read only to say where the key comes from.
        const bare = line.replace(/config\.masterKey\b/g, '').replace(/\bmasterKeyFile\b/g, '');
        if (/\bmasterKey\b|\bderiveKey\b|\bsealSecret\b|\bopenSecret\b|\bloadMasterKey\b/.test(bare)) violations.push(`${relative(SRC, file)}:${index + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(violations, []);
});
