/**
 * The example plugins (examples/plugins/), each run in a real sandbox
 * (startSandbox: a child under Node's permission model, JSON-RPC over
 * stdio) and called as the host calls it, `hook.<point>` with `{ context,
 * claims }`. The host calls are fakes given here (the real `http.fetch` is
 * the host's), and only those the example's manifest lists are answered, as
 * on the host. Also: the plugin SDK resolves inside the sandbox while the
 * rest of src/sdk stays unreadable, and every example's committed signature
 * holds over a fresh digest of its directory (an example changed without
 * `node examples/plugins/sign.ts` fails here).
 */
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { exampleDirectories, EXAMPLES_DIRECTORY, PUBLIC_KEY_FILE, TEST_KEY_FILE } from '../../examples/plugins/sign.ts';
import { HANDLER_ERROR, RpcError, type RpcMethod } from '../../src/plugins/sandbox/json-rpc.ts';
import { PLUGIN_SDK_ENTRY } from '../../src/plugins/sandbox/plugin-sdk.ts';
import { startSandbox, type Sandbox } from '../../src/plugins/sandbox/spawn.ts';
import { MANIFEST_FILE, digestDirectory, formatPublicKey, inspectPackage, parseManifestText, parsePublicKey, parseSecretKey, signaturePath, verifyMessage, type PluginManifest } from '../../src/plugins/index.ts';
import { tempDirectory } from '../support/plugin-packages.ts';

const SRC = resolve(import.meta.dirname, '../../src');
const example = (name: string) => join(EXAMPLES_DIRECTORY, name);

const started: Sandbox[] = [];
after(async () => {
  for (const box of started) box.close();
  await Promise.all(started.map((box) => box.exited));
});

interface Started {
  readonly box: Sandbox;
  readonly manifest: PluginManifest;
  /** `hook.<point>` with `{ context, claims }`, as the host sends it. */
  readonly hook: (point: string, context: Record<string, unknown>, claims?: Record<string, unknown>) => Promise<unknown>;
}

/** Starts a plugin directory in a sandbox with the fakes of the host calls its manifest lists (and only those). */
async function start(directory: string, fakes: Record<string, RpcMethod> = {}): Promise<Started> {
  const manifest = parseManifestText(readFileSync(join(directory, MANIFEST_FILE), 'utf8'));
  const hostMethods = Object.fromEntries(manifest.hostCalls.filter((call) => fakes[call.name] !== undefined).map((call) => [call.name, fakes[call.name]!]));
  const box = startSandbox({ directory, entry: manifest.entry, readPaths: manifest.fs, limits: { memoryMb: manifest.limits.memoryMb, callTimeoutMs: 5000 }, hostMethods });
  started.push(box);
  assert.deepEqual([...(await box.ready)].sort(), [...manifest.hooks].sort(), `${manifest.name} serves exactly its declared hooks`);
  return { box, manifest, hook: (point, context, claims = {}) => box.call(`hook.${point}`, { context, claims }) };
}

/** A copy of an example in a temporary directory, with some files replaced. */
function copyOf(name: string, files: Record<string, string>): string {
  const directory = join(tempDirectory(`example-${name}-`), name);
  cpSync(example(name), directory, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(directory, file), text);
  return directory;
}

describe('example plugin: directory-claims', () => {
  const USERS: Record<string, unknown> = {
    alice: { id: 'alice', email: 'Alice@acme.example', emailVerified: true, name: 'Alice', disabled: false },
    stranger: { id: 'stranger', email: 'stranger@elsewhere.example', emailVerified: true, disabled: false },
    // As Portcullis reports every operator-made account today (no mail verification yet).
    unverified: { id: 'unverified', email: 'bob@acme.example', emailVerified: false, disabled: false },
    disabled: { id: 'disabled', email: 'bob@acme.example', emailVerified: true, disabled: true },
  };
  const reads: unknown[] = [];
  const users = {
    'users.read': (params: unknown) => {
      reads.push(params);
      return USERS[(params as { userId: string }).userId] ?? null;
    },
  };
  const ALICE = { 'https://acme.example/department': 'Engineering', 'https://acme.example/employee_id': 'E-1001' };
  let plugin: Started;

  it('starts with its manifest: three claims hooks, onFailure skip, users.read only', async () => {
    plugin = await start(example('directory-claims'), users);
    assert.deepEqual(plugin.manifest.onFailure, { 'token.claims': 'skip', 'access-token.claims': 'skip', 'userinfo.claims': 'skip' });
    assert.deepEqual(plugin.manifest.hostCalls, [{ name: 'users.read' }]);
    assert.equal(plugin.manifest.claimsNamespace, 'https://acme.example/');
  });

  it("adds a known (verified) user's department and employee id to the ID token, the access token and UserInfo, inside its namespace", async () => {
    reads.length = 0;
    const token = { userId: 'alice', clientId: 'c1', scopes: ['openid'], accessTokenIssued: true };
    assert.deepEqual(await plugin.hook('token.claims', token, { email: 'alice@acme.example' }), { verdict: 'modify', claims: ALICE });
    assert.deepEqual(await plugin.hook('access-token.claims', { userId: 'alice', clientId: 'c1', grantType: 'authorization_code', scopes: ['openid'], audience: ['https://api.acme.example'] }), { verdict: 'modify', claims: ALICE });
    assert.deepEqual(await plugin.hook('userinfo.claims', { userId: 'alice', clientId: 'c1', scopes: ['openid'] }), { verdict: 'modify', claims: ALICE });
    assert.deepEqual(reads, [{ userId: 'alice' }, { userId: 'alice' }, { userId: 'alice' }]);
    for (const name of Object.keys(ALICE)) assert.ok(name.startsWith(plugin.manifest.claimsNamespace!), name);
  });

  it('passes for an unknown email, an unknown user and a disabled account', async () => {
    for (const userId of ['stranger', 'nobody', 'disabled']) {
      assert.deepEqual(await plugin.hook('token.claims', { userId, clientId: 'c1', scopes: ['openid'], accessTokenIssued: false }), { verdict: 'pass' }, userId);
      assert.deepEqual(await plugin.hook('userinfo.claims', { userId, clientId: 'c1', scopes: ['openid'] }), { verdict: 'pass' }, userId);
    }
  });

  it('matches an operator-made account whose address is not verified by mail (emailVerified false, as Portcullis reports it today)', async () => {
    assert.deepEqual(await plugin.hook('userinfo.claims', { userId: 'unverified', clientId: 'c1', scopes: ['openid'] }), {
      verdict: 'modify',
      claims: { 'https://acme.example/department': 'Finance', 'https://acme.example/employee_id': 'E-1002' },
    });
  });

  it('passes for a client_credentials access token (userId null) without reading any user', async () => {
    reads.length = 0;
    const context = { userId: null, clientId: 'c1', grantType: 'client_credentials', scopes: ['read'], audience: ['https://api.acme.example'] };
    assert.deepEqual(await plugin.hook('access-token.claims', context), { verdict: 'pass' });
    assert.deepEqual(reads, []);
  });

  it('a users.read the host refuses fails the hook (onFailure skip applies on the host)', async () => {
    const refusing = await start(example('directory-claims'), {
      'users.read': () => {
        throw new RpcError(-32001, 'users store unavailable');
      },
    });
    await assert.rejects(refusing.hook('token.claims', { userId: 'alice', clientId: 'c1', scopes: [], accessTokenIssued: false }), (error: unknown) => error instanceof RpcError && error.code === HANDLER_ERROR && /users\.read: users store unavailable/.test(error.message));
  });
});

describe('example plugin: login-rule', () => {
  const audit: unknown[] = [];
  const auditRecord = { 'audit.record': (params: unknown) => void audit.push(params) };
  const login = (ip: string) => ({ account: 'alice@acme.example', ip, throttle: { allowed: true } });
  let plugin: Started;

  it('starts with its manifest: login.before, onFailure deny (the default), audit.record only', async () => {
    plugin = await start(example('login-rule'), auditRecord);
    assert.deepEqual(plugin.manifest.onFailure, { 'login.before': 'deny' });
    assert.deepEqual(plugin.manifest.hostCalls, [{ name: 'audit.record' }]);
  });

  it('denies an address in a denied network (IPv4, IPv6, IPv4-mapped) and audits the network', async () => {
    audit.length = 0;
    const denied = { verdict: 'deny', reason: 'Sign-in from this network is not allowed.' };
    assert.deepEqual(await plugin.hook('login.before', login('203.0.113.7')), denied);
    assert.deepEqual(await plugin.hook('login.before', login('2001:db8::7')), denied);
    assert.deepEqual(await plugin.hook('login.before', login('::ffff:203.0.113.7')), denied);
    assert.deepEqual(audit, [
      { action: 'login-rule.denied', detail: { rule: 'network', network: '203.0.113.0/24' } },
      { action: 'login-rule.denied', detail: { rule: 'network', network: '2001:db8::/32' } },
      { action: 'login-rule.denied', detail: { rule: 'network', network: '203.0.113.0/24' } },
    ]);
  });

  it('passes an address outside the denied networks, within the allowed hours, and audits nothing', async () => {
    audit.length = 0;
    assert.deepEqual(await plugin.hook('login.before', login('198.51.100.7')), { verdict: 'pass' });
    assert.deepEqual(await plugin.hook('login.before', login('2001:db9::7')), { verdict: 'pass' });
    assert.deepEqual(audit, []);
  });

  it('denies outside the allowed hours (a copy whose rules allow one hour that is neither now nor the next)', async () => {
    // Excluding the next hour too keeps the test right across an hour boundary.
    const from = (new Date().getUTCHours() + 2) % 24;
    const rules = { denyNetworks: ['203.0.113.0/24'], allowHoursUtc: [from, (from + 1) % 24] };
    const audited: unknown[] = [];
    const closed = await start(copyOf('login-rule', { 'rules.json': JSON.stringify(rules) }), { 'audit.record': (params) => void audited.push(params) });
    assert.deepEqual(await closed.hook('login.before', login('198.51.100.7')), { verdict: 'deny', reason: 'Sign-in is not allowed at this time of day.' });
    assert.equal(audited.length, 1);
    assert.deepEqual((audited[0] as { action: string; detail: { rule: string } }).detail.rule, 'hours');
    // The hours wrap past midnight: [from, from - 1) (mod 24) is every hour but one, and that one is not now.
    const open = await start(copyOf('login-rule', { 'rules.json': JSON.stringify({ ...rules, allowHoursUtc: [from, (from + 23) % 24] }) }), auditRecord);
    assert.deepEqual(await open.hook('login.before', login('198.51.100.7')), { verdict: 'pass' });
  });

  it('a rules file with a malformed network does not start (the host then denies, onFailure deny)', async () => {
    const directory = copyOf('login-rule', { 'rules.json': JSON.stringify({ denyNetworks: ['203.0.113.0/33'], allowHoursUtc: [0, 24] }) });
    const box = startSandbox({ directory, entry: 'index.js', limits: { memoryMb: 64, callTimeoutMs: 5000 } });
    started.push(box);
    await assert.rejects(box.ready, /exited before it was ready/);
    assert.match(box.stderrTail, /203\.0\.113\.0\/33 is not a network/);
  });
});

describe('example plugin: registration-webhook', () => {
  const WEBHOOK = 'https://hooks.acme.example/portcullis/registration';
  const requests: unknown[] = [];
  /** A fake http.fetch answering `status` and `body` (JSON.stringify'd unless a string). */
  const answering = (status: number, body: unknown) => ({
    'http.fetch': (params: unknown) => {
      requests.push(params);
      return { status, headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), url: (params as { url: string }).url };
    },
  });
  const registration = { policy: 'open', initialAccessToken: 'unchecked', metadata: { client_name: 'Acme CLI', redirect_uris: ['https://cli.acme.example/cb'], jwks: { keys: [] } }, ip: '198.51.100.7' };

  it('its manifest: registration.before, onFailure deny, http.fetch to the webhook origin only', () => {
    const manifest = parseManifestText(readFileSync(join(example('registration-webhook'), MANIFEST_FILE), 'utf8'));
    assert.deepEqual(manifest.onFailure, { 'registration.before': 'deny' });
    assert.deepEqual(manifest.hostCalls, [{ name: 'http.fetch', origins: [new URL(WEBHOOK).origin] }]);
    assert.deepEqual(JSON.parse(readFileSync(join(example('registration-webhook'), 'webhook.json'), 'utf8')), { url: WEBHOOK });
  });

  it('POSTs the registering client to the webhook and denies on { allow: false } with its reason', async () => {
    requests.length = 0;
    const plugin = await start(example('registration-webhook'), answering(200, { allow: false, reason: 'Unknown vendor.' }));
    assert.deepEqual(await plugin.hook('registration.before', registration), { verdict: 'deny', reason: 'Unknown vendor.' });
    assert.equal(requests.length, 1);
    const request = requests[0] as { url: string; method: string; headers: Record<string, string>; body: string };
    assert.deepEqual({ ...request, body: JSON.parse(request.body) as unknown }, {
      url: WEBHOOK,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: { event: 'client.registering', client_name: 'Acme CLI', redirect_uris: ['https://cli.acme.example/cb'] },
    });
  });

  it('a reason the host would not show (not printable ASCII, too long, missing) becomes a fixed one', async () => {
    for (const reason of ['line\nbreak', 'x'.repeat(201), undefined]) {
      const plugin = await start(example('registration-webhook'), answering(200, { allow: false, reason }));
      assert.deepEqual(await plugin.hook('registration.before', registration), { verdict: 'deny', reason: 'The registration was refused.' });
    }
  });

  it('passes on { allow: true }, on any other 2xx body, and sends only well-typed metadata fields', async () => {
    requests.length = 0;
    for (const [status, body] of [[200, { allow: true }], [204, ''], [202, 'accepted'], [200, { allow: 'false' }]] as const) {
      const plugin = await start(example('registration-webhook'), answering(status, body));
      assert.deepEqual(await plugin.hook('registration.before', { ...registration, metadata: { client_name: 42, redirect_uris: ['https://a.example/cb', 7] } }), { verdict: 'pass' }, JSON.stringify(body));
    }
    assert.deepEqual(JSON.parse((requests[0] as { body: string }).body), { event: 'client.registering', client_name: null, redirect_uris: ['https://a.example/cb'] });
  });

  it('a non-2xx answer fails the hook (a JSON-RPC error; onFailure deny applies on the host)', async () => {
    const plugin = await start(example('registration-webhook'), answering(500, { allow: true }));
    await assert.rejects(plugin.hook('registration.before', registration), (error: unknown) => error instanceof RpcError && error.code === HANDLER_ERROR && /answered 500/.test(error.message));
  });

  it("a failed http.fetch (the host's error) fails the hook", async () => {
    const plugin = await start(example('registration-webhook'), {
      'http.fetch': () => {
        throw new RpcError(-32001, 'connect ECONNREFUSED');
      },
    });
    await assert.rejects(plugin.hook('registration.before', registration), (error: unknown) => error instanceof RpcError && /http\.fetch: connect ECONNREFUSED/.test(error.message));
  });

  it('the URL comes from webhook.json: a copy pointing elsewhere calls there', async () => {
    requests.length = 0;
    const directory = copyOf('registration-webhook', { 'webhook.json': JSON.stringify({ url: 'https://127.0.0.1:8443/hook' }) });
    const plugin = await start(directory, answering(200, {}));
    assert.deepEqual(await plugin.hook('registration.before', registration), { verdict: 'pass' });
    assert.equal((requests[0] as { url: string }).url, 'https://127.0.0.1:8443/hook');
  });
});

describe('the plugin SDK inside the sandbox', () => {
  /** A plugin importing the SDK by its bare name, whose login.before tries to read `context.path` and reports what happened as its deny reason. */
  const PROBE = `
import { readFileSync, readdirSync } from 'node:fs';
import { definePlugin } from 'portcullis/sdk/plugin';
const attempt = (work) => { try { work(); return 'read'; } catch (error) { return error.code ?? error.message; } };
export default definePlugin({
  hooks: {
    'login.before': async ({ path, list }) => ({ deny: attempt(() => (list ? readdirSync(path) : readFileSync(path))) }),
    'token.claims': async ({ url }) => {
      try { await import(url); return { claims: { probe_imported: true } }; } catch (error) { return { claims: { probe_imported: error.code ?? error.message } }; }
    },
  },
});
`;
  let plugin: Started;

  it('the SDK file is the one next to the sandbox runtime: src/sdk/plugin/index.ts (from dist, index.js)', () => {
    assert.equal(PLUGIN_SDK_ENTRY, join(SRC, 'sdk/plugin/index.ts'));
  });

  it("'portcullis/sdk/plugin' resolves in a plugin directory (no node_modules there), and definePlugin's hooks answer", async () => {
    const directory = tempDirectory('sdk-probe-');
    writeFileSync(join(directory, 'index.js'), PROBE);
    writeFileSync(join(directory, MANIFEST_FILE), JSON.stringify({ name: 'probe', version: '1.0.0', entry: 'index.js', hooks: ['login.before', 'token.claims'], claimsNamespace: 'probe_' }));
    plugin = await start(directory);
    // The control: the SDK file itself is readable (its grant is what makes the import work).
    assert.deepEqual(await plugin.hook('login.before', { path: PLUGIN_SDK_ENTRY }), { verdict: 'deny', reason: 'read' });
  });

  it('the rest of src/sdk stays unreadable: another file, the directory listings, an import of the SDK index', async () => {
    assert.deepEqual(await plugin.hook('login.before', { path: join(SRC, 'sdk/index.ts') }), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await plugin.hook('login.before', { path: join(SRC, 'sdk/signals/index.ts') }), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await plugin.hook('login.before', { path: join(SRC, 'sdk/plugin'), list: true }), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await plugin.hook('login.before', { path: join(SRC, 'sdk'), list: true }), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
    assert.deepEqual(await plugin.hook('token.claims', { url: new URL('../../src/sdk/index.ts', import.meta.url).href }), { verdict: 'modify', claims: { probe_imported: 'ERR_ACCESS_DENIED' } });
    // Nor did the grant open the rest of the repository.
    assert.deepEqual(await plugin.hook('login.before', { path: join(SRC, '../package.json') }), { verdict: 'deny', reason: 'ERR_ACCESS_DENIED' });
  });

  it('without the SDK file granted, the import fails: the grant is what makes it work', () => {
    const directory = tempDirectory('sdk-ungranted-');
    writeFileSync(join(directory, 'index.mjs'), PROBE);
    // Node itself, with the grants spawn.ts gives but the SDK file's: the same resolve hook, no read access.
    const runtime = join(SRC, 'plugins/sandbox/child.ts');
    const result = spawnSync(process.execPath, ['--permission', `--allow-fs-read=${join(SRC, 'plugins/sandbox')}`, `--allow-fs-read=${directory}`, '--disable-warning=ExperimentalWarning', runtime, join(directory, 'index.mjs'), '65536', '1000'], {
      cwd: directory,
      env: {},
      input: '',
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /ERR_ACCESS_DENIED/);
    assert.match(result.stderr, /sdk\/plugin\/index\.ts/);
  });
});

describe('example plugins: signed by the test key', () => {
  const publicKey = parsePublicKey(readFileSync(PUBLIC_KEY_FILE, 'utf8'));

  it('the examples are the three directories, each with a valid manifest and a .minisig beside it, and nothing else is signed', async () => {
    assert.deepEqual(exampleDirectories().map((directory) => basename(directory)), ['directory-claims', 'login-rule', 'registration-webhook']);
    for (const directory of exampleDirectories()) {
      const pkg = await inspectPackage(directory);
      assert.equal(pkg.manifest.name, basename(directory));
      assert.ok(existsSync(signaturePath(directory)), `${signaturePath(directory)} exists`);
    }
    assert.deepEqual(readdirSync(EXAMPLES_DIRECTORY).filter((name) => name.endsWith('.minisig')).sort(), ['directory-claims.minisig', 'login-rule.minisig', 'registration-webhook.minisig']);
  });

  it('test-key.pub is the public key of the test key (test/fixtures/plugins/seed-ed25519.pem)', () => {
    assert.equal(readFileSync(PUBLIC_KEY_FILE, 'utf8'), formatPublicKey(parseSecretKey(readFileSync(TEST_KEY_FILE, 'utf8')).publicKey));
  });

  it('each committed signature holds over a fresh digest of its directory (re-sign with: node examples/plugins/sign.ts)', () => {
    for (const directory of exampleDirectories()) {
      const { digest } = digestDirectory(directory);
      const verified = verifyMessage(Buffer.from(digest, 'latin1'), readFileSync(signaturePath(directory), 'utf8'), publicKey);
      assert.equal(verified.trustedComment, `file:${basename(directory)}\tdigest:${digest}`, `${basename(directory)}: the signature was made over this content`);
    }
  });

  it('the check bites: a copy with one byte changed no longer verifies', () => {
    const directory = copyOf('login-rule', { 'rules.json': readFileSync(join(example('login-rule'), 'rules.json'), 'utf8').replace('203.0.113.0/24', '203.0.113.0/25') });
    const { digest } = digestDirectory(directory);
    assert.throws(() => verifyMessage(Buffer.from(digest, 'latin1'), readFileSync(signaturePath(example('login-rule')), 'utf8'), publicKey), /signature does not match/);
  });
});
