/**
 * Attacks from inside a plugin (issue 14), each against a real child started
 * by `startSandbox`: tiny plugins written to a temporary directory try to
 * escape, and the host checks both what the plugin saw (ERR_ACCESS_DENIED)
 * and, where it can, that nothing happened outside (no file written, no
 * connection accepted, no variable seen). Each test fails if the protection
 * it names is removed from spawn.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClosedError, RpcDeadlineError, RpcError, METHOD_NOT_FOUND } from '../../src/plugins/sandbox/json-rpc.ts';
import { SandboxSetupError, sandboxCommand, startSandbox, type Sandbox, type SandboxOptions, type SandboxViolation } from '../../src/plugins/sandbox/spawn.ts';

const root = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-sandbox-')));
after(() => rmSync(root, { recursive: true, force: true }));

/** Writes a plugin whose module is `source` and returns its directory. */
function plugin(name: string, source: string): string {
  const directory = join(root, name);
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, 'index.mjs'), source);
  return directory;
}

function sandbox(directory: string, options: Partial<SandboxOptions> = {}): Sandbox & { violations: SandboxViolation[] } {
  const violations: SandboxViolation[] = [];
  const box = startSandbox({
    directory,
    entry: 'index.mjs',
    limits: { memoryMb: 64, callTimeoutMs: 5000 },
    onViolation: (violation) => violations.push(violation),
    ...options,
  });
  return Object.assign(box, { violations });
}

/** The probe plugin: `hook.probe` runs one named attempt and reports its value or its error code. */
const PROBE = `
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const attempts = {
  readOwn: () => fs.readFileSync(new URL('./data.txt', import.meta.url), 'utf8'),
  readPasswd: () => fs.readFileSync('/etc/passwd', 'utf8'),
  readPath: ({ path }) => fs.readFileSync(path, 'utf8'),
  writeOwn: () => fs.writeFileSync(new URL('./written.txt', import.meta.url), 'x'),
  writeTmp: ({ path }) => fs.writeFileSync(path, 'x'),
  childProcess: () => require('node:child_process').execFileSync('/bin/sh', ['-c', 'echo escaped']).toString(),
  worker: () => new (require('node:worker_threads').Worker)('1', { eval: true }),
  binding: () => process.binding('fs'),
  socket: ({ port }) => new Promise((resolve, reject) => {
    const socket = require('node:net').connect(port, '127.0.0.1');
    socket.on('connect', () => { socket.end(); resolve('connected'); });
    socket.on('error', reject);
  }),
  fetch: async ({ port }) => { try { return (await fetch('http://127.0.0.1:' + port + '/')).status; } catch (error) { throw error.cause ?? error; } },
  evalString: () => eval('1 + 1'),
  env: () => Object.keys(process.env),
  hostCall: ({ method }) => host.call(method, { id: 'u1' }),
};
let host;
export const hooks = {
  probe: async (params, hostApi) => {
    host = hostApi;
    try { return { ok: true, value: await attempts[params.attempt](params) }; }
    catch (error) { return { ok: false, code: error.code ?? error.message }; }
  },
};
`;

describe('plugin sandbox: what a plugin may not do', () => {
  let probeDirectory: string;
  let box: ReturnType<typeof sandbox>;
  let server: Server;
  let port: number;
  let accepted = 0;
  const declared = join(root, 'declared.txt');
  const undeclared = join(root, 'undeclared.txt');

  before(async () => {
    process.env.PORTCULLIS_SANDBOX_TEST_SECRET = 'must-not-leak';
    probeDirectory = plugin('probe', PROBE);
    writeFileSync(join(probeDirectory, 'data.txt'), 'own data');
    writeFileSync(declared, 'declared data');
    writeFileSync(undeclared, 'undeclared data');
    server = createServer((socket) => {
      accepted++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    box = sandbox(probeDirectory, { readPaths: [declared], hostMethods: { 'users.read': (params) => ({ user: params }) } });
    assert.deepEqual(await box.ready, ['probe']);
  });
  after(async () => {
    delete process.env.PORTCULLIS_SANDBOX_TEST_SECRET;
    box.close();
    await box.exited;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const probe = (attempt: string, params: Record<string, unknown> = {}) => box.call('hook.probe', { attempt, ...params }) as Promise<{ ok: boolean; value?: unknown; code?: string }>;

  it('the command line: --permission, read access to the runtime, the plugin SDK file, the plugin and declared paths only, no grant flag, the caps', () => {
    const { command, args } = sandboxCommand({ directory: probeDirectory, entry: 'index.mjs', readPaths: [declared], limits: { memoryMb: 64, callTimeoutMs: 1000 } });
    assert.equal(command, process.execPath);
    assert.ok(args.includes('--permission'));
    assert.deepEqual(args.filter((arg) => arg.startsWith('--allow-')), [`--allow-fs-read=${join(import.meta.dirname, '../../src/plugins/sandbox')}`, `--allow-fs-read=${join(import.meta.dirname, '../../src/sdk/plugin/index.ts')}`, `--allow-fs-read=${probeDirectory}`, `--allow-fs-read=${declared}`]);
    assert.ok(args.includes('--max-old-space-size=64'));
    assert.ok(args.includes('--disallow-code-generation-from-strings'));
  });

  it('an entry outside the plugin directory is refused before anything starts', () => {
    assert.throws(() => sandboxCommand({ directory: probeDirectory, entry: '../declared.txt', limits: { memoryMb: 64, callTimeoutMs: 1000 } }), /not inside/);
  });

  it('a symlink out of the readable paths: Node follows it under --permission, so the sandbox refuses to start the plugin', () => {
    const directory = plugin('linked', 'export const hooks = { read: () => 1 };');
    symlinkSync('/etc/passwd', join(directory, 'passwd'));
    // The platform finding this check exists for: the link is readable under a grant of its directory.
    const direct = spawnSync(process.execPath, ['--permission', `--allow-fs-read=${directory}`, '-e', `process.stdout.write(require('node:fs').readFileSync(${JSON.stringify(join(directory, 'passwd'))}, 'utf8').slice(0, 5))`], { env: {}, encoding: 'utf8' });
    assert.equal(direct.stdout, 'root:', direct.stderr);
    let started: Sandbox | undefined;
    try {
      assert.throws(() => (started = startSandbox({ directory, entry: 'index.mjs', limits: { memoryMb: 64, callTimeoutMs: 1000 } })), (error: unknown) => error instanceof SandboxSetupError && /leads out/.test(error.message));
    } finally {
      started?.kill();
    }
    // A link that stays inside the readable paths is fine.
    const inside = plugin('linked-inside', 'export const hooks = { read: () => 1 };');
    symlinkSync(join(inside, 'index.mjs'), join(inside, 'alias.mjs'));
    assert.doesNotThrow(() => sandboxCommand({ directory: inside, entry: 'index.mjs', readPaths: [declared], limits: { memoryMb: 64, callTimeoutMs: 1000 } }));
  });

  it('reads its own directory and a declared path (the controls)', async () => {
    assert.deepEqual(await probe('readOwn'), { ok: true, value: 'own data' });
    assert.deepEqual(await probe('readPath', { path: declared }), { ok: true, value: 'declared data' });
  });

  it('reading /etc/passwd or an undeclared file is refused', async () => {
    assert.deepEqual(await probe('readPasswd'), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await probe('readPath', { path: undeclared }), { ok: false, code: 'ERR_ACCESS_DENIED' });
  });

  it('writing anywhere is refused, its own directory included, and no file appears', async () => {
    assert.deepEqual(await probe('writeOwn'), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await probe('writeTmp', { path: join(root, 'escaped.txt') }), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.equal(existsSync(join(probeDirectory, 'written.txt')), false);
    assert.equal(existsSync(join(root, 'escaped.txt')), false);
  });

  it('child_process, worker_threads and process.binding are refused', async () => {
    assert.deepEqual(await probe('childProcess'), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await probe('worker'), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await probe('binding'), { ok: false, code: 'ERR_ACCESS_DENIED' });
  });

  it('a raw socket and fetch are refused, and no connection reaches the listening server', async () => {
    const before = accepted;
    assert.deepEqual(await probe('socket', { port }), { ok: false, code: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await probe('fetch', { port }), { ok: false, code: 'ERR_ACCESS_DENIED' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(accepted, before);
  });

  it('eval is refused (code generation from strings)', async () => {
    const result = await probe('evalString');
    assert.equal(result.ok, false);
    assert.match(String(result.code), /Code generation from strings disallowed/);
  });

  it('the environment is empty: a PORTCULLIS_* variable of the host is not seen', async () => {
    assert.equal(process.env.PORTCULLIS_SANDBOX_TEST_SECRET, 'must-not-leak');
    const result = await probe('env');
    assert.deepEqual(result, { ok: true, value: [] });
  });

  it('a listed host method answers; an undeclared one is -32601 and reported', async () => {
    assert.deepEqual(await probe('hostCall', { method: 'users.read' }), { ok: true, value: { user: { id: 'u1' } } });
    const refused = await probe('hostCall', { method: 'users.delete' });
    assert.deepEqual(refused, { ok: false, code: METHOD_NOT_FOUND });
    assert.deepEqual(box.violations.map((v) => [v.kind, 'method' in v ? v.method : undefined]), [['method-not-found', 'users.delete']]);
  });

  it('a hook the plugin does not serve is -32601', async () => {
    await assert.rejects(box.call('hook.token.claims', {}), (error: unknown) => error instanceof RpcError && error.code === METHOD_NOT_FOUND);
  });
});

describe('plugin sandbox: resource attacks leave the host serving', () => {
  it('an infinite loop: the call\'s deadline rejects it, and the host\'s event loop stays responsive meanwhile', { timeout: 20_000 }, async () => {
    const box = sandbox(plugin('loop', 'export const hooks = { spin: () => { for (;;) {} } };'));
    await box.ready;
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    const started = Date.now();
    await assert.rejects(box.call('hook.spin', {}, { timeoutMs: 300 }), RpcDeadlineError);
    clearInterval(interval);
    assert.ok(Date.now() - started < 2000, 'rejected near its deadline');
    assert.ok(ticks >= 10, `the host ran its timers (${ticks})`);
    assert.equal(box.exit, undefined, 'the child is left running; killing is the supervisor\'s decision');
    box.kill();
    assert.equal((await box.exited).signal, 'SIGKILL');
  });

  it('a plugin that never finishes loading (a loop at its top level) is killed at its start deadline', { timeout: 20_000 }, async () => {
    const box = sandbox(plugin('stuck', 'for (;;) {}\nexport const hooks = {};'), { limits: { memoryMb: 64, callTimeoutMs: 1000, startTimeoutMs: 300 } });
    await assert.rejects(box.ready, /not ready within 300 ms/);
    assert.equal((await box.exited).signal, 'SIGKILL');
  });

  it('a memory bomb: the child dies at its heap cap, the pending call rejects, the host sees the exit', { timeout: 60_000 }, async () => {
    const box = sandbox(plugin('bomb', 'export const hooks = { bomb: () => { const hoard = []; for (let i = 0; ; i++) hoard.push({ i, s: "x".repeat(64) + i }); } };'), {
      limits: { memoryMb: 32, callTimeoutMs: 10_000 },
    });
    await box.ready;
    try {
      // Without the cap the heap grows to the default limit and the deadline passes first (RpcDeadlineError).
      await assert.rejects(box.call('hook.bomb', {}), RpcClosedError);
    } finally {
      box.kill();
    }
    const exit = await box.exited;
    assert.ok(exit.code !== 0 || exit.signal !== null, JSON.stringify(exit));
    assert.match(box.stderrTail, /heap/i);
  });

  it('an oversized message (a 1 GiB frame header): the channel closes at once, the call rejects, the child is killed', { timeout: 20_000 }, async () => {
    const source = `
import { writeSync } from 'node:fs';
export const hooks = { huge: () => { const header = Buffer.alloc(4); header.writeUInt32BE(2 ** 30); writeSync(1, header); writeSync(1, Buffer.alloc(65536)); return new Promise(() => {}); } };`;
    const box = sandbox(plugin('huge', source), { limits: { memoryMb: 64, callTimeoutMs: 10_000, maxMessageBytes: 4096 } });
    await box.ready;
    await assert.rejects(box.call('hook.huge', {}), RpcClosedError);
    assert.deepEqual(box.violations.map((v) => v.kind), ['message-too-large']);
    const exit = await box.exited;
    assert.equal(exit.signal, 'SIGKILL');
  });

  it('stray console output of a plugin goes to stderr, not into the channel', async () => {
    const box = sandbox(plugin('chatty', 'export const hooks = { talk: () => { console.log("hello from the plugin"); process.stdout.write("raw write\\n"); return "answered"; } };'));
    await box.ready;
    assert.equal(await box.call('hook.talk', {}), 'answered');
    box.close();
    await box.exited;
    assert.match(box.stderrTail, /hello from the plugin/);
    assert.match(box.stderrTail, /raw write/);
    assert.deepEqual(box.violations, []);
  });
});

describe('plugin sandbox: read paths that reach the host\'s secrets', () => {
  const limits = { memoryMb: 64, callTimeoutMs: 1000 };
  const secrets = join(root, 'secrets');
  const dataDir = join(secrets, 'data');
  let directory: string;

  before(() => {
    directory = plugin('reader', 'export const hooks = { read: () => 1 };');
    mkdirSync(join(dataDir, '..x'), { recursive: true });
    writeFileSync(join(dataDir, 'master.key'), 'k'.repeat(43));
    mkdirSync(join(secrets, 'data-backup'), { recursive: true });
    writeFileSync(join(secrets, 'database.txt'), 'not a secret');
    symlinkSync(dataDir, join(root, 'innocent-link'));
    symlinkSync(dataDir, join(root, 'data-link'));
    symlinkSync('/proc/self/environ', join(root, 'environ-link'));
  });

  const refusedWith = (readPaths: string[], deniedPaths: string[], pattern: RegExp) =>
    assert.throws(
      () => sandboxCommand({ directory, entry: 'index.mjs', readPaths, deniedPaths, limits }),
      (error: unknown) => error instanceof SandboxSetupError && pattern.test(error.message) && error.message.includes(readPaths.at(-1)!),
      readPaths.join(', '),
    );

  it('a declared path inside a denied path, equal to it, or containing it is refused before anything starts', () => {
    for (const path of [join(dataDir, 'master.key'), dataDir, join(dataDir, '..x'), secrets, root]) refusedWith([path], [dataDir], /is, contains or is inside a path the host protects/);
    // /tmp/x when /tmp/x/data is denied: the grant would reach the data below it.
    refusedWith([join(secrets, 'data-backup'), secrets], [dataDir], /protects/);
  });

  it('symlinks resolve first, both ways: a link to the denied path, and a denied path named through a link', () => {
    refusedWith([join(root, 'innocent-link')], [dataDir], /protects/);
    refusedWith([join(dataDir, 'master.key')], [join(root, 'data-link')], /protects/);
  });

  it('the message names the declared path, not the protected one', () => {
    assert.throws(
      () => sandboxCommand({ directory, entry: 'index.mjs', readPaths: [secrets], deniedPaths: [join(dataDir, 'master.key')], limits }),
      (error: unknown) => error instanceof SandboxSetupError && error.message.includes(secrets) && !error.message.includes('master.key'),
    );
  });

  it('/, /proc, /sys, /dev are refused whatever the host denies: the host process\'s environment is /proc/<pid>/environ', () => {
    // The attack: the server's own environment (PID 1 in a container) holds the master key and the database URL.
    const environ = `/proc/${process.pid}/environ`;
    // The platform finding: granted that file, a child under --permission reads the host's environment as it started.
    const direct = spawnSync(process.execPath, ['--permission', `--allow-fs-read=${environ}`, '-e', `process.stdout.write(String(require('node:fs').readFileSync(${JSON.stringify(environ)}, 'latin1').includes('=')))`], { env: {}, encoding: 'utf8' });
    assert.equal(direct.stdout, 'true', direct.stderr);
    let started: Sandbox | undefined;
    try {
      assert.throws(
        () => (started = startSandbox({ directory, entry: 'index.mjs', readPaths: [environ], limits })),
        (error: unknown) => error instanceof SandboxSetupError && /no plugin may read/.test(error.message),
      );
    } finally {
      started?.kill();
    }
    const kernel = ['/proc/self/environ', '/proc/1/environ', '/sys/kernel', '/dev/null', '/'].filter((path) => existsSync(path));
    for (const path of kernel) refusedWith([path], [], /no plugin may read \(\/, \/proc, \/sys, \/dev\)/);
    // A link the manifest cannot see through: /tmp/environ-link -> /proc/self/environ.
    refusedWith([join(root, 'environ-link')], [], /no plugin may read/);
  });

  it('names that only share a prefix with a denied path are allowed (segments, not strings)', () => {
    assert.doesNotThrow(() => sandboxCommand({ directory, entry: 'index.mjs', readPaths: [join(secrets, 'data-backup'), join(secrets, 'database.txt')], deniedPaths: [dataDir], limits }));
    // A denied path that does not exist yet is still denied: as written, and through a link above it.
    refusedWith([secrets], [join(secrets, 'not-yet', 'tls.key')], /protects/);
    refusedWith([dataDir], [join(root, 'data-link', 'not-yet', 'tls.key')], /protects/);
  });
});
