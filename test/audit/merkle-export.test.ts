/**
 * The package subpath `portcullis/audit/merkle` works for a consumer: the
 * merkle module is compiled with the options of tsconfig.build.json to the
 * paths `npm run build` would emit, laid out as an installed package in a
 * temporary node_modules, then imported by a separate Node process through
 * the package.json "exports" map, and type-checked through its "types"
 * condition. (Transpiling the one file keeps this fast; `npm run typecheck`
 * already type-checks it.)
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '../..');
const MERKLE_SOURCE = join(ROOT, 'src/audit/merkle/index.ts');

let consumerDir = '';
let packageDir = '';
let emitted: string[] = [];

before(() => {
  consumerDir = mkdtempSync(join(tmpdir(), 'portcullis-merkle-export-'));
  packageDir = join(consumerDir, 'node_modules', 'portcullis');
  mkdirSync(packageDir, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(packageDir, 'package.json'));
  writeFileSync(join(consumerDir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));

  const build = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.build.json'), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => assert.fail(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')),
  });
  assert.ok(build);
  // Where the build puts this file's outputs, relative to the package root.
  emitted = ts.getOutputFileNames(build, MERKLE_SOURCE, false).map((file) => relative(ROOT, file).replaceAll('\\', '/'));
  const source = readFileSync(MERKLE_SOURCE, 'utf8');
  // transpileModule does not read package.json, whose "type": "module" makes
  // nodenext emit ES modules in the real build; an .mts name tells it the same.
  const options = { compilerOptions: build.options, fileName: MERKLE_SOURCE.replace(/\.ts$/, '.mts'), reportDiagnostics: true };
  const javascript = ts.transpileModule(source, options);
  const declarations = ts.transpileDeclaration(source, options);
  assert.deepEqual([...(javascript.diagnostics ?? []), ...(declarations.diagnostics ?? [])], []);
  const write = (file: string, text: string): void => {
    mkdirSync(dirname(join(packageDir, file)), { recursive: true });
    writeFileSync(join(packageDir, file), text);
  };
  write('dist/audit/merkle/index.js', javascript.outputText);
  write('dist/audit/merkle/index.d.ts', declarations.outputText);
});

after(() => {
  if (consumerDir) rmSync(consumerDir, { recursive: true, force: true });
});

it('tsconfig.build.json emits dist/audit/merkle/index.js and index.d.ts, where "exports" points', () => {
  assert.ok(emitted.includes('dist/audit/merkle/index.js'), emitted.join(', '));
  assert.ok(emitted.includes('dist/audit/merkle/index.d.ts'), emitted.join(', '));
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  assert.deepEqual(manifest.exports['./audit/merkle'], { types: './dist/audit/merkle/index.d.ts', default: './dist/audit/merkle/index.js' });
  assert.equal(manifest.exports['./package.json'], './package.json');
});

it("a consumer imports 'portcullis/audit/merkle' at run time", async () => {
  const script = `
    import { rootHash, leafHash, verifyInclusion, inclusionProof } from 'portcullis/audit/merkle';
    import pkg from 'portcullis/package.json' with { type: 'json' };
    const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
      .map((h) => leafHash(Buffer.from(h, 'hex')));
    const root = rootHash(leaves);
    console.log(JSON.stringify({
      name: pkg.name,
      root: Buffer.from(root).toString('hex'),
      verified: verifyInclusion(leaves[5], 5, 8, inclusionProof(5, leaves), root),
    }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: consumerDir });
  assert.deepEqual(JSON.parse(stdout), {
    name: 'portcullis',
    // The 8-leaf root of the Certificate Transparency test vectors (see merkle.test.ts).
    root: '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    verified: true,
  });
});

it("a TypeScript consumer gets the declarations through the 'types' condition", () => {
  const consumer = join(consumerDir, 'consumer.ts');
  writeFileSync(
    consumer,
    [
      "import { rootHash, leafHash, completeSubtrees, type ProofNode } from 'portcullis/audit/merkle';",
      'const root: Uint8Array = rootHash([leafHash(new Uint8Array())]);',
      'const node: ProofNode = { start: 0, end: 1 };',
      'export const levels: number[] = completeSubtrees(node.start, node.end).map((s) => s.level);',
      'export { root };',
      '// @ts-expect-error rootHash takes leaf hashes, not a string',
      "rootHash('not hashes');",
    ].join('\n'),
  );
  const program = ts.createProgram([consumer], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    lib: ['lib.es2023.d.ts'],
    types: [],
    strict: true,
    noEmit: true,
  });
  const resolved = program.getSourceFiles().map((file) => file.fileName);
  assert.ok(
    resolved.some((name) => name.endsWith('node_modules/portcullis/dist/audit/merkle/index.d.ts')),
    'resolved through the exports map to the emitted declarations',
  );
  assert.deepEqual(
    ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    [],
  );
});
