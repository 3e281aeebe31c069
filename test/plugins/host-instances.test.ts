/**
 * Two plugin hosts (two server instances) over one registry: what one
 * decides about a plugin (a quarantine) reaches the other through the
 * registry, and a re-installation of the same package does not end it.
 * Real plugin children; the registry is an in-memory stand-in with the
 * registry's semantics for list and setQuarantined.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HookChains, PluginSlot, bundledChainSource } from '../../src/hooks/index.ts';
import { IDENTITY_HOOKS } from '../../src/identity/index.ts';
import { OAUTH_HOOKS } from '../../src/oauth/index.ts';
import { PluginHost, digestDirectory, type InstalledPlugin, type PluginHostSettings } from '../../src/plugins/index.ts';
import { tempDirectory } from '../support/plugin-packages.ts';

const SETTINGS: PluginHostSettings = { quarantineCrashes: 2, quarantineWindowMs: 60_000, maxMissedDeadlines: 2, breakerResetMs: 1000, restartBackoffMs: 20, fetchPrivateNetworks: false };
const LOGIN = { account: 'ada@example.com', ip: '198.51.100.7', throttle: { allowed: true } };
const hosts: PluginHost[] = [];
after(async () => {
  for (const host of hosts) await host.close();
});

function instance(registry: { list(): Promise<InstalledPlugin[]>; setQuarantined(name: string, digest: string, reason: string): Promise<boolean> }): { host: PluginHost; chains: HookChains } {
  const slot = new PluginSlot();
  const host = new PluginHost({
    registry,
    events: { emit: async () => undefined },
    users: { byId: async () => null },
    slot,
    settings: SETTINGS,
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    pollMs: 60_000,
    protectedPaths: [],
  });
  hosts.push(host);
  return { host, chains: HookChains.load({ handlers: [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...slot.handlers()], source: bundledChainSource() }) };
}

describe('plugin hosts sharing a registry', () => {
  it("one instance's quarantine stops the plugin on the other, which then fails closed too", { timeout: 30_000 }, async () => {
    const directory = join(tempDirectory('portcullis-instances-'), 'snooper');
    mkdirSync(directory, { recursive: true });
    const manifest = { name: 'snooper', version: '1.0.0', entry: 'index.mjs', hooks: ['login.before'] };
    writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify(manifest));
    // On the first instance's traffic only (the account), it calls a host method it did not declare: a violation each time.
    writeFileSync(join(directory, 'index.mjs'), `export const hooks = { 'login.before': async ({ context }, host) => { if (context.account === 'snoop@example.com') await host.call('users.read', { userId: 'x' }).catch(() => undefined); return { verdict: 'pass' }; } };`);
    let record: InstalledPlugin = { name: 'snooper', version: '1.0.0', digest: digestDirectory(directory).digest, keyId: 'test', path: directory, enabled: true, installedAt: 0, enabledAt: 1, manifest: JSON.stringify({ ...manifest, hostCalls: [], fs: [], limits: { memoryMb: 64, deadlineMs: 1000, concurrency: 4 }, onFailure: {} }) };
    const registry = {
      list: async () => [record],
      setQuarantined: async (name: string, digest: string, reason: string) => {
        record = { ...record, quarantined: { at: Date.now(), reason, digest } };
        return true;
      },
    };
    const a = instance(registry);
    const b = instance(registry);
    await a.host.start();
    await b.host.start();
    assert.equal((await b.chains.decide('login.before', LOGIN)).allowed, true, 'B runs it');
    for (let attempt = 0; attempt < 5 && record.quarantined === undefined; attempt++) await a.chains.decide('login.before', { ...LOGIN, account: 'snoop@example.com' });
    assert.ok(record.quarantined !== undefined, 'A recorded the quarantine');
    await b.host.reconcile();
    assert.equal(b.host.plugin('snooper'), undefined, 'B stopped its process');
    assert.equal(b.host.status().plugins[0]?.state, 'quarantined');
    const decision = await b.chains.decide('login.before', LOGIN);
    assert.equal(decision.allowed, false, 'B fails closed as well');
  });
});
