/**
 * Issue 14's attack list against a serving Portcullis: each attack is a
 * small signed plugin, installed and enabled through the registry while the
 * server runs, whose `access-token.claims` hook performs it when a token
 * request names the attack's scope (and passes otherwise, so one server
 * holds several of them). What is checked for each: what the request got
 * over HTTP (the plugin's own answer, a 403 with its reason, or the
 * documented 503 with Retry-After; never a 500, never a hang), what the
 * host recorded in the audit ledger, that nothing happened outside the
 * sandbox (no file, no connection), and that a normal token request
 * afterwards is served.
 *
 * The escapes (file system, processes, workers, addons, FFI, WASI,
 * bindings, signals, network) are refused by the sandbox inside the plugin's
 * process, where the host cannot see them: the plugin reports the error code
 * as its deny reason (`attack:<name>`), and, asked to let the error escape
 * (`attack:<name>:raw`), fails, which the host records as plugin.failed.
 * The sandbox itself is tested alone in sandbox-attacks.test.ts; here the
 * whole path is: install, supervisor, dispatcher, chains, token endpoint.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { PluginSlot } from '../../src/hooks/index.ts';
import { PluginHost, PluginRegistry, digestDirectory, generateSigningKey, parsePublicKey, parseSecretKey, publicKeyLine, signMessage } from '../../src/plugins/index.ts';
import type { ConfigInput } from '../../src/config/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { completeAuthorization, registerClient } from '../support/oauth-flow.ts';
import { tempDirectory } from '../support/plugin-packages.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const keys = generateSigningKey();
const secret = parseSecretKey(keys.secretKeyPem);
const trustedKey = publicKeyLine(parsePublicKey(keys.publicKeyFile));
const root = realpathSync(tempDirectory('portcullis-plugin-attacks-'));

/** A signed package directory (the signature beside it, as `plugin sign` writes it). */
function signedPackage(name: string, manifest: Record<string, unknown>, files: Record<string, string>): string {
  const directory = join(root, `${name}-${Math.random().toString(36).slice(2, 8)}`, name);
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify({ name, version: '1.0.0', entry: 'index.mjs', ...manifest }));
  for (const [path, text] of Object.entries(files)) writeFileSync(join(directory, path), text);
  const { digest } = digestDirectory(directory);
  writeFileSync(`${directory}.minisig`, signMessage(Buffer.from(digest, 'latin1'), secret, { trustedComment: `${name} 1.0.0` }));
  return directory;
}

interface LedgerEntry {
  readonly type: string;
  readonly outcome: string;
  readonly detail?: Record<string, unknown>;
}

/** The context of the server under test: its ledger, registry, host, and a client for client_credentials tokens. */
interface Harness {
  readonly server: TestServer;
  readonly registry: PluginRegistry;
  readonly host: PluginHost;
  readonly dataDir: string;
  /** A client_credentials token request for `scope` (the client may ask for every attack scope). */
  token(scope?: string): Promise<Response>;
  /** Installs and enables a package; resolves once its process runs. */
  enable(directory: string, name: string): Promise<void>;
  remove(name: string): Promise<void>;
  ledger(): Promise<LedgerEntry[]>;
  /** Waits (bounded) until the ledger holds an entry matching `match`; resolves with it. */
  entry(match: (entry: LedgerEntry) => boolean, what: string, ms?: number): Promise<LedgerEntry>;
}

async function harness(prefix: string, scopes: readonly string[], overrides: ConfigInput = {}): Promise<Harness> {
  const server = await startTestServer({ fixedPort: true, overrides: { ...overrides, plugins: { trustedKeys: [trustedKey], restartBackoffMs: 50, ...(overrides as { plugins?: object }).plugins } } });
  const config = server.running.runtime.get('config');
  const host = server.running.runtime.get('plugins')!;
  const registry = new PluginRegistry({ records: server.running.stores.durable.records, events: server.running.events, directory: join(config.dataDir, 'plugins'), trustedKeys: [trustedKey], clock: Date.now });
  const granted = ['probe:normal', ...scopes];
  await server.running.authorizationServer.resources.create({ uri: `https://${prefix}.example.com`, scopes: granted }, { actor: 'test' });
  const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: granted.join(' ') }, { allowedScopes: ['openid', ...granted], defaultSigningAlgorithm: 'EdDSA' });
  const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' });
  const authorization = `Basic ${Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64')}`;
  const ledger = async (): Promise<LedgerEntry[]> => {
    const log = server.running.stores.durable.auditLog;
    const size = await log.size();
    const rows = [];
    for (let start = 0; start < size; start += 1000) rows.push(...(await log.entries(start, Math.min(size, start + 1000))));
    return rows.map((row) => decodeEntry(row.entry) as unknown as LedgerEntry);
  };
  return {
    server,
    registry,
    host,
    dataDir: config.dataDir,
    token: (scope = 'probe:normal') =>
      fetch(`${server.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(), signal: AbortSignal.timeout(30_000) }),
    enable: async (directory, name) => {
      await registry.install(directory, { actor: 'test' });
      await registry.setEnabled(name, true, 'test');
      await host.reconcile();
      await host.plugin(name)!.whenRunning();
    },
    remove: async (name) => {
      await registry.remove(name, 'test');
      await host.reconcile();
    },
    ledger,
    entry: async (match, what, ms = 10_000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = (await ledger()).find(match);
        if (found !== undefined) return found;
        if (Date.now() > deadline) throw new Error(`no ledger entry: ${what}`);
        await delay(25);
      }
    },
  };
}

const json = async (response: Response) => (await response.json()) as Record<string, string>;

/** A token request the plugin answered with its own deny: 403 access_denied, its reason shown as it is. */
async function assertPluginAnswer(response: Response, reason: string): Promise<void> {
  const body = await json(response);
  assert.equal(response.status, 403, JSON.stringify(body));
  assert.deepEqual([body['error'], body['error_description']], ['access_denied', reason]);
}

/** A token request refused because a plugin failed: 503, Retry-After, and nothing of the plugin or the host in the answer. */
async function assertUnavailable(response: Response): Promise<void> {
  const body = await json(response);
  assert.equal(response.status, 503, JSON.stringify(body));
  assert.equal(response.headers.get('retry-after'), '1');
  assert.equal(body['error'], 'temporarily_unavailable');
  assert.doesNotMatch(body['error_description'] ?? '', /ERR_|Error|\/|stack|plugin/i);
}

async function assertServes(h: Harness): Promise<void> {
  const response = await h.token();
  const body = await json(response);
  assert.equal(response.status, 200, `a normal token request is served: ${JSON.stringify(body)}`);
  assert.equal(decodeJwt(body['access_token']!)['scope'], 'probe:normal');
}

/** A TCP listener that counts the connections it accepts. */
async function countingListener(): Promise<{ server: Server; port: number; accepted: () => number; sockets: Socket[] }> {
  let accepted = 0;
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    accepted++;
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, accepted: () => accepted, sockets };
}

/**
 * That the listener saw no connection from the plugin: a connection of the
 * test's own is accepted (connections are accepted in order, so one the
 * plugin had opened before would have been counted first), and it is the
 * only one since `before`.
 */
async function assertOnlyControlConnection(listener: Awaited<ReturnType<typeof countingListener>>, before: number): Promise<void> {
  const control = connect(listener.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    const deadline = Date.now() + 5000;
    const check = () => (listener.accepted() > before ? resolve() : Date.now() > deadline ? reject(new Error('the control connection was not accepted')) : void setImmediate(check));
    control.once('connect', check);
  });
  control.destroy();
  assert.equal(listener.accepted(), before + 1, 'no connection but the test\'s own control connection');
}

/** A plugin whose hook runs `attempt` (an async function expression, given `host`) for the scope `attack:<name>`. */
function attackPlugin(name: string, attempt: string, manifest: Record<string, unknown> = {}, files: Record<string, string> = {}): string {
  const source = `
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const NAME = ${JSON.stringify(name)};
const attempt = ${attempt};
/** What happened, as a deny reason: the error code (or the value, when the attempt got through). */
const shown = (text) => String(text).replace(/[^\\x20-\\x7e]/g, '?').slice(0, 150);
export const hooks = {
  'access-token.claims': async ({ context }, host) => {
    if (context.scopes.includes('attack:' + NAME + ':raw')) { await attempt(host); return { verdict: 'deny', reason: NAME + ': got through' }; }
    if (!context.scopes.includes('attack:' + NAME)) return { verdict: 'pass' };
    try {
      const value = await attempt(host);
      return { verdict: 'deny', reason: NAME + ': got through ' + shown(JSON.stringify(value) ?? 'undefined') };
    } catch (error) {
      return { verdict: 'deny', reason: NAME + ': ' + shown(error.code ?? error.message) };
    }
  },
};
`;
  return signedPackage(name, { hooks: ['access-token.claims'], claimsNamespace: `${name.replaceAll('-', '_')}_`, ...manifest }, { 'index.mjs': source, ...files });
}

describe('plugin attacks in a serving instance: escapes from the sandbox', () => {
  let h: Harness;
  let listener: Awaited<ReturnType<typeof countingListener>>;
  const outside = join(root, 'outside');
  const existing = join(outside, 'existing.txt');

  interface Escape {
    readonly name: string;
    readonly attempt: string;
    readonly expected: string;
    readonly manifest?: Record<string, unknown>;
    readonly files?: Record<string, string>;
  }
  // Filled in `before`: some attempts name paths and ports only known then.
  const escapes: Escape[] = [];
  const names = ['read-passwd', 'read-data-dir', 'write-file', 'child-process', 'worker-threads', 'native-addon', 'ffi', 'wasi', 'process-binding', 'signal-host', 'tcp-socket', 'global-fetch', 'http-fetch-unlisted', 'undeclared-host-call'];

  before(async () => {
    listener = await countingListener();
    mkdirSync(outside, { recursive: true });
    writeFileSync(existing, 'unchanged');
    h = await harness('escapes', names.flatMap((name) => [`attack:${name}`, `attack:${name}:raw`]));
    const dataDir = h.dataDir;
    const secrets = [join(dataDir, 'master.key'), join(dataDir, 'portcullis.db')];
    for (const path of secrets) assert.ok(existsSync(path), `${path} exists (the attack is real)`);
    const { port } = listener;
    escapes.push(
      { name: 'read-passwd', attempt: `async () => fs.readFileSync('/etc/passwd', 'utf8')`, expected: 'ERR_ACCESS_DENIED' },
      {
        name: 'read-data-dir',
        // The server's master key and database, the data directory's listing, and the installed copies of the plugins (its own parent).
        attempt: `async () => { const codes = new Set(); for (const read of [() => fs.readFileSync(${JSON.stringify(secrets[0])}), () => fs.readFileSync(${JSON.stringify(secrets[1])}), () => fs.readdirSync(${JSON.stringify(dataDir)}), () => fs.readdirSync(${JSON.stringify(join(dataDir, 'plugins'))}), () => fs.readdirSync(new URL('..', import.meta.url))]) { try { read(); codes.add('read'); } catch (error) { codes.add(error.code); } } if (codes.has('read')) return [...codes]; throw Object.assign(new Error(), { code: [...codes].join(',') }); }`,
        expected: 'ERR_ACCESS_DENIED',
      },
      {
        name: 'write-file',
        attempt: `async () => { const codes = new Set(); for (const write of [() => fs.writeFileSync(${JSON.stringify(join(outside, 'escaped.txt'))}, 'x'), () => fs.appendFileSync(${JSON.stringify(existing)}, ' changed'), () => fs.writeFileSync(new URL('./written.txt', import.meta.url), 'x'), () => fs.writeFileSync(${JSON.stringify(join(dataDir, 'planted.txt'))}, 'x'), () => fs.mkdirSync(${JSON.stringify(join(outside, 'made'))}), () => fs.openSync('/tmp/portcullis-plugin-escaped', 'w')]) { try { write(); codes.add('written'); } catch (error) { codes.add(error.code); } } if (codes.has('written')) return [...codes]; throw Object.assign(new Error(), { code: [...codes].join(',') }); }`,
        expected: 'ERR_ACCESS_DENIED',
      },
      { name: 'child-process', attempt: `async () => require('node:child_process').execFileSync('/bin/sh', ['-c', 'echo escaped']).toString()`, expected: 'ERR_ACCESS_DENIED' },
      { name: 'worker-threads', attempt: `async () => new (require('node:worker_threads').Worker)('1', { eval: true })`, expected: 'ERR_ACCESS_DENIED' },
      {
        // No real addon is built: the runtime refuses before it reads the file (--no-addons is checked first, so the code is ERR_DLOPEN_DISABLED).
        name: 'native-addon',
        attempt: `async () => { const codes = new Set(); for (const load of [() => process.dlopen({ exports: {} }, new URL('./addon.node', import.meta.url).pathname), () => require('./addon.node')]) { try { load(); codes.add('loaded'); } catch (error) { codes.add(error.code); } } if (codes.has('loaded')) return [...codes]; throw Object.assign(new Error(), { code: [...codes].join(',') }); }`,
        expected: 'ERR_DLOPEN_DISABLED',
        files: { 'addon.node': 'not really an ELF object' },
      },
      { name: 'ffi', attempt: `async () => (await import('node:ffi')).dlopen('libc.so.6', { getpid: { parameters: [], result: 'i32' } })`, expected: 'ERR_ACCESS_DENIED' },
      { name: 'wasi', attempt: `async () => new (await import('node:wasi')).WASI({ version: 'preview1' })`, expected: 'ERR_ACCESS_DENIED' },
      { name: 'process-binding', attempt: `async () => Object.keys(process.binding('fs'))`, expected: 'ERR_ACCESS_DENIED' },
      {
        // Signal 0 and the current priority: harmless probes of a power that would be anything but (SIGKILL or SIGSTOP to the server, or to its process group with pid 0).
        // Every way to the function is tried (the property, its ESM named exports); the TypeError is the plugin failing to assign process.kill (it is locked).
        // Signalling itself is refused too (process.kill is gone altogether: child.ts).
        name: 'signal-host',
        attempt: `async () => { const named = await import('node:process'); const { setPriority } = await import('node:os'); const codes = new Set(); for (const poke of [() => process.kill(process.pid, 0), () => process.kill(process.ppid, 0), () => process.kill(0, 0), () => process.kill(-1, 0), () => process._kill(process.ppid, 0), () => named.kill(process.ppid, 0), () => named.default.kill(process.ppid, 0), () => os.setPriority(process.ppid, os.getPriority(process.ppid)), () => setPriority(process.ppid, os.getPriority(process.ppid))]) { try { poke(); codes.add('signalled'); } catch (error) { codes.add(error.code); } } if (codes.has('signalled')) return [...codes]; try { process.kill = () => true; } catch (error) { codes.add(error.code ?? error.name); } throw Object.assign(new Error(), { code: [...codes].join(',') }); }`,
        expected: 'ERR_ACCESS_DENIED,TypeError',
      },
      {
        name: 'tcp-socket',
        attempt: `async () => new Promise((resolve, reject) => { const socket = net.connect(${port}, '127.0.0.1'); socket.on('connect', () => { socket.end(); resolve('connected'); }); socket.on('error', reject); })`,
        expected: 'ERR_ACCESS_DENIED',
      },
      { name: 'global-fetch', attempt: `async () => { try { return (await fetch('http://127.0.0.1:${port}/')).status; } catch (error) { throw error.cause ?? error; } }`, expected: 'ERR_ACCESS_DENIED' },
      {
        // Declared, but for another origin: the host refuses before connecting.
        name: 'http-fetch-unlisted',
        attempt: `async (host) => { try { return await host.call('http.fetch', { url: 'https://127.0.0.1:${port}/' }); } catch (error) { throw Object.assign(new Error(), { code: error.code + ' ' + (/origin_not_allowed|address_not_allowed/.exec(error.message)?.[0] ?? error.message) }); } }`,
        expected: '-32001 origin_not_allowed',
        manifest: { hostCalls: [{ name: 'http.fetch', origins: ['https://hooks.example.com'] }] },
      },
      { name: 'undeclared-host-call', attempt: `async (host) => host.call('users.read', { userId: 'u_anyone' })`, expected: '-32601' },
    );
    assert.deepEqual(escapes.map((escape) => escape.name), names);
    for (const escape of escapes) await h.enable(attackPlugin(escape.name, escape.attempt, escape.manifest, escape.files), escape.name);
  });
  after(async () => {
    await h?.server.close();
    for (const socket of listener?.sockets ?? []) socket.destroy();
    await new Promise<void>((resolve) => (listener ? listener.server.close(() => resolve()) : resolve()));
  });

  it('with every attack plugin enabled (each passing for other scopes), a normal token request is served', async () => {
    await assertServes(h);
  });

  for (const name of names) {
    it(`${name}: refused inside the sandbox (the plugin's answer shows the code); let escape, the failure is audited and answered 503; the host serves on`, async () => {
      const escape = escapes.find((candidate) => candidate.name === name)!;
      const acceptedBefore = listener.accepted();
      await assertPluginAnswer(await h.token(`attack:${name}`), `${name}: ${escape.expected}`);
      const failuresBefore = (await h.ledger()).filter((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === name).length;
      await assertUnavailable(await h.token(`attack:${name}:raw`));
      const failures = (await h.ledger()).filter((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === name);
      assert.equal(failures.length, failuresBefore + 1);
      assert.deepEqual([failures.at(-1)!.outcome, failures.at(-1)!.detail], ['denied', { plugin: name, hook: 'access-token.claims', failure: 'error', action: 'denied' }]);
      await assertOnlyControlConnection(listener, acceptedBefore);
      assert.equal(h.host.plugin(name)!.state, 'running', 'a refused attempt is not a crash');
      await assertServes(h);
    });
  }

  it('write-file: no file appeared and the existing one is unchanged', () => {
    assert.equal(existsSync(join(outside, 'escaped.txt')), false);
    assert.equal(existsSync(join(outside, 'made')), false);
    assert.equal(existsSync(join(h.dataDir, 'planted.txt')), false);
    assert.equal(existsSync('/tmp/portcullis-plugin-escaped'), false);
    assert.equal(readFileSync(existing, 'utf8'), 'unchanged');
    const installed = h.host.plugin('write-file')!.plugin.directory;
    assert.equal(existsSync(join(installed, 'written.txt')), false);
    assert.equal(digestDirectory(installed).digest, h.host.plugin('write-file')!.plugin.digest, 'its installed copy is as signed');
  });

  it('http-fetch-unlisted: each refused call is in the ledger as plugin.call, failure, with the code; an undeclared host call is a plugin.violation', async () => {
    const entries = await h.ledger();
    const calls = entries.filter((entry) => entry.type === 'plugin.call' && entry.detail?.['plugin'] === 'http-fetch-unlisted');
    assert.deepEqual(
      calls.map((entry) => [entry.outcome, entry.detail]),
      [
        ['failure', { plugin: 'http-fetch-unlisted', method: 'http.fetch', rpcError: -32001 }],
        ['failure', { plugin: 'http-fetch-unlisted', method: 'http.fetch', rpcError: -32001 }],
      ],
    );
    const violations = entries.filter((entry) => entry.type === 'plugin.violation' && entry.detail?.['plugin'] === 'undeclared-host-call');
    assert.deepEqual(
      violations.map((entry) => [entry.outcome, entry.detail]),
      [
        ['failure', { plugin: 'undeclared-host-call', violation: 'method-not-found', method: 'users.read', counted: true }],
        ['failure', { plugin: 'undeclared-host-call', violation: 'method-not-found', method: 'users.read', counted: true }],
      ],
    );
    assert.equal(entries.filter((entry) => entry.type === 'plugin.call' && entry.detail?.['plugin'] === 'undeclared-host-call').length, 0, 'an undeclared method is never called');
  });
});

/** A plugin serving access-token.claims whose hook runs `body` (statements, given `context`) for the scope `attack:<name>`, and passes otherwise. */
function resourcePlugin(name: string, body: string, manifest: Record<string, unknown> = {}, prelude = ''): string {
  const source = `
import { writeSync } from 'node:fs';
${prelude}
export const hooks = {
  'access-token.claims': async ({ context }) => {
    if (!context.scopes.includes(${JSON.stringify(`attack:${name}`)})) return { verdict: 'pass' };
    ${body}
  },
};
`;
  return signedPackage(name, { hooks: ['access-token.claims'], claimsNamespace: `${name.replaceAll('-', '_')}_`, ...manifest }, { 'index.mjs': source });
}

describe('plugin attacks in a serving instance: resources and the protocol', () => {
  let h: Harness;
  const names = ['memory-bomb', 'infinite-loop', 'huge-frame', 'huge-answer', 'forged-ids'];
  const DEADLINE_MS = 200;

  before(async () => {
    h = await harness('resources', names.map((name) => `attack:${name}`), { plugins: { maxMissedDeadlines: 2, quarantineCrashes: 10 } });
  });
  after(async () => {
    await h?.server.close();
  });

  const discoveryServes = async () => assert.equal((await fetch(`${h.server.url}/.well-known/openid-configuration`)).status, 200, 'the server answers meanwhile');
  const entriesOf = async (type: string, plugin: string) => (await h.ledger()).filter((entry) => entry.type === type && entry.detail?.['plugin'] === plugin);

  it('a memory bomb: the child dies at its heap cap, the request is answered 503 at once (not at the deadline); crash audited; restarted; the host serves', { timeout: 60_000 }, async () => {
    await h.enable(resourcePlugin('memory-bomb', `const hoard = []; for (let i = 0; ; i++) hoard.push({ i, text: 'x'.repeat(64) + i });`, { limits: { memoryMb: 16, deadlineMs: 10_000 } }), 'memory-bomb');
    const supervised = h.host.plugin('memory-bomb')!;
    const firstPid = supervised.status().pid;
    const started = performance.now();
    const response = await h.token('attack:memory-bomb');
    const elapsed = performance.now() - started;
    await assertUnavailable(response);
    assert.ok(elapsed < 10_000, `answered in ${Math.round(elapsed)} ms: the crash ended the call, not the 10 s deadline`);
    await discoveryServes();
    const crashed = await h.entry((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'memory-bomb', 'plugin.crashed memory-bomb');
    assert.match(String(crashed.detail?.['reason']), /the plugin exited/);
    assert.deepEqual((await entriesOf('plugin.failed', 'memory-bomb')).map((entry) => entry.detail), [{ plugin: 'memory-bomb', hook: 'access-token.claims', failure: 'crashed', action: 'denied' }]);
    await supervised.whenRunning();
    assert.equal(supervised.status().restarts, 1);
    assert.notEqual(supervised.status().pid, firstPid, 'a new process');
    const logged = Date.now() + 10_000;
    while (!/"plugin":"memory-bomb"[^\n]*heap/i.test(h.server.logs.text) && Date.now() < logged) await delay(25);
    assert.match(h.server.logs.text, /"plugin":"memory-bomb"[^\n]*heap/i, 'its dying words (V8 heap limit) are in the server log');
    await assertServes(h);
    await h.remove('memory-bomb');
  });

  it(`an infinite loop: each request is answered 503 within its ${DEADLINE_MS} ms deadline (+ margin); after maxMissedDeadlines the child is killed, audited, restarted; the host serves`, { timeout: 60_000 }, async () => {
    await h.enable(resourcePlugin('infinite-loop', `for (;;) {}`, { limits: { deadlineMs: DEADLINE_MS } }), 'infinite-loop');
    const supervised = h.host.plugin('infinite-loop')!;
    for (let miss = 1; miss <= 2; miss++) {
      const started = performance.now();
      const response = await h.token('attack:infinite-loop');
      const elapsed = performance.now() - started;
      await assertUnavailable(response);
      assert.ok(elapsed >= DEADLINE_MS - 5 && elapsed < DEADLINE_MS + 1500, `miss ${miss}: answered in ${Math.round(elapsed)} ms`);
      await discoveryServes();
    }
    assert.deepEqual(
      (await entriesOf('plugin.failed', 'infinite-loop')).map((entry) => entry.detail?.['failure']),
      ['timeout', 'timeout'],
    );
    const crashed = await h.entry((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'infinite-loop', 'plugin.crashed infinite-loop');
    assert.equal(crashed.detail?.['reason'], 'killed after 2 missed deadlines');
    await supervised.whenRunning();
    assert.equal(supervised.status().restarts, 1);
    await assertServes(h);
    await h.remove('infinite-loop');
  });

  it('a 1 GiB answer written as a raw frame on its stdout: the host refuses it at the frame header, kills the child (violation and crash audited), answers 503; restarted; the host serves', { timeout: 60_000 }, async () => {
    // The plugin bypasses its runtime's framing and writes to fd 1 itself (the permission model does not cover inherited descriptors): a 1 GiB header, then 1 GiB of body in 1 MiB writes, never holding it all.
    const body = `const header = Buffer.alloc(4); header.writeUInt32BE(2 ** 30); writeSync(1, header); const chunk = Buffer.alloc(2 ** 20, 0x61); for (let sent = 0; sent < 2 ** 30; sent += chunk.length) writeSync(1, chunk); return new Promise(() => {});`;
    await h.enable(resourcePlugin('huge-frame', body, { limits: { deadlineMs: 10_000 } }), 'huge-frame');
    const supervised = h.host.plugin('huge-frame')!;
    const started = performance.now();
    await assertUnavailable(await h.token('attack:huge-frame'));
    assert.ok(performance.now() - started < 10_000, 'the channel closed at the header, not at the deadline');
    const violation = await h.entry((entry) => entry.type === 'plugin.violation' && entry.detail?.['plugin'] === 'huge-frame', 'plugin.violation huge-frame');
    assert.deepEqual(violation.detail, { plugin: 'huge-frame', violation: 'message-too-large', counted: true });
    const crashed = await h.entry((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'huge-frame', 'plugin.crashed huge-frame');
    assert.match(String(crashed.detail?.['reason']), /SIGKILL/);
    assert.deepEqual((await entriesOf('plugin.failed', 'huge-frame')).map((entry) => entry.detail?.['failure']), ['crashed']);
    await discoveryServes();
    await supervised.whenRunning();
    assert.equal(supervised.status().restarts, 1);
    await assertServes(h);
    await h.remove('huge-frame');
  });

  it('a huge answer through the runtime (a 16 MiB claim; V8 cannot even make a 1 GiB string): the child refuses to send it, the host records the failure and answers 503; the plugin keeps running', { timeout: 60_000 }, async () => {
    const body = `try { 'x'.repeat(2 ** 30); } catch (error) { if (!(error instanceof RangeError)) throw error; } return { verdict: 'modify', claims: { huge_answer_blob: 'x'.repeat(16 * 2 ** 20) } };`;
    await h.enable(resourcePlugin('huge-answer', body, { limits: { memoryMb: 256 } }), 'huge-answer');
    const supervised = h.host.plugin('huge-answer')!;
    const pid = supervised.status().pid;
    await assertUnavailable(await h.token('attack:huge-answer'));
    assert.deepEqual((await entriesOf('plugin.failed', 'huge-answer')).map((entry) => entry.detail), [{ plugin: 'huge-answer', hook: 'access-token.claims', failure: 'error', action: 'denied' }]);
    assert.equal(supervised.state, 'running');
    assert.equal(supervised.status().pid, pid, 'not a crash: the same process');
    await assertServes(h);
    await h.remove('huge-answer');
  });

  it('forged and duplicate JSON-RPC ids, a malformed frame and a batch, written raw to fd 1: each is a plugin.violation, none is taken as an answer; the plugin\'s real answer is', { timeout: 60_000 }, async () => {
    const prelude = `
let calls = 0;
const frame = (text) => { const body = Buffer.from(text); const header = Buffer.alloc(4); header.writeUInt32BE(body.length); writeSync(1, Buffer.concat([header, body])); };
const counted = hooks => hooks;`;
    // The host numbers its calls 1, 2, ...: the plugin counts them to name an id already answered.
    const body = `
    frame(JSON.stringify({ jsonrpc: '2.0', id: 999999, result: { verdict: 'deny', reason: 'forged: never asked' } }));
    frame(JSON.stringify({ jsonrpc: '2.0', id: calls - 1, result: { verdict: 'deny', reason: 'forged: answered twice' } }));
    frame('{ this is not JSON');
    frame(JSON.stringify([{ jsonrpc: '2.0', id: 424242, method: 'users.read', params: { userId: 'u_anyone' } }]));
    return { verdict: 'deny', reason: 'forged-ids: the real answer' };`;
    const source = resourcePlugin('forged-ids', body, {}, prelude);
    // Count every call, passing ones included.
    const entry = join(source, 'index.mjs');
    writeFileSync(entry, readFileSync(entry, 'utf8').replace(`async ({ context }) => {`, `async ({ context }) => {\n    calls++;`));
    const { digest } = digestDirectory(source);
    writeFileSync(`${source}.minisig`, signMessage(Buffer.from(digest, 'latin1'), secret, { trustedComment: 'forged-ids 1.0.0' }));
    await h.enable(source, 'forged-ids');
    const supervised = h.host.plugin('forged-ids')!;
    const pid = supervised.status().pid;
    await assertServes(h); // call 1, answered
    await assertPluginAnswer(await h.token('attack:forged-ids'), 'forged-ids: the real answer');
    const wanted = ['unknown-response-id', 'duplicate-response', 'parse-error', 'batch'];
    const deadline = Date.now() + 10_000;
    while ((await entriesOf('plugin.violation', 'forged-ids')).length < wanted.length && Date.now() < deadline) await delay(25);
    assert.deepEqual(
      (await entriesOf('plugin.violation', 'forged-ids')).map((found) => [found.outcome, found.detail]),
      wanted.map((violation) => ['failure', { plugin: 'forged-ids', violation, counted: true }]),
    );
    assert.equal(supervised.state, 'running', '4 violations: below the quarantine threshold (10)');
    assert.equal(supervised.status().pid, pid);
    await assertServes(h);
    await h.remove('forged-ids');
  });
});

describe('plugin attacks in a serving instance: claims that are not the plugin\'s', () => {
  let h: Harness;
  const PERSON = { email: 'overreach@example.com', password: 'correct horse battery staple 42' };
  const REDIRECT = 'http://127.0.0.1:8080/callback';
  const FORGED: Record<string, unknown> = { overreach_ok: 1, sub: 'admin', iss: 'https://evil.example', aud: 'evil', nonce: 'forged', auth_time: 1, acr: 'high', amr: ['hwk'], sid: 'forged', cnf: { jkt: 'forged' }, scope: 'everything', client_id: 'evil', jti: 'forged', exp: 9999999999 };
  const PROTOCOL = JSON.stringify(FORGED);
  /** None of the plugin's values made it: each claim is absent or the server's own. */
  const assertNoneForged = (claims: Record<string, unknown>, what: string) => {
    for (const [claim, forged] of Object.entries(FORGED)) assert.notDeepEqual(claims[claim], forged, `${what}: ${claim}`);
    assert.equal(claims['overreach_ok'], undefined, `${what}: nothing of a plugin that overstepped is kept`);
  };

  before(async () => {
    h = await harness('claims', ['attack:overreach']);
    await h.server.running.identity.accounts.createUser(PERSON.email, PERSON.password, { actor: 'test' });
  });
  after(async () => {
    await h?.server.close();
  });

  it('with onFailure skip, at the ID token, access token and UserInfo: every protocol claim is the server\'s, nothing of the plugin is kept, each point audited', { timeout: 60_000 }, async () => {
    const points = ['token.claims', 'access-token.claims', 'userinfo.claims'];
    const source = `export const hooks = Object.fromEntries(${JSON.stringify(points)}.map((point) => [point, () => ({ verdict: 'modify', claims: ${PROTOCOL} })]));`;
    await h.enable(signedPackage('overreach', { hooks: points, claimsNamespace: 'overreach_', onFailure: Object.fromEntries(points.map((point) => [point, 'skip'])) }, { 'index.mjs': source }), 'overreach');
    const { clientId, clientSecret } = await registerClient(h.server, { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid email', token_endpoint_auth_method: 'client_secret_basic' });
    const issuer = h.server.running.authorizationServer.issuer;
    const oidc = await import('openid-client');
    const config = await oidc.discovery(new URL(issuer), clientId, clientSecret, oidc.ClientSecretBasic(clientSecret), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce, state });
    const callback = await completeAuthorization(new BrowserlessClient(h.server.url), url, PERSON, { redirectUri: REDIRECT });
    // openid-client checks iss, aud, nonce and the signature of the ID token itself.
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
    const idToken = tokens.claims()!;
    const access = decodeJwt(tokens.access_token);
    const userId = String(access.sub);
    assert.match(userId, /^u_/);
    assert.deepEqual([idToken.sub, idToken.iss, idToken.aud, idToken.nonce], [userId, issuer, clientId, nonce]);
    assertNoneForged(idToken, 'ID token');
    assert.deepEqual([access.iss, access['client_id'], access['scope'], access['cnf']], [issuer, clientId, 'openid email', undefined]);
    assertNoneForged(access, 'access token');
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, userId);
    assert.deepEqual(userinfo, { sub: userId, email: PERSON.email, email_verified: false });
    const failed = (await h.ledger()).filter((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === 'overreach');
    assert.deepEqual(
      failed.map((entry) => entry.detail?.['hook']).sort(),
      [...points].sort(),
    );
    assert.ok(failed.every((entry) => entry.detail?.['failure'] === 'outside_namespace' && entry.detail['action'] === 'skipped' && entry.outcome === 'failure'));
    await h.remove('overreach');
  });

  it('with onFailure deny (the default): the token request is refused 503 with Retry-After, audited as denied; the host serves', async () => {
    const source = `export const hooks = { 'access-token.claims': ({ context }) => context.scopes.includes('attack:overreach') ? { verdict: 'modify', claims: ${PROTOCOL} } : { verdict: 'pass' } };`;
    await h.enable(signedPackage('overreach-deny', { hooks: ['access-token.claims'], claimsNamespace: 'overreach_' }, { 'index.mjs': source }), 'overreach-deny');
    await assertUnavailable(await h.token('attack:overreach'));
    const failed = (await h.ledger()).filter((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === 'overreach-deny');
    assert.deepEqual(failed.map((entry) => [entry.outcome, entry.detail]), [['denied', { plugin: 'overreach-deny', hook: 'access-token.claims', failure: 'outside_namespace', action: 'denied' }]]);
    await assertServes(h);
    await h.remove('overreach-deny');
  });
});

describe('plugin attacks in a serving instance: a declared read path with a symlink out of it', () => {
  let h: Harness;
  const QUARANTINE_CRASHES = 3;

  before(async () => {
    h = await harness('links', ['attack:linked-inside', 'attack:linked-outside'], { plugins: { quarantineCrashes: QUARANTINE_CRASHES, restartBackoffMs: 10 } });
  });
  after(async () => {
    await h?.server.close();
  });

  /** A plugin declaring `fs: [directory]`, reading `<directory>/<file>` for its scope. */
  const reader = (name: string, directory: string, file: string) =>
    signedPackage(name, { hooks: ['access-token.claims'], claimsNamespace: `${name.replaceAll('-', '_')}_`, fs: [directory] }, {
      'index.mjs': `import { readFileSync } from 'node:fs';
export const hooks = { 'access-token.claims': ({ context }) => context.scopes.includes('attack:${name}') ? { verdict: 'deny', reason: '${name}: ' + readFileSync(${JSON.stringify(join(directory, file))}, 'utf8').slice(0, 40).replace(/[^\\x20-\\x7e]/g, '?') } : { verdict: 'pass' } };`,
    });

  it('the control: a symlink that stays inside the declared path is followed, the plugin runs and reads through it', async () => {
    const inside = join(root, 'declared-inside');
    mkdirSync(inside, { recursive: true });
    writeFileSync(join(inside, 'data.txt'), 'declared data');
    symlinkSync(join(inside, 'data.txt'), join(inside, 'alias'));
    await h.enable(reader('linked-inside', inside, 'alias'), 'linked-inside');
    await assertPluginAnswer(await h.token('attack:linked-inside'), 'linked-inside: declared data');
    await h.remove('linked-inside');
  });

  it('a symlink out of it (to /etc/passwd): the plugin never starts; each start counts as a crash, it is quarantined (in the registry) and fails closed until the operator acts; audited', { timeout: 60_000 }, async () => {
    const outsideLink = join(root, 'declared-outside');
    mkdirSync(outsideLink, { recursive: true });
    // Not part of the package (its digest and signature hold): the declared path, outside it, is changed.
    symlinkSync('/etc/passwd', join(outsideLink, 'passwd'));
    await h.registry.install(reader('linked-outside', outsideLink, 'passwd'), { actor: 'test' });
    await h.registry.setEnabled('linked-outside', true, 'test');
    await h.host.reconcile();
    await h.entry((entry) => entry.type === 'plugin.quarantined' && entry.detail?.['plugin'] === 'linked-outside', 'plugin.quarantined linked-outside');
    const record = (await h.registry.list()).find((plugin) => plugin.name === 'linked-outside');
    assert.equal(record?.enabled, true, 'still enabled: the operator decides');
    assert.match(record?.quarantined?.reason ?? '', /crashes or violations/, 'quarantined in the registry, for every instance');
    await h.host.reconcile();
    assert.equal(h.host.plugin('linked-outside'), undefined, 'no process');
    assert.equal(h.host.status().plugins.find((plugin) => plugin.name === 'linked-outside')?.state, 'quarantined');
    const crashes = (await h.ledger()).filter((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'linked-outside');
    for (const crash of crashes) assert.match(String(crash.detail?.['reason']), /the symlink .*passwd leads out of the readable paths \(to \/etc\/passwd\)/);
    assert.deepEqual(crashes.map((crash) => crash.detail?.['restartInMs']), [10, 20, null], 'restarted with backoff, then never again (no fresh start after the quarantine)');
    assert.ok(!h.server.logs.records().some((record) => record['plugin'] === 'linked-outside' && record['msg'] === 'plugin started'), 'it never ran');
    // Quarantined, it stays on its chain and fails closed (onFailure deny), rather than letting tokens out without its check.
    assert.equal((await h.token('attack:linked-outside')).status, 503);
    await h.registry.setEnabled('linked-outside', false, 'test');
    await h.host.reconcile();
    await assertServes(h);
    assert.equal((await h.token('attack:linked-outside')).status, 200, 'disabled by the operator, its scope is just a scope again');
  });
});

describe('a quarantine holds on this instance while the registry cannot record it', () => {
  it('the quarantined plugin is not started again (no fresh crash count) and its status says why', { timeout: 30_000 }, async () => {
    const directory = signedPackage('exits-at-load', { hooks: ['login.before'] }, { 'index.mjs': 'process.exit(3);\nexport const hooks = {};\n' });
    const installed = { name: 'exits-at-load', version: '1.0.0', digest: digestDirectory(directory).digest, keyId: 'test', path: directory, enabled: true, installedAt: 0 };
    const events: { type: string; detail?: Record<string, unknown> }[] = [];
    const errors: string[] = [];
    let quarantined!: () => void;
    const wasQuarantined = new Promise<void>((resolve) => (quarantined = resolve));
    const host = new PluginHost({
      // The database is away: the supervisor's disable fails, the registry still says enabled.
      registry: { list: async () => [installed], setQuarantined: async () => Promise.reject(new Error('the database is away')) },
      events: {
        emit: async (event) => {
          events.push(event);
          if (event.type === 'plugin.quarantined') quarantined();
        },
      },
      users: { byId: async () => null },
      slot: new PluginSlot(),
      settings: { quarantineCrashes: 2, quarantineWindowMs: 60_000, maxMissedDeadlines: 2, breakerResetMs: 1000, restartBackoffMs: 10, fetchPrivateNetworks: false },
      log: { info: () => undefined, warn: () => undefined, error: (_detail, message) => void errors.push(message) },
      pollMs: 60_000,
      protectedPaths: [],
    });
    try {
      await host.start();
      await wasQuarantined;
      // Every later reconcile (the poll, plugin events) finds it enabled still.
      for (let round = 0; round < 3; round++) await host.reconcile();
      assert.ok(errors.includes('quarantine not recorded in the registry'));
      assert.equal(host.plugin('exits-at-load'), undefined, 'not running, not restarting');
      const crashes = events.filter((event) => event.type === 'plugin.crashed');
      assert.deepEqual(crashes.map((event) => event.detail?.['restartInMs']), [10, null], 'the two crashes that quarantined it, and no fresh start after');
      const status = host.status().plugins.find((plugin) => plugin.name === 'exits-at-load');
      assert.equal(status?.state, 'quarantined');
      assert.match(status?.problem ?? '', /crashes or violations/);
    } finally {
      await host.close();
    }
  });
});
