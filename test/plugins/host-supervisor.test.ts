/**
 * The plugin host's supervision and its place in the chains (issue 14,
 * "Supervision"), against real plugin children: the chains are the bundled
 * chains.cfg with the plugins.host slot, the plugins tiny modules written to
 * a temporary directory. Each test causes the fault it names (a crash, a
 * loop, a bad answer, a flood) and checks what the request saw, what was
 * reported, and that the next request is served.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HookChains, PluginSlot, bundledChainSource } from '../../src/hooks/index.ts';
import { IDENTITY_HOOKS } from '../../src/identity/index.ts';
import { OAUTH_HOOKS } from '../../src/oauth/index.ts';
import { parseManifest } from '../../src/plugins/manifest.ts';
import { PluginHookDispatcher, type PluginFailureReport } from '../../src/plugins/host/dispatcher.ts';
import { SupervisedPlugin, type SupervisorEvent, type SupervisorSettings } from '../../src/plugins/host/supervisor.ts';
import { tempDirectory } from '../support/plugin-packages.ts';

const root = realpathSync(tempDirectory('portcullis-host-'));

const SETTINGS: SupervisorSettings = { quarantineCrashes: 3, quarantineWindowMs: 60_000, maxMissedDeadlines: 2, breakerResetMs: 200, restartBackoffMs: 20 };

interface Harness {
  readonly chains: HookChains;
  readonly plugins: SupervisedPlugin[];
  readonly events: SupervisorEvent[];
  readonly reports: PluginFailureReport[];
  /** Resolves at the next supervisor event of this kind. */
  readonly next: (kind: SupervisorEvent['kind']) => Promise<SupervisorEvent>;
}

const running: Harness[] = [];
after(async () => {
  for (const harness of running) for (const plugin of harness.plugins) await plugin.close();
});

/** A plugin directory: its manifest and module (exporting `hooks`). */
function pluginDirectory(name: string, manifest: Record<string, unknown>, source: string): { directory: string; manifest: ReturnType<typeof parseManifest> } {
  const directory = join(root, name);
  mkdirSync(directory, { recursive: true });
  const full = { name, version: '1.0.0', entry: 'index.mjs', ...manifest };
  writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify(full));
  writeFileSync(join(directory, 'index.mjs'), source);
  return { directory, manifest: parseManifest(full) };
}

async function harness(specs: { name: string; manifest: Record<string, unknown>; source: string }[], settings: SupervisorSettings = SETTINGS): Promise<Harness> {
  const events: SupervisorEvent[] = [];
  const waiters: { kind: SupervisorEvent['kind']; resolve: (event: SupervisorEvent) => void }[] = [];
  const reports: PluginFailureReport[] = [];
  const plugins = specs.map(({ name, manifest, source }) => {
    const built = pluginDirectory(name, manifest, source);
    return new SupervisedPlugin(
      { name, version: '1.0.0', digest: 'test', directory: built.directory, manifest: built.manifest },
      {
        settings,
        hostMethods: {},
        onEvent: (event) => {
          events.push(event);
          for (const waiter of waiters.filter((entry) => entry.kind === event.kind)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(event);
          }
        },
      },
    );
  });
  const dispatcher = new PluginHookDispatcher((report) => void reports.push(report));
  const slot = new PluginSlot();
  slot.attach(dispatcher);
  const chains = HookChains.load({ handlers: [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...slot.handlers()], source: bundledChainSource() });
  const next = (kind: SupervisorEvent['kind']) => new Promise<SupervisorEvent>((resolve) => waiters.push({ kind, resolve }));
  for (const plugin of plugins) plugin.start();
  await Promise.all(plugins.map((plugin) => plugin.whenRunning()));
  dispatcher.setPlugins(plugins);
  const result = { chains, plugins, events, reports, next };
  running.push(result);
  return result;
}

const CLIENT_CREDENTIALS = { userId: null, clientId: 'svc', grantType: 'client_credentials', scopes: ['read'], audience: ['https://api.example'] };
const LOGIN = { account: 'ada@example.com', ip: '203.0.113.7', throttle: { allowed: true } };

describe('plugin host: hooks through the chains', () => {
  it('a claims plugin adds claims in its namespace to an access token; a second plugin sees them and adds its own', async () => {
    const { chains, reports } = await harness([
      { name: 'a-claims', manifest: { hooks: ['access-token.claims'], claimsNamespace: 'acme_' }, source: `export const hooks = { 'access-token.claims': ({ context }) => ({ verdict: 'modify', claims: { acme_grant: context.grantType, acme_client: context.clientId } }) };` },
      { name: 'b-claims', manifest: { hooks: ['access-token.claims'], claimsNamespace: 'https://b.example/' }, source: `export const hooks = { 'access-token.claims': ({ claims }) => ({ verdict: 'modify', claims: { 'https://b.example/saw': Object.keys(claims).sort().join(',') } }) };` },
    ]);
    const outcome = await chains.claims('access-token.claims', CLIENT_CREDENTIALS, {});
    assert.deepEqual(outcome, { refused: false, claims: { acme_grant: 'client_credentials', acme_client: 'svc', 'https://b.example/saw': 'acme_client,acme_grant' } });
    assert.deepEqual(reports, []);
  });

  it('a claims hook that sets sub, cnf, iss or scope: with skip the token goes out without its claims; with deny the request is refused; both reported', async () => {
    for (const claim of ['sub', 'cnf', 'iss', 'scope', 'acme']) {
      const source = `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { acme_ok: 1, ${JSON.stringify(claim)}: 'attacker' } }) };`;
      const skip = await harness([{ name: `skip-${claim}`, manifest: { hooks: ['access-token.claims'], claimsNamespace: 'acme_', onFailure: { 'access-token.claims': 'skip' } }, source }]);
      assert.deepEqual(await skip.chains.claims('access-token.claims', CLIENT_CREDENTIALS, {}), { refused: false, claims: {} }, claim);
      assert.deepEqual(skip.reports, [{ plugin: `skip-${claim}`, point: 'access-token.claims', failure: 'outside_namespace', action: 'skipped' }]);
      const deny = await harness([{ name: `deny-${claim}`, manifest: { hooks: ['access-token.claims'], claimsNamespace: 'acme_' }, source }]);
      const refused = await deny.chains.claims('access-token.claims', CLIENT_CREDENTIALS, {});
      assert.equal(refused.refused, true, claim);
      assert.equal(refused.refused && refused.fault, 'error');
      assert.deepEqual(deny.reports, [{ plugin: `deny-${claim}`, point: 'access-token.claims', failure: 'outside_namespace', action: 'denied' }]);
    }
  });

  it('a claims hook that answers __proto__, constructor or a name with spaces: outside its namespace, reported, and no prototype changes', async () => {
    // Computed keys make own properties; JSON carries them, and the host's JSON.parse makes them own keys again.
    const answers: Record<string, string> = {
      proto: `{ ['__proto__']: { sub: 'admin', acme_admin: true } }`,
      ctor: `{ ['constructor']: { prototype: { sub: 'admin' } } }`,
      spaces: `{ acme_ok: 1, 'acme_ is admin': true }`,
    };
    for (const [name, claims] of Object.entries(answers)) {
      // "__proto_" is a namespace the manifest accepts, and "__proto__" starts with it: the answer check is what refuses.
      const namespace = name === 'proto' ? '__proto_' : 'acme_';
      const source = `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: ${claims} }) };`;
      const { chains, reports } = await harness([{ name: `wire-${name}`, manifest: { hooks: ['access-token.claims'], claimsNamespace: namespace, onFailure: { 'access-token.claims': 'skip' } }, source }]);
      const outcome = await chains.claims('access-token.claims', CLIENT_CREDENTIALS, { iss: 'https://id.example' });
      assert.deepEqual(outcome, { refused: false, claims: { iss: 'https://id.example' } }, name);
      assert.equal(Object.getPrototypeOf(outcome.refused ? null : outcome.claims), Object.prototype, name);
      assert.equal((outcome.refused ? {} : (outcome.claims as Record<string, unknown>))['sub'], undefined, name);
      assert.deepEqual(reports, [{ plugin: `wire-${name}`, point: 'access-token.claims', failure: 'outside_namespace', action: 'skipped' }], name);
    }
    assert.equal(({} as Record<string, unknown>)['sub'], undefined, 'Object.prototype untouched');
  });

  it('a login rule denies with its reason; an allow from a plugin is not taken (plugins may only deny or pass)', async () => {
    const { chains, reports } = await harness([
      { name: 'rule', manifest: { hooks: ['login.before', 'login.after'] }, source: `export const hooks = { 'login.before': ({ context }) => context.ip.startsWith('203.0.113.') ? { verdict: 'deny', reason: 'Sign-in from this network is not allowed.' } : { verdict: 'pass' }, 'login.after': () => ({ verdict: 'allow' }) };` },
    ]);
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: false, handler: 'plugins.host', reason: 'Sign-in from this network is not allowed.' });
    assert.deepEqual(await chains.decide('login.before', { ...LOGIN, ip: '198.51.100.7' }), { allowed: true, handler: 'identity.password-step' });
    // A disabled account: the plugin's "allow" must not let it past identity.account-active.
    const after = await chains.decide('login.after', { userId: 'u1', amr: ['pwd'], secondFactorEnrolled: false, disabled: true, ip: '198.51.100.7' });
    assert.equal(after.allowed, false);
    assert.deepEqual(reports.map((report) => [report.failure, report.action]), [['invalid_answer', 'denied']]);
  });
});

describe('plugin host: supervision', () => {
  it('a crash inside every hook: each request is refused at once, the plugin restarts with backoff, and is quarantined after repeated crashes', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': () => process.exit(3), 'access-token.claims': () => process.exit(3) };`;
    // A backoff long enough that the request below meets the plugin down (it takes microseconds).
    const { chains, plugins, events, next } = await harness([{ name: 'crasher', manifest: { hooks: ['login.before', 'access-token.claims'], claimsNamespace: 'acme_' }, source }], { ...SETTINGS, restartBackoffMs: 500 });
    const [plugin] = plugins;
    for (let crash = 1; crash <= SETTINGS.quarantineCrashes; crash++) {
      const crashed = next('crashed');
      const restarted = next('started');
      assert.equal((await chains.decide('login.before', LOGIN)).allowed, false);
      await crashed;
      // While it restarts, a request is refused without waiting for it.
      const refused = await chains.claims('access-token.claims', CLIENT_CREDENTIALS, {});
      assert.equal(refused.refused, true);
      assert.equal(plugin!.state, crash < SETTINGS.quarantineCrashes ? 'restarting' : 'quarantined');
      if (crash < SETTINGS.quarantineCrashes) await restarted;
    }
    assert.equal(plugin!.state, 'quarantined');
    assert.ok(events.some((event) => event.kind === 'quarantined'));
    const crashes = events.filter((event) => event.kind === 'crashed');
    assert.deepEqual(crashes.map((event) => event.kind === 'crashed' && event.restartInMs), [500, 1000, null], 'the backoff doubles, and no restart after quarantine');
    assert.equal(plugin!.status().restarts, 2);
  });

  it('closed while it starts (disabled at once, or the host stopping): it stays stopped, no start, no crash, no restart', { timeout: 30_000 }, async () => {
    const events: SupervisorEvent[] = [];
    const built = pluginDirectory('closed-early', { hooks: ['login.before'] }, `export const hooks = { 'login.before': () => ({ verdict: 'pass' }) };`);
    const plugin = new SupervisedPlugin({ name: 'closed-early', version: '1.0.0', digest: 'test', directory: built.directory, manifest: built.manifest }, { settings: SETTINGS, hostMethods: {}, onEvent: (event) => void events.push(event) });
    plugin.start();
    const waiting = plugin.whenRunning().then(() => 'running', (error: Error) => error.message);
    await plugin.close();
    assert.match(await waiting, /was stopped/);
    assert.equal(plugin.state, 'stopped');
    assert.deepEqual(events, [], 'the child answered ready while it was closed: that is no start, and its exit no crash');
    assert.equal(plugin.status().pid, null);
  });

  it('an infinite loop: calls miss their deadline, and after maxMissedDeadlines the child is killed and restarted', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': ({ context }) => { if (context.account === 'loop@example.com') for (;;); return { verdict: 'pass' }; } };`;
    const { chains, plugins, next } = await harness([{ name: 'looper', manifest: { hooks: ['login.before'], limits: { deadlineMs: 100 } }, source }]);
    const crashed = next('crashed');
    const restarted = next('started');
    for (let miss = 0; miss < SETTINGS.maxMissedDeadlines; miss++) {
      const decision = await chains.decide('login.before', { ...LOGIN, account: 'loop@example.com' });
      assert.equal(decision.allowed, false);
    }
    const event = await crashed;
    assert.match(event.kind === 'crashed' ? event.reason : '', /killed after 2 missed deadlines/);
    await restarted;
    assert.equal((await chains.decide('login.before', { ...LOGIN, ip: '198.51.100.7' })).allowed, true, 'served again after the restart');
    assert.equal(plugins[0]!.status().restarts, 1);
  });

  it('the breaker opens after repeated failures, refuses without calling the plugin, then lets one probe through (half-open) and closes on success', { timeout: 30_000 }, async () => {
    const source = `let calls = 0; export const hooks = { 'login.before': ({ context }) => { calls++; if (context.account === 'count@example.com') return { verdict: 'deny', reason: 'calls ' + calls }; if (context.account === 'fail@example.com') throw new Error('no'); return { verdict: 'pass' }; } };`;
    const { chains, plugins, next } = await harness([{ name: 'flaky', manifest: { hooks: ['login.before'] }, source }]);
    const [plugin] = plugins;
    const opened = next('breaker');
    for (let index = 0; index < 5; index++) await chains.decide('login.before', { ...LOGIN, account: 'fail@example.com' });
    assert.deepEqual(await opened, { kind: 'breaker', state: 'open' });
    const halfOpen = next('breaker');
    assert.equal(plugin!.breakerState, 'open');
    // Refused by the breaker: the plugin's counter does not move.
    for (let index = 0; index < 3; index++) assert.equal((await chains.decide('login.before', { ...LOGIN, account: 'count@example.com' })).allowed, false);
    assert.deepEqual(await halfOpen, { kind: 'breaker', state: 'half-open' });
    const closed = next('breaker');
    const probe = await chains.decide('login.before', { ...LOGIN, account: 'count@example.com' });
    assert.deepEqual(probe, { allowed: false, handler: 'plugins.host', reason: 'calls 6' }, 'the breaker kept the three refused calls from the plugin');
    assert.deepEqual(await closed, { kind: 'breaker', state: 'closed' });
  });

  it('the concurrency cap: calls past limits.concurrency wait for a slot in turn, within their deadline; past 16 waiting per slot they are refused at once', { timeout: 30_000 }, async () => {
    const source = `let inside = 0, most = 0; export const hooks = { 'access-token.claims': () => { inside++; most = Math.max(most, inside); return new Promise((resolve) => setTimeout(() => { inside--; resolve({ verdict: 'modify', claims: { acme_most: most } }); }, 20)); } };`;
    const { chains, reports } = await harness([{ name: 'narrow', manifest: { hooks: ['access-token.claims'], claimsNamespace: 'acme_', limits: { concurrency: 1, deadlineMs: 10_000 }, onFailure: { 'access-token.claims': 'skip' } }, source }]);
    // One runs, 16 wait (the most one slot may have waiting), 3 more are refused at once.
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => chains.claims('access-token.claims', CLIENT_CREDENTIALS, {})));
    const served = outcomes.filter((outcome) => !outcome.refused && 'acme_most' in outcome.claims);
    assert.equal(served.length, 17);
    assert.ok(served.every((outcome) => !outcome.refused && outcome.claims['acme_most'] === 1), 'never more than one call inside the plugin');
    assert.deepEqual(reports.map((report) => report.failure), ['over_capacity', 'over_capacity', 'over_capacity']);
  });

  it('a call waits for a slot at most half its deadline (then it goes out with the other half); a slot that frees later is refused over_capacity, and not counted as a missed deadline', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': ({ context }) => context.account.startsWith('slow') ? new Promise((resolve) => setTimeout(() => resolve({ verdict: 'pass' }), Number(context.account.slice(4, 7)))) : { verdict: 'pass' } };`;
    const { chains, plugins, reports } = await harness([{ name: 'slow-slot', manifest: { hooks: ['login.before'], limits: { concurrency: 1, deadlineMs: 400 } }, source }]);
    // Held 100 ms of the 400: the waiter gets the slot well within its 200 ms of waiting.
    const [first, served] = await Promise.all([chains.decide('login.before', { ...LOGIN, account: 'slow100@example.com', ip: '198.51.100.1' }), chains.decide('login.before', { ...LOGIN, ip: '198.51.100.2' })]);
    assert.equal(first.allowed, true);
    assert.equal(served.allowed, true);
    assert.equal(reports.length, 0);
    // Held 350 ms: the waiter gives up after 200 ms, over_capacity; the plugin is not blamed.
    const [holder, refused] = await Promise.all([chains.decide('login.before', { ...LOGIN, account: 'slow350@example.com', ip: '198.51.100.3' }), chains.decide('login.before', { ...LOGIN, ip: '198.51.100.4' })]);
    assert.equal(holder.allowed, true);
    assert.equal(refused.allowed, false);
    assert.deepEqual(reports.map((report) => report.failure), ['over_capacity']);
    assert.equal(plugins[0]!.breakerState, 'closed');
    assert.equal(plugins[0]!.status().restarts, 0);
  });

  it('an undeclared host call is -32601 for the plugin, reported as a violation, and repeated ones quarantine it', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': async (_params, host) => { try { await host.call('users.read', { userId: 'u1' }); } catch (error) { return { verdict: 'deny', reason: 'refused ' + error.code }; } return { verdict: 'pass' }; } };`;
    const { chains, plugins, events, next } = await harness([{ name: 'snoop', manifest: { hooks: ['login.before'] }, source }]);
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: false, handler: 'plugins.host', reason: 'refused -32601' });
    assert.deepEqual(events.find((event) => event.kind === 'violation'), { kind: 'violation', violation: 'method-not-found', method: 'users.read', counted: true });
    const quarantined = next('quarantined');
    for (let index = 1; index < SETTINGS.quarantineCrashes; index++) await chains.decide('login.before', LOGIN);
    await quarantined;
    assert.equal(plugins[0]!.state, 'quarantined');
  });

  it('a plugin whose fs reaches a protected path does not start: a crash (naming its manifest path), then quarantine; never running', { timeout: 30_000 }, async () => {
    const dataDir = join(root, 'protected-data');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'master.key'), 'k'.repeat(43));
    const { directory, manifest } = pluginDirectory('key-reader', { hooks: ['login.before'], fs: [join(dataDir, 'master.key')] }, `export const hooks = { 'login.before': () => ({ verdict: 'pass' }) };`);
    const events: SupervisorEvent[] = [];
    const plugin = new SupervisedPlugin({ name: 'key-reader', version: '1.0.0', digest: 'test', directory, manifest }, { settings: SETTINGS, hostMethods: {}, deniedPaths: [dataDir], onEvent: (event) => void events.push(event) });
    try {
      plugin.start();
      await assert.rejects(plugin.whenRunning(), /quarantined/);
      const crashes = events.filter((event) => event.kind === 'crashed');
      assert.equal(crashes.length, SETTINGS.quarantineCrashes);
      for (const crash of crashes) assert.ok(crash.kind === 'crashed' && crash.reason.includes(`the read path ${join(dataDir, 'master.key')} is, contains or is inside a path the host protects`), JSON.stringify(crash));
      assert.ok(!events.some((event) => event.kind === 'started'));
      assert.equal(plugin.state, 'quarantined');
    } finally {
      await plugin.close();
    }
  });

  it('a burst past the concurrency cap waits its turn instead of failing, and never opens the breaker', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': () => new Promise((resolve) => setTimeout(() => resolve({ verdict: 'pass' }), 20)) };`;
    const { chains, plugins, reports } = await harness([{ name: 'bursty', manifest: { hooks: ['login.before'], limits: { concurrency: 1, deadlineMs: 10_000 } }, source }]);
    const decisions = await Promise.all(Array.from({ length: 12 }, (_, index) => chains.decide('login.before', { ...LOGIN, ip: `198.51.100.${index}` })));
    assert.equal(decisions.filter((decision) => decision.allowed).length, 12);
    assert.deepEqual(reports, []);
    assert.equal(plugins[0]!.breakerState, 'closed');
  });

  it('the plugin cannot signal the server (process.kill, or SIGUSR1 through process._debugProcess), lower its priority or set V8 flags; all refused inside the sandbox', { timeout: 30_000 }, async () => {
    const source = `import os from 'node:os';
      import v8 from 'node:v8';
      const attempt = (f) => { try { f(); return 'ran'; } catch (error) { return error.code ?? 'threw'; } };
      export const hooks = { 'login.before': () => ({ verdict: 'deny', reason: [attempt(() => process.kill(process.ppid, 0)), attempt(() => process._kill(process.ppid, 0)), attempt(() => os.setPriority(process.ppid, 19)), attempt(() => process._debugProcess(process.ppid)), attempt(() => v8.setFlagsFromString('--allow-natives-syntax')), attempt(() => Object.defineProperty(process, 'kill', { value: () => 1 }))].join(' ') }) };`;
    const { chains } = await harness([{ name: 'signaller', manifest: { hooks: ['login.before'] }, source }]);
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: false, handler: 'plugins.host', reason: 'ERR_ACCESS_DENIED ERR_ACCESS_DENIED ERR_ACCESS_DENIED ERR_ACCESS_DENIED ERR_ACCESS_DENIED threw' });
  });

  it('host calls are answered only during a hook call, and within a budget per hook call: a flood is refused and reported', { timeout: 30_000 }, async () => {
    const calls: string[] = [];
    const source = `let atLoad = 'none';
      export const hooks = { 'login.before': async (_params, host) => {
        let answered = 0;
        for (let index = 0; index < 200; index++) { try { await host.call('audit.record', { action: 'x' }); answered++; } catch { break; } }
        return { verdict: 'deny', reason: 'answered ' + answered + ' at load ' + globalThis.loadOutcome };
      } };
      globalThis.loadOutcome = 'pending';
      setTimeout(() => {}, 0);
      export const loaded = (async () => {})();`;
    const { directory, manifest } = pluginDirectory('flooder', { hooks: ['login.before'], hostCalls: ['audit.record'] }, source);
    const events: SupervisorEvent[] = [];
    const plugin = new SupervisedPlugin({ name: 'flooder', version: '1.0.0', digest: 'test', directory, manifest }, { settings: { ...SETTINGS, quarantineCrashes: 100 }, hostMethods: { 'audit.record': () => { calls.push('audit'); return null; } }, onEvent: (event) => void events.push(event) });
    running.push({ chains: undefined as never, plugins: [plugin], events, reports: [], next: () => new Promise(() => {}) });
    plugin.start();
    await plugin.whenRunning();
    const answer = (await plugin.call('hook.login.before', { context: LOGIN, claims: {} })) as { reason: string };
    const answered = Number(/answered (\d+)/.exec(answer.reason)![1]);
    assert.ok(answered < 200 && answered >= 32, `${answered} host calls answered of 200`);
    assert.equal(calls.length, answered);
    assert.ok(events.some((event) => event.kind === 'violation' && event.violation === 'too-many-requests'));
  });

  it('a host call made after the hook answered (a kept host, from a timer) is refused: the plugin cannot act on its own', { timeout: 30_000 }, async () => {
    const calls: string[] = [];
    const source = `export const hooks = { 'login.before': (_params, host) => {
        setTimeout(() => host.call('audit.record', { action: 'later' }).then(() => console.error('OUTCOME answered'), (error) => console.error('OUTCOME ' + error.code)), 100);
        return { verdict: 'pass' };
      } };`;
    const { directory, manifest } = pluginDirectory('keeper', { hooks: ['login.before'], hostCalls: ['audit.record'] }, source);
    let reported!: (text: string) => void;
    const outcome = new Promise<string>((resolve) => (reported = resolve));
    const plugin = new SupervisedPlugin(
      { name: 'keeper', version: '1.0.0', digest: 'test', directory, manifest },
      { settings: SETTINGS, hostMethods: { 'audit.record': () => { calls.push('audit'); return null; } }, onEvent: () => undefined, onStderr: (text) => text.includes('OUTCOME') && reported(text.trim()) },
    );
    running.push({ chains: undefined as never, plugins: [plugin], events: [], reports: [], next: () => new Promise(() => {}) });
    plugin.start();
    await plugin.whenRunning();
    assert.deepEqual(await plugin.call('hook.login.before', { context: LOGIN, claims: {} }), { verdict: 'pass' });
    assert.equal(await outcome, 'OUTCOME -32000');
    assert.deepEqual(calls, []);
  });

  it('each start, restarts included, checks the installed copy first: a copy changed while the plugin ran is quarantined at its restart, never run', { timeout: 30_000 }, async () => {
    const { directory, manifest } = pluginDirectory('changing', { hooks: ['login.before'] }, `export const hooks = { 'login.before': ({ context }) => context.account === 'exit@example.com' ? process.exit(1) : { verdict: 'pass' } };`);
    let copyChecks = true;
    const events: SupervisorEvent[] = [];
    const plugin = new SupervisedPlugin({ name: 'changing', version: '1.0.0', digest: 'test', directory, manifest }, { settings: SETTINGS, hostMethods: {}, verify: () => (copyChecks ? undefined : 'the installed copy differs from the pinned digest'), onEvent: (event) => void events.push(event) });
    running.push({ chains: undefined as never, plugins: [plugin], events, reports: [], next: () => new Promise(() => {}) });
    plugin.start();
    await plugin.whenRunning();
    copyChecks = false;
    const quarantined = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (plugin.state === 'quarantined') {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    await assert.rejects(plugin.call('hook.login.before', { context: { ...LOGIN, account: 'exit@example.com' }, claims: {} }));
    await quarantined;
    await assert.rejects(plugin.whenRunning(), /quarantined/);
    assert.equal(plugin.state, 'quarantined');
    assert.deepEqual(events.filter((event) => event.kind === 'started').length, 1, 'started once, never again');
    assert.ok(events.some((event) => event.kind === 'quarantined' && /differs from the pinned digest/.test(event.reason)));
  });

  it('off-heap memory past the limit (Buffers are outside the heap cap): the child is killed and restarted', { timeout: 60_000 }, async () => {
    const source = `const keep = []; export const hooks = { 'login.before': () => { for (let index = 0; index < 8; index++) keep.push(Buffer.alloc(32 * 1024 * 1024, 1)); return { verdict: 'pass' }; } };`;
    const { chains, next } = await harness([{ name: 'hoarder', manifest: { hooks: ['login.before'], limits: { memoryMb: 16 } }, source }]);
    const crashed = next('crashed');
    await chains.decide('login.before', LOGIN);
    const event = await crashed;
    assert.match(event.kind === 'crashed' ? event.reason : '', /resident memory over 96 MiB/);
  });

  it('a plugin that calls sandbox.ready itself (the runtime does, once) is refused and reported', { timeout: 30_000 }, async () => {
    const source = `export const hooks = { 'login.before': async (_params, host) => { try { await host.call('sandbox.ready', { hooks: [] }); return { verdict: 'pass' }; } catch (error) { return { verdict: 'deny', reason: 'refused ' + error.code }; } } };`;
    const { chains, events } = await harness([{ name: 'ready-again', manifest: { hooks: ['login.before'] }, source }]);
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: false, handler: 'plugins.host', reason: 'refused -32600' });
    assert.ok(events.some((event) => event.kind === 'violation' && event.violation === 'ready-twice' && event.counted));
  });
});
