/**
 * The public packages as a user gets them. `npm pack` runs prepack (a clean
 * build with tsconfig.build.json) and writes the tarball; `npm install`
 * puts it into a scratch project outside the repository, with the
 * dependencies package.json declares and nothing else; a separate Node
 * process then imports each entry the "exports" map names:
 *
 *   portcullis/audit/merkle  the RFC 9162 Merkle tree (hash, compact range, proofs)
 *   portcullis/sdk           the resource-server SDK (createVerifier, adapters, DPoP fetch) and the signals vocabulary
 *   portcullis/sdk/mtls      mutual TLS with SPIFFE X509-SVIDs (agent, server options, SPIFFE IDs)
 *   portcullis/sdk/signals   the SSF receiver side (SET verification, push endpoint, poll and WebSocket clients)
 *   portcullis/sdk/plugin    writing a plugin (definePlugin, typed host calls); one file, loaded inside the plugin sandbox
 *
 * Each entry is imported under Node's permission model with read access to
 * its own dist/ directory and the package.json only, so an entry that pulled
 * in a server module (store, config, keys) or a dependency would fail to
 * load; a static walk of the emitted imports names the offending edge. The
 * signals entry is the one exception, and a narrow one: it may also read its
 * sibling SDK files (dist/sdk/) and the packages `jose` and `ws`.
 *
 * The install resolves the declared dependencies like any user's
 * (--prefer-offline: from the npm cache when it holds them, else from the
 * registry) and skips their install scripts (--ignore-scripts), which no
 * entry needs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { isBuiltin } from 'node:module';
import ts from 'typescript';
import type * as SandboxSpawn from '../../src/plugins/sandbox/spawn.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

/** The public entries: subpath -> the directory of dist/ its import graph must stay in. */
const ENTRIES = { './audit/merkle': 'dist/audit/merkle', './sdk': 'dist/sdk', './sdk/mtls': 'dist/sdk/mtls', './sdk/signals': 'dist/sdk/signals', './sdk/plugin': 'dist/sdk/plugin' } as const;
/** Entries whose import graph may go wider than their own directory: the directory it must stay in, and the packages it may import. */
const WIDER_SCOPE: Partial<Record<keyof typeof ENTRIES, { readonly directory: string; readonly packages: readonly string[] }>> = {
  './sdk': { directory: 'dist/sdk', packages: ['jose', 'ws'] },
  './sdk/signals': { directory: 'dist/sdk', packages: ['jose', 'ws'] },
};

let scratch = '';
let consumer = '';
let installed = '';
let packedFiles: string[] = [];

/**
 * npm's environment without the npm_* variables of an enclosing `npm test`
 * (npm_config_prefix and friends would point the scratch install at the
 * repository), and with this Node first on PATH so npm, prepack and tsc run
 * on the pinned Node.
 */
function npmEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  env.PATH = [dirname(process.execPath), join(ROOT, 'node_modules/.bin'), process.env.PATH ?? ''].join(':');
  env.npm_config_update_notifier = 'false';
  return env;
}

before(
  async () => {
    scratch = mkdtempSync(join(tmpdir(), 'portcullis-packed-'));
    const tarballs = join(scratch, 'tarball');
    consumer = join(scratch, 'consumer');
    mkdirSync(tarballs);
    mkdirSync(consumer);
    const env = npmEnvironment();
    const packed = await run('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 });
    // prepack's own output goes to stdout before the JSON report.
    const report = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('\n[') + 1)) as { filename: string; files: { path: string }[] }[];
    assert.equal(report.length, 1);
    packedFiles = report[0]!.files.map((file) => file.path);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--prefer-offline', '--ignore-scripts', join(tarballs, report[0]!.filename)], {
      cwd: consumer,
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    installed = join(consumer, 'node_modules', 'portcullis');
  },
  { timeout: 300_000 },
);

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs `source` as an ES module in the consumer project; with `readable`, under the permission model with read access to those paths only. */
async function runConsumer(source: string, readable?: readonly string[]): Promise<string> {
  const script = join(consumer, `consumer-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, source);
  const permission = readable === undefined ? [] : ['--permission', ...[script, ...readable].map((path) => `--allow-fs-read=${path}`)];
  const { stdout } = await run(process.execPath, [...permission, script], { cwd: consumer });
  return stdout;
}

/** What an entry may read at run time: the package manifest (for the exports map), its own directory and its packages. */
function entryReadable(directory: string, packages: readonly string[] = []): string[] {
  return [join(installed, 'package.json'), `${join(installed, directory)}${sep}`, ...packages.map((name) => `${join(consumer, 'node_modules', name)}${sep}`)];
}

/**
 * The files reachable from `directory`/index.js of the package at
 * `packageDir` through static imports, re-exports and import() calls (as
 * TypeScript's scanner finds them), and every edge that leaves `directory`
 * or names anything but a node: built-in.
 */
function importGraph(packageDir: string, directory: string, scope: { directory: string; packages: readonly string[] } = { directory, packages: [] }): { files: string[]; outside: string[] } {
  const base = join(packageDir, scope.directory);
  const seen = new Set<string>();
  const outside: string[] = [];
  const pending = [join(packageDir, directory, 'index.js')];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const { fileName: specifier } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      const target = resolve(dirname(file), specifier);
      if (specifier.startsWith('.') ? !target.startsWith(`${base}${sep}`) : !((specifier.startsWith('node:') && isBuiltin(specifier)) || scope.packages.includes(specifier))) {
        outside.push(`${relative(packageDir, file)} -> ${specifier}`);
      } else if (specifier.startsWith('.')) pending.push(target);
    }
  }
  return { files: [...seen].map((file) => relative(packageDir, file)).sort(), outside };
}

/** What 'portcullis/sdk/signals' exports at run time. */
const SIGNALS_EXPORTS = [
  'PollRequestError',
  'SET_ALGORITHMS',
  'SET_ERROR_CODES',
  'SetVerificationError',
  'SignalSocketError',
  'SignalsUnavailableError',
  'SsfKeySet',
  'createPollClient',
  'createPushHandler',
  'createSignalSocket',
  'createSsfKeySet',
  'fetchSsfConfiguration',
  'staticKeySet',
  'verifySecurityEventToken',
];

interface Manifest {
  readonly exports: Record<string, string | { types: string; default: string }>;
  readonly dependencies: Record<string, string>;
}

describe('packages: the packed tarball', () => {
  it('ships every file the "exports" map names, which lists exactly the public entries and nothing from test/ or bench/', () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Manifest;
    assert.deepEqual(Object.keys(manifest.exports), ['./audit/merkle', './sdk', './sdk/mtls', './sdk/signals', './sdk/plugin', './package.json']);
    for (const [subpath, directory] of Object.entries(ENTRIES)) {
      assert.deepEqual(manifest.exports[subpath], { types: `./${directory}/index.d.ts`, default: `./${directory}/index.js` });
      for (const file of [`${directory}/index.js`, `${directory}/index.d.ts`]) {
        assert.ok(packedFiles.includes(file), `${file} is in the tarball`);
        assert.ok(existsSync(join(installed, file)), `${file} is installed`);
      }
    }
    assert.deepEqual(
      packedFiles.filter((file) => file.startsWith('test/') || file.startsWith('bench/')),
      [],
    );
    // The installed manifest is the repository's: what a user installs is what we test.
    const repository = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
    assert.deepEqual(manifest.exports, repository.exports);
    assert.deepEqual(manifest.dependencies, repository.dependencies);
  });

  it("'portcullis/audit/merkle' loads from its own directory alone and computes the RFC 9162 test vectors", async () => {
    const source = `
      import * as merkle from 'portcullis/audit/merkle';
      const { CompactRange, consistencyProof, inclusionProof, leafHash, rootHash, verifyConsistency, verifyInclusion } = merkle;
      const hex = (bytes) => Buffer.from(bytes).toString('hex');
      const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
        .map((h) => leafHash(Buffer.from(h, 'hex')));
      const root = rootHash(leaves);
      const root6 = rootHash(leaves.slice(0, 6));
      const range = new CompactRange();
      for (const leaf of leaves) range.append(leaf);
      const forged = root.slice();
      forged[0] ^= 1;
      console.log(JSON.stringify({
        exports: Object.keys(merkle).sort(),
        root: hex(root),
        rangeRoot: hex(range.root()),
        inclusion: hex(inclusionProof(5, leaves)[0]),
        included: verifyInclusion(leaves[5], 5, 8, inclusionProof(5, leaves), root),
        includedInForged: verifyInclusion(leaves[5], 5, 8, inclusionProof(5, leaves), forged),
        consistent: verifyConsistency(6, 8, root6, root, consistencyProof(6, leaves)),
      }));
    `;
    const output = JSON.parse(await runConsumer(source, entryReadable(ENTRIES['./audit/merkle']))) as Record<string, unknown>;
    assert.deepEqual(output, {
      exports: [
        'CompactRange',
        'EMPTY_ROOT',
        'completeSubtrees',
        'consistencyProof',
        'consistencyProofNodes',
        'emptyRoot',
        'equalHashes',
        'foldSubtrees',
        'inclusionProof',
        'inclusionProofNodes',
        'leafHash',
        'nodeHash',
        'rootHash',
        'verifyConsistency',
        'verifyInclusion',
      ],
      // The 8-leaf root of the Certificate Transparency test vectors (see test/audit/merkle.test.ts).
      root: '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
      rangeRoot: '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
      // kSHA256Paths {6, 8}: the sibling of leaf 5 is leaf 4.
      inclusion: 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      included: true,
      includedInForged: false,
      consistent: true,
    });
  });

  it("a CommonJS consumer can require('portcullis/audit/merkle') (require of an ES module without top-level await)", async () => {
    const script = join(consumer, 'consumer.cjs');
    writeFileSync(script, "const { rootHash, leafHash } = require('portcullis/audit/merkle'); console.log(Buffer.from(rootHash([leafHash(new Uint8Array())])).toString('hex'));");
    const { stdout } = await run(process.execPath, [script], { cwd: consumer });
    // kSHA256Roots[0]: the tree of the one empty input.
    assert.equal(stdout.trim(), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  });

  it('the permission sandbox is real: the merkle entry does not load with read access to another directory only', async () => {
    await assert.rejects(runConsumer("import 'portcullis/audit/merkle';", entryReadable(ENTRIES['./sdk'])), (error: Error & { stderr?: string }) => {
      assert.match(error.stderr ?? '', /ERR_ACCESS_DENIED/);
      return true;
    });
  });

  it("'portcullis/sdk' loads from its own directory and jose alone, and verifies an access token", async () => {
    const source = `
      import * as sdk from 'portcullis/sdk';
      import { exportJWK, generateKeyPair, SignJWT } from 'jose';
      const issuer = 'https://as.example.com';
      const audience = 'https://api.example.com';
      const { privateKey, publicKey } = await generateKeyPair('EdDSA');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA' };
      const fetch = async () => new Response(JSON.stringify({ keys: [jwk] }), { headers: { 'cache-control': 'max-age=60' } });
      const verifier = sdk.createVerifier({ issuer, audience, jwksUri: issuer + '/jwks', fetch });
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ iss: issuer, aud: audience, sub: 'u', client_id: 'c', jti: 'j', iat: now, exp: now + 60, scope: 'read' })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' }).sign(privateKey);
      const url = audience + '/x';
      const good = await verifier.verify({ method: 'GET', url, headers: { authorization: 'Bearer ' + token } });
      const none = await verifier.verify({ method: 'GET', url, headers: {} });
      console.log(JSON.stringify({ exports: Object.keys(sdk).sort(), good: good.ok && good.scopes, none: none.status }));
    `;
    const output = JSON.parse(await runConsumer(source, [...entryReadable(ENTRIES['./sdk'], WIDER_SCOPE['./sdk']!.packages)])) as Record<string, unknown>;
    assert.deepEqual(output, {
      exports: [
        'ACCESS_TOKEN_ALGORITHMS',
        'CAEP_EVENT_TYPE',
        'DELIVERY_METHODS',
        'DPOP_ALGORITHMS',
        'PORTCULLIS_EVENT_TYPE',
        'RISC_EVENT_TYPE',
        'RevocationList',
        'SECURITY_EVENT_TYPES',
        'SET_MEDIA_TYPE',
        'SET_TYP',
        'SIGNAL_SOCKET_CLOSE',
        'SSF_EVENT_TYPE',
        'VERIFY_ERRORS',
        'certificateThumbprint',
        'createDPoPFetch',
        'createVerifier',
        'createVerifierMiddleware',
        'fastifyVerifier',
      ],
      good: ['read'],
      none: 401,
    });
  });

  it("'portcullis/sdk/mtls' loads from its own directory alone and reads SPIFFE IDs", async () => {
    const source = `
      import * as mtls from 'portcullis/sdk/mtls';
      const allow = mtls.allowSpiffeIds(['spiffe://example.org/ns/prod/*']);
      let refused = '';
      try {
        mtls.parseSpiffeId('spiffe://example.org/ns/../admin');
      } catch (error) {
        refused = error.name;
      }
      console.log(JSON.stringify({
        exports: Object.keys(mtls).sort(),
        parsed: mtls.parseSpiffeId('spiffe://example.org/ns/prod/sa/billing'),
        allowed: allow('spiffe://example.org/ns/prod/sa/billing'),
        outside: allow('spiffe://example.org/ns/dev/sa/billing'),
        refused,
      }));
    `;
    const output = JSON.parse(await runConsumer(source, entryReadable(ENTRIES['./sdk/mtls']))) as Record<string, unknown>;
    assert.deepEqual(output, {
      exports: [
        'MtlsAgent',
        'MtlsMaterialError',
        'SpiffeIdForbiddenError',
        'allowSpiffeIds',
        'createMtlsAgent',
        'createMtlsServerOptions',
        'isSpiffeId',
        'parseSpiffeId',
        'requireSpiffeId',
        'spiffeIdOf',
      ],
      parsed: { trustDomain: 'example.org', path: '/ns/prod/sa/billing' },
      allowed: true,
      outside: false,
      refused: 'TypeError',
    });
  });

  it("'portcullis/sdk/signals' loads with read access to dist/sdk/, jose and ws only, and verifies a SET", async () => {
    const source = `
      import * as signals from 'portcullis/sdk/signals';
      import { SignJWT, exportJWK, generateKeyPair } from 'jose';
      const { privateKey, publicKey } = await generateKeyPair('EdDSA');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1' };
      const claims = { iss: 'https://tr.example.com', aud: 'rp', iat: 1767225600, jti: 'j1', events: { 'urn:example:event': {} } };
      const sign = (typ) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ, kid: 'k1' }).sign(privateKey);
      const options = { issuer: 'https://tr.example.com', audience: 'rp', keys: signals.staticKeySet({ keys: [jwk] }) };
      const event = await signals.verifySecurityEventToken(await sign('secevent+jwt'), options);
      const refused = await signals.verifySecurityEventToken(await sign('JWT'), options).catch((error) => error.code);
      console.log(JSON.stringify({ exports: Object.keys(signals).sort(), jti: event.jti, refused }));
    `;
    const readable = [join(installed, 'package.json'), `${join(installed, 'dist/sdk')}${sep}`, `${join(consumer, 'node_modules/jose')}${sep}`, `${join(consumer, 'node_modules/ws')}${sep}`];
    const output = JSON.parse(await runConsumer(source, readable)) as { exports: string[]; jti: string; refused: string };
    assert.deepEqual(output.exports, SIGNALS_EXPORTS);
    assert.equal(output.jti, 'j1');
    assert.equal(output.refused, 'invalid_request');
  });

  it("'portcullis/sdk/plugin' loads from its one file alone, and definePlugin's hooks answer the wire", async () => {
    const source = `
      import * as sdk from 'portcullis/sdk/plugin';
      const plugin = sdk.definePlugin({ hooks: { 'token.claims': async (ctx) => ({ claims: { acme_user: ctx.userId } }), 'login.before': async () => undefined } });
      const host = { call: async () => null };
      const claims = await plugin.hooks['token.claims']({ context: { userId: 'u1' }, claims: {} }, host);
      const pass = await plugin.hooks['login.before']({ context: { ip: '198.51.100.7' }, claims: {} }, host);
      console.log(JSON.stringify({ exports: Object.keys(sdk).sort(), claims, pass }));
    `;
    const output = JSON.parse(await runConsumer(source, [join(installed, 'package.json'), join(installed, 'dist/sdk/plugin/index.js')])) as Record<string, unknown>;
    assert.deepEqual(output, {
      exports: ['HOOK_POINTS', 'HostCallError', 'createPluginHost', 'definePlugin', 'toWireAnswer'],
      claims: { verdict: 'modify', claims: { acme_user: 'u1' } },
      pass: { verdict: 'pass' },
    });
  });

  it('the plugin sandbox of the installed dist/ maps portcullis/sdk/plugin to dist/sdk/plugin/index.js, its one readable file of dist/sdk', { timeout: 30_000 }, async () => {
    const { startSandbox } = (await import(pathToFileURL(join(installed, 'dist/plugins/sandbox/spawn.js')).href)) as typeof SandboxSpawn;
    const directory = join(scratch, 'sandboxed-plugin');
    mkdirSync(directory);
    writeFileSync(
      join(directory, 'index.js'),
      `import { readFileSync } from 'node:fs';
import { definePlugin } from 'portcullis/sdk/plugin';
export default definePlugin({ hooks: { 'login.before': async ({ path }) => { try { readFileSync(path); return { deny: 'read' }; } catch (error) { return { deny: error.code }; } } } });
`,
    );
    const box = startSandbox({ directory, entry: 'index.js', limits: { memoryMb: 64, callTimeoutMs: 5000 } });
    try {
      assert.deepEqual(await box.ready, ['login.before']);
      const attempt = (path: string) => box.call('hook.login.before', { context: { path }, claims: {} });
      assert.deepEqual(await attempt(join(installed, 'dist/sdk/plugin/index.js')), { verdict: 'deny', reason: 'read' });
      assert.deepEqual(await attempt(join(installed, 'dist/sdk/index.js')), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
      assert.deepEqual(await attempt(join(installed, 'src/sdk/plugin/index.ts')), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
    } finally {
      box.close();
      await box.exited;
    }
  });

  it('the emitted import graph of each entry stays inside its directory and reaches only node: built-ins beyond it', () => {
    for (const [subpath, directory] of Object.entries(ENTRIES)) {
      const { files, outside } = importGraph(installed, directory, WIDER_SCOPE[subpath as keyof typeof ENTRIES]);
      assert.deepEqual(outside, [], `${subpath} reaches outside ${directory}`);
      assert.ok(files.includes(`${directory}/index.js`));
    }
    // The walk follows re-exports: the merkle entry is split into modules.
    const merkle = importGraph(installed, ENTRIES['./audit/merkle']).files;
    for (const part of ['hash.js', 'compact-range.js', 'proof.js']) assert.ok(merkle.includes(`dist/audit/merkle/${part}`), `${part} in ${merkle.join(', ')}`);
  });

  it('the import graph walk catches an edge out of the entry (a copy of the merkle entry with a server import added)', () => {
    const mutant = join(scratch, 'mutant');
    cpSync(join(installed, ENTRIES['./audit/merkle']), join(mutant, ENTRIES['./audit/merkle']), { recursive: true });
    const proof = join(mutant, ENTRIES['./audit/merkle'], 'proof.js');
    writeFileSync(proof, `${readFileSync(proof, 'utf8')}\nexport { Ledger } from '../ledger.js';\nimport 'canonicalize';\n`);
    assert.deepEqual(importGraph(mutant, ENTRIES['./audit/merkle']).outside, [
      'dist/audit/merkle/proof.js -> ../ledger.js',
      'dist/audit/merkle/proof.js -> canonicalize',
    ]);
  });

  it("the package root and internal paths are not exported: 'portcullis' and deep imports fail with ERR_PACKAGE_PATH_NOT_EXPORTED", async () => {
    const source = `
      const codes = [];
      for (const specifier of ['portcullis', 'portcullis/audit/merkle/hash', 'portcullis/dist/audit/ledger.js', 'portcullis/dist/sdk/index.js', 'portcullis/sdk/mtls/agent', 'portcullis/sdk/plugin/index']) {
        try {
          await import(specifier);
          codes.push(specifier + ': imported');
        } catch (error) {
          codes.push(specifier + ': ' + error.code);
        }
      }
      console.log(JSON.stringify(codes));
    `;
    assert.deepEqual(JSON.parse(await runConsumer(source)), [
      'portcullis: ERR_PACKAGE_PATH_NOT_EXPORTED',
      'portcullis/audit/merkle/hash: ERR_PACKAGE_PATH_NOT_EXPORTED',
      'portcullis/dist/audit/ledger.js: ERR_PACKAGE_PATH_NOT_EXPORTED',
      'portcullis/dist/sdk/index.js: ERR_PACKAGE_PATH_NOT_EXPORTED',
      'portcullis/sdk/mtls/agent: ERR_PACKAGE_PATH_NOT_EXPORTED',
      'portcullis/sdk/plugin/index: ERR_PACKAGE_PATH_NOT_EXPORTED',
    ]);
  });

  it('the installed `portcullis` command runs from the compiled dist/ (Node strips no types under node_modules)', async () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { version: string };
    const bin = join(consumer, 'node_modules', '.bin', 'portcullis');
    assert.ok(existsSync(bin), 'npm linked the bin');
    const { stdout } = await run(process.execPath, [bin, '--version'], { cwd: consumer });
    assert.equal(stdout.trim(), manifest.version);
  });

  it("a TypeScript consumer gets each entry's declarations through the 'types' condition", () => {
    const file = join(consumer, 'consumer.ts');
    writeFileSync(
      file,
      [
        "import { CompactRange, rootHash, leafHash, completeSubtrees, type ProofNode, type SubtreeHash } from 'portcullis/audit/merkle';",
        'const root: Uint8Array = rootHash([leafHash(new Uint8Array())]);',
        'const node: ProofNode = { start: 0, end: 1 };',
        'const range = new CompactRange();',
        'range.append(root, (subtree: SubtreeHash) => subtree.level);',
        'export const levels: number[] = completeSubtrees(node.start, node.end).map((s) => s.level);',
        'export { root };',
        '// @ts-expect-error rootHash takes leaf hashes, not a string',
        "rootHash('not hashes');",
        "import { definePlugin, type HookContext } from 'portcullis/sdk/plugin';",
        "export const plugin = definePlugin({ hooks: { 'token.claims': async (ctx: HookContext<'token.claims'>) => ({ claims: { acme_user: ctx.userId } }) } });",
        '// @ts-expect-error a decision point takes no claims',
        "definePlugin({ hooks: { 'login.before': () => ({ claims: {} }) } });",
      ].join('\n'),
    );
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2023,
      lib: ['lib.es2023.d.ts'],
      types: [],
      strict: true,
      noEmit: true,
    });
    const resolved = program.getSourceFiles().map((source) => relative(installed, source.fileName));
    // The merkle and plugin entries need no Node types; 'portcullis/sdk' and 'portcullis/sdk/mtls' (node:crypto, node:tls, fetch's Response) are checked below.
    for (const directory of [ENTRIES['./audit/merkle'], ENTRIES['./sdk/plugin']]) assert.ok(resolved.includes(`${directory}/index.d.ts`), `resolved ${directory}/index.d.ts through the exports map`);
    assert.deepEqual(
      ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')),
      [],
    );
  });

  it("a TypeScript consumer of 'portcullis/sdk' and 'portcullis/sdk/mtls' (with @types/node, as any Node service has) gets their declarations", () => {
    const file = join(consumer, 'consumer-mtls.ts');
    writeFileSync(
      file,
      [
        "import { createServer } from 'node:https';",
        "import { allowSpiffeIds, createMtlsAgent, createMtlsServerOptions, requireSpiffeId, spiffeIdOf, type MtlsAgentOptions, type SpiffeId } from 'portcullis/sdk/mtls';",
        "const files = { certFile: 'cert.pem', keyFile: 'key.pem', caFile: 'ca.pem' };",
        "const options: MtlsAgentOptions = { ...files, keepAlive: true, onReload: (event) => void event.certificate.serialNumber };",
        'export const agent = () => createMtlsAgent(options);',
        'export function serve() {',
        "  const mtls = createMtlsServerOptions({ ...files, allow: ['spiffe://example.org/ns/prod/*'] });",
        "  const only = requireSpiffeId(allowSpiffeIds(['spiffe://example.org/ns/prod/sa/billing']));",
        '  const server = createServer(mtls.options, (req, res) => res.end(only(req)));',
        '  const detach: () => void = mtls.attach(server);',
        '  return { server, detach, id: spiffeIdOf(mtls.certificate) satisfies string | undefined };',
        '}',
        "export const parsed: SpiffeId = { trustDomain: 'example.org', path: '' };",
        '// @ts-expect-error the certificate file is required',
        "createMtlsAgent({ keyFile: 'key.pem', caFile: 'ca.pem' });",
        "import { createDPoPFetch, createVerifier, createVerifierMiddleware, type VerifyResult } from 'portcullis/sdk';",
        "const verifier = createVerifier({ issuer: 'https://as.example.com', audience: 'https://api.example.com', scopes: ['read'] });",
        "export const check = (): Promise<VerifyResult> => verifier.verify({ method: 'GET', url: 'https://api.example.com/x', headers: new Headers() });",
        "export const middleware = createVerifierMiddleware({ verifier, origin: 'https://api.example.com' });",
        "export const dpop = (keyPair: Parameters<typeof createDPoPFetch>[0]['keyPair']) => createDPoPFetch({ keyPair, alg: 'ES256' });",
        '// @ts-expect-error the audience is required',
        "createVerifier({ issuer: 'https://as.example.com' });",
      ].join('\n'),
    );
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2023,
      lib: ['lib.es2023.d.ts'],
      typeRoots: [join(ROOT, 'node_modules/@types')],
      types: ['node'],
      strict: true,
      noEmit: true,
    });
    const resolved = program.getSourceFiles().map((source) => relative(installed, source.fileName));
    assert.ok(resolved.includes(`${ENTRIES['./sdk/mtls']}/index.d.ts`), 'resolved the mtls declarations through the exports map');
    assert.ok(resolved.includes(`${ENTRIES['./sdk']}/index.d.ts`), 'resolved the sdk declarations through the exports map');
    assert.deepEqual(
      ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')),
      [],
    );
  });
});
