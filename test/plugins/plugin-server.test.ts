/**
 * Plugins in a serving Portcullis (issue 14), on both backends: signed
 * packages installed and enabled through the registry while the server
 * runs; the host starts them and puts them on the chains. What a client
 * sees is checked over HTTP (the token endpoint), what the host recorded in
 * the audit ledger, and that the server goes on serving whatever the plugin
 * does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import type { DurableStore } from '../../src/store/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { PluginRegistry, readPluginStatus, type PluginHost } from '../../src/plugins/index.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';
import { pluginSigner, tempDirectory } from '../support/plugin-packages.ts';

const { trustedKey, signedPackage } = pluginSigner('portcullis-plugin-server-');

async function auditTypes(store: DurableStore): Promise<{ type: string; outcome: string; detail?: Record<string, unknown> }[]> {
  const size = await store.auditLog.size();
  const rows = [];
  for (let start = 0; start < size; start += 1000) rows.push(...(await store.auditLog.entries(start, Math.min(size, start + 1000))));
  return rows.map((row) => decodeEntry(row.entry) as unknown as { type: string; outcome: string; detail?: Record<string, unknown> });
}

for (const backend of testBackends) {
  describe(`plugins in a serving instance (${backend})`, () => {
    let server: TestServer;
    let registry: PluginRegistry;
    let host: PluginHost;
    let authorization: string;
    const token = () => fetch(`${server.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    const enable = async (directory: string, name: string) => {
      await registry.install(directory, { actor: 'test' });
      await registry.setEnabled(name, true, 'test');
      await host.reconcile();
      await host.plugin(name)!.whenRunning();
    };
    const disable = async (name: string) => {
      await registry.remove(name, 'test');
      await host.reconcile();
    };

    before(async () => {
      server = await startTestServer({ backend, fixedPort: true, overrides: { plugins: { trustedKeys: [trustedKey], restartBackoffMs: 200, quarantineCrashes: 2 } } });
      const services = server.running.runtime;
      host = services.get('plugins')!;
      registry = new PluginRegistry({ records: server.running.stores.durable.records, events: server.running.events, directory: join(server.running.runtime.get('config').dataDir, 'plugins'), trustedKeys: [trustedKey], clock: Date.now });
      await server.running.authorizationServer.resources.create({ uri: 'https://jobs.example.com', scopes: ['jobs:run'] }, { actor: 'test' });
      const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'jobs:run' }, { allowedScopes: ['openid', 'jobs:run'], defaultSigningAlgorithm: 'EdDSA' });
      const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' });
      authorization = `Basic ${Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64')}`;
    });
    after(async () => {
      await server?.close();
    });

    it('a claims plugin adds its claims to client_credentials tokens; one that tries sub, iss, cnf or scope is skipped and the token keeps the protocol claims', async () => {
      await enable(
        signedPackage('acme-tier', { hooks: ['access-token.claims'], claimsNamespace: 'acme_' }, `export const hooks = { 'access-token.claims': ({ context }) => ({ verdict: 'modify', claims: { acme_tier: 'gold', acme_grant: context.grantType } }) };`),
        'acme-tier',
      );
      await enable(
        signedPackage('greedy', { hooks: ['access-token.claims'], claimsNamespace: 'greedy_', onFailure: { 'access-token.claims': 'skip' } }, `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { greedy_x: 1, sub: 'admin', iss: 'https://evil.example', cnf: { jkt: 'x' }, scope: 'everything' } }) };`),
        'greedy',
      );
      const response = await token();
      assert.equal(response.status, 200);
      const body = (await response.json()) as { access_token: string };
      const claims = decodeJwt(body.access_token);
      assert.equal(claims['acme_tier'], 'gold');
      assert.equal(claims['acme_grant'], 'client_credentials');
      assert.equal(claims.iss, server.running.runtime.get('config').issuer);
      assert.equal(claims['scope'], 'jobs:run');
      assert.equal(claims['cnf'], undefined);
      assert.equal(claims['greedy_x'], undefined, "nothing of the plugin that overstepped is kept");
      assert.notEqual(claims.sub, 'admin');
      const audit = await auditTypes(server.running.stores.durable);
      assert.ok(audit.some((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === 'greedy' && entry.detail['failure'] === 'outside_namespace' && entry.detail['action'] === 'skipped'));
      await disable('greedy');
      await disable('acme-tier');
      const plain = decodeJwt(((await (await token()).json()) as { access_token: string }).access_token);
      assert.equal(plain['acme_tier'], undefined, 'a removed plugin adds nothing');
    });

    it('a plugin that crashes in its hook: the token request is refused with 503 and Retry-After (never a 500), quickly; the crash and the refusal are audited; the server serves on', { timeout: 60_000 }, async () => {
      await enable(signedPackage('crasher', { hooks: ['access-token.claims'], claimsNamespace: 'crash_' }, `export const hooks = { 'access-token.claims': () => process.exit(7) };`), 'crasher');
      const first = await token();
      assert.equal(first.status, 503);
      assert.equal(first.headers.get('retry-after'), '1');
      const body = (await first.json()) as { error: string; error_description: string };
      assert.equal(body.error, 'temporarily_unavailable');
      assert.doesNotMatch(body.error_description, /crasher|exit|stack|\//, 'nothing of the plugin or the host in the answer');
      // Down now (restarting after its backoff): refused without waiting for it.
      const started = performance.now();
      const second = await token();
      const elapsed = performance.now() - started;
      assert.equal(second.status, 503);
      assert.ok(elapsed < 1000, `refused in ${elapsed} ms, not held for the plugin`);
      assert.equal((await fetch(`${server.url}/.well-known/openid-configuration`)).status, 200, 'the server serves on');
      const audit = await auditTypes(server.running.stores.durable);
      assert.ok(audit.some((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'crasher'));
      assert.ok(audit.some((entry) => entry.type === 'plugin.failed' && entry.detail?.['plugin'] === 'crasher' && entry.detail['action'] === 'denied'));
      assert.ok(audit.some((entry) => entry.type === 'hook.fault' && entry.detail?.['hook'] === 'plugins.host'));
      await host.reconcile(); // publishes the status now rather than at the next poll
      const status = (await readPluginStatus(server.running.stores.hot)).find((instance) => instance.instance === host.instance)!;
      assert.equal(status.plugins.find((plugin) => plugin.name === 'crasher')?.failures, 2);
      await disable('crasher');
      assert.equal((await token()).status, 200, 'tokens again once it is gone');
    });

    it('a plugin whose fs reaches the data directory (the embedded database, the master key file) does not start: a crash, audited, naming its manifest path', { timeout: 30_000 }, async () => {
      const granted = join(server.running.runtime.get('config').dataDir, 'plugins');
      await registry.install(signedPackage('data-reader', { hooks: ['login.before'], fs: [granted] }, `export const hooks = { 'login.before': () => ({ verdict: 'pass' }) };`), { actor: 'test' });
      await registry.setEnabled('data-reader', true, 'test');
      await host.reconcile();
      let crashed: { detail?: Record<string, unknown> } | undefined;
      for (let attempt = 0; attempt < 100 && crashed === undefined; attempt++) {
        crashed = (await auditTypes(server.running.stores.durable)).find((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'data-reader');
        if (crashed === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.match(String(crashed?.detail?.['reason']), /is, contains or is inside a path the host protects/);
      assert.ok(String(crashed?.detail?.['reason']).includes(granted));
      assert.notEqual(host.plugin('data-reader')?.state, 'running');
      await disable('data-reader');
    });

    it('a login rule denies a sign-in from a listed network, and lets others through to the password check', async () => {
      await server.running.identity.accounts.createUser('rule@example.com', 'correct horse battery staple 42', { actor: 'test' });
      await enable(
        signedPackage('net-rule', { hooks: ['login.before'], hostCalls: ['audit.record'] }, `export const hooks = { 'login.before': async ({ context }, host) => { if (!context.ip.startsWith('203.0.113.')) return { verdict: 'pass' }; await host.call('audit.record', { action: 'net-rule.denied', detail: { network: '203.0.113.0/24' } }); return { verdict: 'deny', reason: 'Sign-in from this network is not allowed.' }; } };`),
        'net-rule',
      );
      const denied = await server.running.identity.accounts.login('rule@example.com', 'correct horse battery staple 42', { ip: '203.0.113.9' });
      assert.deepEqual(denied, { outcome: 'refused', reason: 'Sign-in from this network is not allowed.' });
      const allowed = await server.running.identity.accounts.login('rule@example.com', 'correct horse battery staple 42', { ip: '198.51.100.9' });
      assert.equal(allowed.outcome, 'ok', JSON.stringify(allowed));
      const audit = await auditTypes(server.running.stores.durable);
      assert.ok(audit.some((entry) => entry.type === 'plugin.recorded' && entry.detail?.['action'] === 'net-rule.denied' && entry.detail['plugin'] === 'net-rule'));
      assert.ok(audit.some((entry) => entry.type === 'plugin.call' && entry.detail?.['method'] === 'audit.record' && entry.outcome === 'success'));
      await disable('net-rule');
    });

    it('a quarantined deny rule keeps failing closed (it is not dropped from the chain, which would let through what it refuses) until an operator enables it again', { timeout: 60_000 }, async () => {
      const password = 'correct horse battery staple 43';
      await server.running.identity.accounts.createUser('boom@example.com', password, { actor: 'test' });
      await server.running.identity.accounts.createUser('quarantine@example.com', password, { actor: 'test' });
      const login = (account: string, ip: string) => server.running.identity.accounts.login(account, password, { ip });
      const fragile = signedPackage('fragile-rule', { hooks: ['login.before'] }, `export const hooks = { 'login.before': ({ context }) => { if (context.account === 'boom@example.com') process.exit(9); return context.ip.startsWith('203.0.113.') ? { verdict: 'deny', reason: 'Not from there.' } : { verdict: 'pass' }; } };`);
      await enable(fragile, 'fragile-rule');
      assert.deepEqual(await login('quarantine@example.com', '203.0.113.9'), { outcome: 'refused', reason: 'Not from there.' });
      // An attacker who can crash the rule (here: a chosen account name) crashes it until it is quarantined.
      for (let attempt = 0; attempt < 10 && host.plugin('fragile-rule')?.state !== 'quarantined'; attempt++) {
        await login('boom@example.com', '198.51.100.9');
        await host.plugin('fragile-rule')?.whenRunning().catch(() => undefined);
      }
      await host.reconcile();
      const record = (await registry.list()).find((plugin) => plugin.name === 'fragile-rule')!;
      assert.equal(record.enabled, true);
      assert.match(record.quarantined?.reason ?? '', /crashes or violations/);
      assert.equal((await login('quarantine@example.com', '203.0.113.9')).outcome, 'refused', 'the rule still refuses what it exists to refuse');
      assert.equal((await login('quarantine@example.com', '198.51.100.9')).outcome, 'refused', 'fail closed: nothing is checked while it is quarantined');
      const status = (await readPluginStatus(server.running.stores.hot)).find((instance) => instance.instance === host.instance)!;
      assert.equal(status.plugins.find((plugin) => plugin.name === 'fragile-rule')?.state, 'quarantined');
      const audit = await auditTypes(server.running.stores.durable);
      assert.ok(audit.some((entry) => entry.type === 'plugin.quarantined' && entry.detail?.['plugin'] === 'fragile-rule'));
      // Installing the same package again (a deploy script) does not end the quarantine.
      await registry.install(fragile, { actor: 'test' });
      assert.match((await registry.list()).find((plugin) => plugin.name === 'fragile-rule')?.quarantined?.reason ?? '', /crashes or violations/);
      // The operator enables it again: the quarantine ends, and the rule runs.
      await registry.setEnabled('fragile-rule', true, 'test');
      await host.reconcile();
      await host.plugin('fragile-rule')!.whenRunning();
      assert.equal((await login('quarantine@example.com', '198.51.100.9')).outcome, 'ok');
      assert.deepEqual(await login('quarantine@example.com', '203.0.113.9'), { outcome: 'refused', reason: 'Not from there.' });
      await disable('fragile-rule');
    });

    it('a host call the host refuses is audited with its JSON-RPC error code, and the plugin gets the refusal (not an internal error)', async () => {
      await server.running.identity.accounts.createUser('probe@example.com', 'correct horse battery staple 44', { actor: 'test' });
      await enable(
        signedPackage('prober', { hooks: ['login.before'], hostCalls: ['users.read', 'audit.record'] }, `export const hooks = { 'login.before': async (_params, host) => {
          const codes = [];
          for (const [method, params] of [['users.read', { userId: '' }], ['audit.record', { action: 'prober.x', detail: { token: 'a' } }], ['audit.record', { action: 'prober.x', detail: { note: 'y'.repeat(300) } }]]) {
            try { await host.call(method, params); codes.push('ok'); } catch (error) { codes.push(error.code); }
          }
          return { verdict: 'deny', reason: codes.join(' ') };
        } };`),
        'prober',
      );
      const before = (await auditTypes(server.running.stores.durable)).length;
      assert.deepEqual(await server.running.identity.accounts.login('probe@example.com', 'correct horse battery staple 44', { ip: '198.51.100.1' }), { outcome: 'refused', reason: '-32602 -32602 -32602' });
      const calls = (await auditTypes(server.running.stores.durable)).slice(before).filter((entry) => entry.type === 'plugin.call');
      assert.deepEqual(calls.map((entry) => [entry.outcome, entry.detail?.['method'], entry.detail?.['rpcError']]), [
        ['failure', 'users.read', -32602],
        ['failure', 'audit.record', -32602],
        ['failure', 'audit.record', -32602],
      ]);
      await disable('prober');
    });
  });
}

describe('plugins at serve start', () => {
  it('a server starting with an enabled plugin opens its listener once the plugin runs: the first token request already carries its claims', { timeout: 60_000 }, async () => {
    const dataDir = tempDirectory('portcullis-plugin-restart-');
    const trustedKeys = [trustedKey];
    const overrides = { dataDir, plugins: { trustedKeys } };
    const first = await startTestServer({ fixedPort: true, overrides });
    let authorization: string;
    try {
      const registry = new PluginRegistry({ records: first.running.stores.durable.records, events: first.running.events, directory: join(dataDir, 'plugins'), trustedKeys, clock: Date.now });
      await registry.install(signedPackage('boot-claims', { hooks: ['access-token.claims'], claimsNamespace: 'boot_' }, `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { boot_ready: true } }) };`), { actor: 'test' });
      await registry.setEnabled('boot-claims', true, 'test');
      await first.running.authorizationServer.resources.create({ uri: 'https://jobs.example.com', scopes: ['jobs:run'] }, { actor: 'test' });
      const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'jobs:run' }, { allowedScopes: ['openid', 'jobs:run'], defaultSigningAlgorithm: 'EdDSA' });
      const registered = await first.running.authorizationServer.clients.register(metadata, { actor: 'test' });
      authorization = `Basic ${Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64')}`;
    } finally {
      await first.close();
    }
    const second = await startTestServer({ fixedPort: true, overrides });
    try {
      const response = await fetch(`${second.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
      assert.equal(response.status, 200);
      assert.equal(decodeJwt(((await response.json()) as { access_token: string }).access_token)['boot_ready'], true);
    } finally {
      await second.close();
    }
  });
});
