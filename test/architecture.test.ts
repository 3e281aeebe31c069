/**
 * Architecture rules (docs/architecture.md): which module may import which
 * (the table below is the single source; a new edge is a design decision and
 * is added here and in the document together), no import cycles between
 * files, modules reach each other only through their index.ts, only
 * src/store/ touches a database driver, and the public entry points stay free
 * of server-side code.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '../src');
const DRIVERS = new Set(['pg', 'ioredis', 'node:sqlite']);

/**
 * module -> the modules it may import. Read from the bottom up: a module
 * lists only modules above it in this table, so the edges cannot form a
 * circle (checked below as well).
 */
const ALLOWED_EDGES: Readonly<Record<string, readonly string[]>> = {
  crypto: [],
  config: ['crypto'],
  observability: ['config'],
  store: ['config'],
  events: ['store'],
  hooks: [],
  net: [],
  tokens: ['crypto', 'store', 'events'],
  audit: ['crypto', 'store', 'events', 'observability'],
  sdk: [],
  pki: ['config', 'crypto', 'store', 'events', 'tokens', 'sdk'],
  signals: ['config', 'crypto', 'store', 'events', 'tokens', 'sdk', 'net'],
  plugins: ['config', 'store', 'events', 'hooks', 'net'],
  identity: ['config', 'crypto', 'store', 'events', 'hooks', 'audit', 'observability'],
  oauth: ['config', 'crypto', 'store', 'events', 'hooks', 'tokens', 'audit', 'identity', 'pki', 'net'],
  privacy: ['config', 'crypto', 'store', 'events', 'tokens', 'audit', 'identity', 'oauth', 'signals', 'sdk', 'net', 'observability'],
  runtime: ['config', 'crypto', 'store', 'events', 'hooks', 'tokens', 'audit', 'identity', 'oauth', 'pki', 'signals', 'plugins', 'privacy', 'observability'],
  server: ['config', 'store', 'events', 'hooks', 'audit', 'identity', 'oauth', 'pki', 'signals', 'sdk', 'privacy', 'observability', 'runtime'],
  cli: ['config', 'crypto', 'store', 'tokens', 'audit', 'identity', 'oauth', 'pki', 'plugins', 'privacy', 'runtime', 'server'],
};

/**
 * Public entry points (package.json `exports`) -> the npm packages they may
 * import besides their own files and node: built-ins. The SDK verifies JOSE
 * with `jose` (never a JOSE implementation of its own) and speaks WebSocket
 * with `ws`; the Merkle tree stays dependency-free.
 */
const PUBLIC_ENTRY_DIRECTORIES: Readonly<Record<string, readonly string[]>> = { 'audit/merkle': [], sdk: ['jose', 'ws'] };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** Every module specifier a file names, static and dynamic, type-only included. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((match) => match[1]!);
}

const moduleOf = (file: string) => relative(SRC, file).split(sep)[0]!;
const isTopLevelFile = (file: string) => relative(SRC, file).split(sep).length === 1;
const FILES = sourceFiles(SRC);

/** file -> the source files it imports (relative specifiers only). */
const GRAPH = new Map(
  FILES.map((file) => [
    file,
    imports(file)
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => resolve(dirname(file), specifier)),
  ]),
);

it('a module imports another only through its index.ts', () => {
  const violations: string[] = [];
  for (const [file, targets] of GRAPH) {
    for (const target of targets) {
      if (moduleOf(target) !== moduleOf(file) && !isTopLevelFile(target) && !target.endsWith(`${sep}index.ts`)) {
        violations.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

it('every module is in the table of allowed edges, and the table names only modules that exist', () => {
  const modules = new Set(FILES.filter((file) => !isTopLevelFile(file)).map(moduleOf));
  assert.deepEqual([...modules].filter((name) => !(name in ALLOWED_EDGES)), [], 'a new module needs its row in ALLOWED_EDGES and in docs/architecture.md');
  assert.deepEqual(Object.keys(ALLOWED_EDGES).filter((name) => !modules.has(name)), [], 'a row for a module that does not exist');
});

it('modules import only the modules the table allows', () => {
  const violations = new Set<string>();
  for (const [file, targets] of GRAPH) {
    if (isTopLevelFile(file)) continue;
    for (const target of targets) {
      const from = moduleOf(file);
      const to = moduleOf(target);
      if (from !== to && !(ALLOWED_EDGES[from] ?? []).includes(to)) violations.add(`${from} -> ${to} (${relative(SRC, file)})`);
    }
  }
  assert.deepEqual([...violations], []);
});

it('the table of allowed edges itself has no circle: each module lists only modules above it', () => {
  const order = Object.keys(ALLOWED_EDGES);
  const late = Object.entries(ALLOWED_EDGES).flatMap(([from, targets]) => targets.filter((to) => order.indexOf(to) >= order.indexOf(from)).map((to) => `${from} -> ${to}`));
  assert.deepEqual(late, []);
});

it('no import cycle between files (type-only imports included)', () => {
  // Tarjan's strongly connected components; any component of more than one
  // file, or a file importing itself, is a cycle.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const visit = (file: string): void => {
    index.set(file, next);
    low.set(file, next);
    next++;
    stack.push(file);
    onStack.add(file);
    for (const target of GRAPH.get(file) ?? []) {
      if (!GRAPH.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(relative(SRC, member));
      } while (member !== file);
      if (component.length > 1 || (GRAPH.get(file) ?? []).includes(file)) cycles.push(component.sort());
    }
  };
  for (const file of GRAPH.keys()) if (!index.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

it('only src/store/ imports a database driver', () => {
  const violations = FILES.filter((file) => moduleOf(file) !== 'store').flatMap((file) =>
    imports(file)
      .filter((s) => DRIVERS.has(s))
      .map((s) => `${relative(SRC, file)} -> ${s}`),
  );
  assert.deepEqual(violations, []);
});

it('public entry points import only their own files, node: built-ins and their listed packages (sdk: jose and ws)', () => {
  const violations: string[] = [];
  for (const [directory, packages] of Object.entries(PUBLIC_ENTRY_DIRECTORIES)) {
    const root = join(SRC, directory);
    assert.ok(existsSync(join(root, 'index.ts')), `${directory}/index.ts exists`);
    for (const file of sourceFiles(root)) {
      for (const specifier of imports(file)) {
        const own = specifier.startsWith('.') && !relative(root, resolve(dirname(file), specifier)).startsWith('..');
        if (!own && !specifier.startsWith('node:') && !packages.includes(specifier)) violations.push(`${relative(SRC, file)} -> ${specifier}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
