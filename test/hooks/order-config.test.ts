/**
 * The order of a chain cannot be changed by configuration: no config key,
 * environment variable or config file entry names hooks, and what the
 * server runs is the chain file of the source tree (the running order is
 * tested end to end in sign-in.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, configLeaves, loadConfig, type ConfigInput } from '../../src/config/index.ts';
import { HOOK_POINTS, HookChains, bundledChainSource, idlePluginSlot, parseChainFile, type HookPoint } from '../../src/hooks/index.ts';
import { IDENTITY_HOOKS } from '../../src/identity/index.ts';
import { OAUTH_HOOKS } from '../../src/oauth/index.ts';

describe('configuration cannot reorder hook chains', () => {
  it('no configuration key is about hooks', () => {
    assert.deepEqual(
      configLeaves().filter((leaf) => /hook|chain/i.test(leaf.path) || /HOOK|CHAIN/.test(leaf.env)),
      [],
    );
  });

  it('a hooks entry is refused from the environment, a config file and the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-hooks-'));
    try {
      const file = join(dir, 'portcullis.json');
      writeFileSync(file, JSON.stringify({ hooks: { 'login.before': ['test.first'] } }));
      const overrides = { dataDir: dir } as ConfigInput;
      for (const attempt of [
        () => loadConfig({ env: { PORTCULLIS_HOOKS: 'login.before=test.first' }, overrides }),
        () => loadConfig({ env: { PORTCULLIS_HOOKS_CHAINS_FILE: join(dir, 'chains.cfg') }, overrides }),
        () => loadConfig({ env: {}, file, overrides }),
        () => loadConfig({ env: {}, overrides: { ...overrides, hooks: { order: ['test.first'] } } }),
      ]) {
        assert.throws(attempt, ConfigError);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the built-in handlers load against the source tree chain file in its order, in whatever order they are registered', () => {
    const expected = parseChainFile(bundledChainSource());
    const builtIns = [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...idlePluginSlot(Object.keys(HOOK_POINTS) as HookPoint[])];
    for (const handlers of [builtIns, builtIns.toReversed()]) {
      const chains = HookChains.load({ handlers, source: bundledChainSource() });
      for (const [point, lines] of expected.chains) assert.deepEqual(chains.order(point), lines.map((line) => line.handler), point);
    }
    assert.deepEqual(HookChains.load({ handlers: builtIns, source: bundledChainSource() }).order('login.after'), ['identity.second-factor', 'plugins.host', 'identity.account-active']);
  });
});
