/**
 * What each kind of start asks the runtime for (issue 11 section 3): a
 * command starts only the services it uses, without listeners, logger or
 * background timers; `serve` starts everything. And what that means on a
 * real deployment: a user command does not open the keyring, so it makes
 * no signing key and writes no key event to the audit log.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../src/config/index.ts';
import { decodeEntry } from '../../src/audit/index.ts';
import { PROFILES, plan, portcullisServices, type Profile, type ServiceName } from '../../src/runtime/index.ts';
import { openStores, systemClock } from '../../src/store/index.ts';
import { initDeployment, runCli } from '../support/cli.ts';

const config = loadConfig({ env: {}, overrides: { dataDir: '/nonexistent/portcullis-subsets' } });

function started(profile: Profile, wanted: ServiceName[]): ServiceName[] {
  return plan(portcullisServices({ config, profile, clock: systemClock }), wanted).map((service) => service.name);
}

describe('the services each start asks for', () => {
  it('serve starts every service, in the table order', () => {
    assert.deepEqual(started(PROFILES.serve(config), ['outbox', 'listener', 'mtlsListener', 'metricsListener']), [
      'config',
      'vault',
      'telemetry',
      'hooks',
      'stores',
      'ledger',
      'events',
      'failures',
      'keyring',
      'identity',
      'preferences',
      'registries',
      'oauth',
      'privacy',
      'pki',
      'signals',
      'erasure',
      'plugins',
      'outbox',
      'ca',
      'listener',
      'mtlsListener',
      'metricsListener',
    ]);
  });

  it('the mTLS listener needs the ca service (where the built-in CA plugs in) and comes after the main listener', () => {
    assert.deepEqual(started(PROFILES.serve(config), ['mtlsListener']).slice(-3), ['ca', 'listener', 'mtlsListener']);
    assert.deepEqual(started(PROFILES.admin(), ['pki']), ['config', 'vault', 'stores', 'ledger', 'events', 'keyring', 'pki'], 'a ca command opens the CA without listeners');
  });

  it('a user command: identity and its audited events, no keyring, no logger, no listener', () => {
    assert.deepEqual(started(PROFILES.admin(), ['identity']), ['config', 'vault', 'stores', 'ledger', 'events', 'failures', 'identity']);
  });

  it('a user export: identity, the registries (client names) and the privacy workflows; no keyring, so no signing key is made', () => {
    assert.deepEqual(started(PROFILES.admin(), ['identity', 'privacy']), ['config', 'vault', 'stores', 'ledger', 'events', 'failures', 'identity', 'registries', 'privacy']);
  });

  it('client and resource commands: the registries; keys commands: the keyring', () => {
    assert.deepEqual(started(PROFILES.admin(), ['registries']), ['config', 'vault', 'stores', 'ledger', 'events', 'registries']);
    assert.deepEqual(started(PROFILES.admin(), ['keyring']), ['config', 'vault', 'stores', 'ledger', 'events', 'keyring']);
  });

  it('reading the audit log needs the stores only: an auditor with a copy of the database needs no master key', () => {
    assert.deepEqual(started(PROFILES.admin(), ['stores']), ['config', 'stores']);
    assert.deepEqual(started(PROFILES.migrate(), ['stores']), ['config', 'stores']);
    assert.deepEqual(started(PROFILES.init(), ['stores']), ['config', 'stores']);
  });

  it('only serve runs background maintenance, reports to a logger and loads the hook chains', () => {
    assert.deepEqual(PROFILES.serve(config), { create: true, schema: 'migrate', maintenance: true, telemetry: true, hooks: true });
    assert.equal(PROFILES.serve({ ...config, migrateOnStart: false }).schema, 'current');
    for (const profile of [PROFILES.admin(), PROFILES.migrate(), PROFILES.init()]) assert.deepEqual([profile.maintenance, profile.telemetry, profile.hooks], [false, false, false]);
    assert.deepEqual([PROFILES.admin().create, PROFILES.migrate().create, PROFILES.init().create], [false, false, true]);
  });
});

describe('a user command on a real deployment', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the user, audited, and no signing key', async () => {
    const { dir, configFile } = await initDeployment('portcullis-subsets-');
    dirs.push(dir);
    const created = await runCli(['user', 'create', '--config', configFile, '--email', 'ada@example.com', '--password-stdin'], 'a long enough passphrase here\n');
    assert.equal(created.code, 0, created.err.join('\n'));
    const stores = await openStores(loadConfig({ env: {}, file: configFile }));
    try {
      const size = await stores.durable.auditLog.size();
      const types = (await stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry).type);
      assert.ok(types.includes('user.created'), types.join(' '));
      assert.deepEqual(types.filter((type) => type.startsWith('key.')), [], 'no keyring was opened');
    } finally {
      await stores.close();
    }
  });
});
